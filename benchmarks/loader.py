"""Loader throughput (samples/s) at paper input size, per DataLoader worker count.

Builds a small paper-scale feature folder with the real pipeline (``--clips`` 10 s
640x360 clips from ffmpeg's Mandelbrot source with film grain, extracted to JPEG shards
at short side 256 and 10 s of 128-bin log-mel), then times ``AVClipDataset`` through a
``DataLoader`` (batch ``--batch``, ``(epoch, clip)`` keys, ``pin_memory`` when a GPU is
present) with 0, 1 and 2 workers, for

* **pretrain**: 16 frames at stride 4, random crop 224 + flip, 800 x 128 audio;
* **finetune**: 32 frames at stride 2, scale jitter 0.9-1.33 + colour + flip,
  SpecAugment (1 x 48 bins, 4 x 48 frames), 800 x 128 audio (paper ``finetune.augment``).

It also splits one worker's time per sample into JPEG read+decode, crop/resize,
colour, and audio (single process), and reports peak memory. Finally it estimates how
many cores keep one H100 fed: the AV-MAE ViT-B pretraining step's FLOPs per sample are
counted on CPU (``FlopCounterMode``, forward + backward, mid-fusion, the paper's
masking), and the GPU's rate is ``--gpu-tflops`` x ``--mfu`` (assumptions, printed).

    python benchmarks/loader.py --clips 4 --batches 6
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from avmae.data import augment as A
from avmae.data.dataset import AVClipDataset
from avmae.data.features import extract

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import make_clip  # noqa: E402  (benchmarks/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"pretrain": dict(video_frames=16, video_stride=4, crop=224, audio_frames=800, augment=None),
          "finetune": dict(video_frames=32, video_stride=2, crop=224, audio_frames=800,
                           augment=yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
                           ["finetune"]["augment"])}


def rate(ds: AVClipDataset, workers: int, batch: int, batches: int) -> float:
    """Samples/s over ``batches`` batches after one warm-up batch (workers started)."""
    n = batch * (batches + 1)
    keys = [(epoch, clip) for epoch in range(-(-n // len(ds))) for clip in range(len(ds))][:n]
    loader = DataLoader(ds, batch_size=batch, sampler=keys, num_workers=workers,
                        pin_memory=torch.cuda.is_available(), generator=torch.Generator())
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def breakdown(ds: AVClipDataset, reps: int) -> dict[str, float]:
    """ms per sample of each part of __getitem__, in this process."""
    parts = {"jpeg read+decode": 0.0, "crop/resize/flip": 0.0, "colour": 0.0, "audio (+SpecAugment)": 0.0}
    ds._arrays()
    span = ds.video_frames * ds.video_stride
    for k in range(reps):
        rng = np.random.default_rng([0, k, k % len(ds)])
        clip, start = k % len(ds), int(rng.integers(0, ds.meta["video_frames"] - span + 1))
        frames = range(start, start + span, ds.video_stride)
        t0 = time.perf_counter()
        off = ds._offsets[clip]
        data = [torch.from_numpy(np.array(ds._video[off[f]:off[f + 1]])) for f in frames]
        from torchvision.io import ImageReadMode, decode_jpeg
        full = torch.stack(decode_jpeg(data, mode=ImageReadMode.RGB))
        t1 = time.perf_counter()
        box = A.train_box(full.shape[-2], full.shape[-1], ds.crop, ds.augment, rng)
        video = A.to_unit_range(A.apply_box(full, box))
        t2 = time.perf_counter()
        if ds.augment.color is not None:
            video = A.color_augment(video, ds.augment.color, rng)
        video = A.to_model_range(video)
        t3 = time.perf_counter()
        audio = torch.from_numpy(ds._audio[clip, :ds.audio_frames].astype(np.float32)).unsqueeze(0)
        if ds.augment.spec_augment is not None:
            audio = A.spec_augment(audio, ds.augment.spec_augment, rng)
        t4 = time.perf_counter()
        for name, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[name] += dt * 1000 / reps
    return parts


def pretrain_flops_per_sample() -> float:
    """Forward + backward FLOPs of one AV-MAE ViT-B (mid-fusion) pretraining sample."""
    from model_step import PROFILES, batch, build
    model = build({"profile": "base", "encoder": "mid"}, "ours")
    x = batch(PROFILES["base"], 1)
    with FlopCounterMode(display=False) as counter:
        loss, _ = model(x, generator=torch.Generator().manual_seed(0))
        loss.backward()
    return counter.get_total_flops()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=6, help="timed batches per setting")
    p.add_argument("--workers", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--gpu-tflops", type=float, default=989.0, help="H100 SXM dense bf16 peak")
    p.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation")
    a = p.parse_args()
    torch.set_num_threads(1)  # one core per loader process, as in a DataLoader worker
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        for i in range(a.clips):
            make_clip(tmp / f"c{i}.mp4", "detailed", i)
            rows.append({"id": f"c{i}", "label": "x", "split": "train", "status": "ok", "path": str(tmp / f"c{i}.mp4")})
        pd.DataFrame(rows).to_csv(tmp / "manifest.csv", index=False)
        extract(tmp / "manifest.csv", tmp / "f", short_side=256, workers=2)
        shard = (tmp / "f" / "train" / "video_jpeg.bin").stat().st_size / a.clips / 1e6
        print(f"features: {a.clips} clips of 10 s, JPEG frames 456x256 ({shard:.2f} MB/clip), "
              f"batch {a.batch}, torch threads 1 per process\n")
        rates = {}
        for stage, kw in STAGES.items():
            ds = AVClipDataset(tmp / "f", "train", train=True, **kw)
            parts = breakdown(ds, reps=2 * a.batch)
            print(f"{stage}: {kw['video_frames']} frames x stride {kw['video_stride']}, crop {kw['crop']}, "
                  f"audio {kw['audio_frames']} x 128; ms/sample in one process: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()) + f" (sum {sum(parts.values()):.1f})")
            for w in a.workers:
                r = rate(ds, w, a.batch, a.batches)
                rates[(stage, w)] = r
                per = r / max(w, 1)
                print(f"  workers {w}: {r:7.1f} samples/s ({per:.1f} per worker process)")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak RSS: main process {rss:.0f} MiB, largest worker/child {kids:.0f} MiB "
              f"(workers are forks of the main process; their own data is a few batches)")

        flops = pretrain_flops_per_sample()
        gpu = a.gpu_tflops * 1e12 * a.mfu / flops
        best = max(rates[("pretrain", w)] / max(w, 1) for w in a.workers if w > 0) if any(a.workers) else \
            rates[("pretrain", 0)]
        fine = max(rates[("finetune", w)] / max(w, 1) for w in a.workers if w > 0) if any(a.workers) else \
            rates[("finetune", 0)]
        print(f"\nAV-MAE ViT-B pretraining: {flops / 1e9:.0f} GFLOP per sample (forward + backward); one H100 at "
              f"{a.gpu_tflops:.0f} TFLOP/s x {a.mfu:.0%} utilisation = {gpu:.0f} samples/s.\n"
              f"Pretraining loader: {best:.1f} samples/s per worker core -> {gpu / best:.0f} cores per H100; "
              f"finetuning loader: {fine:.1f} samples/s per core.")


if __name__ == "__main__":
    main()
