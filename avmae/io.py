"""Atomic file writes, the run record written next to every run's outputs, JSON arguments."""

from __future__ import annotations

import json
import os
import platform
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import yaml

RECORDED_PACKAGES = ("avmae", "torch", "torchaudio", "deepspeed", "snakemake", "yt-dlp", "imageio-ffmpeg", "numpy")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the suffix (ffmpeg and numpy pick the format from it) and
    starts with a dot, so a killed job leaves only an obviously partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_run_config(out_dir: str | Path, settings: dict, **facts) -> None:
    """Write ``config.yaml``: the exact settings a run used, plus software versions and run facts."""
    record = {"settings": settings, "software": software_versions(), **facts}
    write_text(Path(out_dir) / "config.yaml", yaml.safe_dump(record, sort_keys=False))


def json_object(text: str, option: str) -> dict:
    """A command-line option's JSON object (``--settings``, ``--spec``); bad JSON exits naming the option."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"{option} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"{option} must be a JSON object")
    return value
