"""Time from ``kill -9`` to resumed training, on the toy profile.

Starts ``avmae pretrain`` with the toy settings (``config/config.yaml``, mid/shared) and
a checkpoint every ``--every`` optimizer steps, kills it with SIGKILL once a checkpoint
past step ``--kill-after`` exists, restarts the same command, and reports:

* kill -> first new step: until the restarted run logs its first optimizer step after
  the checkpoint (process start, imports, DeepSpeed set-up, checkpoint load, one step);
* steps lost: steps the killed run had logged after its last checkpoint;
* the same command's cold start (launch -> first step) for comparison.

Needs toy features: ``snakemake --cores all results/features/vggsound/meta.json``.

    python benchmarks/resume.py --features results/features/vggsound
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from avmae.config import default_run, pretrain_settings

ROOT = Path(__file__).resolve().parents[1]


def logged_steps(out: Path) -> list[int]:
    path = out / "log" / "steps.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("step")]


def checkpoint_step(out: Path) -> int:
    latest = out / "checkpoints" / "latest"
    text = latest.read_text().strip() if latest.exists() else ""
    return int(text[4:]) if text.startswith("step") else 0


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 600.0) -> float:
    deadline = time.time() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise RuntimeError(f"avmae pretrain exited with {proc.returncode} before the awaited point")
        if time.time() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.02)
    return time.time()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", type=Path, default=ROOT / "results/features/vggsound")
    p.add_argument("--every", type=int, default=5, help="checkpoint every N optimizer steps")
    p.add_argument("--kill-after", type=int, default=10, help="kill once a checkpoint past this step exists")
    a = p.parse_args()
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    settings = pretrain_settings(config, default_run(config, "mid", "shared"))
    settings["pretrain"]["checkpoint_every"] = a.every
    with tempfile.TemporaryDirectory(prefix="avmae-resume-") as tmp:
        out = Path(tmp)
        argv = [sys.executable, "-m", "avmae.cli", "pretrain", "--features", str(a.features),
                "--settings", json.dumps(settings), "--out", str(out), "--threads", "1"]
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        launched = time.time()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cold = wait_for(lambda: logged_steps(out), proc) - launched
        wait_for(lambda: checkpoint_step(out) > a.kill_after, proc)
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.time()
        proc.wait()
        saved, logged = checkpoint_step(out), max(logged_steps(out))
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        resumed = wait_for(lambda: any(s > saved for s in logged_steps(out)), proc) - killed
        proc.kill()
        proc.wait()
    print(f"checkpoint every {a.every} steps; killed at step {logged} with the checkpoint of step {saved}")
    print(f"kill -9 -> first step after resume: {resumed:.1f} s; steps lost: {logged - saved}; "
          f"cold start -> first step: {cold:.1f} s")


if __name__ == "__main__":
    main()
