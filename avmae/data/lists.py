"""VGGSound URL lists: read and write the official CSV format.

The official file has no header; each row is ``youtube_id,start_seconds,label,split``.
Labels that contain commas are double-quoted, so rows are parsed with :mod:`csv`.
All malformed rows of a file are reported together in one :class:`ListFormatError`.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

from avmae.io import atomic_path

SPLITS = ("train", "test")
MAX_REPORTED_ERRORS = 20


class ListFormatError(ValueError):
    """A URL list has malformed rows; the message names the file, the line and the reason
    of each (the first 20, then a count)."""


@dataclass(frozen=True)
class Clip:
    """One 10 s segment of a video: where it starts, its label and its split."""

    id: str
    start: float
    label: str
    split: str


def _parse_row(row: list[str]) -> Clip:
    """One CSV row -> Clip; raises ValueError with the reason."""
    if len(row) != 4:
        raise ValueError(f"expected 4 columns (id,start_seconds,label,split), got {len(row)}")
    vid, start_text, label, split = (field.strip() for field in row)
    if not vid:
        raise ValueError("empty id")
    try:
        start = float(start_text)
    except ValueError:
        raise ValueError(f"start_seconds {start_text!r} is not a number") from None
    if not math.isfinite(start) or start < 0:
        raise ValueError(f"start_seconds {start_text!r} must be a finite number >= 0")
    if not label:
        raise ValueError("empty label")
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    return Clip(vid, start, label, split)


def read_vggsound(path: str | os.PathLike) -> list[Clip]:
    """Parse a VGGSound CSV; raise ListFormatError listing all malformed rows."""
    path = Path(path)
    clips: list[Clip] = []
    errors: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as f:  # tolerate a BOM
        reader = csv.reader(f)
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            try:
                clips.append(_parse_row(row))
            except ValueError as e:
                errors.append(f"{path}:{line}: {e}")
    if errors:
        shown = "\n  ".join(errors[:MAX_REPORTED_ERRORS])
        more = len(errors) - MAX_REPORTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise ListFormatError(f"{path}: {len(errors)} malformed row(s):\n  {shown}{tail}")
    return clips


def _format_start(start: float) -> str:
    """Write integral starts as ``12`` (like the official list), others as floats."""
    return str(int(start)) if float(start).is_integer() else repr(float(start))


def write_vggsound(path: str | os.PathLike, clips: list[Clip]) -> None:
    """Write clips in the official VGGSound format (atomically)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        for c in clips:
            writer.writerow([c.id, _format_start(c.start), c.label, c.split])
