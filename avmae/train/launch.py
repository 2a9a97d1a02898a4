"""Training processes as SLURM tasks: ranks from SLURM's variables, and the launcher.

DeepSpeed does not read ``SLURM_PROCID``: a job started as ``srun --ntasks=N`` would give
N independent single-process runs (or "Default process group has not been initialized"
errors). :func:`from_slurm`, called first thing by ``engine.setup_distributed``, maps a
task of a multi-task step to the launcher variables the engine reads:

=====================  ==================================================
``RANK``               ``SLURM_PROCID``
``WORLD_SIZE``         ``SLURM_STEP_NUM_TASKS`` (else ``SLURM_NTASKS``)
``LOCAL_RANK``         ``SLURM_LOCALID``
``NODE_RANK``          ``SLURM_NODEID``
``LOCAL_WORLD_SIZE``   tasks on this node (``SLURM_STEP_TASKS_PER_NODE``)
=====================  ==================================================

Rendezvous, unless ``AVMAE_INIT_METHOD`` is already set (e.g. ``file://`` on a shared
folder, which works on any number of nodes):

* one node: a ``file://`` store in the node's temporary folder. Started through the
  launcher below, a fresh private folder that the launcher removes when srun ends;
  started by a bare ``srun``, a file named after the job, step and srun's launcher port
  (unique per ``srun`` call), which torch leaves behind. gloo is pinned to the loopback
  interface (``GLOO_SOCKET_IFNAME=lo`` unless set). Nothing listens beyond the node.
* several nodes: ``env://`` with ``MASTER_ADDR`` = the step's first host (``scontrol
  show hostnames``, or :func:`expand_hostlist` without it) and a ``MASTER_PORT`` derived
  from the job and step ids (unless set).

Only a *step* with more than one task counts (``SLURM_STEP_NUM_TASKS`` > 1): a job's
batch script, or a one-task step such as the SLURM executor's ``srun -n1 snakemake``,
stays a single process even if its allocation has several tasks.

The module is also the launcher the workflow's training rules run through::

    python -m avmae.train.launch --tasks N [--cpus-per-task C --nodes M --gpus G] -- avmae pretrain ...

With N = 1 it runs the command as is; with N > 1 it runs it as N tasks of one ``srun``
step inside the current SLURM allocation, and refuses (naming the fix) outside one.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping


def expand_hostlist(nodelist: str) -> list[str]:
    """Host names of a SLURM node list: ``"gpu[01-03,7],cpu5"`` -> gpu01, gpu02, gpu03, gpu7, cpu5."""
    hosts: list[str] = []
    for item in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", nodelist):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", item)
        if not m:
            hosts.append(item)
            continue
        prefix, ranges, suffix = m.groups()
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            if not hi:
                hosts.append(f"{prefix}{lo}{suffix}")
                continue
            if not (lo.isdigit() and hi.isdigit()):
                raise ValueError(f"cannot read the SLURM node list {nodelist!r} at {part!r}")
            hosts.extend(f"{prefix}{i:0{len(lo)}d}{suffix}" for i in range(int(lo), int(hi) + 1))
    return hosts


def first_host(nodelist: str) -> str:
    """The first host of a node list, by ``scontrol show hostnames`` where it exists."""
    scontrol = shutil.which("scontrol")
    if scontrol:
        proc = subprocess.run([scontrol, "show", "hostnames", nodelist], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.split():
            return proc.stdout.split()[0]
    return expand_hostlist(nodelist)[0]


def _tasks_on_node(environ: MutableMapping[str, str], node: int) -> int | None:
    """Tasks on node ``node`` from ``SLURM_STEP_TASKS_PER_NODE`` (e.g. ``"2(x3),1"``)."""
    spec = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
    if not spec:
        return None
    counts: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not m:
            return None
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts[node] if node < len(counts) else None


def _local_device(env) -> int:
    """The task's GPU among those it sees (DeepSpeed takes ``LOCAL_RANK`` as the device
    index): ``SLURM_LOCALID``, unless SLURM bound each task to its own GPUs, as
    ``--gpus-per-task`` does, so that task 3 sees one GPU, as device 0."""
    local = int(env.get("SLURM_LOCALID", "0"))
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    return local % len(visible) if visible else local


def from_slurm(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set the launcher variables from SLURM's when this is a task of a multi-task step.

    Returns True when it did; False (and changes nothing) otherwise, e.g. outside SLURM,
    in a one-task step, or when a launcher inside the task (torchrun, deepspeed) has set
    ``RANK`` already.
    """
    env = os.environ if environ is None else environ
    tasks = env.get("SLURM_STEP_NUM_TASKS")
    if tasks is None or "SLURM_PROCID" not in env or int(tasks) <= 1:
        return False
    # RANK left over from a single-process parent (engine's marker) is ours to replace;
    # RANK from a launcher running inside the task is not.
    if "RANK" in env and env.get("AVMAE_SINGLE_PROCESS") != "1":
        return False
    env.pop("AVMAE_SINGLE_PROCESS", None)
    rank, node = int(env["SLURM_PROCID"]), int(env.get("SLURM_NODEID", "0"))
    env["RANK"] = str(rank)
    env["WORLD_SIZE"] = str(int(tasks))
    env["LOCAL_RANK"] = str(_local_device(env))
    env["NODE_RANK"] = str(node)
    local_world = _tasks_on_node(env, node)
    if local_world is not None:
        env["LOCAL_WORLD_SIZE"] = str(local_world)
    nodes = int(env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_NNODES") or "1")
    job, step = env.get("SLURM_JOB_ID", "0"), env.get("SLURM_STEP_ID", "0")
    if nodes == 1:
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")   # gloo's pairs on loopback only
    if "AVMAE_INIT_METHOD" in env:
        where = env["AVMAE_INIT_METHOD"]
    elif nodes == 1:
        port = env.get("SLURM_STEP_LAUNCHER_PORT") or env.get("SLURM_SRUN_COMM_PORT") or "0"
        store = os.path.join(tempfile.gettempdir(), f"avmae-rdzv-{job}.{step}-{port}")
        env["AVMAE_INIT_METHOD"] = where = "file://" + store
    else:
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
        if not nodelist:
            raise RuntimeError("SLURM task on several nodes without SLURM_STEP_NODELIST or SLURM_JOB_NODELIST; "
                               "set AVMAE_INIT_METHOD=file:///shared/folder/store instead")
        env.setdefault("MASTER_ADDR", first_host(nodelist))
        env.setdefault("MASTER_PORT", str(20000 + (int(job) * 16 + int(step)) % 40000))
        where = f"env://{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
    print(f"avmae: rank {rank} of {tasks} from SLURM (job {job}, step {step}, node {node} of {nodes}); "
          f"rendezvous {where}", file=sys.stderr, flush=True)
    return True


def launch_command(command: list[str], tasks: int, cpus_per_task: int | None = None, nodes: int | None = None,
                   gpus: int = 0, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """The command line that runs ``command`` as ``tasks`` SLURM tasks (or as is for one task).

    The SLURM executor's job step drops the allocation's ``SLURM_*`` variables before it
    runs the rule's command, so srun learns the step's shape from the arguments: tasks,
    CPUs per task (the rule's threads), nodes, and GPUs (the job's total, one share per
    task).
    """
    env = os.environ if environ is None else environ
    if tasks < 1:
        raise ValueError(f"--tasks must be at least 1, got {tasks}")
    if tasks == 1:
        return list(command)
    if "SLURM_JOB_ID" not in env:
        raise RuntimeError(
            f"{tasks} tasks need a SLURM allocation (no SLURM_JOB_ID here): run the workflow with "
            "--workflow-profile workflow/profiles/slurm, or set the rule's `tasks` resource to 1 for a local run")
    if "SLURM_STEP_ID" in env and env.get("SLURM_STEP_NUM_TASKS", "1") == "1":
        raise RuntimeError(
            f"{tasks} tasks asked for from inside a one-task job step: srun would wait forever for the CPUs "
            "that step holds. Give the rule the resource `mpi: srun` (workflow/profiles/slurm/config.yaml, "
            "set-resources) so the SLURM executor runs its command in the batch script, not in a step")
    srun = shutil.which("srun", path=env.get("PATH"))
    if srun is None:
        raise RuntimeError("srun is not on PATH inside the SLURM job")
    argv = [srun, f"--ntasks={tasks}", "--kill-on-bad-exit=1"]
    if cpus_per_task:
        argv.append(f"--cpus-per-task={cpus_per_task}")
    if nodes:
        argv.append(f"--nodes={nodes}")
    if gpus:
        if gpus % tasks:
            raise ValueError(f"{gpus} GPUs do not split evenly over {tasks} tasks; give each DeepSpeed "
                             "process the same number of GPUs (usually gpu = tasks)")
        argv.append(f"--gpus-per-task={gpus // tasks}")
    return argv + list(command)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m avmae.train.launch",
        description="Run a training command as N SLURM tasks of one srun step (N = 1: as is).")
    parser.add_argument("--tasks", type=int, default=1, help="processes (SLURM tasks) of one DeepSpeed group")
    parser.add_argument("--cpus-per-task", type=int, default=None, help="CPUs of each task (the rule's threads)")
    parser.add_argument("--nodes", type=int, default=None, help="nodes the tasks spread over")
    parser.add_argument("--gpus", type=int, default=0, help="GPUs of the job in all (split evenly over the tasks)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (expected: -- avmae pretrain ...)")
    try:
        full = launch_command(command, args.tasks, args.cpus_per_task, args.nodes, args.gpus)
    except (RuntimeError, ValueError) as e:
        sys.exit(f"avmae.train.launch: {e}")
    print(f"avmae.train.launch: {shlex.join(full)}", file=sys.stderr, flush=True)
    if args.tasks == 1:
        os.execvp(full[0], full)
    sys.exit(run_step(full, single_node=args.nodes == 1))


def run_step(argv: list[str], single_node: bool) -> int:
    """Run the srun command line and return its exit status (128 + signal if killed).

    On one node the tasks meet through a ``file://`` store in a fresh private folder
    (``AVMAE_INIT_METHOD``, which srun passes on to the tasks), removed when srun ends,
    however it ends: torch leaves the store file behind, and a stale one would break a
    later step that happened to get the same name. SIGTERM/SIGINT (scancel, Ctrl-C) go
    on to srun, which passes them to the tasks.
    """
    env = dict(os.environ)
    folder = None
    if single_node and "AVMAE_INIT_METHOD" not in env:
        folder = tempfile.mkdtemp(prefix="avmae-rdzv-")
        env["AVMAE_INIT_METHOD"] = "file://" + os.path.join(folder, "store")
    try:
        proc = subprocess.Popen(argv, env=env)
        forward = lambda sig, _frame: proc.send_signal(sig)  # noqa: E731
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, forward)
        status = proc.wait()
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    main()
