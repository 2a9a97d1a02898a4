"""Labels from list strings to training targets: single-label, multi-label, verb + noun.

The lists (:mod:`avmae.acquire.lists`) give every clip one ``label`` string; what it means
depends on the dataset, and is the *label kind*:

==========  =================  ===============================  ==========================
kind        datasets           label string                     target (dataset item key)
==========  =================  ===============================  ==========================
single      VGGSound           ``playing harp``                 ``label``: int
multi       AudioSet           ``/m/09x0r;/t/dd00088``          ``labels``: float [C] 0/1
verb_noun   EPIC-KITCHENS-100  ``verb:3;noun:114``              ``verb``, ``noun``: int
==========  =================  ===============================  ==========================

:class:`LabelSpace` is the set of classes of one features folder. The feature stage builds
it from the manifest (:meth:`LabelSpace.from_labels`), writes its index columns into each
split's ``index.csv`` (:meth:`LabelSpace.columns`) and itself into ``meta.json``
(:meth:`LabelSpace.meta`); the dataset reads it back (:meth:`LabelSpace.from_meta`) and
turns ``index.csv`` into target arrays (:meth:`LabelSpace.targets`).

- single: ``classes`` are the sorted label strings of every manifest row (downloaded or
  not, so indices do not depend on which clips survived); ``index.csv`` has
  ``label_index``.
- multi: ``classes`` are AudioSet mids, in ``class_labels_indices.csv`` order when that
  file is given (then ``class_names`` holds the display names, and an unknown mid is an
  error), else sorted; ``index.csv`` has ``label_indices``, the ``;``-joined indices.
- verb_noun: EPIC's class ids *are* the head indices, as in the official evaluation.
  With ``EPIC_100_{verb,noun}_classes.csv`` given (:class:`avmae.acquire.lists.EpicClasses`)
  the heads have one output per listed class (97 verbs, 300 nouns) and ``verb_names`` /
  ``noun_names`` hold their keys; without them ``verb_classes`` = ``0..max verb_class``
  seen, likewise ``noun_classes``. ``index.csv`` has ``verb_class`` and ``noun_class``.

A ``meta.json`` without ``label_kind`` (written before label kinds existed) is single-label.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from avmae.acquire.lists import LABEL_SEP, EpicClasses

LABEL_KINDS = ("single", "multi", "verb_noun")  # the workflow picks one per list format (common.smk)
VERB_NOUN = re.compile(r"verb:(\d+);noun:(\d+)")


class LabelError(ValueError):
    """A label string does not fit the label kind or the class list; names file and row."""


def parse_verb_noun(label: str) -> tuple[int, int]:
    """``verb:3;noun:114`` (as :func:`avmae.acquire.lists.read_epic` writes) -> (3, 114)."""
    match = VERB_NOUN.fullmatch(label.strip())
    if not match:
        raise ValueError(f"label {label!r} is not 'verb:<class>;noun:<class>'")
    return int(match.group(1)), int(match.group(2))


def _check_kind(kind: str) -> None:
    if kind not in LABEL_KINDS:
        raise ValueError(f"label kind {kind!r} is not one of {', '.join(LABEL_KINDS)}")


def _rows(labels: Sequence[str] | pd.Series) -> list[tuple[object, str]]:
    """(row name, label); a Series keeps its index (the feature stage passes manifest rows)."""
    if isinstance(labels, pd.Series):
        return list(zip(labels.index, labels.astype(str)))
    return list(enumerate(map(str, labels)))


@dataclass(frozen=True)
class LabelSpace:
    kind: str
    classes: tuple[str, ...] = ()            # single, multi
    class_names: tuple[str, ...] | None = None  # multi, from class_labels_indices.csv
    verb_classes: tuple[int, ...] = ()       # verb_noun
    noun_classes: tuple[int, ...] = ()
    verb_names: tuple[str, ...] | None = None  # verb_noun, from EPIC_100_verb_classes.csv
    noun_names: tuple[str, ...] | None = None

    # ------------------------------------------------------------------ building one
    @classmethod
    def from_labels(cls, kind: str, labels: Sequence[str] | pd.Series,
                    class_names: dict[str, str] | EpicClasses | None = None,
                    source: str = "labels") -> LabelSpace:
        """The classes of ``labels`` (one string per clip). ``class_names`` ({mid: name} in
        index order, from ``read_audioset_classes``) fixes a multi-label class list; an
        :class:`EpicClasses` fixes the verb and noun classes. Bad
        labels raise :class:`LabelError` as ``{source}:{row}: reason``, row being a Series'
        index label (pass line numbers there) or the position in a plain sequence."""
        _check_kind(kind)
        rows = _rows(labels)
        if kind == "single":
            return cls(kind, classes=tuple(sorted({label for _, label in rows})))
        if kind == "multi":
            seen: set[str] = set()
            for row, label in rows:
                parts = label.split(LABEL_SEP)
                if not all(parts):
                    raise LabelError(f"{source}:{row}: empty class in label {label!r}")
                unknown = [p for p in parts if class_names is not None and p not in class_names]
                if unknown:
                    raise LabelError(f"{source}:{row}: class(es) {unknown} are not in the "
                                     f"class list")
                seen.update(parts)
            if class_names is not None:
                return cls(kind, classes=tuple(class_names), class_names=tuple(class_names.values()))
            return cls(kind, classes=tuple(sorted(seen)))
        verbs, nouns = [], []
        for row, label in rows:
            try:
                verb, noun = parse_verb_noun(label)
            except ValueError as e:
                raise LabelError(f"{source}:{row}: {e}") from None
            verbs.append(verb)
            nouns.append(noun)
        if isinstance(class_names, EpicClasses):
            for name, ids, known in (("verb", verbs, class_names.verbs),
                                     ("noun", nouns, class_names.nouns)):
                outside = next((i for i, c in enumerate(ids) if c >= len(known)), None)
                if outside is not None:
                    raise LabelError(f"{source}:{rows[outside][0]}: {name} class {ids[outside]} "
                                     f"is not among the {len(known)} {name} classes")
            return cls(kind, verb_classes=tuple(range(len(class_names.verbs))),
                       noun_classes=tuple(range(len(class_names.nouns))),
                       verb_names=class_names.verbs, noun_names=class_names.nouns)
        if not rows:
            return cls(kind)
        return cls(kind, verb_classes=tuple(range(max(verbs) + 1)),
                   noun_classes=tuple(range(max(nouns) + 1)))

    @classmethod
    def from_meta(cls, meta: dict, source: str = "meta.json") -> LabelSpace:
        kind = meta.get("label_kind", "single")
        try:
            _check_kind(kind)
            if kind == "verb_noun":
                names = {key: tuple(meta[key]) for key in ("verb_names", "noun_names") if key in meta}
                return cls(kind, verb_classes=tuple(meta["verb_classes"]),
                           noun_classes=tuple(meta["noun_classes"]), **names)
            names = meta.get("class_names")
            return cls(kind, classes=tuple(meta["classes"]),
                       class_names=tuple(names) if names is not None else None)
        except (KeyError, ValueError) as e:
            raise LabelError(f"{source}: label kind {kind!r}: missing or bad {e}") from None

    # ------------------------------------------------------------------ writing it
    @property
    def num_classes(self) -> int | tuple[int, int]:
        """The head size(s): an int, or (verbs, nouns) -- as ``HeadSpec.of(kind, ...)`` takes."""
        if self.kind == "verb_noun":
            return len(self.verb_classes), len(self.noun_classes)
        return len(self.classes)

    def meta(self) -> dict:
        """The meta.json entries: ``label_kind`` and the class list(s)."""
        if self.kind == "verb_noun":
            out = {"label_kind": self.kind, "verb_classes": list(self.verb_classes),
                   "noun_classes": list(self.noun_classes)}
            if self.verb_names is not None:
                out.update(verb_names=list(self.verb_names), noun_names=list(self.noun_names))
            return out
        out = {"label_kind": self.kind, "classes": list(self.classes)}
        if self.class_names is not None:
            out["class_names"] = list(self.class_names)
        return out

    def columns(self, labels: Sequence[str] | pd.Series, source: str = "labels") -> dict[str, list]:
        """index.csv columns for these labels (one per clip, in order)."""
        rows = _rows(labels)
        if self.kind == "single":
            position = {c: i for i, c in enumerate(self.classes)}
            return {"label_index": [self._lookup(position, label, row, source) for row, label in rows]}
        if self.kind == "multi":
            position = {c: i for i, c in enumerate(self.classes)}
            return {"label_indices": [
                LABEL_SEP.join(str(self._lookup(position, part, row, source))
                               for part in label.split(LABEL_SEP)) for row, label in rows]}
        pairs = []
        for row, label in rows:
            try:
                verb, noun = parse_verb_noun(label)
            except ValueError as e:
                raise LabelError(f"{source}:{row}: {e}") from None
            if verb >= len(self.verb_classes) or noun >= len(self.noun_classes):
                raise LabelError(f"{source}:{row}: label {label!r} is outside "
                                 f"{len(self.verb_classes)} verbs x {len(self.noun_classes)} nouns")
            pairs.append((verb, noun))
        return {"verb_class": [v for v, _ in pairs], "noun_class": [n for _, n in pairs]}

    @staticmethod
    def _lookup(position: dict[str, int], label: str, row, source: str) -> int:
        if label not in position:
            raise LabelError(f"{source}:{row}: label {label!r} is not among the classes")
        return position[label]

    # ------------------------------------------------------------------ reading it
    def targets(self, index: pd.DataFrame, source: str | os.PathLike = "index.csv") -> dict[str, np.ndarray]:
        """Per-clip targets from an index.csv table, keyed as the dataset items are:
        ``label`` int64 [N]; ``labels`` float32 [N, C] multi-hot; ``verb``, ``noun`` int64 [N].
        Missing columns and out-of-range indices raise LabelError naming ``source`` (row
        numbers count the header as line 1)."""
        source = str(source)
        need = {"single": ["label_index"], "multi": ["label_indices"],
                "verb_noun": ["verb_class", "noun_class"]}[self.kind]
        missing = [c for c in need if c not in index.columns]
        if missing:
            raise LabelError(f"{source}: no column(s) {missing} for label kind {self.kind!r}")
        if self.kind == "multi":
            hot = np.zeros((len(index), len(self.classes)), dtype=np.float32)
            for row, text in enumerate(index["label_indices"].astype(str)):
                try:
                    hot[row, [int(i) for i in text.split(LABEL_SEP)]] = 1.0
                except (ValueError, IndexError):
                    raise LabelError(f"{source}: line {row + 2}: label_indices {text!r} are not "
                                     f"';'-joined integers below {len(self.classes)}") from None
            return {"labels": hot}
        sizes = {"label_index": len(self.classes), "verb_class": len(self.verb_classes),
                 "noun_class": len(self.noun_classes)}
        keys = {"label_index": "label", "verb_class": "verb", "noun_class": "noun"}
        out = {}
        for column in need:
            values = pd.to_numeric(index[column], errors="coerce").to_numpy()
            bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values >= sizes[column])
                                 | (values != np.round(values)))
            if len(bad):
                raise LabelError(f"{source}: line {bad[0] + 2}: {column} {index[column].iloc[bad[0]]!r} "
                                 f"is not a class index in 0..{sizes[column] - 1}")
            out[keys[column]] = values.astype(np.int64)
        return out
