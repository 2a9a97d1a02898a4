"""Loader throughput (samples/s) at paper input size, per DataLoader worker count.

Builds a small paper-scale feature folder with the real pipeline (``--clips`` 10 s
640x360 clips from ffmpeg's Mandelbrot source with film grain, extracted to JPEG shards
at short side 256 and 10 s of 128-bin log-mel; or reuses ``--features``), then times ``AVClipDataset`` through a
``DataLoader`` (batch ``--batch``, ``(epoch, clip)`` keys, ``pin_memory`` when a GPU is
present) with 0, 1 and 2 workers, decoding the JPEG frames in the workers and leaving
them to the device (``video_decode``: loader, device), for

* **pretrain**: 16 frames at stride 4, random crop 224 + flip, 800 x 128 audio;
* **finetune**: 32 frames at stride 2, scale jitter 0.9-1.33 + colour + flip,
  SpecAugment (paper ``finetune.augment``: 1 x 48 bins, time masks off), 800 x 128 audio.

It also splits one worker's time per sample into JPEG read+decode, the box (crop,
resize, flip; uint8) and audio (single process), times ``finish_batch`` (the half of
the work done where the model runs: float conversion, colour and [-1, 1] for both
modes, and for ``video_decode: device`` also decoding, with nvJPEG on a GPU and
torchvision's CPU decoder otherwise), and reports peak memory. Finally it estimates how many cores keep one H100
fed: the FLOPs per sample of the AV-MAE ViT-B pretraining step (mid-fusion, the paper's
masking) and of the MBT ViT-B audiovisual finetuning step are counted on CPU
(``FlopCounterMode``, forward + backward), and the GPU's rate is ``--gpu-tflops`` x
``--mfu`` (assumptions, printed), or for pretraining ``--pretrain-rate``, measured on a
GPU by ``engine_step.py --device cuda`` (``gpu_check.sh`` passes it on).

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
from torch.utils.flop_counter import FlopCounterMode
from torchvision.io import ImageReadMode, decode_jpeg

from avmae.data import augment as A
from avmae.data.dataset import AVClipDataset, make_loader
from avmae.data.frames import VIDEO_DECODE, collate, finish_batch, render
from avmae.features.extract import extract

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import make_clip  # noqa: E402  (benchmarks/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"pretrain": dict(video_frames=16, video_stride=4, crop=224, audio_frames=800, augment=None),
          "finetune": dict(video_frames=32, video_stride=2, crop=224, audio_frames=800,
                           augment=yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
                           ["finetune"]["augment"])}


def build_features(out: Path, clips: int, tmp: Path) -> None:
    """``clips`` 10 s 640x360 clips of detailed content, extracted to JPEG shards in ``out``."""
    rows = []
    for i in range(clips):
        make_clip(tmp / f"c{i}.mp4", "detailed", i)
        rows.append({"id": f"c{i}", "label": "x", "split": "train", "status": "ok", "path": str(tmp / f"c{i}.mp4")})
    pd.DataFrame(rows).to_csv(tmp / "manifest.csv", index=False)
    extract(tmp / "manifest.csv", out, short_side=256, workers=2)


def rate(ds: AVClipDataset, workers: int, batch: int, batches: int) -> float:
    """Samples/s over ``batches`` batches after one warm-up batch (workers started)."""
    n = batch * (batches + 1)
    keys = [(epoch, clip) for epoch in range(-(-n // len(ds))) for clip in range(len(ds))][:n]
    loader = make_loader(ds, batch, workers, keys)
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def breakdown(ds: AVClipDataset, reps: int) -> dict[str, float]:
    """ms per sample of each part of a loader-decoded item, in this process."""
    parts = {"jpeg read+decode": 0.0, "box (crop/resize/flip)": 0.0, "audio (+SpecAugment)": 0.0}
    span = ds.video_frames * ds.video_stride
    for k in range(reps):
        rng = np.random.default_rng([0, k, k % len(ds)])
        row, audio, video, offsets = ds._arrays(k % len(ds))
        start = ds._video_start(k % len(ds), 0, rng)
        t0 = time.perf_counter()
        off = offsets[row]
        decoded = decode_jpeg([torch.from_numpy(np.array(video[off[f]:off[f + 1]]))
                               for f in range(start, start + span, ds.video_stride)], mode=ImageReadMode.RGB)
        t1 = time.perf_counter()
        box = A.train_box(*decoded[0].shape[-2:], ds.crop, ds.augment, rng)
        render(decoded, box)
        t2 = time.perf_counter()
        wave = torch.from_numpy(audio[row, :ds.audio_frames].astype(np.float32)).unsqueeze(0)
        if ds.augment.spec_augment is not None:
            A.spec_augment(wave, ds.augment.spec_augment, rng)
        t3 = time.perf_counter()
        for name, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
            parts[name] += dt * 1000 / reps
    return parts


def finish_ms(ds: AVClipDataset, batch: int, reps: int, device: torch.device) -> float:
    """ms per sample of :func:`finish_batch` of collated batches on ``device`` (host-to-device
    copy included)."""
    batches = [collate([ds[(r, (r * batch + i) % len(ds))] for i in range(batch)]) for r in range(reps + 1)]
    if device.type == "cuda":
        batches = [{k: v.pin_memory() for k, v in b.items()} for b in batches]
    finish_batch(batches[0], device)              # warm-up (nvJPEG handle, kernels)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for b in batches[1:]:
        finish_batch(b, device)
    sync()
    return (time.perf_counter() - t0) * 1000 / (reps * batch)


def pretrain_flops_per_sample() -> float:
    """Forward + backward FLOPs of one AV-MAE ViT-B (mid-fusion) pretraining sample."""
    from model_step import PROFILES, batch, build
    model = build({"profile": "base", "encoder": "mid"}, "ours")
    x = batch(PROFILES["base"], 1)
    with FlopCounterMode(display=False) as counter:
        loss, _ = model(x, generator=torch.Generator().manual_seed(0))
        loss.backward()
    return counter.get_total_flops()


def finetune_flops_per_sample() -> float:
    """Forward + backward FLOPs of one audiovisual MBT ViT-B finetuning sample (32 frames,
    VGGSound's 309 classes, fusion from layer 8 with 4 bottleneck tokens)."""
    from model_step import PROFILES, model_config

    from avmae.models.mbt import MBT
    model = MBT(model_config(PROFILES["base"], "mid", "shared"), 309, ["audio", "video"], fusion_layer=8)
    x = {"audio": torch.randn(1, 1, 800, 128), "video": torch.rand(1, 3, 32, 224, 224) * 2 - 1}
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=6, help="timed batches per setting")
    p.add_argument("--workers", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--gpu-tflops", type=float, default=989.0, help="H100 SXM dense bf16 peak")
    p.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation")
    p.add_argument("--pretrain-rate", type=float, help="pretraining samples/s of one GPU as measured "
                   "(engine_step.py --device cuda); replaces the estimate above for pretraining")
    p.add_argument("--features", type=Path, help="a feature folder to reuse, built there first if it "
                   "has no meta.json (default: a temporary one); a GPU machine without ffmpeg can "
                   "take one built elsewhere")
    a = p.parse_args()
    torch.set_num_threads(1)  # one core per loader process, as in a DataLoader worker
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        features = a.features or tmp / "f"
        if not (features / "meta.json").exists():
            build_features(features, a.clips, tmp)
        clips = len(pd.read_csv(features / "train" / "index.csv"))
        shard = (features / "train" / "video_jpeg.bin").stat().st_size / clips / 1e6
        print(f"features: {clips} clips of 10 s, JPEG frames 456x256 ({shard:.2f} MB/clip), "
              f"batch {a.batch}, torch threads 1 per process\n")
        rates = {}
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        for stage, kw in STAGES.items():
            ds = AVClipDataset(features, "train", train=True, **kw)
            parts = breakdown(ds, reps=2 * a.batch)
            print(f"{stage}: {kw['video_frames']} frames x stride {kw['video_stride']}, crop {kw['crop']}, "
                  f"audio {kw['audio_frames']} x 128; ms/sample in one process: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()) + f" (sum {sum(parts.values()):.1f})")
            for decode in VIDEO_DECODE:
                ds = AVClipDataset(features, "train", train=True, video_decode=decode, **kw)
                for w in a.workers:
                    r = rate(ds, w, a.batch, a.batches)
                    rates[(stage, decode, w)] = r / max(w, 1)
                    print(f"  video_decode {decode:6} workers {w}: {r:7.1f} samples/s "
                          f"({r / max(w, 1):.1f} per worker process)")
                ms = finish_ms(ds, a.batch, a.batches, device)
                rates[(stage, decode, "finish")] = ms
                print(f"  video_decode {decode:6} finish_batch on {device.type}: {ms:.2f} ms/sample "
                      f"({1000 / ms:.0f} samples/s)")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        gpu_mem = (f", GPU peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
                   if device.type == "cuda" else "")
        print(f"peak RSS: main process {rss:.0f} MiB, largest worker/child {kids:.0f} MiB "
              f"(workers are forks of the main process; their own data is a few batches){gpu_mem}")

        gpu_flops = a.gpu_tflops * 1e12 * a.mfu
        gpu = {"pretrain": gpu_flops / pretrain_flops_per_sample(), "finetune": gpu_flops / finetune_flops_per_sample()}
        print(f"\nOne H100 at {a.gpu_tflops:.0f} TFLOP/s x {a.mfu:.0%} utilisation (forward + backward FLOPs counted): "
              f"AV-MAE ViT-B pretraining {gpu_flops / gpu['pretrain'] / 1e9:.0f} GFLOP per sample = "
              f"{gpu['pretrain']:.0f} samples/s; MBT ViT-B audiovisual finetuning "
              f"{gpu_flops / gpu['finetune'] / 1e9:.0f} GFLOP per sample = {gpu['finetune']:.0f} samples/s.")
        per = {"pretrain": "H100", "finetune": "H100"}
        if a.pretrain_rate:
            gpu["pretrain"], per["pretrain"] = a.pretrain_rate, "GPU measured"
            print(f"Pretraining as measured instead: {a.pretrain_rate:.0f} samples/s per GPU.")
        for decode in VIDEO_DECODE:
            best = {stage: max(rates[(stage, decode, w)] for w in a.workers) for stage in STAGES}
            print(f"video_decode {decode}: " + "; ".join(
                f"{stage} {best[stage]:.1f} samples/s per worker core -> {gpu[stage] / best[stage]:.1f} cores per "
                f"{per[stage]}"
                for stage in STAGES))
        if device.type == "cuda":
            for decode in VIDEO_DECODE:
                share = gpu["pretrain"] * rates[("pretrain", decode, "finish")] / 1000
                print(f"finish_batch (video_decode {decode}) on the GPU at that rate: {share:.0%} of the "
                      f"GPU's time per pretraining sample.")
        else:
            print("No GPU here: finish_batch ran on the CPU (the training process's cost on a CPU machine); "
                  "rerun on a GPU for its share of a step (nvJPEG with video_decode device).")

if __name__ == "__main__":
    main()
