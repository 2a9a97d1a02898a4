"""URL lists: the official formats of VGGSound, AudioSet and EPIC-KITCHENS-100.

All three map to one record, :class:`Clip` (id, start, end, label(s), split, source):

- VGGSound ``vggsound.csv``: no header; ``youtube_id,start_seconds,label,split``.
  Labels that contain commas are double-quoted, so rows are parsed with :mod:`csv`.
- AudioSet segment CSVs (balanced, unbalanced = AS-2M, eval): three ``#`` comment lines,
  then ``YTID, start_seconds, end_seconds, positive_labels`` with the label ids (``/m/...``)
  quoted and comma-separated. ``class_labels_indices.csv`` (``index,mid,display_name``)
  names the 527 classes; when given, an unknown label id is a row error.
- EPIC-KITCHENS-100 ``EPIC_100_{train,validation}.csv``: a header row; one row per
  narrated action with ``HH:MM:SS.ff`` start/stop timestamps and verb/noun classes. The
  clip id is ``narration_id``; the video to fetch (``source``) is ``video_id``.
  ``EPIC_100_{verb,noun}_classes.csv`` (``id,key,instances,category``) name the 97 verb
  and 300 noun classes (:class:`EpicClasses`); when given, a class id outside them is a
  row error.

Writers produce each official format too (the toy generators use them):
:func:`write_vggsound`, :func:`write_audioset` + :func:`write_audioset_classes`,
:func:`write_epic` (with :func:`format_timestamp`) + :func:`write_epic_classes`.

A multi-label clip keeps its labels joined by ``;`` in ``label`` (no VGGSound class name,
AudioSet id or EPIC class contains one); :attr:`Clip.labels` splits them. All malformed rows
of a file are reported together in one :class:`ListFormatError`; every other row is read.
"""

from __future__ import annotations

import ast
import csv
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from avmae.io import atomic_path

SPLITS = ("train", "test")
FORMATS = ("vggsound", "audioset", "epic", "clips")
MAX_REPORTED_ERRORS = 20
LABEL_SEP = ";"
AUDIOSET_HEADER = ("YTID", "start_seconds", "end_seconds", "positive_labels")
EPIC_COLUMNS = ("narration_id", "participant_id", "video_id", "narration_timestamp",
                "start_timestamp", "stop_timestamp", "start_frame", "stop_frame", "narration",
                "verb", "verb_class", "noun", "noun_class", "all_nouns", "all_noun_classes")
EPIC_CLASS_COLUMNS = ("id", "key", "instances", "category")
EPIC_CLASS_KINDS = ("verb", "noun")
CLIP_COLUMNS = ("id", "start_seconds", "end_seconds", "label", "split", "source")
TIMESTAMP = re.compile(r"(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)")


class ListFormatError(ValueError):
    """A URL list has malformed rows; the message names the file, the line and the reason
    of each (the first 20, then a count)."""


@dataclass(frozen=True)
class Clip:
    """One segment of a video: where it starts and ends, its label(s) and its split.

    ``end`` None means ``start`` plus the download's clip length (VGGSound: 10 s);
    ``source`` None means the video to fetch is ``id``.
    """

    id: str
    start: float
    label: str
    split: str
    end: float | None = None
    source: str | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.label.split(LABEL_SEP))

    @property
    def video(self) -> str:
        """The id the URL is built from."""
        return self.source or self.id

    def end_at(self, clip_seconds: float) -> float:
        """Where the segment ends: ``end``, or ``start`` plus the download's clip length."""
        return self.end if self.end is not None else self.start + clip_seconds


def read_rows(path: Path, parse: Callable[[list[str]], Clip | None]) -> list[Clip]:
    """Parse every CSV row of ``path`` with ``parse``; collect all errors, then raise."""
    clips: list[Clip] = []
    errors: list[str] = []
    rows = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # tolerate a BOM
            reader = csv.reader(f, skipinitialspace=True)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                rows += 1
                try:
                    clip = parse(row)
                except ValueError as e:
                    errors.append(f"{path}:{reader.line_num}: {e}")
                    continue
                if clip is not None:
                    clips.append(clip)
    except UnicodeDecodeError:
        raise ListFormatError(_not_utf8(path)) from None
    if not rows:
        raise ListFormatError(f"{path}: empty file (no rows)")
    if errors:
        shown = "\n  ".join(errors[:MAX_REPORTED_ERRORS])
        more = len(errors) - MAX_REPORTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise ListFormatError(f"{path}: {len(errors)} malformed row(s):\n  {shown}{tail}")
    return clips


def _not_utf8(path: Path) -> str:
    """Where ``path`` stops being UTF-8: its first undecodable line and byte."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return (f"{path}:{number}: not UTF-8 text (byte 0x{line[e.start]:02x} at column {e.start + 1}); "
                        "save the list as UTF-8")
    return f"{path}: not UTF-8 text; save the list as UTF-8"


def _seconds(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} {text!r} must be a finite number >= 0")
    return value


def _split(text: str) -> str:
    if text not in SPLITS:
        raise ValueError(f"split {text!r} is not one of {', '.join(SPLITS)}")
    return text


# ------------------------------------------------------------------------------ VGGSound
def _vggsound_row(row: list[str]) -> Clip:
    if len(row) != 4:
        raise ValueError(f"expected 4 columns (id,start_seconds,label,split), got {len(row)}")
    vid, start_text, label, split = (field.strip() for field in row)
    if not vid:
        raise ValueError("empty id")
    start = _seconds(start_text, "start_seconds")
    if not label:
        raise ValueError("empty label")
    return Clip(vid, start, label, _split(split))


def read_vggsound(path: str | os.PathLike) -> list[Clip]:
    """Parse a VGGSound CSV; raise ListFormatError listing all malformed rows."""
    return read_rows(Path(path), _vggsound_row)


def _format_start(start: float) -> str:
    """Write integral starts as ``12`` (like the official list), others as floats."""
    return str(int(start)) if float(start).is_integer() else repr(float(start))


def write_vggsound(path: str | os.PathLike, clips: list[Clip]) -> None:
    """Write clips in the official VGGSound format (atomically)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        for c in clips:
            writer.writerow([c.id, _format_start(c.start), c.label, c.split])


# ------------------------------------------------------------------------------ AudioSet
def read_audioset_classes(path: str | os.PathLike) -> dict[str, str]:
    """``class_labels_indices.csv`` -> {mid: display_name}, in index order."""
    path = Path(path)
    names: dict[str, str] = {}

    def parse(row: list[str]) -> None:
        if row == ["index", "mid", "display_name"]:
            return
        if len(row) != 3:
            raise ValueError(f"expected 3 columns (index,mid,display_name), got {len(row)}")
        index, mid, name = (field.strip() for field in row)
        if not index.isdigit() or int(index) != len(names):
            raise ValueError(f"index {index!r} should be {len(names)}")
        if not mid or mid in names:
            raise ValueError(f"empty or repeated mid {mid!r}")
        names[mid] = name
        return

    read_rows(path, parse)
    return names


def read_audioset(path: str | os.PathLike, split: str = "train",
                  classes: dict[str, str] | None = None) -> list[Clip]:
    """Parse an AudioSet segment CSV; every clip gets ``split`` (eval lists: "test").

    With ``classes`` (from :func:`read_audioset_classes`), unknown label ids are errors.
    """
    _split(split)

    def parse(row: list[str]) -> Clip | None:
        if row[0].lstrip().startswith("#"):
            return None  # the three comment lines
        if len(row) != 4:
            raise ValueError(f"expected 4 columns ({', '.join(AUDIOSET_HEADER)}), got {len(row)}")
        vid, start_text, end_text, labels_text = (field.strip() for field in row)
        if not vid:
            raise ValueError("empty YTID")
        start = _seconds(start_text, "start_seconds")
        end = _seconds(end_text, "end_seconds")
        if end <= start:
            raise ValueError(f"end_seconds {end_text} is not after start_seconds {start_text}")
        labels = [mid.strip() for mid in labels_text.split(",")]
        if not all(labels):
            raise ValueError(f"empty label in positive_labels {labels_text!r}")
        unknown = [mid for mid in labels if classes is not None and mid not in classes]
        if unknown:
            raise ValueError(f"label id(s) {unknown} not in class_labels_indices.csv")
        return Clip(vid, start, LABEL_SEP.join(labels), split, end=end)

    return read_rows(Path(path), parse)


def write_audioset_classes(path: str | os.PathLike, classes: list[tuple[str, str]]) -> None:
    """Write ``class_labels_indices.csv`` (``index,mid,display_name``; names quoted, as the
    official file) from (mid, display_name) pairs in index order, atomically."""
    lines = ["index,mid,display_name\n"]
    for index, (mid, name) in enumerate(classes):
        if not mid or "," in mid or LABEL_SEP in mid:
            raise ValueError(f"class {index}: mid {mid!r} is empty or holds ',' or ';'")
        quoted = name.replace('"', '""')
        lines.append(f'{index},{mid},"{quoted}"\n')
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        f.writelines(lines)


def write_audioset(path: str | os.PathLike, clips: list[Clip],
                   created: str = "by avmae") -> None:
    """Write a segment CSV as the official ones, atomically: three ``#`` comment lines, then
    ``YTID, start_seconds, end_seconds, "mid,mid"`` with 3-decimal times. Every clip
    needs an ``end`` and at least one label."""
    rows = []
    for c in clips:
        if c.end is None or not c.label:
            raise ValueError(f"clip {c.id!r}: an AudioSet segment needs an end and a label")
        rows.append(f'{c.id}, {c.start:.3f}, {c.end:.3f}, "{",".join(c.labels)}"\n')
    n_labels = sum(len(c.labels) for c in clips)
    unique = len({label for c in clips for label in c.labels})
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        f.write(f"# Segments csv created {created}\n")
        f.write(f"# num_ytids={len({c.id for c in clips})}, num_segs={len(clips)}, "
                f"num_unique_labels={unique}, num_positive_labels={n_labels}\n")
        f.write(f"# {', '.join(AUDIOSET_HEADER)}\n")
        f.writelines(rows)


# --------------------------------------------------------------------- EPIC-KITCHENS-100
def format_timestamp(seconds: float, decimals: int = 2) -> str:
    """seconds -> ``HH:MM:SS.ff``: 2 decimals as ``start_timestamp`` in EPIC_100_*.csv,
    3 as ``narration_timestamp``."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"timestamp {seconds!r} must be a finite number >= 0")
    scale = 10**decimals
    ticks = round(seconds * scale)
    minutes, ticks = divmod(ticks, 60 * scale)
    hours, minutes = divmod(minutes, 60)
    whole, frac = divmod(ticks, scale)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}.{frac:0{decimals}d}"


def write_epic(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write ``EPIC_100_{train,validation}.csv`` rows (dicts keyed by every EPIC column;
    ``all_nouns``/``all_noun_classes`` are Python-list strings, as in the official files),
    with the header row, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(EPIC_COLUMNS)
        for i, row in enumerate(rows):
            missing = [c for c in EPIC_COLUMNS if c not in row]
            if missing:
                raise ValueError(f"EPIC row {i}: missing column(s) {missing}")
            writer.writerow([row[c] for c in EPIC_COLUMNS])


def parse_timestamp(text: str) -> float:
    """``HH:MM:SS.ff`` -> seconds."""
    match = TIMESTAMP.fullmatch(text.strip())
    if not match:
        raise ValueError(f"timestamp {text!r} is not HH:MM:SS.ff")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True)
class EpicClasses:
    """``EPIC_100_verb_classes.csv`` and ``EPIC_100_noun_classes.csv``: keys in id order."""

    verbs: tuple[str, ...]
    nouns: tuple[str, ...]


def read_epic_classes(path: str | os.PathLike) -> tuple[str, ...]:
    """``EPIC_100_{verb,noun}_classes.csv`` -> the class keys in id order. The header is
    ``id,key,instances,category``; ids count 0, 1, ... row by row; ``instances`` is a
    Python-list string of the class's words."""
    path = Path(path)
    keys: list[str] = []
    rows: list[list[str]] = []  # the header, then every class row (an id counts each)

    def parse(row: list[str]) -> None:
        rows.append(row)
        if len(rows) == 1:
            if tuple(field.strip() for field in row) != EPIC_CLASS_COLUMNS:
                raise ValueError(f"header {','.join(row)!r} is not {','.join(EPIC_CLASS_COLUMNS)!r}")
            return
        if len(row) != len(EPIC_CLASS_COLUMNS):
            raise ValueError(f"expected 4 columns ({','.join(EPIC_CLASS_COLUMNS)}), got {len(row)}")
        index, key, instances, _ = (field.strip() for field in row)
        if not index.isdigit() or int(index) != len(rows) - 2:
            raise ValueError(f"id {index!r} should be {len(rows) - 2}")
        if not key:
            raise ValueError("empty key")
        try:
            words = ast.literal_eval(instances)
        except (ValueError, SyntaxError):
            words = None
        if not (isinstance(words, list) and words and all(isinstance(w, str) for w in words)):
            raise ValueError(f"instances {instances!r} is not a list of strings like \"['take']\"")
        keys.append(key)

    read_rows(path, parse)
    if not rows:
        raise ListFormatError(f"{path}: empty file, expected the header {','.join(EPIC_CLASS_COLUMNS)}")
    return tuple(keys)


def write_epic_classes(path: str | os.PathLike, classes: list[tuple[str, str]]) -> None:
    """Write ``EPIC_100_{verb,noun}_classes.csv`` from (key, category) pairs in id order,
    each class's instances being its key alone, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(EPIC_CLASS_COLUMNS)
        for index, (key, category) in enumerate(classes):
            writer.writerow([index, key, repr([key]), category])


def read_epic(path: str | os.PathLike, split: str = "train",
              classes: EpicClasses | None = None) -> list[Clip]:
    """Parse ``EPIC_100_train.csv`` / ``EPIC_100_validation.csv`` (pass split="test").

    label is ``verb:<verb_class>;noun:<noun_class>``, source the ``video_id``. With
    ``classes``, a class id outside them is a row error.
    """
    _split(split)
    columns: dict[str, int] = {}

    def parse(row: list[str]) -> Clip | None:
        if not columns:
            missing = [c for c in EPIC_COLUMNS if c not in row]
            if missing:
                raise ValueError(f"header lacks column(s) {missing}")
            columns.update((name, row.index(name)) for name in EPIC_COLUMNS)
            return None
        if len(row) < len(columns):
            raise ValueError(f"expected {len(columns)} columns, got {len(row)}")
        get = {name: row[i].strip() for name, i in columns.items()}
        for name in ("narration_id", "video_id"):
            if not get[name]:
                raise ValueError(f"empty {name}")
        start = parse_timestamp(get["start_timestamp"])
        stop = parse_timestamp(get["stop_timestamp"])
        if stop <= start:
            raise ValueError(f"stop_timestamp {get['stop_timestamp']} is not after "
                             f"start_timestamp {get['start_timestamp']}")
        for name, known in (("verb_class", classes and classes.verbs),
                            ("noun_class", classes and classes.nouns)):
            if not get[name].isdigit():
                raise ValueError(f"{name} {get[name]!r} is not a non-negative integer")
            if known and int(get[name]) >= len(known):
                raise ValueError(f"{name} {get[name]} is not among the {len(known)} classes "
                                 f"of EPIC_100_{name.removesuffix('_class')}_classes.csv")
        label = f"verb:{int(get['verb_class'])}{LABEL_SEP}noun:{int(get['noun_class'])}"
        return Clip(get["narration_id"], start, label, split, end=stop, source=get["video_id"])

    clips = read_rows(Path(path), parse)
    if not columns:
        raise ListFormatError(f"{path}: empty file, expected a header row")
    return clips


# ------------------------------------------------------------------ normalised clip list
def write_clips(path: str | os.PathLike, clips: Iterable[Clip]) -> None:
    """Write clips with every field (the shard lists), atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CLIP_COLUMNS)
        for c in clips:
            end = "" if c.end is None else repr(c.end)
            writer.writerow([c.id, repr(c.start), end, c.label, c.split, c.source or ""])


def read_clips(path: str | os.PathLike) -> list[Clip]:
    """Read a list written by :func:`write_clips`."""
    def parse(row: list[str]) -> Clip | None:
        if tuple(row) == CLIP_COLUMNS:
            return None
        if len(row) != len(CLIP_COLUMNS):
            raise ValueError(f"expected {len(CLIP_COLUMNS)} columns ({','.join(CLIP_COLUMNS)}), "
                             f"got {len(row)}")
        vid, start, end, label, split, source = row
        if not vid:
            raise ValueError("empty id")
        return Clip(vid, _seconds(start, "start_seconds"), label, _split(split),
                    end=_seconds(end, "end_seconds") if end else None, source=source or None)

    return read_rows(Path(path), parse)


def read_classes(specs) -> dict[str, str] | EpicClasses | None:
    """The class lists named by ``--classes``: None or nothing -> None; one PATH -> an
    AudioSet ``class_labels_indices.csv`` as {mid: display name}; ``verb=PATH`` and
    ``noun=PATH`` -> EPIC's :class:`EpicClasses`. ``specs`` is one spec or a list."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    specs = [str(spec) for spec in specs or ()]
    if not specs:
        return None
    named = {kind: path for kind, sep, path in (spec.partition("=") for spec in specs)
             if sep and kind in EPIC_CLASS_KINDS}
    if not named and len(specs) == 1:
        return read_audioset_classes(specs[0])
    if len(named) != len(specs) or set(named) != set(EPIC_CLASS_KINDS):
        raise ValueError(f"classes {specs}: expected one class_labels_indices.csv (AudioSet), or "
                         f"verb=PATH and noun=PATH (EPIC_100_verb_classes.csv, "
                         f"EPIC_100_noun_classes.csv)")
    return EpicClasses(read_epic_classes(named["verb"]), read_epic_classes(named["noun"]))


def read_list(path: str | os.PathLike, fmt: str = "vggsound", split: str = "train",
              classes=None) -> list[Clip]:
    """Read any supported list; ``split`` is used by formats that do not carry one;
    ``classes`` as :func:`read_classes` takes them (AudioSet and EPIC check labels
    against them)."""
    names = read_classes(classes)
    if fmt in ("audioset", "epic") and names is not None \
            and isinstance(names, EpicClasses) != (fmt == "epic"):
        raise ValueError(f"classes {classes}: do not fit the {fmt} format (AudioSet: one "
                         f"class_labels_indices.csv; EPIC: verb=PATH and noun=PATH)")
    if fmt == "vggsound":
        return read_vggsound(path)
    if fmt == "audioset":
        return read_audioset(path, split, names)
    if fmt == "epic":
        return read_epic(path, split, names)
    if fmt == "clips":
        return read_clips(path)
    raise ValueError(f"unknown list format {fmt!r}; expected one of {', '.join(FORMATS)}")
