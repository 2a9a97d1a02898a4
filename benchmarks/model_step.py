"""Pretraining step time, peak memory and FLOPs of every encoder strategy, beside a baseline.

One step is forward + backward + AdamW step on random inputs. Per encoder strategy,
the models' steps are timed interleaved in one process (so a loaded machine slows them
alike; min and median are printed, rates use the min); then each model runs two steps alone in a fresh
process for its peak resident memory (``ru_maxrss``); "activ+opt" is that peak minus
the resident size before the model was built (parameters, gradients, AdamW state and
activations).

Baseline: the same AV-MAE (same masking, fusion and weights) with every transformer
block replaced by the block of the MAE / AudioMAE / CAV-MAE code (timm 0.3.2-0.4.x
``Block``: attention written out as ``softmax(q @ k^T * scale) @ v``). It is written here
rather than imported, so timm is not needed. The first step's losses of both models are
compared to show that they compute the same function.

FLOPs (matmuls and convolutions) are counted with
``torch.utils.flop_counter.FlopCounterMode`` over forward + backward of the baseline (its attention is plain matmuls; the counter does not see the
fused CPU attention kernel, whose FLOPs are the same). Utilisation is against the
machine's fp32 matmul throughput, nominal and measured at start.

    python benchmarks/model_step.py --profile toy --batch 32
    python benchmarks/model_step.py --profile base --batch 2 --steps 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from avmae.models.avmae import AVMAE, ModelConfig
from avmae.models.vit import Block, Stack

NOMINAL_GFLOPS = 125.0  # fp32 matmul throughput of this 2-core machine
CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
# Input clip and patch sizes; transformer sizes come from config/config.yaml `sizes`.
PROFILES = {
    "toy": dict(size="toy", frames=4, crop=32, audio_frames=256, video_patch=[2, 8, 8], audio_patch=[32, 32]),
    "base": dict(size="base", frames=16, crop=224, audio_frames=800, video_patch=[2, 16, 16], audio_patch=[16, 16]),
}
STRATEGIES = (("early", "shared"), ("separate", "shared"), ("shared", "shared"), ("mid", "shared"))


class BaselineAttention(nn.Module):
    """timm 0.3.2 ``Attention``: explicit q @ k^T, softmax, @ v."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class BaselineBlock(nn.Module):
    """timm 0.3.2 ``Block`` (no dropout, no stochastic depth, as in MAE pretraining)."""

    def __init__(self, block: Block):
        super().__init__()
        dim = block.norm1.normalized_shape[0]
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = BaselineAttention(dim, block.attn.heads)
        self.mlp = nn.Sequential(nn.Linear(dim, block.mlp[0].out_features), nn.GELU(),
                                 nn.Linear(block.mlp[0].out_features, dim))
        self.load_state_dict(block.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def to_baseline(model: nn.Module) -> nn.Module:
    for stack in model.modules():
        if isinstance(stack, Stack):
            stack.blocks = nn.ModuleList(BaselineBlock(b) for b in stack.blocks)
    return model


def model_config(profile: dict, encoder: str, decoder: str) -> ModelConfig:
    sizes = yaml.safe_load(CONFIG.read_text())["sizes"][profile["size"]]
    return ModelConfig.from_dict({**sizes, "encoder_strategy": encoder, "decoder_strategy": decoder,
                                  "joint_layers": 2, "video_patch": profile["video_patch"],
                                  "audio_patch": profile["audio_patch"]})


def batch(profile: dict, size: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"audio": torch.randn(size, 1, profile["audio_frames"], 128, generator=g),
            "video": torch.rand(size, 3, profile["frames"], profile["crop"], profile["crop"], generator=g) * 2 - 1}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compile_blocks(module: nn.Module, **options) -> nn.Module:
    """Compile every transformer ``Block`` of ``module`` in place (regional ``torch.compile``;
    parameter names and state dicts stay as they are). ``options`` go to ``torch.compile``."""
    for m in module.modules():
        if isinstance(m, Block):
            m.compile(**options)
    return module


def build(job: dict, kind: str) -> AVMAE:
    torch.manual_seed(0)
    model = AVMAE(model_config(PROFILES[job["profile"]], job["encoder"], "shared"))
    if kind == "baseline":
        to_baseline(model)
    elif kind == "compiled":
        compile_blocks(model)
    return model


def stepper(model: AVMAE, x: dict):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)

    def step(seed: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        loss, _ = model(x, generator=torch.Generator().manual_seed(seed))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, loss.item()
    return step


def time_models(job: dict) -> dict:
    """Steps of every kind interleaved in one process, so machine load hits them alike."""
    torch.set_num_threads(job["threads"])
    x = batch(PROFILES[job["profile"]], job["batch"])
    models = {kind: build(job, kind) for kind in job["kinds"]}
    steps = {kind: stepper(m, x) for kind, m in models.items()}
    times = {kind: [] for kind in models}
    losses = {}
    for i in range(job["warmup"] + job["steps"]):
        for kind, step in steps.items():
            t, loss = step(i)
            times[kind].append(t)
            losses.setdefault(kind, loss)
    with FlopCounterMode(display=False) as counter:
        models["baseline"](x, generator=torch.Generator().manual_seed(0))[0].backward()
    return {"flops": counter.get_total_flops(), "first_loss": losses,
            "params": sum(p.numel() for p in models["ours"].parameters()),
            "times": {k: v[job["warmup"]:] for k, v in times.items()}, "first_s": {k: v[0] for k, v in times.items()}}


def peak_memory(job: dict) -> dict:
    """Peak resident memory of two steps of one model, alone in a fresh process."""
    torch.set_num_threads(job["threads"])
    before = rss_mib()
    step = stepper(build(job, job["kind"]), batch(PROFILES[job["profile"]], job["batch"]))
    step(0)
    step(1)
    return {"peak_mib": rss_mib(), "activ_opt_mib": rss_mib() - before}


def in_fresh_process(ctx, fn, job: dict) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, job).result()


def matmul_gflops(threads: int, n: int = 2048, reps: int = 8) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="toy")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--compile", action="store_true", help="also time ours with compile_blocks (inductor)")
    p.add_argument("--strategies", nargs="*", default=[e for e, _ in STRATEGIES],
                   help="encoder strategies to run (decoder: shared)")
    a = p.parse_args()
    measured = matmul_gflops(a.threads)
    print(f"profile={a.profile} batch={a.batch} threads={a.threads} torch={torch.__version__} "
          f"matmul fp32: measured {measured:.0f} GFLOP/s, nominal {NOMINAL_GFLOPS:.0f} GFLOP/s")
    kinds = ["ours", "baseline"] + (["compiled"] if a.compile else [])
    ctx = mp.get_context("spawn")
    print(f"{'encoder':9} {'model':9} {'min s':>7} {'median s':>8} {'1st s':>7} {'peak MiB':>9} {'activ+opt':>9} "
          f"{'GFLOP/step':>10} {'GFLOP/s':>8} {'%nominal':>8} {'%measured':>9} {'speedup':>7}")
    for encoder in a.strategies:
        job = {"profile": a.profile, "batch": a.batch, "steps": a.steps, "warmup": a.warmup,
               "threads": a.threads, "encoder": encoder, "kinds": kinds}
        t = in_fresh_process(ctx, time_models, job)
        memory = {kind: in_fresh_process(ctx, peak_memory, {**job, "kind": kind}) for kind in kinds}
        first = t["first_loss"]
        if any(abs(first[k] - first["ours"]) > 1e-4 * abs(first["ours"]) for k in kinds):
            raise RuntimeError(f"the models disagree on the first loss: {first}")
        base = min(t["times"]["baseline"])
        for kind in kinds:
            best, med = min(t["times"][kind]), statistics.median(t["times"][kind])
            rate = t["flops"] / best / 1e9
            print(f"{encoder:9} {kind:9} {best:7.3f} {med:8.3f} {t['first_s'][kind]:7.2f} "
                  f"{memory[kind]['peak_mib']:9.0f} {memory[kind]['activ_opt_mib']:9.0f} {t['flops'] / 1e9:10.1f} "
                  f"{rate:8.1f} {100 * rate / NOMINAL_GFLOPS:7.1f}% {100 * rate / measured:8.1f}% {base / best:6.2f}x")
    print("GFLOP/s, utilisation and speedup use each model's fastest step (the one least disturbed by other "
          "jobs on the machine); speedup = baseline's fastest / model's fastest.")


if __name__ == "__main__":
    main()
