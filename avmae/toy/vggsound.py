"""The VGGSound-like toy set: real H.264 + AAC mp4 files and a list in VGGSound's format.

Eight classes split the signal across modalities:

- classes 0-1 share one sound and differ only in the picture,
- classes 2-3 share one picture and differ only in the sound,
- classes 4-7 cross two pictures with two sounds, so they need both.

The best video-only accuracy is therefore 5/8 (62.5 %), audio-only 5/8, audiovisual 100 %.
Each clip draws its own nuisances (colours, phases, speeds, pitch, loudness, background
noise) from the seed. A source file lasts ``start + 10 + 1`` s and shows its class the
whole time; the CSV row records ``start``, so the downloader really has to cut.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avmae.acquire.lists import Clip, write_vggsound
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

# (label, picture type, sound type, the modality that tells the class apart)
CLASSES = (
    ("horizontal stripes, humming", "hstripes", "hum", "video"),
    ("vertical stripes, humming", "vstripes", "hum", "video"),
    ("drifting haze, whistling", "haze", "whistle", "audio"),
    ("drifting haze, chirping", "haze", "chirps", "audio"),
    ("bouncing square, clicking", "square", "clicks", "audio+video"),
    ("bouncing square, hissing", "square", "hiss", "audio+video"),
    ("checkerboard, clicking", "checker", "clicks", "audio+video"),
    ("checkerboard, hissing", "checker", "hiss", "audio+video"),
)


def _render_video(kind: str, seconds: int, rng: np.random.Generator) -> np.ndarray:
    """RGB frames uint8 [frames, HEIGHT, WIDTH, 3]: pattern, random colours, pixel noise."""
    t = np.arange(seconds * FPS, dtype=np.float32) / FPS
    level = np.broadcast_to(picture(kind, t, rng), (t.size, HEIGHT, WIDTH)).astype(np.float32)
    level += rng.uniform(0.02, 0.08) * (rng.random(level.shape, dtype=np.float32) - 0.5)
    return colourise(level, palette(rng))




def _render_audio(kind: str, seconds: int, rng: np.random.Generator) -> np.ndarray:
    """Stereo int16 [samples, 2]: class sound at a random level and pan, plus noise."""
    t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
    signal = (sound(kind, t, rng) * rng.uniform(0.15, 0.3)).astype(np.float32)
    pan = rng.uniform(0.3, 0.7)
    gains = np.array([1 - pan, pan], dtype=np.float32)
    noise_level = rng.uniform(0.01, 0.03)  # white background noise, ~5-25 dB below the signal
    stereo = rng.standard_normal((t.size, 2), dtype=np.float32) * noise_level
    stereo += signal[:, None] * gains
    return (np.clip(stereo, -1, 1, out=stereo) * 32767).astype(np.int16)



@dataclass(frozen=True)
class _Job:
    clip: Clip
    class_index: int
    seed: np.random.SeedSequence


def _make_clip(job: _Job, media_dir: Path) -> None:
    """Render and encode one source file covering [0, start + 10 + 1) s."""
    rng = np.random.default_rng(job.seed)
    _, picture, sound, _ = CLASSES[job.class_index]
    seconds = int(job.clip.start) + CLIP_SECONDS + 1
    frames = _render_video(picture, seconds, rng)
    audio = _render_audio(sound, seconds, rng)
    write_mp4(media_dir / f"{job.clip.id}.mp4", frames, audio)



def make_toy_vggsound(out_dir: str | os.PathLike, clips_per_class: int = 40,
                      test_fraction: float = 0.25, seed: int = 0, workers: int = 2,
                      media_dir: str | os.PathLike | None = None) -> Path:
    """Write ``vggsound.csv`` and ``classes.json`` under out_dir, the clips as
    ``{media_dir}/{id}.mp4`` (default ``out_dir/media``).

    The same seed gives the same CSV and the same decoded media. Per class,
    ``round(clips_per_class * test_fraction)`` clips go to the test split.
    Returns the CSV path.
    """
    if clips_per_class < 1:
        raise ValueError(f"clips_per_class must be >= 1, got {clips_per_class}")
    if not 0 <= test_fraction <= 1:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    out_dir = Path(out_dir).resolve()
    media_dir = Path(media_dir).resolve() if media_dir is not None else out_dir / "media"
    media_dir.mkdir(parents=True, exist_ok=True)

    meta_seed, clip_seeds = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(meta_seed)
    n = clips_per_class * len(CLASSES)
    ids = random_ids(n, rng)
    seeds = clip_seeds.spawn(n)
    n_test = round(clips_per_class * test_fraction)
    jobs = []
    for c, (label, *_) in enumerate(CLASSES):
        is_test = rng.permutation(clips_per_class) < n_test
        for k in range(clips_per_class):
            i = c * clips_per_class + k
            clip = Clip(ids[i], float(rng.integers(0, 4)), label, "test" if is_test[k] else "train")
            jobs.append(_Job(clip, c, seeds[i]))

    run_jobs(lambda job: _make_clip(job, media_dir), jobs, workers, "toy vggsound")

    classes = [{"label": label, "picture": picture, "sound": sound, "told_apart_by": modality}
               for label, picture, sound, modality in CLASSES]
    best = {"video": 5 / 8, "audio": 5 / 8, "audiovisual": 1.0}
    write_json(out_dir / "classes.json", {"classes": classes, "best_accuracy": best})
    csv_path = out_dir / "vggsound.csv"
    write_vggsound(csv_path, sorted((job.clip for job in jobs), key=lambda c: c.id))
    return csv_path
