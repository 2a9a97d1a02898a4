"""Wall time of the shrunken toy workflow through SLURM against the same workflow run locally.

Starts the one-node test cluster of ``tests/slurm_cluster.py`` (root, ``slurm-wlm`` and
``munge`` installed), then runs ``snakemake table1`` on two copies of the shrunken
config that ``tests/test_slurm.py`` uses (one Table 1 row: 10 jobs, pretraining as 2
processes): once with ``--executor slurm`` and the SLURM profile (site values swapped
for the test cluster's), once locally with ``--cores 2``. Prints the cluster's start and
stop times and both wall times.

    python benchmarks/slurm_workflow.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from slurm_cluster import SlurmCluster  # noqa: E402
from test_slurm import LAUNCHER_VARS, shrunken_workdir, site_profile  # noqa: E402


def timed(argv: list[str], cwd: Path, env: dict) -> float:
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(argv)} failed in {cwd}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return time.monotonic() - start


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="avmae-slurm-bench-") as tmp:
        tmp = Path(tmp)
        cluster = SlurmCluster(tmp / "cluster").start()
        try:
            env = {k: v for k, v in cluster.env().items() if k not in LAUNCHER_VARS}
            (tmp / "slurm").mkdir()
            on_slurm = shrunken_workdir(tmp / "slurm")
            profile = on_slurm / "workflow/profiles/slurm/config.yaml"
            profile.write_text(yaml.safe_dump(site_profile(yaml.safe_load(profile.read_text()))))
            slurm_s = timed([sys.executable, "-m", "snakemake", "--workflow-profile", "workflow/profiles/slurm",
                             "table1"], on_slurm, env)
        finally:
            cluster.stop()
        (tmp / "local").mkdir()
        local = shrunken_workdir(tmp / "local")
        local_env = {k: v for k, v in env.items() if not k.startswith("SLURM")}
        local_s = timed([sys.executable, "-m", "snakemake", "--cores", "2", "table1"], local, local_env)
    print(f"test cluster: start {cluster.start_seconds:.1f} s, stop {cluster.stop_seconds:.1f} s")
    print(f"snakemake table1, shrunken toy config (10 jobs): through SLURM {slurm_s:.0f} s, "
          f"local --cores 2 {local_s:.0f} s")


if __name__ == "__main__":
    main()
