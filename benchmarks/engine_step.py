"""Pretraining step time through the DeepSpeed engine vs the bare model step, on the CPU or a GPU.

"bare" is the model benchmark's step (``model_step.py``): forward + backward + AdamW (as
``make_optimizer`` builds it) on one batch. "engine" is the same model, weights and
optimizer wrapped by ``avmae.train.engine.initialize`` (precision from ``--precision``,
ZeRO stage from ``--zero``), stepped as ``avmae.train.loop.Trainer`` steps it:
``engine(x)``, the cross-rank finite-loss check, ``engine.backward``, ``engine.step``.
Masks are seeded per clip in both, so the first step's losses agree (checked: to 1e-5
in fp32; in bf16 the bare model's parameters are bf16 too and the check allows 2 %;
later steps differ by the engine's lr warmup). Steps of the two alternate in one
process, so machine load hits them alike; fastest and median steps are printed,
overhead uses the fastest. A step's time ends when its loss is read back, after the
optimizer's kernels (on a GPU, the stream is synchronised as well).

``--device cuda --precision auto`` times the trainer's paper settings on a GPU (bf16,
``--zero 1``, ``--batch 64``: the paper profile's micro-batch): its samples/s is the
pretraining rate that ``loader.py --pretrain-rate`` turns into loader cores per GPU.
FLOPs per sample (forward + backward, ``FlopCounterMode`` over one bare step) give
the achieved TFLOP/s.

Peak memory: each kind alone in a fresh process for two steps; "activ+opt" is the peak
minus the size before the model was built (resident size on the CPU, allocated GPU
memory on a GPU).

    python benchmarks/engine_step.py --profile toy --batch 32 --steps 10
    python benchmarks/engine_step.py --profile base --batch 2 --steps 3
    python benchmarks/engine_step.py --profile base --device cuda --precision auto --zero 1 --batch 64
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import torch
from model_step import (
    PROFILES,
    batch,
    in_fresh_process,
    matmul_gflops,
    model_config,
    rss_mib,
)
from torch.utils.flop_counter import FlopCounterMode

from avmae.models.avmae import AVMAE
from avmae.models.masking import sample_seeds


def build(job: dict) -> AVMAE:
    torch.manual_seed(0)
    return AVMAE(model_config(PROFILES[job["profile"]], job["encoder"], "shared"))


def dtype_of(job: dict) -> torch.dtype:
    from avmae.train.engine import use_bf16
    return torch.bfloat16 if use_bf16(job["precision"]) else torch.float32


def inputs(job: dict) -> dict[str, torch.Tensor]:
    """The benchmark batch on the job's device, in its compute dtype (as ``engine.to_device``)."""
    return {k: v.to(job["device"], dtype_of(job)) for k, v in batch(PROFILES[job["profile"]], job["batch"]).items()}


def finished(loss: torch.Tensor) -> float:
    """The loss as a number, once every kernel queued before it has run."""
    if loss.is_cuda:
        torch.cuda.synchronize(loss.device)
    return loss.item()


ADAMW = {"name": "adamw", "lr": 1e-4, "lr_batch": 256, "betas": [0.9, 0.95], "weight_decay": 0.05}


def bare_stepper(job: dict, x: dict):
    from avmae.train.engine import make_optimizer

    model = build(job).to(job["device"], dtype_of(job))
    opt = make_optimizer(model, ADAMW, job["batch"])

    def step(i: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        loss, _ = model(x, seeds=sample_seeds(0, i, torch.arange(job["batch"])))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = finished(loss)
        return time.perf_counter() - t0, value
    return step


def engine_stepper(job: dict, x: dict):
    from avmae.train import engine as eng
    from avmae.train.loop import Trainer

    eng.setup_distributed()
    stage = {"epochs": 1, "batch_size": job["batch"], "micro_batch_size": job["batch"], "warmup_epochs": 0,
             "grad_clip": 0.0, "zero_stage": job["zero"], "precision": job["precision"], "optimizer": ADAMW}
    engine, _ = eng.initialize(build(job), stage, total_steps=10**6, world_size=1)
    finite = Trainer._finite  # the loop's per-step cross-rank check, as the Trainer runs it

    def step(i: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        loss = engine(x, seeds=sample_seeds(0, i, torch.arange(job["batch"])))[0]
        assert finite(None, loss) is not None
        engine.backward(loss)
        engine.step()
        value = finished(loss)
        return time.perf_counter() - t0, value
    return step


STEPPERS = {"bare": bare_stepper, "engine": engine_stepper}


def flops_per_sample(job: dict, x: dict) -> float:
    """Forward + backward FLOPs of one bare step, per sample."""
    model = build(job).to(job["device"], dtype_of(job))
    with FlopCounterMode(display=False) as counter:
        model(x, seeds=sample_seeds(0, 0, torch.arange(job["batch"])))[0].backward()
    return counter.get_total_flops() / job["batch"]


def time_both(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    x = inputs(job)
    steps = {kind: make(job, x) for kind, make in STEPPERS.items()}
    times, losses = {k: [] for k in steps}, {k: [] for k in steps}
    for i in range(job["warmup"] + job["steps"]):
        for kind, step in steps.items():
            t, loss = step(i)
            times[kind].append(t)
            losses[kind].append(loss)
    return {"times": {k: v[job["warmup"]:] for k, v in times.items()}, "losses": losses,
            "flops": flops_per_sample(job, x)}


def memory_mib(device: str, peak: bool) -> float:
    if device.startswith("cuda"):
        return (torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()) / 2**20
    return rss_mib()


def peak_memory(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    import deepspeed  # noqa: F401  (both kinds pay for the import before the baseline reading)
    x = inputs(job)
    before = memory_mib(job["device"], peak=False)
    step = STEPPERS[job["kind"]](job, x)
    step(0)
    step(1)
    peak = memory_mib(job["device"], peak=True)
    return {"peak_mib": peak, "activ_opt_mib": peak - before}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="toy")
    p.add_argument("--encoder", default="mid", choices=["early", "separate", "shared", "mid"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--zero", type=int, default=0, choices=[0, 1, 2])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="as a stage's precision (auto: bf16 on a GPU)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = p.parse_args()
    os.environ.setdefault("DS_ACCELERATOR", a.device)
    job = {k: getattr(a, k) for k in ("profile", "encoder", "batch", "steps", "warmup", "zero", "device",
                                      "precision", "threads")}
    where = torch.cuda.get_device_name() if a.device == "cuda" else f"{a.threads} threads, matmul fp32 " \
        f"{matmul_gflops(a.threads):.0f} GFLOP/s"
    print(f"profile={a.profile} encoder={a.encoder}-shared batch={a.batch} zero={a.zero} "
          f"precision={a.precision} on {a.device} ({where})")
    ctx = mp.get_context("spawn")
    t = in_fresh_process(ctx, time_both, job)
    first = [t["losses"][k][0] for k in STEPPERS]
    tol = 1e-5 if dtype_of(job) == torch.float32 else 2e-2
    if abs(first[0] - first[1]) > tol * abs(first[0]):
        raise RuntimeError(f"bare and engine steps disagree on the first loss: {first}")
    memory = {k: in_fresh_process(ctx, peak_memory, {**job, "kind": k}) for k in STEPPERS}
    unit = "GPU MiB" if a.device == "cuda" else "peak MiB"
    print(f"{'kind':7} {'min s':>7} {'median s':>8} {'samples/s':>9} {'TFLOP/s':>8} {unit:>9} {'activ+opt':>9}")
    for kind in STEPPERS:
        best = min(t["times"][kind])
        print(f"{kind:7} {best:7.3f} {statistics.median(t['times'][kind]):8.3f} {a.batch / best:9.1f} "
              f"{t['flops'] * a.batch / best / 1e12:8.2f} {memory[kind]['peak_mib']:9.0f} "
              f"{memory[kind]['activ_opt_mib']:9.0f}")
    overhead = min(t["times"]["engine"]) / min(t["times"]["bare"]) - 1
    med = statistics.median(t["times"]["engine"]) / statistics.median(t["times"]["bare"]) - 1
    print(f"engine overhead: {100 * overhead:+.1f} % (fastest steps), {100 * med:+.1f} % (medians); "
          f"{t['flops'] / 1e9:.3g} GFLOP per sample (forward + backward)")
    print(f"pretraining rate through the engine: {a.batch / statistics.median(t['times']['engine']):.1f} "
          f"samples/s (median step)")


if __name__ == "__main__":
    main()
