"""Whole-video downloads (EPIC-KITCHENS): each video fetched once per shard, its segments cut here.

EPIC-KITCHENS is not on YouTube. Its videos are one MP4 per ``video_id`` (1080p at 50-60
fps, gigabytes each) on the University of Bristol data servers, in two datasets:
EPIC-KITCHENS-55 (``videos/{train|test}/{participant}/{video_id}.MP4``) and the EPIC-100
extension (``{participant}/videos/{video_id}.MP4``). The ``data/md5.csv`` of the official
download scripts (github.com/epic-kitchens/epic-kitchens-download-scripts; columns
``md5,file_remote_path,version``, version ``55`` or ``100``) lists all 700 videos with
their path and md5. :func:`read_checksums` maps it to ``{video_id: (path, md5)}``, the
path starting with the dataset's id under ``https://data.bris.ac.uk/datasets/``
(:data:`EPIC_DATASETS`), so one URL template, ``https://data.bris.ac.uk/datasets/{path}``,
reaches both. A template may use ``{id}`` (the video id) instead, e.g. for a mirror.

:func:`download_videos` groups a shard's clips by video. For each video with a clip still
to do it

1. downloads the video once to ``out_dir/videos/{video}.mp4``: into ``.part``, continued
   with an HTTP Range request after a dropped connection or a killed job, checked against
   its md5 when the checksum list has one, then renamed. An md5 mismatch deletes the file
   and counts as ``failed`` (a bad transfer; retried); HTTP 404 as ``unavailable``. A
   ``file://`` URL (a local copy) is read in place: nothing is copied or checked.
2. cuts each segment's context out of it with ffmpeg into ``out_dir/{id}.mp4``: the
   ``clip_seconds`` (10 s) centred on the segment, moved to lie within the video
   (:func:`context`), re-encoded to H.264/AAC at most 360 px high (as the YouTube
   downloads), and verifies it as those are. EPIC actions last ~3 s on average, less
   than a feature clip; the manifest's ``clip_start``/``clip_end`` say where the clip
   sits in the video, so the features can mark the action inside it and training
   windows stay on the action (:mod:`avmae.features.extract`, :mod:`avmae.data.dataset`).
   A segment longer than ``clip_seconds`` keeps its middle ``clip_seconds``;
3. deletes the downloaded video unless ``keep_videos``, once none of its segments ended
   ``failed`` (a rerun would need it again).

Retries with backoff, pacing (a video start counts as a clip start), the error classes
and the shard's pause on HTTP 429 (honouring Retry-After), the blocked-client stop, the resume journal, the statuses and the manifest are the section downloader's
(:class:`avmae.acquire.download.Batch`); a segment's ``attempts`` are its video's. Only an
http(s) ``proxy`` applies here; cookies do not.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd

from avmae.acquire.download import (
    NOT_TRIED,
    Batch,
    check_template,
    failure,
    manifest_row,
    one_line,
    rejections,
    stems,
    verified,
)
from avmae.acquire.fetch import file_digest
from avmae.acquire.lists import Clip, ListFormatError, read_rows
from avmae.acquire.policy import Policy
from avmae.acquire.verify import media_seconds
from avmae.ffmpeg import ffmpeg_exe
from avmae.io import atomic_path

log = logging.getLogger(__name__)

# The datasets (data.bris.ac.uk/datasets/<id>, DOI 10.5523/bris.<id>) of md5.csv's versions.
EPIC_DATASETS = {"55": "3h91syskeag572hl6tvuovwv4d", "100": "2g1n6qdydwa9u22shpxqzp0t8m"}
CHECKSUM_COLUMNS = ("md5", "file_remote_path", "version")
MD5 = re.compile(r"[0-9a-f]{32}")
REMOTE_PATH = re.compile(r"(?:[A-Za-z0-9_-]+/)*[A-Za-z0-9_-]+\.[A-Za-z0-9]+")
CHUNK = 1 << 20
CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-\d+|\*)/(\d+)")
USER_AGENT = "avmae-video-download"
# Cut segments: H.264/AAC at most 360 px high (the features use 256), fast presets.
CUT_ARGS = ["-map", "0:v:0", "-map", "0:a:0?", "-vf", "scale=-2:'min(360,ih)'",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-aac_coder", "fast", "-b:a", "128k", "-map_metadata", "-1"]


def read_checksums(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """The download scripts' ``md5.csv`` -> {video_id: (path, md5)} of its videos (the
    ``.MP4`` rows; frames and masks rows are checked, then skipped). ``path`` is
    ``<dataset id>/<file_remote_path>``. All malformed rows are reported at once."""
    path = Path(path)
    videos: dict[str, tuple[str, str]] = {}
    header: list[list[str]] = []

    def parse(row: list[str]) -> None:
        if not header:
            header.append(row)
            if tuple(field.strip() for field in row) != CHECKSUM_COLUMNS:
                raise ValueError(f"header {','.join(row)!r} is not {','.join(CHECKSUM_COLUMNS)!r}")
            return
        if len(row) != len(CHECKSUM_COLUMNS):
            raise ValueError(f"expected 3 columns ({','.join(CHECKSUM_COLUMNS)}), got {len(row)}")
        md5, remote, version = (field.strip() for field in row)
        if not MD5.fullmatch(md5):
            raise ValueError(f"md5 {md5!r} is not 32 lower-case hex digits")
        if not REMOTE_PATH.fullmatch(remote):
            raise ValueError(f"file_remote_path {remote!r} is not a relative path of "
                             f"[A-Za-z0-9_-] names")
        if version not in EPIC_DATASETS:
            raise ValueError(f"version {version!r} is not one of {', '.join(EPIC_DATASETS)}")
        name, _, ext = remote.rpartition("/")[2].rpartition(".")
        if ext.upper() == "MP4":
            videos[name] = (f"{EPIC_DATASETS[version]}/{remote}", md5)

    read_rows(path, parse)
    if not header:
        raise ListFormatError(f"{path}: empty file, expected the header {','.join(CHECKSUM_COLUMNS)}")
    return videos


def _opener(policy: Policy) -> urllib.request.OpenerDirector:
    if policy.proxy:
        return urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": policy.proxy, "https": policy.proxy}))
    return urllib.request.build_opener()


def fetch_video(url: str, dest: Path, md5: str | None, policy: Policy) -> None:
    """Download ``url`` to ``dest`` through ``dest.part``, continuing an existing part with
    an HTTP Range request; check ``md5`` (a mismatch deletes the part); rename. Raises on
    any failure, leaving a part to continue from."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={have}-"} if have else {})}
    try:
        response = _opener(policy).open(urllib.request.Request(url, headers=headers),
                                        timeout=policy.timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:
            raise
        # 416 on a Range request: nothing after the part, which is whole if its size is the file's
        match = CONTENT_RANGE.fullmatch(e.headers.get("Content-Range", ""))
        if not match or int(match.group(2)) != have:
            part.unlink()  # it does not fit the file: the next try starts over
            raise
    else:
        with response, part.open("ab" if response.status == 206 else "wb") as f:
            total = response.headers.get("Content-Length")
            total = int(total) if total is not None else None
            if response.status == 206:
                match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
                if not match or match.group(1) is None or int(match.group(1)) != have:
                    raise ConnectionError(f"bad Content-Range {response.headers.get('Content-Range')!r} "
                                          f"for bytes={have}-")
                total = int(match.group(2))
            shutil.copyfileobj(response, f, CHUNK)
        size = part.stat().st_size
        if total is not None and size != total:
            raise ConnectionError(f"incomplete read: {size} of {total} bytes")
    if md5:
        got = file_digest(part, "md5")
        if got != md5:
            part.unlink()
            raise ValueError(f"md5 mismatch: {got}, expected {md5}; the download is deleted")
    os.replace(part, dest)


def context(start: float, stop: float, seconds: float,
            video_seconds: float | None = None) -> tuple[float, float]:
    """The ``seconds``-long span centred on the segment ``[start, stop)``, moved to lie
    within ``[0, video_seconds]`` (the whole video when that is shorter), in milliseconds
    (as the cut is made)."""
    length = min(seconds, video_seconds) if video_seconds is not None else seconds
    begin = max((start + stop - length) / 2, 0.0)
    if video_seconds is not None:
        begin = min(begin, video_seconds - length)
    return round(begin, 3), round(begin + length, 3)


def cut(source: Path, span: tuple[float, float], out: Path) -> None:
    """Cut the seconds ``[start, end) = span`` of ``source`` into ``out`` (re-encoded, see CUT_ARGS),
    atomically; raise RuntimeError with ffmpeg's last message."""
    start, seconds = span[0], span[1] - span[0]
    limit = max(120.0, 20 * seconds)
    with atomic_path(out) as tmp:
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-y",
               "-ss", f"{start:.3f}", "-i", f"file:{source}", "-t", f"{seconds:.3f}",
               *CUT_ARGS, f"file:{tmp}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                  timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"cut: ffmpeg took over {limit:.0f} s") from None
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.strip().splitlines()[-1:])
            raise RuntimeError(f"cut: ffmpeg exited with {proc.returncode}: {tail}")


def download_videos(clips: list[Clip], url_template: str, out_dir: str | os.PathLike,
                    manifest_path: str | os.PathLike, workers: int = 2,
                    allow_file_urls: bool = False, clip_seconds: float = 10.0,
                    policy: Policy | None = None, checksums: str | os.PathLike | None = None,
                    keep_videos: bool = False) -> pd.DataFrame:
    """Download each clip's whole video once, cut the clips' contexts (:func:`context`,
    ``clip_seconds`` long) into ``out_dir/{id}.mp4`` and write the manifest (as
    :func:`avmae.acquire.download.download` does, same arguments).

    ``url_template`` holds ``{id}`` (the video id) or ``{path}`` (its path from the
    ``checksums`` list, :func:`read_checksums`); a video the list holds is md5-checked.
    ``keep_videos`` keeps the downloaded videos in ``out_dir/videos``.
    """
    policy = policy or Policy()
    check_template(url_template, allow_file_urls, ("{id}", "{path}"))
    if policy.proxy and urllib.parse.urlparse(policy.proxy).scheme not in ("http", "https"):
        raise ValueError(f"proxy {policy.proxy!r}: whole-video downloads take an http(s) proxy")
    index = read_checksums(checksums) if checksums else {}
    if "{path}" in url_template and not index:
        raise ValueError(f"url_template {url_template!r} uses {{path}}, which needs a checksum list")
    out_dir = Path(out_dir).resolve()
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    batch = Batch(manifest_path, policy)
    ends = [clip.end_at(clip_seconds) for clip in clips]
    rows: list[dict | None] = [None] * len(clips)
    names = stems(clips)
    by_video: dict[str, list[int]] = {}
    for i, (clip, rejected) in enumerate(zip(clips, rejections(clips))):
        if rejected:
            rows[i] = manifest_row(clip, ends[i], "unavailable", reason=rejected,
                                   span=context(clip.start, ends[i], clip_seconds))
            batch.count("unavailable")
        else:
            by_video.setdefault(clip.video, []).append(i)

    def get(video: str) -> tuple[str, Path | None, str]:
        """One try at the video: (status, local file or None, reason)."""
        remote, md5 = index.get(video, (None, None))
        if "{path}" in url_template and remote is None:
            return "unavailable", None, f"video {video!r} is not in the checksum list {checksums}"
        url = url_template.replace("{id}", video).replace("{path}", remote or "")
        try:
            if urllib.parse.urlparse(url).scheme == "file":
                local = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
                if not local.is_file():
                    raise FileNotFoundError(f"no such file: {local}")
                return "ok", local, ""
            dest = out_dir / "videos" / f"{video}.mp4"
            if not dest.is_file():  # a finished download is kept until its segments are cut
                fetch_video(url, dest, md5, policy)
            return "ok", dest, ""
        except Exception as e:  # noqa: BLE001 - any failure is recorded, the batch goes on
            status, reason = failure(e)  # a rate limit raises RateLimited: Batch.retry pauses
            return status, None, reason

    def work(item: tuple[str, list[int]]) -> None:
        video, indices = item

        def span(i: int, video_seconds: float | None) -> tuple[float, float]:
            return context(clips[i].start, ends[i], clip_seconds, video_seconds)

        for i in indices:
            rows[i] = batch.earlier(clips[i], lambda old, i=i: span(i, old.get("video_seconds")))
            if rows[i] is not None:
                batch.count(rows[i]["status"])
        todo = [i for i in indices if rows[i] is None]
        if not todo:
            return
        if batch.blocked:
            for i in todo:
                rows[i] = manifest_row(clips[i], ends[i], "failed", reason=NOT_TRIED, span=span(i, None))
                batch.count("failed")
            return
        (status, source, reason), tries = batch.retry(lambda: get(video), lambda why: ("failed", None, why))
        if not tries:  # the shard stopped before this video was tried
            for i in todo:
                rows[i] = manifest_row(clips[i], ends[i], "failed", reason=reason, span=span(i, None))
                batch.count("failed")
            return
        seconds = None
        if source is not None:
            try:
                seconds = media_seconds(source)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                status, source, reason = "failed", None, one_line(e)
        for i in todo:
            row = manifest_row(clips[i], ends[i], status, reason=reason, attempts=tries,
                               span=span(i, seconds), video_seconds=seconds)
            if source is not None and clips[i].start >= seconds:
                row.update(status="unavailable", reason=f"the segment starts at {clips[i].start:.2f} s, "
                                                        f"after the video's end ({seconds:.2f} s)")
            elif source is not None:
                out = out_dir / f"{names[i]}.mp4"
                try:
                    cut(source, (row["clip_start"], row["clip_end"]), out)
                    row.update(zip(("status", "path", "reason", "duration"),
                                   verified(out, row["clip_end"] - row["clip_start"], policy)))
                except RuntimeError as e:
                    row.update(status="failed", reason=one_line(e))
            batch.journal.append(row)
            batch.count(row["status"])
            rows[i] = row
        downloaded = source is not None and source.parent == out_dir / "videos"  # not a file:// copy
        if downloaded and not keep_videos and all(rows[i]["status"] != "failed" for i in todo):
            source.unlink()
        batch.ended(status)

    batch.map(work, list(by_video.items()), workers, "video")
    return batch.write(rows)
