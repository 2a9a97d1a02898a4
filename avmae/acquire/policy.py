"""How a download behaves towards its server: retries, pacing, pauses and authentication.

One place for these defaults: :class:`Policy` (polite to YouTube) is what the download
functions take and what ``avmae download``'s options default to. It imports nothing
heavy, so building the command line does not load yt-dlp.

Pacing has three parts. ``videos_per_hour`` is the budget of one YouTube *session* (a
cookie file, a proxy, or this machine's address): clip starts are spaced ``3600 /
videos_per_hour`` s apart over the run's workers and, with ``pace_file``, over every run
that names the same file (the shards that share a session, in parallel jobs on one file
system: the file holds the next free start time, under an ``fcntl`` lock). yt-dlp's wiki
puts YouTube's limit at about 300 videos an hour per session without a PO token and
about 1,000 with one. ``sleep`` is a pause after each clip, per worker. A rate-limited
session pauses (``pause``, or the server's Retry-After; see :mod:`avmae.acquire.download`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Policy:
    """Retries, pacing and authentication of a download; the defaults are polite to YouTube."""

    retries: int = 3            # extra attempts after a transient failure
    backoff: float = 30.0       # seconds before the first retry; doubles each time
    max_backoff: float = 600.0
    block_after: int = 20       # clips failed in a row -> ClientBlocked
    sleep: float = 2.0          # pause after each clip, per worker
    videos_per_hour: float = 300.0  # clip starts an hour, per session (pace_file); 0: no cap
    pace_file: str | None = None    # shared by the runs of one session; None: this run alone
    verify: bool = True         # decode each kept clip; False: only the cheap check (never skipped)
    cookies: str | None = None  # Netscape cookies.txt passed to yt-dlp
    proxy: str | None = None    # e.g. socks5://127.0.0.1:1080
    timeout: float = 30.0       # socket timeout, seconds
    retry_unavailable: bool = False
    pause: float = 3600.0       # rate-limited without Retry-After: seconds the shard pauses
    max_pauses: int = 24        # pauses in a row (nothing else in between) -> stop; 0: never
    js_runtime: str | None = None  # Deno binary for yt-dlp (default: avmae.acquire.runtime.deno_path)
    extractor_args: tuple[str, ...] = ()  # yt-dlp --extractor-args values

    @property
    def interval(self) -> float:
        """Seconds between two clip starts of a session (0: no cap)."""
        return 3600.0 / self.videos_per_hour if self.videos_per_hour > 0 else 0.0


PACE_DIR = "results/data/pace"  # the workflow's pace files, one per session


def session_options(sessions: list[dict] | None, shard: int, key: str = "download.sessions") -> list[str]:
    """The ``avmae download`` options of download shard ``shard``: the session it goes
    through (``sessions``, a list of ``{cookies, proxy}``, spread over the shards in turn:
    shard i uses session i mod n) and that session's pace file, shared by all its shards.
    No sessions: one session, this machine's. Checked while the workflow's DAG is built:
    an unknown key, or a cookie file that is not there, raises ValueError naming ``key[i]``."""
    sessions = sessions or [{}]
    for i, session in enumerate(sessions):
        where = f"{key}[{i}]"
        if not isinstance(session, dict):
            raise ValueError(f"{where}: expected {{cookies: PATH, proxy: URL}}, got {session!r}")
        unknown = sorted(set(session) - {"cookies", "proxy"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; use cookies, proxy")
        cookies = session.get("cookies")
        if cookies is not None and not Path(cookies).is_file():
            raise ValueError(f"{where}.cookies: {cookies} is not a file (a Netscape cookies.txt; "
                             f"check it with avmae doctor --cookies)")
    k = shard % len(sessions)
    opts = ["--pace-file", f"{PACE_DIR}/session{k}"]
    for name in ("cookies", "proxy"):
        if sessions[k].get(name) is not None:
            opts += [f"--{name}", str(sessions[k][name])]
    return opts
