"""Datasets already on disk: register a local copy instead of downloading it.

A dataset's ``local: {root, layout, pattern}`` (``avmae download --local ROOT --layout L
--pattern P``) names a copy in one of three layouts:

- ``clips``: pre-cut clips, one file per (id, start), named by ``pattern`` under ``root``
  (default ``{id}_{start:06d}.mp4``, the layout of the common VGGSound/AudioSet mirrors).
  ``pattern`` is a Python format string with ``{id}`` (the video id, as in url_template),
  ``{start}`` and ``{end}`` (seconds: an int when whole, else a float), format specs
  allowed; it may name subfolders. A clip that passes the cheap check is *linked* into
  the shard (a hard link; a symbolic link across file systems): nothing is re-encoded
  or copied.
- ``videos``: whole videos (default ``{id}.mp4``; ``{id}`` only) cut locally to each
  segment (its ``clip_seconds`` context), by the whole-video path of EPIC-KITCHENS
  (:func:`avmae.acquire.videos.download_videos` on ``file://`` URLs: one code path cuts
  both).
- ``tar``: tar shards of pre-cut clips (``root``: one tar, or a folder of ``*.tar``,
  ``*.tar.gz``, ``*.tgz``, ``*.tar.bz2``, ``*.tar.xz``); a member is found by its path,
  or, for a pattern without a folder, by its file name in any folder. Each tar is read
  once per shard job, headers only when uncompressed (compressed tars are decompressed
  in full: unpack them once and use ``clips`` when there are many shards); the shard's
  members are extracted (a copy: a tar member cannot be linked).

Every clip gets the manifest row a download gives it (:data:`MANIFEST_COLUMNS`), so the
availability report and ``clips_used.csv`` come out the same; no yt-dlp runs. A missing
file is ``unavailable`` ("no such file: PATH"); a file that fails the cheap check
(:func:`avmae.acquire.verify.probe_clip`: incomplete, no header, wrong duration) is
``failed`` with its reason, one without audio or video ``unavailable``. The check reads
headers only (~16 ms of CPU a clip): decoding every frame is the feature stage's job.
Reruns skip finished clips (the journal, as for downloads).

A bad ``local`` entry (no ``{id}`` in the pattern, a field other than id/start/end, a root
that does not exist, a tar that is not one) raises :class:`LocalConfigError` naming the
config key, before any clip (:func:`check_local`; the workflow calls it while building
the DAG).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import string
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from avmae.acquire.download import Batch, manifest_row, rejections, stems
from avmae.acquire.lists import Clip
from avmae.acquire.policy import Policy
from avmae.acquire.verify import VerifyError, probe_clip
from avmae.io import atomic_path

log = logging.getLogger(__name__)

LAYOUTS = ("clips", "videos", "tar")
DEFAULT_PATTERNS = {"clips": "{id}_{start:06d}.mp4", "videos": "{id}.mp4", "tar": "{id}_{start:06d}.mp4"}
FIELDS = ("id", "start", "end")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# No network, no pacing, no retries: a local file is there or it is not.
LOCAL_POLICY = Policy(retries=0, block_after=0, sleep=0.0, videos_per_hour=0.0, verify=False, max_pauses=0)


class LocalConfigError(ValueError):
    """A ``local`` entry that cannot work; the message names the config key."""


@dataclass(frozen=True)
class Local:
    """A checked local copy (:func:`check_local`)."""

    root: Path
    layout: str
    pattern: str
    tars: tuple[Path, ...] = ()  # layout tar: the tar files


def _fields(pattern: str, key: str) -> list[tuple[str, str]]:
    """(field, format spec) of each replacement field of ``pattern``."""
    try:
        parsed = [(name, spec or "") for _, name, spec, _ in string.Formatter().parse(pattern)
                  if name is not None]
    except ValueError as e:
        raise LocalConfigError(f"{key}.pattern {pattern!r} is not a format string: {e}") from None
    return parsed


def check_local(root: str | os.PathLike, layout: str = "clips", pattern: str | None = None,
                key: str = "local") -> Local:
    """Check a local copy's settings (``key``: its config key, named in every error);
    return it. Cheap: it lists ``root`` (a tar layout: reads each tar's first header)."""
    if layout not in LAYOUTS:
        raise LocalConfigError(f"{key}.layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    pattern = pattern or DEFAULT_PATTERNS[layout]
    fields = _fields(pattern, key)
    names = [name for name, _ in fields]
    if "id" not in names:
        raise LocalConfigError(f"{key}.pattern {pattern!r} has no {{id}}: it must name each "
                               f"clip's file by its id (e.g. {DEFAULT_PATTERNS[layout]!r})")
    unknown = sorted({n for n in names if n not in FIELDS})
    if unknown:
        raise LocalConfigError(f"{key}.pattern {pattern!r}: unknown field(s) {unknown}; "
                               f"use {{id}}, {{start}}, {{end}}")
    if layout == "videos" and (set(names) != {"id"} or any(spec for _, spec in fields)
                               or "{id}" not in pattern):
        raise LocalConfigError(f"{key}.pattern {pattern!r}: whole videos are named by {{id}} "
                               f"alone, without a format spec (e.g. '{{id}}.mp4')")
    try:
        pattern.format(id="abc", start=30, end=40)
    except (ValueError, TypeError, IndexError, KeyError) as e:
        raise LocalConfigError(f"{key}.pattern {pattern!r} does not format: {e}") from None
    if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise LocalConfigError(f"{key}.pattern {pattern!r} must name a file under {key}.root "
                               f"(a relative path without '..')")
    root = Path(root).expanduser()
    tars: tuple[Path, ...] = ()
    if layout == "tar":
        if root.is_dir():
            tars = tuple(sorted(p for p in root.iterdir()
                                if p.is_file() and p.name.endswith(TAR_SUFFIXES)))
            if not tars:
                raise LocalConfigError(f"{key}.root {str(root)!r} holds no tar file "
                                       f"({', '.join('*' + s for s in TAR_SUFFIXES)})")
        elif root.is_file():
            tars = (root,)
        else:
            raise LocalConfigError(f"{key}.root {str(root)!r} does not exist")
        for tar in tars:
            if not tarfile.is_tarfile(tar):
                raise LocalConfigError(f"{key}.root: {str(tar)!r} is not a tar file")
    elif not root.is_dir():
        raise LocalConfigError(f"{key}.root {str(root)!r} " + (
            "is not a folder" if root.exists() else "does not exist"))
    return Local(root.resolve(), layout, pattern, tars)


def seconds_value(seconds: float) -> int | float:
    """A time as the pattern sees it: an int when whole (so ``{start:06d}`` works)."""
    return int(seconds) if float(seconds).is_integer() else float(seconds)


def file_name(pattern: str, clip: Clip, end: float) -> str:
    """The file name ``pattern`` gives a clip; ValueError when it cannot name it (a
    fractional start in an integer field)."""
    return pattern.format(id=clip.video, start=seconds_value(clip.start), end=seconds_value(end))


def link(source: Path, out: Path) -> None:
    """Put ``source`` at ``out`` without copying: a hard link, or, across file systems (or
    where hard links are not allowed), a symbolic link to its absolute path."""
    out.unlink(missing_ok=True)
    try:
        os.link(source, out)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        os.symlink(source.resolve(), out)


def _tar_index(tars: tuple[Path, ...]) -> tuple[dict, dict]:
    """{member path: (tar, TarInfo)} and {file name: (tar, TarInfo)} of the regular files
    and hard links (tar stores a second name of one file as a link to the first)."""
    by_path, by_name = {}, {}
    for tar in tars:
        with tarfile.open(tar, "r:*") as t:
            for m in t:
                if m.isfile() or m.islnk():
                    path = m.name.removeprefix("./")
                    by_path.setdefault(path, (tar, m))
                    by_name.setdefault(path.rpartition("/")[2], (tar, m))
    return by_path, by_name


def _extract(wanted: dict[tuple[Path, str], Path]) -> None:
    """Extract each (tar, member path) of ``wanted`` to its file, reading each tar once,
    in order (a compressed tar is streamed, not sought back)."""
    for tar in sorted({t for t, _ in wanted}):
        with tarfile.open(tar, "r:*") as t:
            for m in t:
                out = wanted.get((tar, m.name.removeprefix("./")))
                if out is not None and (m.isfile() or m.islnk()):  # a link reads its target
                    with t.extractfile(m) as src, atomic_path(out) as tmp, tmp.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)


def register(clips: list[Clip], local: Local, out_dir: str | os.PathLike,
             manifest_path: str | os.PathLike, workers: int = 2,
             clip_seconds: float = 10.0) -> pd.DataFrame:
    """Register each clip of ``clips`` from the checked local copy ``local``
    (:func:`check_local`) into ``out_dir`` (the file names of a download,
    :func:`avmae.acquire.download.stems`) and write the manifest, as a download does."""
    if local.layout == "videos":
        from avmae.acquire.videos import download_videos

        quoted = "{id}".join(urllib.request.pathname2url(part) for part in local.pattern.split("{id}"))
        template = "file://" + urllib.request.pathname2url(str(local.root)).rstrip("/") + "/" + quoted
        return download_videos(clips, template, out_dir, manifest_path, workers=workers,
                               allow_file_urls=True, clip_seconds=clip_seconds, policy=LOCAL_POLICY)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    batch = Batch(manifest_path, LOCAL_POLICY)
    ends = [clip.end_at(clip_seconds) for clip in clips]
    rows: list[dict | None] = [None] * len(clips)
    todo: dict[int, Path] = {}   # clip index -> source file (clips) or extracted file (tar)
    where: dict[int, str] = {}   # clip index -> the file named in a failure's reason
    named: dict[str, Clip] = {}  # file name -> the first clip it names
    index = _tar_index(local.tars) if local.layout == "tar" else None
    wanted: dict[tuple[Path, str], Path] = {}
    names = stems(clips)
    for i, (clip, rejected, stem) in enumerate(zip(clips, rejections(clips), names)):
        end = ends[i]

        def unavailable(reason: str, i=i, clip=clip, end=end) -> None:
            rows[i] = manifest_row(clip, end, "unavailable", reason=reason)
            batch.count("unavailable")

        if rejected:
            unavailable(rejected)
            continue
        old = batch.earlier(clip, lambda _, clip=clip, end=end: (clip.start, end))
        if old:
            rows[i] = old
            batch.count(old["status"])
            continue
        try:
            name = file_name(local.pattern, clip, end)
        except (ValueError, TypeError) as e:
            unavailable(f"pattern {local.pattern!r} cannot name start {clip.start:g} s: {e}")
            continue
        if name in named:
            first = named[name]
            unavailable(f"pattern {local.pattern!r} names {name!r} for this clip and for id "
                        f"{first.id!r} starting at {first.start:g} s, listed before")
            continue
        named[name] = clip
        if index is None:
            source = local.root / name
            if not source.is_file():
                unavailable(f"no such file: {source}")
                continue
            todo[i], where[i] = source, str(source)
        else:
            by_path, by_name = index
            found = by_path.get(name) or (by_name.get(name) if "/" not in name else None)
            if found is None:
                unavailable(f"no such file: {name} in the tar(s) under {local.root}")
                continue
            tar, member = found
            out = out_dir / f"{stem}.mp4"
            wanted[(tar, member.name.removeprefix("./"))] = out
            todo[i], where[i] = out, f"{tar}:{member.name}"
    if wanted:
        _extract(wanted)

    def work(i: int) -> None:
        clip, end, source = clips[i], ends[i], todo[i]
        out = out_dir / f"{names[i]}.mp4"
        try:
            duration = probe_clip(source, end - clip.start)
        except VerifyError as e:
            if local.layout == "tar":
                out.unlink(missing_ok=True)  # our extracted copy; never the user's file
            status = "unavailable" if e.permanent else "failed"
            row = manifest_row(clip, end, status, reason=f"verify: {e} ({where[i]})", attempts=1)
        else:
            if local.layout == "clips":
                link(source, out)
            row = manifest_row(clip, end, "ok", str(out), attempts=1, duration=duration)
        batch.journal.append(row)
        batch.count(row["status"])
        rows[i] = row

    batch.map(work, list(todo), workers, "clip")
    return batch.write(rows)


def workflow_options(entry, key: str, whole_videos: bool = False) -> list[str]:
    """The ``avmae download`` options of a dataset's ``local`` config entry ``{root, layout,
    pattern}`` (the workflow's download_shard rule), checked now: a bad entry raises
    :class:`LocalConfigError` naming ``key`` while the DAG is built, before any job.
    ``whole_videos``: the dataset also has ``videos`` (then the layout must be videos)."""
    if not isinstance(entry, dict) or not entry.get("root"):
        raise LocalConfigError(f"{key} needs a root: {{root: PATH, layout: clips|videos|tar, "
                               f"pattern: '{DEFAULT_PATTERNS['clips']}'}}")
    unknown = sorted(set(entry) - {"root", "layout", "pattern"})
    if unknown:
        raise LocalConfigError(f"{key}: unknown key(s) {unknown}; use root, layout, pattern")
    local = check_local(entry["root"], entry.get("layout", "clips"), entry.get("pattern"), key)
    if whole_videos and local.layout != "videos":
        raise LocalConfigError(f"{key}.layout {local.layout!r} with the dataset's `videos`: a local "
                               f"copy of whole videos is layout 'videos'")
    return ["--local", str(entry["root"]), "--layout", local.layout, "--pattern", local.pattern,
            "--config-key", key]
