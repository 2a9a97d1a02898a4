"""DeepSpeed engine overhead: pretraining steps through the engine vs the bare model step.

"bare" is the model benchmark's step (``model_step.py``): forward + backward + AdamW (as
``make_optimizer`` builds it) on one batch. "engine" is the same model, weights and optimizer wrapped by
``avmae.train.engine.initialize`` (fp32 on this CPU, ZeRO stage from ``--zero``), stepped
as ``avmae.train.loop.Trainer`` steps it: ``engine(x)``, the cross-rank finite-loss
check, ``engine.backward``, ``engine.step``. Masks are seeded per clip in both, so the
first step's losses agree (checked; later ones differ by the engine's lr warmup). Steps of the two alternate in one process, so
machine load hits them alike; fastest and median steps are printed, overhead uses the
fastest. Peak memory: each kind alone in a fresh process for two steps, "activ+opt" is
the peak resident size minus the size after imports.

    python benchmarks/engine_step.py --profile toy --batch 32 --steps 10
    python benchmarks/engine_step.py --profile base --batch 2 --steps 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import torch
from model_step import PROFILES, batch, in_fresh_process, matmul_gflops, model_config, rss_mib

from avmae.models.avmae import AVMAE
from avmae.models.masking import sample_seeds


def build(job: dict) -> AVMAE:
    torch.manual_seed(0)
    return AVMAE(model_config(PROFILES[job["profile"]], job["encoder"], "shared"))


ADAMW = {"name": "adamw", "lr": 1e-4, "lr_batch": 256, "betas": [0.9, 0.95], "weight_decay": 0.05}


def bare_stepper(job: dict, x: dict):
    from avmae.train.engine import make_optimizer

    model = build(job)
    opt = make_optimizer(model, ADAMW, job["batch"])

    def step(i: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        loss, _ = model(x, seeds=sample_seeds(0, i, torch.arange(job["batch"])))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, loss.item()
    return step


def engine_stepper(job: dict, x: dict):
    from avmae.train import engine as eng
    from avmae.train.loop import Trainer

    eng.setup_distributed()
    stage = {"epochs": 1, "batch_size": job["batch"], "micro_batch_size": job["batch"], "warmup_epochs": 0,
             "grad_clip": 0.0, "zero_stage": job["zero"], "precision": "fp32", "optimizer": ADAMW}
    engine, _ = eng.initialize(build(job), stage, total_steps=10**6, world_size=1)
    finite = Trainer._finite  # the loop's per-step cross-rank check, as the Trainer runs it

    def step(i: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        loss = engine(x, seeds=sample_seeds(0, i, torch.arange(job["batch"])))[0]
        assert finite(None, loss)
        engine.backward(loss)
        engine.step()
        return time.perf_counter() - t0, loss.item()
    return step


STEPPERS = {"bare": bare_stepper, "engine": engine_stepper}


def time_both(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    x = batch(PROFILES[job["profile"]], job["batch"])
    steps = {kind: make(job, x) for kind, make in STEPPERS.items()}
    times, losses = {k: [] for k in steps}, {k: [] for k in steps}
    for i in range(job["warmup"] + job["steps"]):
        for kind, step in steps.items():
            t, loss = step(i)
            times[kind].append(t)
            losses[kind].append(loss)
    return {"times": {k: v[job["warmup"]:] for k, v in times.items()}, "losses": losses}


def peak_memory(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    import deepspeed  # noqa: F401  (both kinds pay for the import before the baseline reading)
    before = rss_mib()
    step = STEPPERS[job["kind"]](job, batch(PROFILES[job["profile"]], job["batch"]))
    step(0)
    step(1)
    return {"peak_mib": rss_mib(), "activ_opt_mib": rss_mib() - before}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="toy")
    p.add_argument("--encoder", default="mid", choices=["early", "separate", "shared", "mid"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--zero", type=int, default=0, choices=[0, 1, 2])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = p.parse_args()
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    job = {k: getattr(a, k) for k in ("profile", "encoder", "batch", "steps", "warmup", "zero", "threads")}
    print(f"profile={a.profile} encoder={a.encoder}-shared batch={a.batch} zero={a.zero} threads={a.threads} "
          f"matmul fp32 {matmul_gflops(a.threads):.0f} GFLOP/s")
    ctx = mp.get_context("spawn")
    t = in_fresh_process(ctx, time_both, job)
    first = [t["losses"][k][0] for k in STEPPERS]
    if abs(first[0] - first[1]) > 1e-5 * abs(first[0]):
        raise RuntimeError(f"bare and engine steps disagree on the first loss: {first}")
    memory = {k: in_fresh_process(ctx, peak_memory, {**job, "kind": k}) for k in STEPPERS}
    print(f"{'kind':7} {'min s':>7} {'median s':>8} {'samples/s':>9} {'peak MiB':>9} {'activ+opt':>9}")
    for kind in STEPPERS:
        best = min(t["times"][kind])
        print(f"{kind:7} {best:7.3f} {statistics.median(t['times'][kind]):8.3f} {a.batch / best:9.1f} "
              f"{memory[kind]['peak_mib']:9.0f} {memory[kind]['activ_opt_mib']:9.0f}")
    overhead = min(t["times"]["engine"]) / min(t["times"]["bare"]) - 1
    med = statistics.median(t["times"]["engine"]) / statistics.median(t["times"]["bare"]) - 1
    print(f"engine overhead: {100 * overhead:+.1f} % (fastest steps), {100 * med:+.1f} % (medians)")


if __name__ == "__main__":
    main()
