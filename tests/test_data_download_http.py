"""Downloads from a local HTTP server (127.0.0.1) that plays YouTube's part: real mp4s,
404/403/429/500, connection resets, truncated bodies and slow answers; rate limits
(429 with Retry-After) that pause the shard."""

import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from avmae.acquire.availability import write_report
from avmae.acquire.download import (
    ClientBlocked,
    Policy,
    download,
    journal_path,
    ytdlp_options,
)
from avmae.acquire.lists import Clip, write_clips
from avmae.acquire.shards import merge_manifests
from avmae.toy.media import write_mp4

FAST = Policy(retries=2, backoff=0.01, max_backoff=0.05, block_after=0, sleep=0, videos_per_hour=0, timeout=2,
              pause=0.05)


class Server(ThreadingHTTPServer):
    """Serves ``/{id}.mp4`` from ``files``; ``plan[id]`` lists what to do on each request
    (the last entry repeats): ok, 403, 404, 429, 500, reset, truncate, slow. The first
    ``throttle`` requests of any id are answered 429 with ``Retry-After: {retry_after}``
    (when set); ``log`` records (time, id, answer) of every request."""

    daemon_threads = True

    def __init__(self, files):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.plan, self.hits = files, {}, {}
        self.throttle, self.retry_after, self.log = 0, None, []
        self.lock = threading.Lock()

    @property
    def template(self):
        return f"http://127.0.0.1:{self.server_address[1]}/{{id}}.mp4"

    def action(self, vid):
        with self.lock:
            n = self.hits[vid] = self.hits.get(vid, 0) + 1
            if self.throttle > 0:
                self.throttle -= 1
                self.log.append((time.time(), vid, "429"))
                return "429"
            steps = self.plan.get(vid, ["ok"])
            self.log.append((time.time(), vid, steps[min(n, len(steps)) - 1]))
        return steps[min(n, len(steps)) - 1]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        vid = urllib.parse.unquote(self.path.lstrip("/")).removesuffix(".mp4")
        action = self.server.action(vid)
        data = self.server.files.get(vid)
        if data is None and action == "ok":
            action = "404"
        if action == "reset":  # RST instead of a response: SO_LINGER on, timeout 0
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return None
        if action == "429" and self.server.retry_after is not None:
            self.send_response(429)
            self.send_header("Retry-After", str(self.server.retry_after))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if action.isdigit():
            return self.send_error(int(action))
        if action == "slow":
            time.sleep(4)
        first, last = 0, len(data) - 1
        ranged = self.headers.get("Range", "").removeprefix("bytes=")
        if ranged:
            a, _, b = ranged.partition("-")
            first, last = int(a), min(int(b), last) if b else last
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(last - first + 1))
        if ranged:
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.end_headers()
        body = data[first:last + 1]
        try:
            self.wfile.write(body[:len(body) // 3] if action == "truncate" else body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if action == "truncate":
            self.close_connection = True


def mp4_bytes(path, seconds, audio=True):
    rng = np.random.default_rng(seconds)
    frames = rng.integers(0, 255, size=(seconds * 25, 32, 48, 3), dtype=np.uint8)
    sound = rng.normal(0, 3000, size=(seconds * 44100, 2)).astype(np.int16) if audio else None
    write_mp4(path, frames, sound)
    return path.read_bytes()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    return {"long": mp4_bytes(root / "long.mp4", 5), "short": mp4_bytes(root / "short.mp4", 2),
            "mute": mp4_bytes(root / "mute.mp4", 5, audio=False)}


@pytest.fixture
def server(media):
    srv = Server({})
    srv.media = media
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def clip(vid, split="train"):
    return Clip(vid, 1.0, "a", split, end=3.0)


def test_failure_classes_and_retries(server, tmp_path):
    m = server.media
    server.files.update({v: m["long"] for v in ("fine", "flaky500", "flaky429", "always429",
                                                 "gone404", "denied403", "reset", "truncated",
                                                 "slow")})
    server.files.update(mute=m["mute"], short=m["short"])
    server.plan.update(flaky500=["500", "ok"], flaky429=["429", "429", "ok"],
                       gone404=["404"], denied403=["403"], reset=["reset"],
                       truncated=["ok", "truncate"], slow=["slow"])
    ids = ["fine", "flaky500", "flaky429", "gone404", "denied403", "reset",
           "truncated", "slow", "mute", "short"]
    out = download([clip(v) for v in ids], server.template, tmp_path / "media",
                   tmp_path / "manifest.csv", workers=2, policy=FAST).set_index("id")
    # a 429 pauses the shard and is not a try: flaky429 is ok at its first counted try
    expected = {"fine": ("ok", 1), "flaky500": ("ok", 2), "flaky429": ("ok", 1),
                "gone404": ("unavailable", 1),
                "denied403": ("unavailable", 1), "reset": ("failed", 3),
                "truncated": ("failed", 3), "slow": ("failed", 3),
                "mute": ("unavailable", 1), "short": ("failed", 3)}
    assert {v: (out.status[v], out.attempts[v]) for v in ids} == expected
    assert "404" in out.reason["gone404"]
    assert "timed out" in out.reason["slow"]
    assert out.reason["mute"] == "verify: no audio stream"
    assert out.reason["short"].startswith("verify: duration 1.")
    assert abs(out.duration["fine"] - 2.0) < 0.2
    kept = sorted(p.name for p in (tmp_path / "media").iterdir())
    assert kept == ["fine.mp4", "flaky429.mp4", "flaky500.mp4"]  # failed files are deleted


def test_blocked_client_stops_and_marks_nothing_unavailable(server, tmp_path):
    ids = [f"blocked{i}" for i in range(6)]
    server.files.update({v: server.media["long"] for v in ids})
    server.plan.update({v: ["500"] for v in ids})
    policy = Policy(retries=1, backoff=0.01, block_after=3, sleep=0, videos_per_hour=0, timeout=2)
    with pytest.raises(ClientBlocked, match="looks rate-limited or blocked"):
        download([clip(v) for v in ids], server.template, tmp_path / "media",
                 tmp_path / "manifest.csv", workers=1, policy=policy)
    manifest = pd.read_csv(tmp_path / "manifest.csv", keep_default_na=False)
    assert (manifest.status == "failed").all()
    assert manifest.reason.str.startswith("not attempted").tolist() == [False] * 3 + [True] * 3
    assert server.hits == {v: 2 for v in ids[:3]}  # one try + one retry each, then stop


def test_rate_limit_pauses_the_shard_then_it_finishes(server, tmp_path, caplog):
    """The first requests are answered 429 with Retry-After: 1: the whole shard pauses for
    that second (not the 1 h default), logged with reason and resume time, then goes on;
    every clip ends ok at its first counted try, none failed or unavailable, the breaker
    (3 in a row) never trips."""
    ids = [f"busy{i}" for i in range(6)]
    server.files.update({v: server.media["long"] for v in ids})
    server.throttle, server.retry_after = 3, 1
    policy = Policy(retries=2, backoff=0.01, block_after=3, sleep=0, videos_per_hour=0, timeout=5)
    assert policy.pause == 3600.0
    caplog.set_level(logging.INFO, logger="avmae.acquire.download")
    t0 = time.time()
    out = download([clip(v) for v in ids], server.template, tmp_path / "media",
                   tmp_path / "manifest.csv", workers=2, policy=policy)
    took = time.time() - t0
    assert out.status.tolist() == ["ok"] * 6 and out.attempts.tolist() == [1] * 6
    assert (out.reason.fillna("") == "").all()
    journal = [json.loads(line) for line in journal_path(tmp_path / "manifest.csv").read_text().splitlines()]
    assert sorted(r["id"] for r in journal) == ids and {r["status"] for r in journal} == {"ok"}

    answers = [a for _, _, a in server.log]
    assert answers.count("429") == 3
    first_429 = min(t for t, _, a in server.log if a == "429")
    first_ok = min(t for t, _, a in server.log if a == "ok")
    assert first_ok - first_429 >= 0.95  # nobody asked the server during the pause
    paused = [r for r in caplog.records if r.getMessage().startswith("paused at")]
    resumed = [r for r in caplog.records if r.getMessage().startswith("resumed at")]
    assert 1 <= len(paused) == len(resumed) <= 3
    for r in paused:
        assert "HTTP 429" in r.getMessage() and "the shard resumes at" in r.getMessage()
        assert "(1 s, Retry-After)" in r.getMessage()
    for p, r in zip(paused, resumed):
        assert r.created - p.created >= 0.95
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pauses (rate limits)")]
    assert len(summary) == 1 and summary[0].count("Retry-After") == len(paused)
    print(f"\nrate-limit timeline (t=0: download start; {took:.2f} s in all):")
    for t, vid, a in server.log:
        print(f"  {t - t0:6.2f} s  request {vid}: {a}")
    for p, r in zip(paused, resumed):
        print(f"  paused {p.created - t0:6.2f} s -> resumed {r.created - t0:6.2f} s "
              f"({r.created - p.created:.2f} s)")


def test_rate_limited_pause_after_pause_stops_the_shard(server, tmp_path):
    """A server that answers 429 forever: after max_pauses pauses in a row the shard stops
    as blocked; the clips are failed ("not attempted"), none unavailable, none journalled."""
    ids = [f"always{i}" for i in range(3)]
    server.files.update({v: server.media["long"] for v in ids})
    server.plan.update({v: ["429"] for v in ids})
    server.retry_after = 0
    policy = Policy(retries=2, backoff=0.01, block_after=0, sleep=0, videos_per_hour=0, timeout=5, max_pauses=2)
    with pytest.raises(ClientBlocked, match="rate-limited 3 times in a row.*looks rate-limited or blocked"):
        download([clip(v) for v in ids], server.template, tmp_path / "media",
                 tmp_path / "manifest.csv", workers=1, policy=policy)
    manifest = pd.read_csv(tmp_path / "manifest.csv", keep_default_na=False)
    assert (manifest.status == "failed").all() and (manifest.attempts == 0).all()
    assert manifest.reason.str.startswith("not attempted").all()
    assert "HTTP Error 429" in manifest.reason[0]
    assert sum(server.hits.values()) == 3  # 2 pauses, the 3rd answer stops the shard
    assert not journal_path(tmp_path / "manifest.csv").exists() or \
        not journal_path(tmp_path / "manifest.csv").read_text()


MALICIOUS = ["-abc", "$(rm -rf ~)", "../../x", "with space", "ünïcode", "-", "a;touch PWNED"]


def test_malicious_ids_never_leave_the_folder(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server.files.update({v: server.media["long"] for v in MALICIOUS + ["x", "plain"]})
    out = download([clip(v) for v in MALICIOUS + ["plain"]], server.template, tmp_path / "o" / "media",
                   tmp_path / "o" / "manifest.csv", workers=2, policy=FAST).set_index("id")
    assert out.status.to_dict() == {"-abc": "ok", "$(rm -rf ~)": "unavailable",
                                    "../../x": "unavailable", "with space": "unavailable",
                                    "ünïcode": "unavailable", "-": "ok",
                                    "a;touch PWNED": "unavailable", "plain": "ok"}
    assert sorted(p.name for p in (tmp_path / "o" / "media").iterdir()) == ["-.mp4", "-abc.mp4",
                                                                            "plain.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert set(server.hits) == {"-abc", "-", "plain"}  # no request for a rejected id


def run_cli(server, shard_list, out, *extra):
    cmd = [sys.executable, "-m", "avmae.cli", "download", "--format", "clips",
           "--list", str(shard_list), "--url-template", server.template, "--out", str(out / "media"),
           "--manifest", str(out / "manifest.csv"), "--workers", "1", "--sleep", "0", "--videos-per-hour", "0",
           "--backoff", "0.01", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_resume_after_killed_shard_and_report(server, tmp_path):
    ids = [f"clip{i}" for i in range(6)]
    server.files.update({v: server.media["long"] for v in ids})
    server.plan["clip3"] = ["slow"] * 3 + ["ok"]  # the job is killed while it waits here
    server.files["gone"] = None
    shard_list = tmp_path / "00000.csv"
    write_clips(shard_list, [clip(v, "test" if v == "clip5" else "train") for v in ids + ["gone"]])
    out = tmp_path / "shard"
    proc = run_cli(server, shard_list, out)
    journal = journal_path(out / "manifest.csv")
    deadline = time.monotonic() + 30
    while server.hits.get("clip3", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "manifest.csv").exists()
    done = [json.loads(line)["id"] for line in journal.read_text().splitlines()]
    assert done == ["clip0", "clip1", "clip2"]
    mtimes = {v: (out / "media" / f"{v}.mp4").stat().st_mtime_ns for v in done}
    hits_before = dict(server.hits)
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    spans = ("clip_start", "clip_end", "video_seconds")  # as journalled before they existed
    journal.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in spans}) + "\n" for r in rows))

    proc = run_cli(server, shard_list, out)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert manifest.id.tolist() == ids + ["gone"]
    assert manifest.status.tolist() == ["ok"] * 6 + ["unavailable"]
    assert all(server.hits[v] == hits_before[v] for v in done)  # not fetched again
    assert (manifest.clip_start == manifest.start_seconds).all() and (manifest.clip_end == manifest.end_seconds).all()
    assert {v: (out / "media" / f"{v}.mp4").stat().st_mtime_ns for v in done} == mtimes
    assert not [p for p in (out / "media").iterdir() if p.suffix != ".mp4"]  # no .part left over

    merged = merge_manifests([out / "manifest.csv"], tmp_path / "manifest.csv")
    report = write_report(merged, "toy", tmp_path / "availability.json", tmp_path / "used.csv")
    assert report == {"train": {"requested": 6, "ok": 5, "unavailable": 1, "failed": 0},
                      "test": {"requested": 1, "ok": 1, "unavailable": 0, "failed": 0},
                      "all": {"requested": 7, "ok": 6, "unavailable": 1, "failed": 0}}
    assert pd.read_csv(tmp_path / "used.csv").id.tolist() == ["clip5"] + ids[:5]


def test_cookies_and_proxy_reach_ytdlp(tmp_path):
    opts = ytdlp_options(tmp_path, False, Policy(cookies="/c/cookies.txt", proxy="socks5://127.0.0.1:9"))
    assert opts["cookiefile"] == "/c/cookies.txt" and opts["proxy"] == "socks5://127.0.0.1:9"
    assert "cookiefile" not in ytdlp_options(tmp_path, False, Policy())
