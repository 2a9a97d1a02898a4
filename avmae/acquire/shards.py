"""Split a clip list into shards (one Snakemake job each) and merge their manifests.

A clip's shard is a hash of the video it comes from (``Clip.video``) modulo the shard
count: deterministic, independent of row order, and stable when rows are added or removed
(only the shards of the changed rows change). Clips of one video (EPIC narrations) land in
one shard. Shard lists use :func:`avmae.acquire.lists.write_clips`'s format.

A shard downloads into a work folder that outlives failed and killed jobs (the resume
journal and clips live there); :func:`publish` then hard-links its kept clips into the
shard's declared output, which Snakemake may move into its between-workflow cache.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from pathlib import Path

import pandas as pd

from avmae.acquire.download import MANIFEST_COLUMNS
from avmae.acquire.lists import Clip, write_clips
from avmae.io import atomic_path


def shard_name(index: int) -> str:
    return f"{index:05d}"


def shard_of(key: str, shards: int) -> int:
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def split_clips(clips: list[Clip], shards: int) -> list[list[Clip]]:
    """Clips per shard, each in list order."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    parts: list[list[Clip]] = [[] for _ in range(shards)]
    for clip in clips:
        parts[shard_of(clip.video, shards)].append(clip)
    return parts


def write_shards(clips: list[Clip], shards: int, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``out_dir/00000.csv`` ... (one file per shard, empty shards too)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, part in enumerate(split_clips(clips, shards)):
        paths.append(out_dir / f"{shard_name(i)}.csv")
        write_clips(paths[-1], part)
    return paths


def _read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a download manifest, missing column(s) {missing}")
    return df[list(MANIFEST_COLUMNS)]


def publish(work_manifest: str | os.PathLike, manifest_path: str | os.PathLike,
            media_dir: str | os.PathLike) -> pd.DataFrame:
    """Link the ok clips of a finished shard's work manifest into ``media_dir`` (a hard
    link, or a copy across file systems) and write ``manifest_path`` with their new paths,
    ``media_dir/<file>`` as given (relative to the workflow's folder in the workflow)."""
    manifest = _read_manifest(work_manifest)
    media_dir = Path(media_dir)
    media_dir.mkdir(parents=True, exist_ok=True)
    for i in manifest.index[manifest.status == "ok"]:
        source = Path(manifest.at[i, "path"])
        target = media_dir / source.name
        target.unlink(missing_ok=True)
        try:
            os.link(source, target, follow_symlinks=False)   # a symlinked local clip stays a link
        except OSError:
            shutil.copyfile(source, target)
        manifest.at[i, "path"] = str(target)
    with atomic_path(manifest_path) as tmp:
        manifest.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)
    return manifest


def merge_manifests(paths: list[str | os.PathLike], out_path: str | os.PathLike) -> pd.DataFrame:
    """Concatenate shard manifests (in the given order) into one, written atomically."""
    frames = [_read_manifest(path) for path in paths]
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=MANIFEST_COLUMNS)
    with atomic_path(out_path) as tmp:
        merged.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)
    return merged
