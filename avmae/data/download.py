"""Download the 10 s sections of a URL list with yt-dlp, and record what happened.

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

No ffprobe is needed: a section download cuts and merges in one ffmpeg call, and the
post-processors that require ffprobe (native-HLS fixup, chapter splitting, SponsorBlock,
concatenation) are not used. yt-dlp's own version check runs ``ffmpeg -bsfs`` only.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import yt_dlp
from tqdm import tqdm
from yt_dlp.downloader.external import FFmpegFD
from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

from avmae.data.ffmpeg import ffmpeg_exe
from avmae.data.lists import Clip
from avmae.io import atomic_path

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["id", "start_seconds", "label", "split", "status", "path", "reason"]
VALID_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Low resolution is enough (features use 40-224 px); prefer mp4/m4a so merging is a remux.
FORMAT = "bv*[height<=?360]+ba/b[height<=?360]/bv*+ba/b"
FORMAT_SORT = ["res:360", "ext:mp4:m4a"]
# The cut section is re-encoded (by default libx264/aac for mp4): trade a little quality
# for half the CPU time. Encoders that lack these private options only warn.
CUT_ENCODER_ARGS = ["-preset", "veryfast", "-aac_coder", "fast"]


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


def _one_line(error: BaseException) -> str:
    """An exception as one readable line (yt-dlp prefixes 'ERROR: ' and may add colour)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    text = re.sub(r"^ERROR:\s*", "", text)
    return " ".join(text.split()) or type(error).__name__


class _Fetcher:
    """Downloads clip sections with one YoutubeDL per worker thread.

    Building a YoutubeDL costs ~0.1 s of GIL-bound Python, as much as the cut itself, so
    each thread keeps one. The clip's id and section reach it through ``extra_info``
    (read by the output template and by :func:`_section`), so nothing is shared between
    clips.
    """

    def __init__(self, out_dir: Path, clip_seconds: float, allow_file_urls: bool):
        self.clip_seconds = clip_seconds
        self.allow_file_urls = allow_file_urls
        self.opts = {
            "format": FORMAT,
            "format_sort": FORMAT_SORT,
            "merge_output_format": "mp4",
            "download_ranges": _section,
            "force_keyframes_at_cuts": True,
            "external_downloader_args": {"ffmpeg_o": CUT_ENCODER_ARGS},
            # '%' is yt-dlp's template character: escape it in the folder name
            "outtmpl": str(out_dir).replace("%", "%%") + "/%(avmae_id)s.%(ext)s",
            "overwrites": True,
            "noplaylist": True,
            "quiet": True,
            "noprogress": True,
            "color": "no_color",
            "logger": _YtdlpLog(),
            "ffmpeg_location": ffmpeg_exe(),
            "enable_file_urls": allow_file_urls,
        }
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

    def fetch(self, clip: Clip, url: str) -> Path:
        """Download one section; return the file path or raise."""
        extra = {"avmae_id": clip.id, "avmae_section": (clip.start, clip.start + self.clip_seconds)}
        info = self._ydl().extract_info(url, download=True, extra_info=extra)
        downloads = (info or {}).get("requested_downloads") or []
        path = Path(downloads[0]["filepath"]) if downloads else None
        if path is None or not path.is_file():
            raise RuntimeError("yt-dlp reported success but wrote no file")
        if path.stat().st_size == 0:
            raise RuntimeError(f"downloaded file {path.name} is empty")
        return path

    def close(self) -> None:
        for ydl in self._made:
            ydl.close()


def _row(clip: Clip, status: str, path: str = "", reason: str = "") -> dict:
    return {"id": clip.id, "start_seconds": clip.start, "label": clip.label,
            "split": clip.split, "status": status, "path": path, "reason": reason}


def _previous_ok(manifest_path: Path, out_dir: Path) -> dict[tuple[str, float], str]:
    """(id, start) -> path, for clips an earlier run saved in out_dir that are still there."""
    if not manifest_path.exists():
        return {}
    old = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    missing = set(MANIFEST_COLUMNS) - set(old.columns)
    if missing:
        raise ValueError(
            f"{manifest_path}: not a download manifest, missing columns {sorted(missing)}")
    old["start"] = pd.to_numeric(old["start_seconds"], errors="coerce")
    done = {}
    for r in old[old["status"] == "ok"].itertuples():
        path = Path(r.path)
        if path.parent == out_dir and path.is_file() and path.stat().st_size > 0:
            done[(r.id, r.start)] = r.path
    return done


def download(clips: list[Clip], url_template: str, out_dir: str | os.PathLike,
             manifest_path: str | os.PathLike, workers: int = 2,
             allow_file_urls: bool = False, clip_seconds: float = 10.0) -> pd.DataFrame:
    """Download ``[start, start + clip_seconds)`` of every clip into ``out_dir/{id}.mp4``.

    ``url_template`` holds ``{id}``. Each clip gets one manifest row (status ``ok`` or
    ``failed`` with a one-line reason); a failure never stops the batch. Ids that are not
    ``[A-Za-z0-9_-]{1,64}`` are rejected before any URL or path is built from them.
    Clips that an earlier manifest marks ok, and whose file exists, are not fetched again.
    The manifest is written atomically and also returned.
    """
    if "{id}" not in url_template:
        raise ValueError(f"url_template {url_template!r} has no '{{id}}' placeholder")
    if urllib.parse.urlparse(url_template).scheme == "file" and not allow_file_urls:
        raise ValueError(
            f"url_template {url_template!r} is a file:// URL; pass allow_file_urls=True")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = Path(manifest_path)
    done = _previous_ok(manifest_path, out_dir)

    fetcher = _Fetcher(out_dir, clip_seconds, allow_file_urls)

    def work(item: tuple[Clip, str | None]) -> dict:
        clip, rejected = item
        if rejected:
            return _row(clip, "failed", reason=rejected)
        if (clip.id, clip.start) in done:
            return _row(clip, "ok", done[(clip.id, clip.start)])
        try:
            path = fetcher.fetch(clip, url_template.replace("{id}", clip.id))
        except Exception as e:  # noqa: BLE001 - any failure is recorded, the batch goes on
            return _row(clip, "failed", reason=_one_line(e))
        return _row(clip, "ok", str(path))

    items, seen = [], set()
    for clip in clips:
        if not VALID_ID.fullmatch(clip.id):
            rejected = f"invalid id {clip.id!r}: expected 1-64 characters from [A-Za-z0-9_-]"
        elif clip.id in seen:
            rejected = f"duplicate id {clip.id!r}: only its first row is downloaded"
        else:
            rejected = None
        seen.add(clip.id)
        items.append((clip, rejected))

    with contextlib.closing(fetcher), ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(tqdm(pool.map(work, items), total=len(items), desc="download", unit="clip"))

    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    with atomic_path(manifest_path) as tmp:
        manifest.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)
    n_ok = int((manifest.status == "ok").sum())
    log.info("downloaded %d/%d clips; manifest %s", n_ok, len(manifest), manifest_path)
    return manifest
