"""The download budget (videos an hour per YouTube session) and sessions spread over shards:
starts spaced over workers and over separate processes sharing a pace file, the ETA the
progress shows, and the workflow's per-shard cookies, proxy and pace file."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from avmae.acquire.download import Batch, _Pacer
from avmae.acquire.policy import PACE_DIR, Policy, session_options

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 0.25                      # seconds between starts: 14,400 videos an hour
PER_HOUR = 3600 / INTERVAL

STARTS = """
import sys, threading, time
from avmae.acquire.download import _Pacer
from avmae.acquire.policy import Policy
pacer = _Pacer(Policy(videos_per_hour={per_hour}, pace_file=sys.argv[1]))
stop = threading.Event()
for _ in range(5):
    pacer.wait(stop)
    print(repr(time.time()), flush=True)
"""


def test_policy_interval_is_the_budget():
    # 3600 s / 300 videos = one start every 12 s (the wiki's figure for a session)
    assert Policy(videos_per_hour=300).interval == 12.0
    assert Policy(videos_per_hour=0).interval == 0.0
    assert Policy().videos_per_hour == 300


def test_starts_are_spaced_over_workers():
    """Four threads of one run take turns: 12 starts span 11 intervals."""
    pacer, stop, starts = _Pacer(Policy(videos_per_hour=PER_HOUR)), threading.Event(), []
    lock = threading.Lock()

    def worker():
        for _ in range(3):
            pacer.wait(stop)
            with lock:
                starts.append(time.time())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:])]
    assert len(starts) == 12 and min(gaps) > INTERVAL - 0.05


def test_processes_sharing_a_pace_file_share_the_budget(tmp_path):
    """Two download processes of one session (one pace file) start 10 clips 0.25 s apart
    between them, not 5 each at once: the budget is the session's, not each process's."""
    pace = tmp_path / "pace" / "session0"
    code = STARTS.format(per_hour=PER_HOUR)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(pace)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    starts = sorted(float(line) for out in outs for line in out.split())
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 10 and min(gaps) > INTERVAL - 0.05
    assert starts[-1] - starts[0] >= 9 * INTERVAL - 0.05   # alone each would take 4 intervals
    assert float(pace.read_text()) >= starts[-1]           # the next free start, after the last


def test_a_pace_file_cut_short_restarts_the_schedule(tmp_path):
    pace = tmp_path / "session0"
    pace.write_text("17.5e")   # a kill mid-write
    pacer = _Pacer(Policy(videos_per_hour=PER_HOUR, pace_file=str(pace)))
    t0 = time.time()
    pacer.wait(threading.Event())
    assert time.time() - t0 < 0.1 and float(pace.read_text()) == pytest.approx(t0 + INTERVAL, abs=0.1)


def test_progress_gives_the_budget_eta(tmp_path, caplog):
    """The run logs how long its clips take at the budget; the bar's budget_eta counts down."""
    batch = Batch(tmp_path / "manifest.csv", Policy(videos_per_hour=1800, sleep=0))   # 2 s a start
    caplog.set_level("INFO", logger="avmae.acquire.download")
    seen = []
    batch.map(lambda item: seen.append(item) or item, list(range(3)), 1, "clip")
    # 3 clips x 2 s = 6 s (the bar's own check of the ETA is by eye; the log line is the record)
    assert "budget: 1800 videos/hour: 3 clips take at least 0:00:06" in caplog.text


def test_sessions_are_spread_over_shards_in_turn(tmp_path):
    cookies = [tmp_path / f"cookies{i}.txt" for i in range(2)]
    for c in cookies:
        c.write_text("# Netscape HTTP Cookie File\n")
    sessions = [{"cookies": str(cookies[0])}, {"cookies": str(cookies[1]), "proxy": "socks5://127.0.0.1:1080"}]
    assert session_options(sessions, 0) == ["--pace-file", f"{PACE_DIR}/session0", "--cookies", str(cookies[0])]
    assert session_options(sessions, 3) == ["--pace-file", f"{PACE_DIR}/session1", "--cookies", str(cookies[1]),
                                            "--proxy", "socks5://127.0.0.1:1080"]
    assert session_options(None, 7) == ["--pace-file", f"{PACE_DIR}/session0"]   # one session: this machine's


@pytest.mark.parametrize("sessions, message", [
    ([{"cookies": "/nowhere/cookies.txt"}],
     r"download.sessions\[0\].cookies: /nowhere/cookies.txt is not a file"),
    ([{"proxy": "socks5://h:1"}, {"cookie": "x"}], r"download.sessions\[1\]: unknown key\(s\) \['cookie'\]"),
    (["cookies.txt"], r"download.sessions\[0\]: expected \{cookies: PATH, proxy: URL\}"),
])
def test_bad_sessions_name_their_key(sessions, message):
    with pytest.raises(ValueError, match=message):
        session_options(sessions, 0)


def test_workflow_gives_each_shard_its_session(tmp_path):
    """A dry run of the toy download with two sessions: shard 00000 goes through the first
    cookie file, 00001 through the second, each with its session's pace file; a missing
    cookie file stops the run before any job, naming its key."""
    cookies = [tmp_path / f"c{i}.txt" for i in range(2)]
    for c in cookies:
        c.write_text("# Netscape HTTP Cookie File\n")
    extra = tmp_path / "sessions.yaml"
    extra.write_text(yaml.safe_dump({"download": {"sessions": [{"cookies": str(c)} for c in cookies]}}))
    args = [sys.executable, "-m", "snakemake", "results/data/vggsound/manifest.csv", "-n", "-p", "--cores", "1",
            "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
            "--configfile", str(ROOT / "config/config.yaml"), str(extra)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    commands = [line for line in proc.stdout.splitlines() if "avmae download" in line]
    assert len(commands) == 2
    for shard, line in enumerate(sorted(commands, key=lambda c: "shards/lists/00001" in c)):
        assert f"--pace-file {PACE_DIR}/session{shard} --cookies {cookies[shard]}" in line

    extra.write_text(yaml.safe_dump({"download": {"sessions": [{"cookies": str(tmp_path / "gone.txt")}]}}))
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0
    assert f"download.sessions[0].cookies: {tmp_path / 'gone.txt'} is not a file" in proc.stdout + proc.stderr
