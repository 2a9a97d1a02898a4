"""Evaluation cost of a released ViT-L (Model Zoo): throughput, FLOPs, peak memory, and the
projected wall time of a test split on one GPU.

The model is the audiovisual MBT of the released finetuned checkpoints (ViT-L, 24 layers,
bottlenecks from layer 16 on VGGSound), with random weights (the cost does not depend on
them) on one test view per forward: 32 frames at 224 x 224 and 800 x 128 log-mel
(VGGSound; ``--audio-frames 1000`` for AudioSet). FLOPs (matmuls and convolutions)
come from ``torch.utils.flop_counter.FlopCounterMode`` on the math attention path (the
fused CPU kernel computes the same FLOPs but the counter does not see it); time from the
fused path. Peak memory is the process's resident peak (``ru_maxrss``) minus its size
before the model was built, and, on CUDA, ``torch.cuda.max_memory_allocated``.

The projection: clips x views x FLOPs per view / (the GPU's dense bf16 peak x an
assumed utilisation), printed beside the assumptions.

    python benchmarks/zoo_eval.py                       # CPU, fp32, batch 1
    python benchmarks/zoo_eval.py --device cuda --dtype bf16 --batch 16
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from avmae.models.avmae import ModelConfig
from avmae.models.mbt import MBT

LARGE = {"encoder": {"width": 1024, "depth": 24, "heads": 16, "mlp_dim": 4096},
         "decoder": {"width": 512, "depth": 4, "heads": 8, "mlp_dim": 2048}}
H100_BF16_TFLOPS = 989.0      # dense, SXM (NVIDIA's datasheet)
VGGSOUND_TEST_CLIPS = 15_446  # the test list as published (fewer survive download)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--audio-frames", type=int, default=800)
    ap.add_argument("--classes", type=int, default=309)
    ap.add_argument("--fusion-layer", type=int, default=16)
    ap.add_argument("--views", type=int, default=4, help="test views per clip (clips x crops)")
    ap.add_argument("--utilisation", type=float, default=0.4, help="assumed share of the GPU's peak")
    a = ap.parse_args()

    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    cfg = ModelConfig.from_dict({**LARGE, "video_patch": [2, 16, 16], "audio_patch": [16, 16]})
    before = rss_mib()
    model = MBT(cfg, a.classes, ["audio", "video"], a.fusion_layer).to(a.device, dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    x = {"audio": torch.randn(a.batch, 1, a.audio_frames, 128, device=a.device, dtype=dtype),
         "video": torch.randn(a.batch, 3, a.frames, 224, 224, device=a.device, dtype=dtype)}

    with torch.inference_mode():
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(x)
        flops = counter.get_total_flops() / a.batch
        times = []
        for _ in range(a.steps + 1):   # the first is warm-up
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(x)
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    best, median = min(times[1:]), statistics.median(times[1:])
    rate = a.batch / best

    print(f"MBT ViT-L audiovisual, {params / 1e6:.1f} M parameters, {a.classes} classes, fusion from layer "
          f"{a.fusion_layer}; view: {a.frames} x 224^2 frames + {a.audio_frames} x 128 log-mel; "
          f"{a.device} {a.dtype}, batch {a.batch}")
    print(f"FLOPs per view (one crop of one clip): {flops / 1e9:.1f} GFLOP")
    print(f"time per batch: min {best:.2f} s, median {median:.2f} s -> {rate:.3f} views/s "
          f"({flops * rate / 1e9:.0f} GFLOP/s achieved)")
    print(f"peak resident memory: {rss_mib():.0f} MiB ({rss_mib() - before:.0f} MiB above the start)")
    if a.device.startswith("cuda"):
        print(f"peak CUDA memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    total = VGGSOUND_TEST_CLIPS * a.views * flops
    seconds = total / (H100_BF16_TFLOPS * 1e12 * a.utilisation)
    print(f"projection, VGGSound test split on one H100: {VGGSOUND_TEST_CLIPS} clips x {a.views} views x "
          f"{flops / 1e9:.1f} GFLOP = {total / 1e15:.1f} PFLOP; at {a.utilisation:.0%} of "
          f"{H100_BF16_TFLOPS:.0f} TFLOP/s bf16: {seconds / 60:.1f} min (decoding the clips not counted)")


if __name__ == "__main__":
    main()
