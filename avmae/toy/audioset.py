"""A synthetic AudioSet-like dataset: multi-label, long-tailed, in the official list formats.

Every clip is a set of independent *elements*: one background picture (``bg:*``), maybe a
bouncing square (``object:square``), and any number of sounds (``sound:*``). A class is
positive when all the elements it requires are present (:data:`CLASSES`):

======================  ====================  ============  =========================
class                   requires              modality      prior prevalence
======================  ====================  ============  =========================
Whistling               whistle               audio         0.45
Bouncing square         square                video         0.35
Horizontal stripes      hstripes background   video         0.30
Humming                 hum                   audio         0.20
Vertical stripes        vstripes background   video         0.13
Clicking square         square + clicks       audio+video   0.105
Chirping                chirps                audio         0.10
Hissing checkerboard    checker + hiss        audio+video   0.036
======================  ====================  ============  =========================

Clicks without a square, a square without clicks, hiss without the checkerboard and the
checkerboard without hiss carry no label, so the two audio+video classes cannot be told by
one modality alone: video sees the square but not whether it clicks. Clips with no label
at all are drawn again (every AudioSet segment has a positive label).

Lists, as AudioSet publishes them (disjoint ids):

- ``unbalanced_train_segments.csv``: ``unbalanced`` clips drawn from the priors above, so
  class counts are long-tailed (about 12:1 between the most and least common class) --
  the toy AS-2M, from which ``avmae as500k`` draws the toy AS-500K;
- ``balanced_train_segments.csv`` and ``eval_segments.csv``: clips drawn from the same
  priors but kept by quota, rarest class first, until every class has at least
  ``balanced_per_class`` / ``eval_per_class`` positives (AudioSet's "at least 59 per
  class");
- ``class_labels_indices.csv`` with ``/m/`` mids.

``classes.json`` records the design and, per modality, the eval mAP of an *oracle* that
perceives that modality's elements perfectly: clips whose perceivable elements are equal
cannot be told apart, so it scores each class by its positive rate, on the eval list
itself, among the clips that look (or sound) the same; e.g. video ranks Clicking square
by the square alone. Tied scores are scored as ties (sklearn), so this is the ceiling of a
modality up to tie-breaking luck; audiovisual is 100 %.

Each source file lasts ``start + 10 + 1`` s; the segment row says ``start`` and
``start + 10``, so the downloader really cuts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

from avmae.acquire.lists import LABEL_SEP, Clip, write_audioset, write_audioset_classes
from avmae.io import write_json
from avmae.toy.media import (
    CLIP_SECONDS,
    FPS,
    HEIGHT,
    SAMPLE_RATE,
    WIDTH,
    colourise,
    palette,
    picture,
    random_ids,
    run_jobs,
    sound,
    write_mp4,
)

# element -> prior probability. Backgrounds are exclusive (one per clip); the rest are
# independent coin flips.
BACKGROUNDS = {"bg:haze": 0.45, "bg:hstripes": 0.30, "bg:vstripes": 0.13, "bg:checker": 0.12}
OBJECTS = {"object:square": 0.35}
SOUNDS = {"sound:whistle": 0.45, "sound:hum": 0.20, "sound:chirps": 0.10,
          "sound:clicks": 0.30, "sound:hiss": 0.30}
PRIOR = {**BACKGROUNDS, **OBJECTS, **SOUNDS}

# (mid, display name, required elements)
CLASSES = (
    ("/m/0toy00", "Whistling", ("sound:whistle",)),
    ("/m/0toy01", "Bouncing square", ("object:square",)),
    ("/m/0toy02", "Horizontal stripes", ("bg:hstripes",)),
    ("/m/0toy03", "Humming", ("sound:hum",)),
    ("/m/0toy04", "Vertical stripes", ("bg:vstripes",)),
    ("/m/0toy05", "Clicking square", ("object:square", "sound:clicks")),
    ("/m/0toy06", "Chirping", ("sound:chirps",)),
    ("/m/0toy07", "Hissing checkerboard", ("bg:checker", "sound:hiss")),
)
LIST_FILES = {"balanced": "balanced_train_segments.csv",
              "unbalanced": "unbalanced_train_segments.csv",
              "eval": "eval_segments.csv"}
CLASS_FILE = "class_labels_indices.csv"


def modality_of(element: str) -> str:
    return "audio" if element.startswith("sound:") else "video"


def class_modality(required: tuple[str, ...]) -> str:
    kinds = {modality_of(e) for e in required}
    return "audio+video" if len(kinds) == 2 else kinds.pop()


def prevalence(required: tuple[str, ...]) -> float:
    """Prior probability of a class before clips without labels are redrawn."""
    return float(np.prod([PRIOR[e] for e in required]))


def labels_of(elements: frozenset[str]) -> list[int]:
    return [i for i, (_, _, required) in enumerate(CLASSES) if set(required) <= elements]


def draw_elements(rng: np.random.Generator) -> frozenset[str]:
    """One clip's elements from the priors; redrawn until at least one class is positive."""
    while True:
        bg = str(rng.choice(list(BACKGROUNDS), p=list(BACKGROUNDS.values())))
        rest = [e for e, p in {**OBJECTS, **SOUNDS}.items() if rng.random() < p]
        elements = frozenset([bg, *rest])
        if labels_of(elements):
            return elements


def draw_by_quota(rng: np.random.Generator, per_class: int) -> list[frozenset[str]]:
    """Clips drawn from the priors and kept, rarest class first, until every class has
    ``per_class`` positives (a clip kept for one class counts for all of its classes)."""
    counts = np.zeros(len(CLASSES), dtype=int)
    chosen = []
    for c in sorted(range(len(CLASSES)), key=lambda c: prevalence(CLASSES[c][2])):
        while counts[c] < per_class:
            elements = draw_elements(rng)
            if c in labels_of(elements):
                chosen.append(elements)
                counts[labels_of(elements)] += 1
    return chosen


def oracle_scores(elements: list[frozenset[str]], modality: str) -> np.ndarray:
    """[clips, classes]: the positive rate of each class among the clips of ``elements``
    whose elements perceivable by ``modality`` (audio, video or audiovisual) are the same
    as the clip's -- the best scores any model of that modality can give on this list."""
    seen = [frozenset(e for e in present if modality == "audiovisual" or modality_of(e) == modality)
            for present in elements]
    targets = multi_hot(elements).astype(float)
    scores = np.zeros_like(targets)
    for signature in set(seen):
        rows = [i for i, s in enumerate(seen) if s == signature]
        scores[rows] = targets[rows].mean(axis=0)
    return scores


def multi_hot(elements: list[frozenset[str]]) -> np.ndarray:
    targets = np.zeros((len(elements), len(CLASSES)), dtype=np.int64)
    for i, present in enumerate(elements):
        targets[i, labels_of(present)] = 1
    return targets


# ------------------------------------------------------------------------------ rendering
def render_video(elements: frozenset[str], seconds: int, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 [frames, HEIGHT, WIDTH, 3]: the background, the square painted on top."""
    t = np.arange(seconds * FPS, dtype=np.float32) / FPS
    bg = next(e for e in elements if e.startswith("bg:")).removeprefix("bg:")
    level = np.broadcast_to(picture(bg, t, rng), (t.size, HEIGHT, WIDTH)).astype(np.float32)
    level += rng.uniform(0.02, 0.08) * (rng.random(level.shape, dtype=np.float32) - 0.5)
    colours = palette(rng)
    frames = colourise(level, colours)
    if "object:square" in elements:
        mask = np.broadcast_to(picture("square", t, rng), level.shape) > 0.5
        # a saturated colour far from the background's mean, so it stands out on any pattern
        colour = np.where(colours.mean(axis=0) > 128, rng.uniform(0, 60, 3), rng.uniform(200, 255, 3))
        colour[rng.integers(3)] = rng.uniform(0, 255)
        frames[mask] = colour.astype(np.uint8)
    return frames


def render_audio(elements: frozenset[str], seconds: int, rng: np.random.Generator) -> np.ndarray:
    """Stereo int16 [samples, 2]: every sound of the clip at its own level, plus noise."""
    t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
    mono = np.zeros(t.size, dtype=np.float32)
    for e in sorted(elements):
        if e.startswith("sound:"):
            mono += (sound(e.removeprefix("sound:"), t, rng) * rng.uniform(0.12, 0.25)).astype(np.float32)
    peak = float(np.abs(mono).max(initial=0.0))
    if peak > 0.9:
        mono *= 0.9 / peak
    pan = rng.uniform(0.3, 0.7)
    stereo = rng.standard_normal((t.size, 2), dtype=np.float32) * rng.uniform(0.01, 0.03)
    stereo += mono[:, None] * np.array([1 - pan, pan], dtype=np.float32)
    return (np.clip(stereo, -1, 1, out=stereo) * 32767).astype(np.int16)


@dataclass(frozen=True)
class _Job:
    clip: Clip
    elements: frozenset[str]
    seed: np.random.SeedSequence


def _make_clip(job: _Job, media_dir: Path) -> None:
    rng = np.random.default_rng(job.seed)
    seconds = int(job.clip.start) + CLIP_SECONDS + 1
    frames = render_video(job.elements, seconds, rng)
    audio = render_audio(job.elements, seconds, rng)
    write_mp4(media_dir / f"{job.clip.id}.mp4", frames, audio)


def plan_audioset(unbalanced: int = 200, balanced_per_class: int = 3, eval_per_class: int = 8,
                  seed: int = 0) -> dict[str, list[_Job]]:
    """The clips of each list ({"balanced"|"unbalanced"|"eval": jobs}) without rendering
    anything: ids, starts, labels, elements and per-clip seeds, all from ``seed``."""
    for name, value in (("unbalanced", unbalanced), ("balanced_per_class", balanced_per_class),
                        ("eval_per_class", eval_per_class)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    meta_seed, clip_seeds = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(meta_seed)
    drawn = {"balanced": draw_by_quota(rng, balanced_per_class),
             "unbalanced": [draw_elements(rng) for _ in range(unbalanced)],
             "eval": draw_by_quota(rng, eval_per_class)}
    total = sum(len(v) for v in drawn.values())
    ids = iter(random_ids(total, rng))
    seeds = iter(clip_seeds.spawn(total))
    jobs: dict[str, list[_Job]] = {}
    for part, elements in drawn.items():
        split = "test" if part == "eval" else "train"
        jobs[part] = []
        for e in elements:
            start = float(rng.integers(0, 4))
            label = LABEL_SEP.join(CLASSES[c][0] for c in labels_of(e))
            clip = Clip(next(ids), start, label, split, end=start + CLIP_SECONDS)
            jobs[part].append(_Job(clip, e, next(seeds)))
    return jobs


def make_toy_audioset(out_dir: str | os.PathLike, unbalanced: int = 200, balanced_per_class: int = 3,
                      eval_per_class: int = 8, seed: int = 0, workers: int = 2,
                      media_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write the three segment CSVs, ``class_labels_indices.csv`` and ``classes.json`` under
    ``out_dir`` and the clips as ``{media_dir}/{YTID}.mp4`` (default ``out_dir/media``).

    Deterministic in ``seed``. Returns {"balanced"|"unbalanced"|"eval"|"classes": path}.
    """
    jobs = plan_audioset(unbalanced, balanced_per_class, eval_per_class, seed)
    out_dir = Path(out_dir).resolve()
    media_dir = Path(media_dir).resolve() if media_dir is not None else out_dir / "media"
    out_dir.mkdir(parents=True, exist_ok=True)
    media_dir.mkdir(parents=True, exist_ok=True)

    every = [job for part in jobs.values() for job in part]
    run_jobs(lambda job: _make_clip(job, media_dir), every, workers, "toy audioset")

    paths = {part: out_dir / name for part, name in LIST_FILES.items()}
    for part, part_jobs in jobs.items():
        write_audioset(paths[part], sorted((j.clip for j in part_jobs), key=lambda c: c.id),
                       created=f"by avmae toy audioset (seed {seed})")
    paths["classes"] = out_dir / CLASS_FILE
    write_audioset_classes(paths["classes"], [(mid, name) for mid, name, _ in CLASSES])
    write_json(out_dir / "classes.json",
               design({part: [j.elements for j in part_jobs] for part, part_jobs in jobs.items()}))
    return paths


def design(drawn: dict[str, list[frozenset[str]]]) -> dict:
    """What classes.json records: the classes, per-list class counts, ideal mAP on eval."""
    classes = [{"mid": mid, "display_name": name, "requires": list(required),
                "told_apart_by": class_modality(required), "prior": prevalence(required)}
               for mid, name, required in CLASSES]
    counts = {part: multi_hot(elements).sum(axis=0).tolist() for part, elements in drawn.items()}
    targets = multi_hot(drawn["eval"])
    present = targets.sum(axis=0) > 0   # AP is undefined for a class without a positive
    best = {m: float(average_precision_score(targets[:, present], oracle_scores(drawn["eval"], m)[:, present],
                                             average="macro"))
            for m in ("audio", "video", "audiovisual")}
    return {"classes": classes, "class_counts": counts,
            "clips": {part: len(elements) for part, elements in drawn.items()},
            "best_eval_map": best}
