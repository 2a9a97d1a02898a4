"""Planning cost of the workflow; prints numbers, passes or fails nothing.

(a) ``snakemake -n --quiet rules all --configfile config/paper.yaml`` (goal < 10 s): wall
    time and jobs by rule; then plain ``-n``, which also prints every job, and the
    training jobs' resources under the SLURM profile (a dry run with
    ``--workflow-profile workflow/profiles/slurm``; the default profile asks for no GPU).
    The paper's VGGSound list has no URL, so the copy gets the test fixture in its format;
    the other lists are planned as fetch_list jobs.
(b) A no-op rerun, ``snakemake -n TARGET`` in a finished workdir (goal < 5 s): ``--done``,
    or else a shrunken toy workdir built here to table1 (tests/conftest.py; minutes).

    python benchmarks/workflow_plan.py [--done /tmp/all [--target all]] [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import copy_workflow, shrink, snakemake, write_config  # noqa: E402

TRAINING_RESOURCES = ("gpu", "tasks", "nodes", "tasks_per_gpu", "mpi", "slurm_partition", "mem_mb", "runtime")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def dry_run(workdir: Path, *args: str) -> tuple[float, str]:
    """(wall seconds, output) of ``snakemake -n ARGS``; prints its CPU seconds, which do
    not depend on what else runs on the machine."""
    t, cpu = time.perf_counter(), children_cpu()
    proc = snakemake(workdir, "-n", *args)
    wall = time.perf_counter() - t
    print(f"    [{' '.join(args)}: {wall:.2f} s wall, {children_cpu() - cpu:.2f} s CPU]")
    return wall, proc.stdout + proc.stderr


def job_stats(out: str) -> dict[str, int]:
    if "Job stats:" not in out:
        return {}
    stats = out.split("Job stats:")[1].split("total")[0]
    return {w[0]: int(w[1]) for w in (line.split() for line in stats.splitlines()) if len(w) == 2 and w[1].isdigit()}


def training_resources(out: str) -> dict[str, Counter]:
    """rule -> Counter of the GPU-relevant resources of its planned jobs."""
    found = {"pretrain": Counter(), "finetune": Counter()}
    for block in re.split(r"^rule ", out, flags=re.M)[1:]:
        rule = block.split(":")[0]
        line = re.search(r"^    resources: (.*)$", block, flags=re.M)
        if rule in found and line:
            values = dict(kv.split("=", 1) for kv in line.group(1).split(", "))
            found[rule][", ".join(f"{k}={values[k]}" for k in TRAINING_RESOURCES if k in values)] += 1
    return found


def paper_plan(root: Path) -> None:
    wd = root / "paper"
    wd.mkdir()
    copy_workflow(wd)
    (wd / "data/lists").mkdir(parents=True)
    shutil.copy(ROOT / "tests/fixtures/vggsound.csv", wd / "data/lists/vggsound.csv")
    seconds, out = dry_run(wd, "--quiet", "rules", "all", "--configfile", "config/paper.yaml")
    jobs = job_stats(out)
    print(f"(a) snakemake -n --quiet rules all --configfile config/paper.yaml: {seconds:.2f} s "
          f"(goal < 10 s), {jobs.pop('total', sum(jobs.values()))} jobs")
    for rule, n in jobs.items():
        print(f"      {rule:<24} {n:6d}")
    seconds, out = dry_run(wd, "all", "--configfile", "config/paper.yaml")
    print(f"    the same, listing every job (plain -n): {seconds:.2f} s")
    seconds, out = dry_run(wd, "all", "--workflow-profile", "workflow/profiles/slurm", "--configfile", "config/paper.yaml")
    print(f"    listing every job with --workflow-profile workflow/profiles/slurm: {seconds:.2f} s; "
          "training jobs' resources:")
    for rule, counts in training_resources(out).items():
        for resources, n in counts.items():
            print(f"      {rule:<9} x{n:<3} {resources}")


def noop_rerun(done: Path | None, target: str, repeat: int, root: Path) -> None:
    if done is None:
        done, target = root / "toy", "table1"
        done.mkdir()
        write_config(done, shrink(copy_workflow(done)))
        t = time.perf_counter()
        snakemake(done, target)
        print(f"    (built a shrunken toy workdir to table1 in {time.perf_counter() - t:.0f} s)")
    times, out = zip(*(dry_run(done, target) for _ in range(repeat)))
    jobs = job_stats(out[-1])
    state = "nothing to do" if "Nothing to be done" in out[-1] else f"NOT a no-op: would run {jobs}"
    print(f"(b) no-op rerun, snakemake -n {target} in {done}: median {statistics.median(times):.2f} s, "
          f"min {min(times):.2f} s over {repeat} (goal < 5 s); {state}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--done", type=Path, help="a finished workdir (default: build a shrunken one)")
    ap.add_argument("--target", default="all", help="target finished in --done")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paper_plan(Path(tmp))
        noop_rerun(a.done, a.target, a.repeat, Path(tmp))


if __name__ == "__main__":
    main()
