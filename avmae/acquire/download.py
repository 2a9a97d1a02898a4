"""Download the sections of a clip list with yt-dlp, and record what happened to each.

Every clip ends in one manifest row with status ``ok``, ``unavailable`` or ``failed``, plus
a one-line reason. Each failed try is put in one of four classes by its message
(:func:`error_kind`, :data:`ERROR_KINDS`, tested with YouTube's texts of today):

- *unavailable* (permanent): private, removed, terminated account, age-restricted,
  sign-in/members-only, geo-blocked, HTTP 403/404/410, an invalid id. Tried once.
- *transient*: HTTP 5xx, timeouts, resets, a premiere or live event not started yet, and
  anything not recognised. Retried with exponential backoff, then ``failed``.
- *blocked*: the client, not the clip: "Sign in to confirm you're not a bot", YouTube's
  video servers refusing the format URLs (HTTP 403 on the video data: a PO token is
  missing), no usable format (no JS runtime). Recorded ``failed`` at once (retrying a
  flagged session only deepens the flag).
- *rate-limited*: YouTube's "This content isn't available, try again later" (the session
  has been rate-limited, for up to an hour) and HTTP 429. The whole shard *pauses*: for
  the server's ``Retry-After`` when it gives one, else ``Policy.pause`` (an hour), logged
  with its reason and resume time; then the same clip is tried again. A rate-limited
  try does not count against the clip (not an attempt, not a failure) and marks nothing
  unavailable. After ``max_pauses`` pauses in a row with no other answer in between the
  shard stops as blocked.

After ``block_after`` clips in a row end ``failed``, the run stops and raises
:class:`ClientBlocked` ("the client looks blocked") instead of burning through the list:
the clips it did not try are recorded as ``failed``, never as ``unavailable``. Each kept
clip is verified (it is complete, its duration is near the expected one, it has an audio
and a video stream, and unless ``Policy.verify`` is off it decodes); a clip that fails
verification is deleted. All of this bookkeeping is
:class:`Batch`, which whole-video downloads share (:mod:`avmae.acquire.videos`:
EPIC-KITCHENS from its own servers).

Resume: each finished clip is appended to a journal (``<manifest>.journal.jsonl``) as soon
as it ends, so a killed run loses at most the clips in flight. A rerun skips clips the
journal records as ``ok`` (whose file is still there) or ``unavailable``. yt-dlp writes a
``.part`` file and renames it when complete, and only a verified file enters the journal, so
a half file never counts as done.

yt-dlp's Python API cuts each clip to ``[start, start + clip_seconds)`` itself: section
downloads always go through its ffmpeg downloader (``-ss start -t 10 -i URL``), and with
``force_keyframes_at_cuts`` the section is re-encoded, so the first frame is the frame at
``start`` rather than an earlier keyframe hidden behind an MP4 edit list.

Two yt-dlp details this module handles in :func:`_prepare_ytdlp`:

- ffmpeg is not on PATH. Whether a section can be downloaded is decided by
  ``FFmpegFD.available()``, which builds an ``FFmpegPostProcessor`` without our options
  and so sees only ``FFmpegPostProcessor._ffmpeg_location``, a ``contextvars.ContextVar``
  (the ``ffmpeg_location`` option alone gives "ffmpeg is not installed"). A new thread
  starts with an empty context, so each worker thread sets it.
- yt-dlp's ffmpeg downloader knows how to read ``file:`` inputs but does not list ``file``
  among its protocols, so a section of a ``file://`` URL is refused ("This format cannot
  be partially downloaded"). With ``allow_file_urls`` we add ``file`` to that list
  (checked by tests/test_download.py against the pinned yt-dlp).

yt-dlp gets the JS runtime of :mod:`avmae.acquire.runtime` (``js_runtimes``: the Deno
binary of the ``deno`` package unless ``Policy.js_runtime`` names another) and the
configured ``extractor_args`` (e.g. the YouTube player client, a PO-token provider's
settings).

No ffprobe is needed: a section download cuts and merges in one ffmpeg call, and the
post-processors that require ffprobe (native-HLS fixup, chapter splitting, SponsorBlock,
concatenation) are not used. yt-dlp's own version check runs ``ffmpeg -bsfs`` only.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import email.utils
import fcntl
import json
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yt_dlp
from tqdm import tqdm
from yt_dlp.downloader.external import FFmpegFD
from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

from avmae.acquire import runtime
from avmae.acquire.lists import Clip
from avmae.acquire.policy import Policy
from avmae.acquire.verify import VerifyError, probe_clip, verify_clip
from avmae.ffmpeg import ffmpeg_exe
from avmae.io import atomic_path

log = logging.getLogger(__name__)

STATUSES = ("ok", "unavailable", "failed")
# start/end_seconds: the listed segment; clip_start/clip_end: the span of the source the
# clip file holds (a section download: the segment; a whole video: the segment's context,
# avmae.acquire.videos.context); video_seconds: the source's duration, where it was read.
MANIFEST_COLUMNS = ["id", "start_seconds", "end_seconds", "label", "split", "source",
                    "status", "path", "reason", "attempts", "duration",
                    "clip_start", "clip_end", "video_seconds"]
VALID_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Low resolution is enough (features use 40-224 px); prefer mp4/m4a so merging is a remux.
FORMAT = "bv*[height<=?360]+ba/b[height<=?360]/bv*+ba/b"
FORMAT_SORT = ["res:360", "ext:mp4:m4a"]
# The cut section is re-encoded (by default libx264/aac for mp4): trade a little quality
# for half the CPU time. Encoders that lack these private options only warn. One encoder
# thread: with x264's own threads, repeated downloads of the same toy clip differed in
# 2 of 24 (clip, try) pairs (frames from the 81st on), and then so did the features and
# Table 1; with one thread 72 of 72 were identical.
CUT_ENCODER_ARGS = ["-preset", "veryfast", "-aac_coder", "fast", "-threads", "1"]
# Classes of a failed try (module docstring).
UNAVAILABLE, TRANSIENT, BLOCKED, RATE_LIMITED = "unavailable", "transient", "blocked", "rate-limited"
# (class, what, pattern) of error messages, checked in this order (first match wins;
# unmatched: transient). Order matters: YouTube's rate-limit message starts "Video
# unavailable", and the bot check, age gate and private-video messages all say "Sign in".
# The messages are YouTube's playability reasons as yt-dlp reports them (curly
# apostrophes are straightened first).
ERROR_KINDS: tuple[tuple[str, str, re.Pattern], ...] = tuple(
    (cls, what, re.compile(pattern, re.IGNORECASE)) for cls, what, pattern in (
        (RATE_LIMITED, "YouTube rate limit",
         r"content isn't available, try again later|has been rate.?limited|rate.?limit exceeded"),
        (RATE_LIMITED, "HTTP 429", r"HTTP Error 429|\b429 Too Many Requests|too many requests"),
        (BLOCKED, "bot check", r"confirm you're not a bot|captcha"),
        (BLOCKED, "video data refused (PO token?)", r"unable to download video data: HTTP Error 403"),
        (BLOCKED, "no usable format (JS runtime?)",
         r"requested format is not available|only images are available"),
        (TRANSIENT, "premiere", r"\bpremieres? in\b|premiere will begin"),
        (TRANSIENT, "live event", r"live event will begin|live stream offline"),
        (UNAVAILABLE, "age-restricted", r"confirm your age|age.restricted|inappropriate for some users"),
        (UNAVAILABLE, "private", r"private video|video is private"),
        (UNAVAILABLE, "account terminated", r"account\b.{0,80}\bterminated|has been terminated"),
        (UNAVAILABLE, "geo-blocked", (r"available in your country|blocked it in your country|"
                                      r"geo.?restrict|not available from your location")),
        (UNAVAILABLE, "sign-in required", (r"only available (?:for|to) registered users|members.only|"
                                           r"join this channel|sign in|login details are needed")),
        (UNAVAILABLE, "removed", (r"video unavailable|removed|no longer available|copyright|"
                                  r"video is (?:unavailable|not available)")),
        (UNAVAILABLE, "not found", r"HTTP Error (?:403|404|410)|no such file|does not exist|invalid id"),
        (TRANSIENT, "server or network", (r"HTTP Error 5\d\d|timed? ?out|connection (?:reset|refused|aborted)|"
                                          r"temporar|incomplete ?read|try again later")),
    ))
MAX_PAUSE = 86400.0  # a Retry-After longer than a day is taken as a day


class ClientBlocked(RuntimeError):
    """Many clips in a row failed, or the shard was rate-limited pause after pause: the
    client looks rate-limited or blocked."""


class RateLimited(Exception):
    """A try was rate-limited: the shard pauses (``seconds``: the server's Retry-After)."""

    def __init__(self, reason: str, seconds: float | None, what: str):
        super().__init__(reason)
        self.reason, self.seconds, self.what = reason, seconds, what


@dataclass(frozen=True)
class ErrorKind:
    cls: str   # UNAVAILABLE, TRANSIENT, BLOCKED or RATE_LIMITED
    what: str  # e.g. "bot check"


def error_kind(message: str) -> ErrorKind:
    """The class of a failed try's message (:data:`ERROR_KINDS`; unmatched: transient)."""
    message = message.replace("\u2019", "'")
    for cls, what, pattern in ERROR_KINDS:
        if pattern.search(message):
            return ErrorKind(cls, what)
    return ErrorKind(TRANSIENT, "unrecognised")


def retry_after(error: BaseException) -> float | None:
    """Seconds of the Retry-After header of the HTTP answer behind ``error`` (yt-dlp's or
    urllib's HTTPError, found through yt-dlp's wrapping exceptions), or None."""
    seen, stack = set(), [error]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        headers = getattr(getattr(e, "response", None), "headers", None) or getattr(e, "headers", None)
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        if isinstance(value, str) and value.strip():
            with contextlib.suppress(ValueError):
                return max(0.0, float(value))
            with contextlib.suppress(TypeError, ValueError):
                when = email.utils.parsedate_to_datetime(value.strip())
                return max(0.0, (when - datetime.now(UTC)).total_seconds())
        exc_info = getattr(e, "exc_info", None)
        stack += [getattr(e, "cause", None), e.__cause__, e.__context__,
                  exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None]
    return None


def failure(error: BaseException) -> tuple[str, str]:
    """(status, reason) of a failed try: ``unavailable``, ``failed`` or ``blocked`` (a
    ``failed`` not to retry now); raises :class:`RateLimited` for a rate-limited one."""
    reason = one_line(error)
    kind = error_kind(reason)
    if kind.cls == RATE_LIMITED:
        raise RateLimited(reason, retry_after(error), kind.what) from error
    return {UNAVAILABLE: "unavailable", BLOCKED: BLOCKED}.get(kind.cls, "failed"), reason


class _YtdlpLog:
    """Route yt-dlp's messages to logging; its errors come back as exceptions anyway."""

    def debug(self, msg: str) -> None:
        pass

    info = debug

    def warning(self, msg: str) -> None:
        log.warning("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)


def _prepare_ytdlp(allow_file_urls: bool) -> None:
    """Point this thread's yt-dlp at our ffmpeg; let it cut sections of file:// URLs."""
    FFmpegPostProcessor._ffmpeg_location.set(ffmpeg_exe())
    if allow_file_urls and "file" not in FFmpegFD.SUPPORTED_PROTOCOLS:
        FFmpegFD.SUPPORTED_PROTOCOLS = (*FFmpegFD.SUPPORTED_PROTOCOLS, "file")


def _section(info: dict, ydl: yt_dlp.YoutubeDL):
    """``download_ranges`` callback: the section that ``extract_info(extra_info=...)`` set."""
    start, end = info["avmae_section"]
    yield {"start_time": start, "end_time": end}


def one_line(error: BaseException) -> str:
    """An exception as one readable line (yt-dlp prefixes 'ERROR: ' and may add colour)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    text = re.sub(r"^ERROR:\s*", "", text)
    return " ".join(text.split()) or type(error).__name__


def ytdlp_options(out_dir: Path, allow_file_urls: bool, policy: Policy) -> dict:
    """The YoutubeDL options of every worker."""
    opts = {
        "format": FORMAT,
        "format_sort": FORMAT_SORT,
        "merge_output_format": "mp4",
        "download_ranges": _section,
        "force_keyframes_at_cuts": True,
        "external_downloader_args": {"ffmpeg_o": CUT_ENCODER_ARGS},
        # '%' is yt-dlp's template character: escape it in the folder name
        "outtmpl": str(out_dir).replace("%", "%%") + "/%(avmae_stem)s.%(ext)s",
        "overwrites": True,
        "noplaylist": True,
        "quiet": True,
        "noprogress": True,
        "color": "no_color",
        "logger": _YtdlpLog(),
        "ffmpeg_location": ffmpeg_exe(),
        "enable_file_urls": allow_file_urls,
        "socket_timeout": policy.timeout,
        "retries": 0,  # retries are ours, with backoff and failure classes
        "extractor_retries": 0,
    }
    js_runtimes = runtime.ytdlp_js_runtimes(policy.js_runtime)
    if js_runtimes:
        opts["js_runtimes"] = js_runtimes
    if policy.extractor_args:
        opts["extractor_args"] = runtime.extractor_args(policy.extractor_args)
    if policy.cookies:
        opts["cookiefile"] = policy.cookies
    if policy.proxy:
        opts["proxy"] = policy.proxy
    return opts


class _Fetcher:
    """Downloads clip sections with one YoutubeDL per worker thread.

    Building a YoutubeDL costs ~0.1 s of GIL-bound Python, as much as the cut itself, so
    each thread keeps one. The clip's id and section reach it through ``extra_info``
    (read by the output template and by :func:`_section`), so nothing is shared between
    clips.
    """

    def __init__(self, out_dir: Path, allow_file_urls: bool, policy: Policy):
        self.out_dir = out_dir
        self.allow_file_urls = allow_file_urls
        self.opts = ytdlp_options(out_dir, allow_file_urls, policy)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._made: list[yt_dlp.YoutubeDL] = []

    def _ydl(self) -> yt_dlp.YoutubeDL:
        ydl = getattr(self._local, "ydl", None)
        if ydl is None:
            _prepare_ytdlp(self.allow_file_urls)
            ydl = self._local.ydl = yt_dlp.YoutubeDL(self.opts)
            with self._lock:
                self._made.append(ydl)
        return ydl

    def fetch(self, clip: Clip, url: str, end: float, stem: str | None = None) -> Path:
        """Download one section into ``out_dir/{stem}.mp4`` (default stem: the clip's id);
        return the file path or raise."""
        extra = {"avmae_stem": stem or clip.id, "avmae_section": (clip.start, end)}
        info = self._ydl().extract_info(url, download=True, extra_info=extra)
        downloads = (info or {}).get("requested_downloads") or []
        path = Path(downloads[0]["filepath"]) if downloads else None
        if path is None or not path.is_file():
            raise RuntimeError("yt-dlp reported success but wrote no file")
        if path.resolve().parent != self.out_dir:
            raise RuntimeError(f"yt-dlp wrote {path} outside {self.out_dir}")
        if path.stat().st_size == 0:
            raise RuntimeError(f"downloaded file {path.name} is empty")
        return path

    def close(self) -> None:
        for ydl in self._made:
            ydl.close()


class Journal:
    """Append-only JSON lines, one per finished clip; the last row of a clip wins.

    A line cut short by a kill is ignored on reading.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> dict[tuple[str, float], dict]:
        rows: dict[tuple[str, float], dict] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    row = json.loads(line)
                    rows[(row["id"], float(row["start_seconds"]))] = row
        return rows

    def append(self, row: dict) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


class _Pacer:
    """Spaces clip starts ``policy.interval`` s apart: over this run's workers, and with
    ``policy.pace_file`` over every run that names that file (one YouTube session's
    shards; the file holds the next free start, as wall-clock seconds, under a lock)."""

    def __init__(self, policy: Policy):
        self.interval = policy.interval
        self.path = Path(policy.pace_file) if policy.pace_file else None
        if self.path is not None and self.interval:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.next = 0.0
        self._lock = threading.Lock()

    def _reserve(self, now: float) -> float:
        """The start time of the next clip, taken from the shared schedule."""
        if self.path is None:
            start = max(now, self.next)
            self.next = start + self.interval
            return start
        with self.path.open("a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
            f.seek(0)
            try:
                start = max(now, float(f.read() or 0.0))
            except ValueError:  # a file cut short by a kill: the schedule restarts now
                start = now
            f.seek(0)
            f.truncate()
            f.write(f"{start + self.interval!r}\n")
        return start

    def wait(self, stop: threading.Event) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.time()
            start = self._reserve(now)
        stop.wait(start - now)

    def eta(self, clips: int) -> float:
        """Seconds that ``clips`` more starts take at the budget (a lower bound: the
        session's other runs share it)."""
        return clips * self.interval


class _Breaker:
    """Counts clips that end ``failed`` in a row; trips ``stop`` at the limit."""

    def __init__(self, limit: int):
        self.limit, self.in_a_row = limit, 0
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def record(self, status: str) -> None:
        with self._lock:
            self.in_a_row = self.in_a_row + 1 if status == "failed" else 0
            if self.limit and self.in_a_row >= self.limit:
                self.stop.set()


def _duration(seconds: float) -> str:
    """Seconds as ``H:MM:SS`` (hours unbounded)."""
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _clock(t: float) -> str:
    """A wall-clock time (seconds since the epoch) as local ISO 8601, to the second."""
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


class _Pause:
    """Holds every worker of a shard while it is rate-limited.

    :meth:`start` begins a pause (or lengthens the current one when another worker's try
    is answered the same way) and logs its reason and resume time; :meth:`wait` blocks
    until the pause is over and logs the resume once. ``timeline`` keeps one entry per
    pause: reason, what, paused_at, resume_at, seconds, source (``Retry-After`` or
    ``default pause``), resumed_at (wall-clock seconds, None until it resumes).
    """

    def __init__(self, policy: Policy, stop: threading.Event):
        self.policy, self.stop = policy, stop
        self.until = 0.0          # monotonic end of the current pause
        self.in_a_row = 0         # pauses since an answer that was not rate-limited
        self.timeline: list[dict] = []
        self.stop_reason: str | None = None
        self._lock = threading.Lock()

    def start(self, e: RateLimited) -> None:
        seconds = min(e.seconds if e.seconds is not None else self.policy.pause, MAX_PAUSE)
        source = "Retry-After" if e.seconds is not None else "default pause"
        with self._lock:
            now, wall = time.monotonic(), time.time()
            if now < self.until:  # already paused (a try that was under way): lengthen only
                if now + seconds > self.until:
                    self.until = now + seconds
                    entry = self.timeline[-1]
                    entry.update(resume_at=wall + seconds, seconds=wall + seconds - entry["paused_at"])
                    log.warning("rate-limited again (%s): the pause now ends at %s", e.what,
                                _clock(entry["resume_at"]))
                return
            self.in_a_row += 1
            if self.policy.max_pauses and self.in_a_row > self.policy.max_pauses:
                self.stop_reason = (f"rate-limited {self.in_a_row} times in a row, each after a "
                                    f"pause; last: {e.reason}")
                log.error("stopping: %s", self.stop_reason)
                self.stop.set()
                return
            self.until = now + seconds
            self.timeline.append({"reason": e.reason, "what": e.what, "paused_at": wall,
                                  "resume_at": wall + seconds, "seconds": seconds,
                                  "source": source, "resumed_at": None})
            log.warning("paused at %s: %s (%s); the shard resumes at %s (%.0f s, %s)",
                        _clock(wall), e.what, e.reason, _clock(wall + seconds), seconds, source)

    def wait(self) -> None:
        """Block while paused (or until the shard stops); log the first resume of a pause."""
        while True:
            with self._lock:
                left = self.until - time.monotonic()
            if left <= 0 or self.stop.wait(left):
                break
        with self._lock:
            entry = self.timeline[-1] if self.timeline else None
            if entry and entry["resumed_at"] is None and time.monotonic() >= self.until:
                entry["resumed_at"] = time.time()
                log.warning("resumed at %s after a pause of %.1f s (%s)", _clock(entry["resumed_at"]),
                            entry["resumed_at"] - entry["paused_at"], entry["what"])

    def answered(self) -> None:
        """A try was answered with something other than a rate limit."""
        with self._lock:
            self.in_a_row = 0


def manifest_row(clip: Clip, end: float, status: str, path: str = "", reason: str = "",
                 attempts: int = 0, duration: float | None = None,
                 span: tuple[float, float] | None = None, video_seconds: float | None = None) -> dict:
    """A manifest row; ``span`` (default: the segment ``[clip.start, end)``) is what the
    clip file holds of its source, see MANIFEST_COLUMNS."""
    clip_start, clip_end = span or (clip.start, end)
    return {"id": clip.id, "start_seconds": clip.start, "end_seconds": end, "label": clip.label,
            "split": clip.split, "source": clip.source or "", "status": status, "path": path,
            "reason": reason, "attempts": attempts, "duration": duration,
            "clip_start": clip_start, "clip_end": clip_end, "video_seconds": video_seconds}


def rejections(clips: list[Clip]) -> list[str | None]:
    """Why each clip is not downloaded at all (bad id, a duplicate row), or None. A clip is
    its (id, start): another segment of the same id is its own clip, not a duplicate."""
    reasons, seen = [], set()
    for clip in clips:
        bad = next((v for v in (clip.id, clip.video) if not VALID_ID.fullmatch(v)), None)
        if bad is not None:
            reasons.append(f"invalid id {bad!r}: expected 1-64 characters from [A-Za-z0-9_-]")
        elif (clip.id, clip.start) in seen:
            reasons.append(f"duplicate row: id {clip.id!r} starting at {clip.start:g} s is listed "
                           f"before; only its first row is downloaded")
        else:
            reasons.append(None)
        seen.add((clip.id, clip.start))
    return reasons


def stems(clips: list[Clip]) -> list[str]:
    """The file name (without .mp4) of each clip: its id when the list holds one segment of
    that id, else ``{id}_{start}`` with the start as ``%06d`` seconds when whole (the
    common layout of pre-cut VGGSound/AudioSet clips, ``{id}_{start:06d}``), else as
    ``%010.3f`` seconds; unique per (id, start)."""
    counts = collections.Counter(clip.id for clip in clips)

    def stem(clip: Clip) -> str:
        if counts[clip.id] == 1:
            return clip.id
        start = f"{int(clip.start):06d}" if float(clip.start).is_integer() else f"{clip.start:010.3f}"
        return f"{clip.id}_{start}"

    return [stem(clip) for clip in clips]


def journal_path(manifest_path: str | os.PathLike) -> Path:
    manifest_path = Path(manifest_path)
    return manifest_path.with_name(manifest_path.stem + ".journal.jsonl")


def check_template(url_template: str, allow_file_urls: bool, placeholders=("{id}",)) -> None:
    """Refuse a template without any of ``placeholders``, or a file:// one unless allowed."""
    if not any(p in url_template for p in placeholders):
        raise ValueError(f"url_template {url_template!r} has no {' or '.join(placeholders)} "
                         f"placeholder")
    if urllib.parse.urlparse(url_template).scheme == "file" and not allow_file_urls:
        raise ValueError(
            f"url_template {url_template!r} is a file:// URL; pass allow_file_urls=True")


def verified(path: Path, seconds: float, policy: Policy) -> tuple[str, str, str, float | None]:
    """(status, path, reason, duration) of a kept clip file; one that fails verification
    is deleted. The cheap check (complete file, duration, audio and video streams:
    :func:`probe_clip`) always runs; ``policy.verify`` adds decoding the whole file
    (:func:`verify_clip`). A clip cut short is never ``ok``."""
    try:
        duration = (verify_clip if policy.verify else probe_clip)(path, seconds)
    except VerifyError as e:
        path.unlink(missing_ok=True)
        return ("unavailable" if e.permanent else "failed"), "", f"verify: {e}", None
    return "ok", str(path), "", duration


class Batch:
    """What the clips of one run share: the resume journal, pacing, retries with backoff,
    the blocked-client breaker and the manifest. Both downloaders use one: sections with
    yt-dlp (:func:`download`) and whole videos (:func:`avmae.acquire.videos.download_videos`)."""

    def __init__(self, manifest_path: str | os.PathLike, policy: Policy):
        self.manifest_path, self.policy = Path(manifest_path), policy
        self.journal = Journal(journal_path(manifest_path))
        self.before = self.journal.read()
        self.pacer, self.breaker = _Pacer(policy), _Breaker(policy.block_after)
        self.pause = _Pause(policy, self.breaker.stop)
        self.tally: collections.Counter = collections.Counter()
        self._tally_lock = threading.Lock()

    def earlier(self, clip: Clip, span: Callable[[dict], tuple[float, float]]) -> dict | None:
        """The journal row of a clip that needs no new try: ok (its file still there,
        holding ``span(row)`` of its source, the span it would be cut to now: a changed
        clip length downloads again), or unavailable (unless ``retry_unavailable``)."""
        old = self.before.get((clip.id, clip.start))
        if old and "clip_start" not in old:  # a row from before spans were kept: its segment
            old.update(clip_start=old["start_seconds"], clip_end=old["end_seconds"], video_seconds=None)
        if old and (old["status"] == "ok" and Path(old["path"]).is_file()
                    and (old.get("clip_start"), old.get("clip_end")) == span(old)
                    or old["status"] == "unavailable" and not self.policy.retry_unavailable):
            return old
        return None

    @property
    def blocked(self) -> bool:
        return self.breaker.stop.is_set()

    def retry(self, attempt: Callable[[], tuple],
              gave_up: Callable[[str], tuple]) -> tuple[tuple, int]:
        """Call ``attempt``, paced, until it does not end ``failed`` or the retries are
        spent, with exponential backoff; return its last result and the number of tries.

        ``attempt`` returns ``(status, ...)``, status ``blocked`` for a ``failed`` not to
        retry now (returned as ``failed``), or raises :class:`RateLimited`: then the shard
        pauses and the same try is made again after the pause; it is not counted. When the
        shard stops instead (:class:`_Pause`, ``max_pauses``), ``gave_up(reason)`` is the result.
        """
        policy, tries, result = self.policy, 0, None
        while True:
            self.pause.wait()
            self.pacer.wait(self.breaker.stop)
            self.pause.wait()  # a pause that began while this worker was paced
            if self.blocked:  # the shard stopped: keep the last answer, or try no more
                why = f" ({self.pause.stop_reason})" if self.pause.stop_reason else ""
                return result or gave_up(NOT_TRIED + why), tries
            try:
                result = attempt()
            except RateLimited as e:
                self.pause.start(e)
                continue
            self.pause.answered()
            tries += 1
            if result[0] == BLOCKED:
                return ("failed", *result[1:]), tries
            if result[0] != "failed" or tries > policy.retries:
                return result, tries
            self.breaker.stop.wait(min(policy.max_backoff, policy.backoff * 2 ** (tries - 1)))

    def count(self, status: str) -> None:
        """One clip ended with ``status`` (progress bar)."""
        with self._tally_lock:
            self.tally[status] += 1

    def ended(self, status: str) -> None:
        """One download ended with ``status``: count it towards the breaker, then pause."""
        self.breaker.record(status)
        self.breaker.stop.wait(self.policy.sleep)

    def map(self, work: Callable, items: list, workers: int, unit: str) -> list:
        """``work`` over ``items`` on ``workers`` threads, in order, with a progress bar
        that counts ok / unavailable / failed clips and the pauses, and the time the
        clips left take at the budget (``budget_eta``, a lower bound)."""
        if self.pacer.interval:
            log.info("budget: %g videos/hour%s: %d %ss take at least %s", self.policy.videos_per_hour,
                     f", shared through {self.pacer.path}" if self.pacer.path else "",
                     len(items), unit, _duration(self.pacer.eta(len(items))))
        results = []
        with ThreadPoolExecutor(max_workers=workers) as pool, \
                tqdm(total=len(items), desc="download", unit=unit) as bar:
            for result in pool.map(work, items):
                results.append(result)
                with self._tally_lock:
                    shown = {s: self.tally[s] for s in STATUSES}
                shown["paused"] = len(self.pause.timeline)
                if self.pacer.interval:
                    shown["budget_eta"] = _duration(self.pacer.eta(len(items) - len(results)))
                bar.set_postfix(shown, refresh=False)
                bar.update()
        return results

    def write(self, rows: list[dict]) -> pd.DataFrame:
        """Write the manifest atomically and return it; raise :class:`ClientBlocked` after
        writing it when the breaker tripped."""
        manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
        with atomic_path(self.manifest_path) as tmp:
            manifest.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)
        log.info("clips: %s; manifest %s", manifest.status.value_counts().to_dict(),
                 self.manifest_path)
        if self.pause.timeline:
            log.info("pauses (rate limits): %s", "; ".join(
                f"{_clock(p['paused_at'])} -> {_clock(p['resumed_at']) if p['resumed_at'] else 'not resumed'}"
                f" ({p['what']}, {p['seconds']:.0f} s, {p['source']})" for p in self.pause.timeline))
        if self.blocked:
            why = self.pause.stop_reason or (
                f"{self.policy.block_after} downloads in a row failed (last: "
                f"{next((r['reason'] for r in reversed(rows) if r['attempts']), '?')})")
            raise ClientBlocked(
                f"{why}; the client looks rate-limited or blocked. Clips not tried are "
                f"recorded as 'failed', not 'unavailable'. Wait, or change --proxy/--cookies "
                f"(a bot check needs cookies; see 'avmae doctor'), then rerun: finished clips "
                f"are skipped. Manifest: {self.manifest_path}")
        return manifest


NOT_TRIED = "not attempted: the client looks blocked"


def download(clips: list[Clip], url_template: str, out_dir: str | os.PathLike,
             manifest_path: str | os.PathLike, workers: int = 2,
             allow_file_urls: bool = False, clip_seconds: float = 10.0,
             policy: Policy | None = None) -> pd.DataFrame:
    """Download ``[start, end)`` of every clip into ``out_dir/{id}.mp4`` (``{id}_{start}.mp4``
    for an id with several segments, :func:`stems`); write the manifest.

    ``url_template`` holds ``{id}``, replaced by the clip's ``video`` (its ``source`` or
    its id); a clip without ``end`` lasts ``clip_seconds``. Ids that are not
    ``[A-Za-z0-9_-]{1,64}`` are rejected (``unavailable``) before any URL or path is built
    from them. The manifest is written atomically and returned; when the client looks
    blocked it is still written, then :class:`ClientBlocked` is raised.
    """
    policy = policy or Policy()
    check_template(url_template, allow_file_urls)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    batch = Batch(manifest_path, policy)
    fetcher = _Fetcher(out_dir, allow_file_urls, policy)
    deno = fetcher.opts.get("js_runtimes", {}).get("deno", {}).get("path")
    log.info("yt-dlp %s, yt-dlp-ejs %s, JS runtime %s%s", runtime.ytdlp_version(),
             runtime.ejs_version() or "missing", deno or "none found (YouTube formats may be "
             "missing: see avmae doctor)", f", extractor args {fetcher.opts['extractor_args']}"
             if "extractor_args" in fetcher.opts else "")

    def attempt(clip: Clip, end: float, stem: str) -> tuple[str, str, str, float | None]:
        """One try: (status, path, reason, duration)."""
        try:
            path = fetcher.fetch(clip, url_template.replace("{id}", clip.video), end, stem)
        except Exception as e:  # noqa: BLE001 - any failure is recorded, the batch goes on
            status, reason = failure(e)  # a rate limit raises RateLimited: Batch.retry pauses
            return status, "", reason, None
        return verified(path, end - clip.start, policy)

    def work(item: tuple[Clip, str | None, str]) -> dict:
        clip, rejected, stem = item
        end = clip.end_at(clip_seconds)
        if rejected:
            batch.count("unavailable")
            return manifest_row(clip, end, "unavailable", reason=rejected)
        old = batch.earlier(clip, lambda _: (clip.start, end))
        if old:
            batch.count(old["status"])
            return old
        if batch.blocked:
            batch.count("failed")
            return manifest_row(clip, end, "failed", reason=NOT_TRIED)
        (status, path, reason, duration), tries = batch.retry(
            lambda: attempt(clip, end, stem), lambda why: ("failed", "", why, None))
        row = manifest_row(clip, end, status, path, reason, tries, duration)
        if tries:  # tried: journalled (a clip the stopped shard never tried is not)
            batch.journal.append(row)
            batch.ended(status)
        batch.count(status)
        return row

    with contextlib.closing(fetcher):
        rows = batch.map(work, list(zip(clips, rejections(clips), stems(clips))), workers, "clip")
    return batch.write(rows)
