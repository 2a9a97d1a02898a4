"""Real cluster execution: the workflow through the SLURM executor on a one-node SLURM cluster.

The cluster (munged + slurmctld + slurmd, ``tests/slurm_cluster.py``) starts in a
temporary folder and is torn down by the fixture's finalizer, also when a test fails.
Every workflow job goes through sbatch; the pretraining job runs as 2 SLURM tasks that
form one DeepSpeed data-parallel group (gloo on the CPU), ranks from SLURM's variables.

Needs root, ``apt-get install slurm-wlm munge`` and snakemake-executor-plugin-slurm.
Without them the cluster tests skip, except under CI (``CI=true``), where they fail.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, shrink, write_config
from slurm_cluster import SlurmCluster, missing_binaries

from avmae.config import PretrainRun, pretrain_settings
from avmae.train import launch

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Launcher variables a test process may carry from in-process training runs.
DATA_RULES = {"toy_dataset", "split_list", "download_shard", "download", "features_shard", "features"}
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
                 "AVMAE_SINGLE_PROCESS", "AVMAE_INIT_METHOD")


# -- ranks from SLURM's variables (no cluster needed) -------------------------------------

def slurm_task_env(procid, ntasks=2, nodes=1, **extra):
    env = {"SLURM_PROCID": str(procid), "SLURM_STEP_NUM_TASKS": str(ntasks), "SLURM_NTASKS": str(ntasks),
           "SLURM_LOCALID": str(procid % (ntasks // nodes)), "SLURM_NODEID": str(procid // (ntasks // nodes)),
           "SLURM_STEP_NUM_NODES": str(nodes), "SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0",
           "SLURM_STEP_LAUNCHER_PORT": "40001", "SLURM_STEP_TASKS_PER_NODE": f"{ntasks // nodes}(x{nodes})"}
    env.update(extra)
    return env


def test_ranks_and_a_loopback_file_rendezvous_on_one_node():
    envs = [slurm_task_env(r) for r in range(2)]
    assert all(launch.from_slurm(e) for e in envs)
    assert [(e["RANK"], e["WORLD_SIZE"], e["LOCAL_RANK"], e["LOCAL_WORLD_SIZE"]) for e in envs] == \
        [("0", "2", "0", "2"), ("1", "2", "1", "2")]
    assert envs[0]["AVMAE_INIT_METHOD"] == envs[1]["AVMAE_INIT_METHOD"]   # one store for the step
    assert envs[0]["AVMAE_INIT_METHOD"].startswith("file://") and "42.0-40001" in envs[0]["AVMAE_INIT_METHOD"]
    assert envs[0]["GLOO_SOCKET_IFNAME"] == "lo" and "MASTER_ADDR" not in envs[0]


def test_several_nodes_meet_at_the_first_host():
    env = slurm_task_env(5, ntasks=8, nodes=2, SLURM_STEP_NODELIST="gpu[07-08]")
    assert launch.from_slurm(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["NODE_RANK"]) == ("5", "8", "1", "1")
    assert env["MASTER_ADDR"] == "gpu07" and 20000 <= int(env["MASTER_PORT"]) < 60000
    assert "AVMAE_INIT_METHOD" not in env
    shared = slurm_task_env(5, ntasks=8, nodes=2, AVMAE_INIT_METHOD="file:///shared/store")
    assert launch.from_slurm(shared) and shared["AVMAE_INIT_METHOD"] == "file:///shared/store"


def test_a_task_bound_to_its_own_gpu_uses_device_0():
    """--gpus-per-task binds each task to its GPUs: task 3 of a node sees one GPU, as
    device 0; a task that sees the node's GPUs takes its local index."""
    bound = slurm_task_env(3, ntasks=4, CUDA_VISIBLE_DEVICES="3")
    shared = slurm_task_env(3, ntasks=4, CUDA_VISIBLE_DEVICES="0,1,2,3")
    cpu = slurm_task_env(3, ntasks=4)
    assert all(launch.from_slurm(e) for e in (bound, shared, cpu))
    assert (bound["LOCAL_RANK"], shared["LOCAL_RANK"], cpu["LOCAL_RANK"]) == ("0", "3", "3")
    assert bound["RANK"] == shared["RANK"] == "3"


def test_one_task_steps_batch_scripts_and_inner_launchers_are_left_alone():
    one = slurm_task_env(0, ntasks=1)
    batch = {k: v for k, v in slurm_task_env(0).items() if not k.startswith("SLURM_STEP")}   # sbatch -n2 script
    torchrun = slurm_task_env(1, RANK="3", WORLD_SIZE="4")
    for env in (one, batch, torchrun, {}):
        before = dict(env)
        assert not launch.from_slurm(env) and env == before
    # RANK inherited from a single-process parent (the engine's marker) is replaced.
    inherited = slurm_task_env(1, RANK="0", WORLD_SIZE="1", AVMAE_SINGLE_PROCESS="1")
    assert launch.from_slurm(inherited) and inherited["RANK"] == "1" and "AVMAE_SINGLE_PROCESS" not in inherited


def test_expand_hostlist():
    assert launch.expand_hostlist("gpu[01-03,7],cpu5,n[9-10]x") == ["gpu01", "gpu02", "gpu03", "gpu7", "cpu5",
                                                                   "n9x", "n10x"]


def test_launcher_command_lines(tmp_path):
    cmd = ["avmae", "pretrain"]
    assert launch.launch_command(cmd, 1, environ={}) == cmd   # one process: as is, SLURM or not
    # A stand-in srun on a PATH of its own: the command line is checked with or without SLURM.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    alloc = {"SLURM_JOB_ID": "7", "PATH": str(bin_dir)}
    argv = launch.launch_command(cmd, 4, cpus_per_task=8, nodes=1, gpus=4, environ=alloc)
    assert argv == [str(bin_dir / "srun"), "--ntasks=4", "--kill-on-bad-exit=1", "--cpus-per-task=8", "--nodes=1",
                    "--gpus-per-task=1", *cmd]
    assert launch.launch_command(cmd, 2, environ=alloc) == [str(bin_dir / "srun"), "--ntasks=2",
                                                            "--kill-on-bad-exit=1", *cmd]
    with pytest.raises(RuntimeError, match="srun is not on PATH"):
        launch.launch_command(cmd, 2, environ={"SLURM_JOB_ID": "7", "PATH": str(tmp_path / "empty")})
    with pytest.raises(RuntimeError, match="need a SLURM allocation"):
        launch.launch_command(cmd, 2, environ={})
    with pytest.raises(RuntimeError, match="mpi: srun"):   # inside the executor's srun -n1 step
        launch.launch_command(cmd, 2, environ={**alloc, "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"})


def test_launcher_step_gets_a_private_store_removed_afterwards(capfd):
    show = "import os, sys; p = os.environ['AVMAE_INIT_METHOD']; print(p); sys.exit(3)"
    assert launch.run_step([sys.executable, "-c", show], single_node=True) == 3   # srun's status passes through
    store = Path(capfd.readouterr().out.strip().removeprefix("file://"))
    assert store.name == "store" and store.parent.name.startswith("avmae-rdzv-")
    assert not store.parent.exists()


# -- the cluster -------------------------------------------------------------------------

def require_cluster_tools():
    missing = missing_binaries()
    reasons = []
    if missing:
        reasons.append(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        reasons.append("snakemake-executor-plugin-slurm is not installed (pip install -e .)")
    if os.geteuid() != 0:
        reasons.append("the test cluster's slurmd must run as root")
    if reasons:
        message = "SLURM test cluster unavailable: " + "; ".join(reasons)
        if IN_CI:
            pytest.fail(message + " -- CI must run these tests (.ci/run installs SLURM)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_cluster_tools()
    c = SlurmCluster(tmp_path_factory.mktemp("cluster")).start()
    print(f"test cluster started in {c.start_seconds:.1f} s")
    yield c
    c.stop()   # runs when a test failed too
    print(f"test cluster stopped in {c.stop_seconds:.1f} s")


@pytest.mark.slow
def test_teardown_ends_running_jobs_and_daemons(tmp_path):
    require_cluster_tools()
    c = SlurmCluster(tmp_path / "cluster").start()
    try:
        job = c.run("sbatch", "--parsable", "-o", str(tmp_path / "job.out"), "--wrap",
                    f"echo $$ > {tmp_path}/pid; exec sleep 600").stdout.strip()
        deadline = time.monotonic() + 30
        while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text().strip():
            assert time.monotonic() < deadline, c.run("squeue", check=False).stdout
            time.sleep(0.2)
        pid = int((tmp_path / "pid").read_text())
        daemons = {name: p.pid for name, p in c.procs.items()}
    finally:
        c.stop()
    assert job.isdigit()
    assert not Path(f"/proc/{pid}").exists(), "the job's process outlived the cluster"
    for name, dpid in daemons.items():
        assert not Path(f"/proc/{dpid}").exists(), f"{name} outlived the cluster"


def shrunken_workdir(dst: Path) -> Path:
    """A copy of the workflow with the shrunken config of the end-to-end tests, one Table 1
    row, one download shard, and micro batch 4: 2 ranks x 4 and 1 rank x 4 x 2 accumulation
    take the same steps."""
    cfg = shrink(copy_workflow(dst), epochs=2, micro_batch_size=4)
    cfg["download"]["shards"] = 1
    cfg["tables"]["table1"]["rows"] = [["mid", "shared"]]
    write_config(dst, cfg)
    return dst


def site_profile(profile: dict) -> dict:
    """The SLURM profile with its SITE values swapped for the test cluster's (2 CPUs, no GPU,
    no accounts, no slurmdbd). Every other value is the profile's own."""
    assert {"slurm_partition", "slurm_account"} <= set(profile["default-resources"])
    profile["default-resources"].update(slurm_partition="debug", mem_mb=1000, runtime=30)
    del profile["default-resources"]["slurm_account"]
    profile["slurm-no-account"] = True
    profile["slurm-status-command"] = "squeue"            # no slurmdbd: sacct would hang the run
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["slurm-keep-successful-logs"] = True
    profile["latency-wait"] = 5
    profile["set-threads"] = {rule: (1 if rule in ("pretrain", "finetune") else 2) for rule in profile["set-threads"]}
    for res in profile["set-resources"].values():
        for key in ("slurm_partition", "gpu", "tasks_per_gpu"):
            res.pop(key, None)
        res["mem_mb"] = 1000
        res["runtime"] = 30
    assert profile["set-resources"]["pretrain"]["mpi"] == "srun"
    profile["set-resources"]["pretrain"]["tasks"] = 2   # the 2 cores, one DeepSpeed process each
    return profile


@pytest.fixture(scope="module")
def slurm_workdir(tmp_path_factory):
    wd = shrunken_workdir(tmp_path_factory.mktemp("wf-slurm"))
    path = wd / "workflow/profiles/slurm/config.yaml"
    path.write_text(yaml.safe_dump(site_profile(yaml.safe_load(path.read_text()))))
    return wd


def snakemake_slurm(cluster: SlurmCluster, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in cluster.env().items() if k not in LAUNCHER_VARS}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--workflow-profile", "workflow/profiles/slurm",
                           *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    proc.seconds = time.monotonic() - start
    print(f"snakemake {' '.join(args)} through SLURM: {proc.seconds:.0f} s, exit {proc.returncode}")
    return proc


def submissions(output: str) -> dict[str, str]:
    """SLURM job id -> slurm log path, from the executor's 'submitted' lines."""
    return dict(re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", output))


def job_counts(output: str) -> dict[str, int]:
    """Jobs by rule from snakemake's first "Job stats" table."""
    lines = output.split("Job stats:", 1)[1].splitlines()
    counts = {}
    for words in (line.split() for line in lines[3:]):
        if len(words) != 2 or not words[1].isdigit() or words[0] == "total":
            break
        counts[words[0]] = int(words[1])
    return counts


def submitted_rules(output: str) -> list[str]:
    """Rules of the jobs submitted with sbatch, from their SLURM log paths."""
    return sorted(re.search(r"/rule_(\w+)/", log).group(1) for log in submissions(output).values())


def single_process_pretrain(workdir: Path, settings: dict, out: Path) -> subprocess.Popen:
    """``avmae pretrain`` as one plain process (no SLURM, no launcher variables)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS and not k.startswith("SLURM_")}
    return subprocess.Popen([sys.executable, "-m", "avmae.cli", "pretrain", "--features", "results/features/vggsound",
                             "--settings", json.dumps(settings), "--out", str(out), "--threads", "1"],
                            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def slurm_runs(cluster, slurm_workdir, tmp_path_factory):
    """A run whose pretraining job fails inside SLURM, then the fix and a rerun to Table 1.

    While the rerun goes through SLURM, the same pretraining runs as one local process
    (the reference for the loss comparison), using the CPU the SLURM run leaves idle
    between jobs.
    """
    cfg_path = slurm_workdir / "config/config.yaml"
    good = cfg_path.read_text()
    bad = yaml.safe_load(good)
    bad["pretrain"]["batch_size"] = 64   # more than the 16 training clips
    cfg_path.write_text(yaml.safe_dump(bad))
    failed = snakemake_slurm(cluster, slurm_workdir, "table1")
    failed.run_logs = {p.relative_to(slurm_workdir): p.read_text()
                       for p in (slurm_workdir / "results/pretrain").glob("*/log/pretrain.log")}
    cfg_path.write_text(good)
    assert len(failed.run_logs) == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    run = PretrainRun.parse(next(iter(failed.run_logs)).parts[2])
    reference = SimpleNamespace(out=tmp_path_factory.mktemp("one-process"),
                                settings=pretrain_settings(yaml.safe_load(good), run))
    single = single_process_pretrain(slurm_workdir, reference.settings, reference.out)
    try:
        rerun = snakemake_slurm(cluster, slurm_workdir, "table1")
        reference.output = single.communicate(timeout=600)[0]
    finally:
        if single.poll() is None:
            single.kill()
            single.wait(timeout=30)
    reference.returncode = single.returncode
    return failed, rerun, reference


@pytest.mark.slow
def test_failing_job_fails_the_workflow_with_its_slurm_log(slurm_runs, slurm_workdir):
    failed, _, _ = slurm_runs
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0, out[-3000:]
    m = re.search(r"SLURM-job '(\d+)' failed", out)
    assert m, out[-3000:]
    log = submissions(out)[m.group(1)]
    assert "rule_pretrain" in log and log in out.split(m.group(0), 1)[1], "the error must name the job's log"
    assert (slurm_workdir / log).exists()
    assert "Error in rule pretrain" in (slurm_workdir / log).read_text()
    [run_log] = failed.run_logs.values()
    assert all(f"[rank{r}]: ValueError: results/features/vggsound: 16 training clips are fewer than one batch "
               "of 64" in run_log for r in (0, 1)), run_log[-3000:]
    # what finished before the failure stays finished
    assert (slurm_workdir / "results/features/vggsound/meta.json").exists()


@pytest.mark.slow
def test_rerun_after_the_fix_resumes_and_every_job_went_through_sbatch(slurm_runs, slurm_workdir):
    failed, rerun, _ = slurm_runs
    out = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, out[-4000:]
    # the rerun starts at the failed job: data, download and features are not redone
    counts = job_counts(out)
    assert not DATA_RULES & set(counts) and counts["pretrain"] == 1 and counts["finetune"] == 3, counts
    # every job went through sbatch, but for the input-only target rule (nothing to run)
    local = re.findall(r"^localrule (\w+):", out, flags=re.M)
    assert set(local) <= {"table1"}, local
    assert len(submissions(out)) == sum(counts.values()) - len(local)
    assert set(submitted_rules(failed.stdout + failed.stderr)) == DATA_RULES | {"pretrain"}
    assert submitted_rules(out).count("finetune") == 3
    table = pd.read_csv(slurm_workdir / "results/tables/table1.csv")
    ours = table.filter(like="(ours)")
    assert table.iloc[:, 0].tolist() == ["Mid-fusion"] and ours.shape[1] == 3 and ours.stack().between(0, 100).all()


@pytest.mark.slow
def test_pretraining_ran_as_two_slurm_tasks_in_one_deepspeed_group(slurm_runs, slurm_workdir):
    run_dir = next((slurm_workdir / "results/pretrain").glob("*/metrics.json")).parent
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    log = (run_dir / "log/pretrain.log").read_text()
    assert "--ntasks=2" in log
    stores = set()
    for rank in (0, 1):
        m = re.search(rf"rank {rank} of 2 from SLURM \(job \d+, step \d+, node 0 of 1\); rendezvous file://(\S+)", log)
        assert m, log[-2000:]
        stores.add(Path(m.group(1)))
    [store] = stores   # both ranks met at one store, in a folder the launcher removed afterwards
    assert store.parent.name.startswith("avmae-rdzv-") and not store.parent.exists()


@pytest.mark.slow
def test_two_slurm_tasks_reach_the_single_process_loss(slurm_runs, slurm_workdir):
    """The same settings in one process give the same losses.

    Masks are drawn per clip from (seed, epoch, clip) and augmentations per clip, and the
    global batch is fixed (2 ranks x micro 4 = 1 rank x micro 4 x 2 accumulation steps),
    so both runs take the same optimizer steps on the same data; only the float32
    summation order differs (gloo all-reduce of two half-batch gradients against one
    accumulation buffer). That moves the loss by ~1e-7 relative; 1e-4, as
    tests/test_distributed.py uses for finetuning, leaves room for the 4 AdamW steps to
    amplify it. A data-parallel mistake (ranks on the same clips, gradients summed
    instead of averaged) changes what a step sees, not just the rounding. Two independent
    one-process runs would match too: test_pretraining_ran_as_two_slurm_tasks_in_one_
    deepspeed_group checks the world size of 2.
    """
    _, _, reference = slurm_runs
    run_dir = next((slurm_workdir / "results/pretrain").glob("*/metrics.json")).parent
    slurm = json.loads((run_dir / "metrics.json").read_text())
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["settings"] == reference.settings
    assert reference.returncode == 0, reference.output[-3000:]
    one = json.loads((reference.out / "metrics.json").read_text())
    assert one["world_size"] == 1 and one["steps"] == slurm["steps"] == 2 * 2
    worst = max(abs(a - b) / abs(b) for a, b in zip(slurm["loss_curve"], one["loss_curve"]))
    print(f"2 SLURM tasks vs 1 process: loss curves differ by {worst:.1e} relative at most")
    assert slurm["loss_curve"] == pytest.approx(one["loss_curve"], rel=1e-4)
