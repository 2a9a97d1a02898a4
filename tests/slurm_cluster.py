"""A throw-away single-node SLURM cluster (munged + slurmctld + slurmd) under one folder.

Used by ``tests/test_slurm.py``; also runs by hand::

    python tests/slurm_cluster.py /tmp/cluster      # starts it, prints the env to use, waits
                                                     # for Ctrl-C, then tears it down

Everything lives under the folder: munge key and socket, slurm.conf, state, spool, logs,
pid files. The daemons run in the foreground as children of this process, so stopping
them means ending exactly the processes started here. Facts this set-up depends on
(Debian 12, SLURM 22.05, no systemd, root):

* munged refuses a socket folder that is not mode 755.
* The node name must equal ``hostname -s``.
* ``CommunicationParameters=NoCtldInAddrAny,NoInAddrAny``: the daemons listen on the
  node address (loopback) only, not 0.0.0.0.
* The SLURM executor's job step strips every ``SLURM_*`` variable, ``SLURM_CONF``
  included, before it calls ``srun`` inside a job. Instead of writing to ``/etc/slurm``,
  ``bin/`` holds small wrappers for the SLURM client commands that set ``SLURM_CONF``;
  put it first on ``PATH`` (:meth:`SlurmCluster.env`).
* No slurmdbd: ``sacct`` would fail and the executor would wait forever, so status checks
  go through ``squeue`` and finished jobs stay visible for ``MinJobAge`` seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scancel", "sinfo", "scontrol", "sacct")
# The SLURM executor's first status check comes ~40 s after a submission; finished jobs
# must still be listed by squeue then (and at later checks), so keep them for 3x that.
MIN_JOB_AGE = 300


def missing_binaries() -> list[str]:
    """Programs this cluster needs that are not installed (empty when all are there)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    return [b for b in (*DAEMONS, "mungekey", "sbatch", "srun", "squeue", "scontrol")
            if shutil.which(b, path=path) is None]


def _which(name: str) -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    found = shutil.which(name, path=path)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (apt-get install slurm-wlm munge)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class SlurmCluster:
    """One node, one partition (``debug``), no accounting; all state under ``root``."""

    def __init__(self, root: str | Path, cpus: int | None = None):
        self.root = Path(root).resolve()
        self.cpus = cpus or os.cpu_count() or 1
        self.node = socket.gethostname().split(".")[0]   # = hostname -s
        self.conf = self.root / "etc" / "slurm.conf"
        self.bin = self.root / "bin"
        self.logs = self.root / "log"
        self.procs: dict[str, subprocess.Popen] = {}
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None

    # -- set-up ---------------------------------------------------------------------
    def _write_files(self) -> None:
        for d in ("etc", "munge", "state", "spool", "log", "bin"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o755)   # munged refuses a socket folder that is not 755
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True,
                           capture_output=True, timeout=30)
        key.chmod(0o600)
        (self.root / "etc" / "plugstack.conf").write_text("")
        r = self.root
        lines = [
            "ClusterName=avmaetest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={r}/munge/munge.socket.2",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd.log",
            f"PlugStackConfig={r}/etc/plugstack.conf",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/builtin",
            "MpiDefault=none",
            "ReturnToService=2",
            f"MinJobAge={MIN_JOB_AGE}",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "SlurmdParameters=config_overrides",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            f"NodeName={self.node} NodeAddr=127.0.0.1 Sockets=1 CoresPerSocket={self.cpus} ThreadsPerCore=1 "
            f"RealMemory={_memory_mb()} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        # Client wrappers: the executor's job step strips SLURM_CONF before calling srun.
        for name in CLIENTS:
            real = shutil.which(name)
            if real is None:
                continue
            w = self.bin / name
            w.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{real}" "$@"\n')
            w.chmod(0o755)

    def env(self, base: dict | None = None) -> dict:
        """Environment for clients (snakemake, sbatch, ...) that talk to this cluster."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.logs / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=self.env(), start_new_session=True)
        log.close()

    def _check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode} while starting the test cluster; see "
                                   f"{self.logs / (name + '.out')} and {self.logs}/")

    def run(self, *argv: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(list(argv), env=self.env(), capture_output=True, text=True, timeout=timeout,
                              check=check)

    def start(self, timeout: float = 60) -> "SlurmCluster":
        t0 = time.monotonic()
        try:
            self._write_files()
            r = self.root
            self._spawn("munged", [_which("munged"), "--foreground", "--force",
                                   f"--socket={r}/munge/munge.socket.2", f"--key-file={r}/munge/munge.key",
                                   f"--pid-file={r}/munge/munged.pid", f"--log-file={r}/log/munged.log",
                                   f"--seed-file={r}/munge/munged.seed"])
            self._wait(lambda: (r / "munge" / "munge.socket.2").exists(), timeout, "munged's socket")
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._wait(lambda: self.run("scontrol", "ping", check=False).returncode == 0, timeout, "slurmctld")
            self._spawn("slurmd", [_which("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)])
            self._wait(self._node_ready, timeout, f"node {self.node} to become idle")
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _node_ready(self) -> bool:
        p = self.run("sinfo", "-h", "-N", "-o", "%T", check=False)
        return p.returncode == 0 and p.stdout.strip() == "idle"

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"test cluster: no {what} after {timeout:.0f} s; logs in {self.logs}/")
            time.sleep(0.3)

    # -- tear-down --------------------------------------------------------------------
    def stop(self, timeout: float = 30) -> None:
        """Cancel every job, wait for them to end, then stop slurmd, slurmctld, munged."""
        t0 = time.monotonic()
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--full", "--user", str(os.getuid()), check=False)   # --full: batch shells too
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                q = self.run("squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING,CONFIGURING", "-o", "%i",
                             check=False)
                if q.returncode != 0 or not q.stdout.strip():
                    break
                time.sleep(0.5)
        for name in reversed(DAEMONS):
            p = self.procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=30)
        self.stop_seconds = time.monotonic() - t0

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/slurm_cluster.py FOLDER")
    with SlurmCluster(sys.argv[1]) as c:
        print(f"cluster up in {c.start_seconds:.1f} s; use it with:\n"
              f"  export SLURM_CONF={c.conf} PATH={c.bin}:$PATH\nCtrl-C stops it")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    print(f"stopped in {c.stop_seconds:.1f} s")
