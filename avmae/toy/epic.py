"""A synthetic EPIC-KITCHENS-100-like dataset: verb + noun actions in long videos, with a
kitchen domain shift between train and validation, in the official annotation format.

Each participant has a *kitchen*: a background texture and colour, a lighting level and an
ambient sound. A video (``P01_01`` ...) shows its kitchen for a minute or two, with several
action segments separated by idle gaps; ``EPIC_100_{train,validation}.csv`` give each
segment's ``start_timestamp``/``stop_timestamp`` (so the downloader cuts segments out of
the per-video files, like the real thing) and its verb and noun.

Verbs and nouns split the signal across modalities, as the toy VGGSound classes do (the
class ids are the toy's own, contiguous, so the heads have 4 + 4 outputs):

========  =====  ==========================  ============================  =============
verb      class  motion of the object        sound                         told apart by
========  =====  ==========================  ============================  =============
take      0      rises in the upper half     none                          video
put       1      falls in the lower half     none                          video
wash      2      shakes in place             water hiss (4.8-6 kHz)        audio
cut       3      shakes in place             clicks (6-10 per second)      audio
========  =====  ==========================  ============================  =============

========  =====  ==========================  ============================  =============
noun      class  picture                     sound when touched            told apart by
========  =====  ==========================  ============================  =============
plate     0      flat disc                   2 kHz pings                   video
cup       1      tall striped box            2 kHz pings                   video
door      2      hollow panel                300 Hz knocks                 audio
drawer    3      hollow panel                900 Hz knocks                 audio
========  =====  ==========================  ============================  =============

So video alone tells take from put and plate from cup, audio alone wash from cut and door
from drawer, and an action (verb *and* noun) often needs both. Verbs and nouns are drawn
uniformly and independently per segment, so a perfect one-modality model reaches about
75 % verb, 75 % noun and 56 % action top-1, and audiovisual 100 % (``classes.json`` has
the oracle figures for the generated validation list, :func:`oracle_accuracy`).

Domain shift (EPIC's "unseen kitchens"): train kitchens have warm wood-grain walls, quiet
rooms and brighter light; validation holds one new video of a train participant (a seen
kitchen) and one video of each of ``unseen_participants`` new participants, whose kitchens
have cool tiled walls, dimmer light and a loud fridge hum (100 Hz) over more room noise.
Labels do not depend on the kitchen.

Segments last 1.5-4.5 s, 3 s on average, as real EPIC actions, with 1-2.5 s idle gaps:
each clip the downloader cuts is the 10 s context of its action
(:func:`avmae.acquire.videos.context`), so it also shows and sounds the neighbouring
actions, and only windows kept on the action (:class:`avmae.data.dataset.AVClipDataset`)
see the right verb and noun.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avmae.acquire.lists import format_timestamp, write_epic, write_epic_classes
from avmae.io import write_json
from avmae.toy.media import FPS, HEIGHT, SAMPLE_RATE, WIDTH, run_jobs, sound, write_mp4

# (class id, name, motion, sound)
VERBS = ((0, "take", "rise", None), (1, "put", "fall", None),
         (2, "wash", "shake", "hiss"), (3, "cut", "shake", "clicks"))
# (class id, name, shape, knock frequency in Hz)
NOUNS = ((0, "plate", "disc", 2000.0), (1, "cup", "cup", 2000.0),
         (2, "door", "panel", 300.0), (3, "drawer", "panel", 900.0))
LIST_FILES = {"train": "EPIC_100_train.csv", "validation": "EPIC_100_validation.csv"}
CLASS_FILES = {"verb": "EPIC_100_verb_classes.csv", "noun": "EPIC_100_noun_classes.csv"}
SEGMENT_SECONDS = (1.5, 4.5)
GAP_SECONDS = (1.0, 2.5)


@dataclass(frozen=True)
class Kitchen:
    """A participant's kitchen: what changes between the seen and unseen domains."""

    participant: str
    seen: bool              # a train kitchen
    texture: str            # wood (grain stripes) or tiles (grid)
    colour: tuple[float, float, float]
    light: float            # brightness factor of the background
    noise: float            # room noise level (white, RMS)
    hum: float              # fridge hum level (100 Hz + harmonics), RMS

    @classmethod
    def draw(cls, participant: str, seen: bool, rng: np.random.Generator) -> Kitchen:
        if seen:  # warm wood, quiet and bright
            colour = (rng.uniform(130, 190), rng.uniform(80, 120), rng.uniform(30, 70))
            return cls(participant, True, "wood", colour, rng.uniform(0.9, 1.1),
                       rng.uniform(0.005, 0.015), 0.0)
        colour = (rng.uniform(40, 80), rng.uniform(90, 130), rng.uniform(130, 190))
        return cls(participant, False, "tiles", colour, rng.uniform(0.6, 0.8),
                   rng.uniform(0.02, 0.04), rng.uniform(0.04, 0.08))


@dataclass(frozen=True)
class Segment:
    start: float
    stop: float
    verb: int       # index into VERBS
    noun: int       # index into NOUNS
    narrated: float  # when the participant said it (narration_timestamp)


@dataclass(frozen=True)
class Video:
    video_id: str
    kitchen: Kitchen
    split: str          # train or validation
    segments: tuple[Segment, ...]
    seconds: int        # length of the file
    seed: np.random.SeedSequence


# ------------------------------------------------------------------------------- pictures
def _background(kitchen: Kitchen, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Float RGB [frames, HEIGHT, WIDTH, 3] in 0..255: the kitchen wall, with flicker."""
    y = np.arange(HEIGHT, dtype=np.float32)[:, None]
    x = np.arange(WIDTH, dtype=np.float32)[None, :]
    if kitchen.texture == "wood":
        period = rng.uniform(5, 9)
        wave = np.sin(2 * np.pi * (y / period + 0.15 * np.sin(x / rng.uniform(10, 20))))
        shade = 0.85 + 0.15 * wave
    else:  # tiles: light grout lines every `cell` pixels
        cell = rng.uniform(10, 14)
        grout = (np.mod(y + rng.uniform(0, cell), cell) < 1.5) | (np.mod(x + rng.uniform(0, cell), cell) < 1.5)
        shade = np.where(grout, 1.35, 1.0)
    wall = (shade[..., None] * np.array(kitchen.colour, dtype=np.float32) * kitchen.light)
    flicker = 1 + 0.03 * rng.standard_normal(frames).astype(np.float32)
    return wall[None] * flicker[:, None, None, None]


def _position(motion: str, t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Object centre (x, y) per time step; y grows downwards."""
    x = np.full_like(t, WIDTH / 2 + rng.uniform(-6, 6))
    # sawtooth: a steady climb through the upper half (take) or drop through the lower half
    # (put), then back; so both the motion and where it happens tell the verb
    if motion in ("rise", "fall"):
        u = (t / rng.uniform(2.0, 3.0) + rng.uniform()) % 1
        y = HEIGHT / 2 - 2 - 18 * u if motion == "rise" else HEIGHT / 2 + 2 + 18 * u
    else:  # shake in place: a quick random jitter around the middle
        y = HEIGHT / 2 + 1.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6.3))
        x = x + 1.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6.3))
    return x, y


def _paint_object(frames: np.ndarray, shape: str, x: np.ndarray, y: np.ndarray,
                  rng: np.random.Generator) -> None:
    """Paint the noun's shape centred at (x[i], y[i]) on frames[i], in place."""
    yy = np.arange(HEIGHT, dtype=np.float32)[None, :, None] - y[:, None, None]
    xx = np.arange(WIDTH, dtype=np.float32)[None, None, :] - x[:, None, None]
    colour = rng.uniform(205, 255, size=3).astype(np.float32)
    if shape == "disc":  # a flat ellipse
        a, b = rng.uniform(13, 16), rng.uniform(4.5, 6.5)
        frames[(xx / a) ** 2 + (yy / b) ** 2 <= 1] = colour
    elif shape == "cup":  # a tall box with horizontal stripes
        w, h = rng.uniform(5, 6.5), rng.uniform(9, 11)
        inside = (np.abs(xx) <= w) & (np.abs(yy) <= h)
        stripe = np.mod(yy + h, 4) < 2
        frames[inside & stripe] = colour
        frames[inside & ~stripe] = colour * 0.25
    elif shape == "panel":  # a hollow rectangle with a thick frame
        w, h = rng.uniform(12, 14), rng.uniform(9, 11)
        outer = (np.abs(xx) <= w) & (np.abs(yy) <= h)
        inner = (np.abs(xx) <= w - 3) & (np.abs(yy) <= h - 3)
        frames[outer & ~inner] = colour
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_video(video: Video, rng: np.random.Generator) -> np.ndarray:
    n = video.seconds * FPS
    frames = _background(video.kitchen, n, rng)
    t = np.arange(n, dtype=np.float32) / FPS
    for seg in video.segments:
        idx = np.flatnonzero((t >= seg.start) & (t < seg.stop))
        x, y = _position(VERBS[seg.verb][2], t[idx], rng)
        part = frames[idx]
        _paint_object(part, NOUNS[seg.noun][2], x, y, rng)
        frames[idx] = part
    frames += 4.0 * rng.standard_normal(frames.shape, dtype=np.float32)  # sensor noise
    return np.clip(frames, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------- sounds
def _knocks(freq: float, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Short decaying tone bursts at ``freq`` Hz, about 3 per second; unit RMS."""
    rate = rng.uniform(2.5, 3.5)
    u = (t * rate + rng.uniform()) % 1
    wave = np.sin(2 * np.pi * freq * rng.uniform(0.97, 1.03) * t) * np.exp(-u / 0.06)
    return wave / (np.sqrt(np.mean(wave**2)) + 1e-12)


def render_audio(video: Video, rng: np.random.Generator) -> np.ndarray:
    """Stereo int16: room noise and fridge hum all along, each segment's verb and noun sounds."""
    n = video.seconds * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    k = video.kitchen
    mono = (k.noise * rng.standard_normal(n)).astype(np.float32)
    if k.hum > 0:
        hum = sum(np.sin(2 * np.pi * 100 * h * t + rng.uniform(0, 6.3)) / h for h in (1, 2, 3))
        mono += (k.hum * hum / np.sqrt(np.mean(hum**2))).astype(np.float32)
    for seg in video.segments:
        a, b = int(seg.start * SAMPLE_RATE), int(seg.stop * SAMPLE_RATE)
        ts = t[a:b]
        part = _knocks(NOUNS[seg.noun][3], ts, rng) * rng.uniform(0.12, 0.2)
        verb_sound = VERBS[seg.verb][3]
        if verb_sound is not None:  # hiss or clicks, as in the toy VGGSound
            part += sound(verb_sound, ts, rng) * rng.uniform(0.12, 0.2)
        mono[a:b] += part.astype(np.float32)
    pan = rng.uniform(0.4, 0.6)
    stereo = mono[:, None] * np.array([1 - pan, pan], dtype=np.float32)
    return (np.clip(stereo, -1, 1) * 32767).astype(np.int16)


# ------------------------------------------------------------------------------- the lists
def _plan_video(video_id: str, kitchen: Kitchen, split: str, segments: int,
                rng: np.random.Generator, seed: np.random.SeedSequence) -> Video:
    """Segments at hundredth-of-a-second times (as the CSV writes them), gaps between."""
    t, planned = round(rng.uniform(0.5, 2.0), 2), []
    for _ in range(segments):
        length = round(rng.uniform(*SEGMENT_SECONDS), 2)
        planned.append(Segment(t, round(t + length, 2), int(rng.integers(len(VERBS))),
                               int(rng.integers(len(NOUNS))), round(t + rng.uniform(0.0, 1.5), 3)))
        t = round(t + length + rng.uniform(*GAP_SECONDS), 2)
    return Video(video_id, kitchen, split, tuple(planned), int(np.ceil(t)) + 1, seed)


def annotation_rows(video: Video) -> list[dict]:
    """The EPIC_100_*.csv rows of a video's segments (frames counted at the file's 25 fps)."""
    rows = []
    for i, seg in enumerate(video.segments):
        verb_class, verb, *_ = VERBS[seg.verb]
        noun_class, noun, *_ = NOUNS[seg.noun]
        rows.append({
            "narration_id": f"{video.video_id}_{i}", "participant_id": video.kitchen.participant,
            "video_id": video.video_id, "narration_timestamp": format_timestamp(seg.narrated, 3),
            "start_timestamp": format_timestamp(seg.start), "stop_timestamp": format_timestamp(seg.stop),
            "start_frame": round(seg.start * FPS), "stop_frame": round(seg.stop * FPS),
            "narration": f"{verb} {noun}", "verb": verb, "verb_class": verb_class,
            "noun": noun, "noun_class": noun_class, "all_nouns": str([noun]),
            "all_noun_classes": str([noun_class])})
    return rows


def oracle_accuracy(segments: list[Segment], modality: str) -> dict[str, float]:
    """Top-1 of an oracle that perceives one modality (audio, video or audiovisual) perfectly
    and answers, for segments that look (or sound) the same, their most common verb, noun
    or (verb, noun) pair in ``segments`` -- the best any model of that modality can do there."""
    def verb_key(v):
        return {"video": VERBS[v][2], "audio": VERBS[v][3], "audiovisual": VERBS[v][2:]}[modality]

    def noun_key(n):
        return {"video": NOUNS[n][2], "audio": NOUNS[n][3], "audiovisual": NOUNS[n][2:]}[modality]

    def best(keys, answers) -> float:
        groups: dict = {}
        for key, answer in zip(keys, answers):
            groups.setdefault(key, Counter())[answer] += 1
        return sum(c.most_common(1)[0][1] for c in groups.values()) / max(len(answers), 1)

    verb_keys = [verb_key(s.verb) for s in segments]
    noun_keys = [noun_key(s.noun) for s in segments]
    return {"verb_top1": best(verb_keys, [s.verb for s in segments]),
            "noun_top1": best(noun_keys, [s.noun for s in segments]),
            "action_top1": best(list(zip(verb_keys, noun_keys)), [(s.verb, s.noun) for s in segments])}


def plan_epic(train_participants: int = 4, unseen_participants: int = 2, videos_per_participant: int = 3,
              segments_per_video: int = 8, seed: int = 0) -> tuple[list[Kitchen], list[Video]]:
    """Kitchens and videos (segments, labels, seeds) from ``seed``, without rendering.

    Train: ``videos_per_participant`` videos of each of ``train_participants`` kitchens.
    Validation: one new video of the first train kitchen, and one video of each of
    ``unseen_participants`` new kitchens.
    """
    for name, value in (("train_participants", train_participants),
                        ("videos_per_participant", videos_per_participant),
                        ("segments_per_video", segments_per_video)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if unseen_participants < 0:
        raise ValueError(f"unseen_participants must be >= 0, got {unseen_participants}")
    if train_participants + unseen_participants > 99:
        raise ValueError("at most 99 participants (ids P01..P99)")
    meta_seed, video_seeds = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(meta_seed)
    kitchens = [Kitchen.draw(f"P{p + 1:02d}", p < train_participants, rng)
                for p in range(train_participants + unseen_participants)]
    plan = [(k, v + 1, "train") for k in kitchens[:train_participants]
            for v in range(videos_per_participant)]
    plan.append((kitchens[0], videos_per_participant + 1, "validation"))
    plan += [(k, 1, "validation") for k in kitchens[train_participants:]]
    seeds = video_seeds.spawn(len(plan))
    videos = [_plan_video(f"{k.participant}_{v:02d}", k, split, segments_per_video, rng, s)
              for (k, v, split), s in zip(plan, seeds)]
    return kitchens, videos


def make_toy_epic(out_dir: str | os.PathLike, train_participants: int = 4, unseen_participants: int = 2,
                  videos_per_participant: int = 3, segments_per_video: int = 8, seed: int = 0,
                  workers: int = 2, media_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write ``EPIC_100_train.csv``, ``EPIC_100_validation.csv``, the class lists
    ``EPIC_100_{verb,noun}_classes.csv`` (category "toy") and ``classes.json`` under
    ``out_dir``, and the videos as ``{media_dir}/{video_id}.mp4`` (default
    ``out_dir/media``); see :func:`plan_epic`. Deterministic in ``seed``; returns
    {"train"|"validation": path}.
    """
    kitchens, videos = plan_epic(train_participants, unseen_participants, videos_per_participant,
                                 segments_per_video, seed)
    out_dir = Path(out_dir).resolve()
    media_dir = Path(media_dir).resolve() if media_dir is not None else out_dir / "media"
    out_dir.mkdir(parents=True, exist_ok=True)
    media_dir.mkdir(parents=True, exist_ok=True)

    def make(video: Video) -> None:
        video_rng = np.random.default_rng(video.seed)
        frames = render_video(video, video_rng)
        audio = render_audio(video, video_rng)
        write_mp4(media_dir / f"{video.video_id}.mp4", frames, audio)

    run_jobs(make, videos, workers, "toy epic videos")

    paths = {}
    for split, name in LIST_FILES.items():
        paths[split] = out_dir / name
        write_epic(paths[split], [row for video in videos if video.split == split
                                  for row in annotation_rows(video)])
    for kind, table in (("verb", VERBS), ("noun", NOUNS)):
        write_epic_classes(out_dir / CLASS_FILES[kind], [(row[1], "toy") for row in table])
    write_json(out_dir / "classes.json", design(kitchens, videos))
    return paths


def design(kitchens: list[Kitchen], videos: list[Video]) -> dict:
    validation = [s for v in videos if v.split == "validation" for s in v.segments]
    return {
        "verbs": [{"verb_class": c, "verb": name, "motion": motion, "sound": snd,
                   "told_apart_by": "video" if snd is None else "audio"}
                  for c, name, motion, snd in VERBS],
        "nouns": [{"noun_class": c, "noun": name, "picture": shape, "knock_hz": hz,
                   "told_apart_by": "video" if hz == 2000.0 else "audio"}
                  for c, name, shape, hz in NOUNS],
        "kitchens": [{"participant": k.participant, "seen_in_train": k.seen, "texture": k.texture,
                      "colour": [round(c, 1) for c in k.colour], "light": round(k.light, 3),
                      "room_noise": round(k.noise, 4), "fridge_hum": round(k.hum, 4)}
                     for k in kitchens],
        "videos": {v.video_id: {"split": v.split, "participant": v.kitchen.participant,
                                "seconds": v.seconds, "segments": len(v.segments)} for v in videos},
        "segments": {split: sum(len(v.segments) for v in videos if v.split == split)
                     for split in LIST_FILES},
        "best_validation_top1": {m: oracle_accuracy(validation, m)
                                 for m in ("audio", "video", "audiovisual")},
    }
