"""Synthetic datasets of real H.264 + AAC mp4 files, with lists in the official formats.

:func:`make_toy` runs the generator of a list format: VGGSound (here), AudioSet
(:mod:`avmae.data.toy_audioset`: multi-label, long-tailed) or EPIC-KITCHENS-100
(:mod:`avmae.data.toy_epic`: verb + noun segments, unseen kitchens). All three split the
signal across modalities the same way and share this module's pictures, sounds and
encoder (:func:`write_mp4`). The VGGSound-like set:

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

import math
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avmae.data.ffmpeg import ffmpeg_exe
from avmae.data.lists import Clip, write_vggsound
from avmae.io import atomic_path, write_json

WIDTH, HEIGHT, FPS = 96, 64, 25
SAMPLE_RATE = 44100
CLIP_SECONDS = 10
ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))

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


# ----------------------------------------------------------------------------- pictures
def picture(kind: str, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Foreground intensity in [0, 1], broadcastable to [frames, HEIGHT, WIDTH]."""
    t = t[:, None, None]
    y = np.arange(HEIGHT, dtype=np.float32)[None, :, None]
    x = np.arange(WIDTH, dtype=np.float32)[None, None, :]
    phase = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.5, 1.5) * float(rng.choice([-1, 1]))  # cycles per second
    if kind in ("hstripes", "vstripes"):
        coord = y if kind == "hstripes" else x
        period = rng.uniform(10, 16)
        return 0.5 + 0.5 * np.sin(2 * np.pi * (coord / period + speed * t) + phase)
    if kind == "checker":
        cell = rng.uniform(7, 11)
        drift = speed * t * cell  # the board slides diagonally
        return (np.floor((x + drift) / cell) + np.floor((y + drift) / cell)) % 2
    if kind == "square":
        side = rng.uniform(14, 18)
        # Bounce inside the centre, so a centre crop of the short side keeps it in view.
        lo_x, hi_x, lo_y, hi_y = 20, WIDTH - 20 - side, 4, HEIGHT - 4 - side
        px = lo_x + (hi_x - lo_x) * triangle(rng.uniform(0.3, 0.6) * t + rng.uniform())
        py = lo_y + (hi_y - lo_y) * triangle(rng.uniform(0.3, 0.6) * t + rng.uniform())
        inside = (x >= px) & (x < px + side) & (y >= py) & (y < py + side)
        return inside.astype(np.float32)
    if kind == "haze":  # the neutral picture: a faint, wide, slowly drifting gradient
        angle = rng.uniform(0, math.pi)
        proj = x * math.cos(angle) + y * math.sin(angle)
        return 0.5 + 0.2 * np.sin(2 * np.pi * (proj / 160 + 0.1 * speed * t) + phase)
    raise ValueError(f"unknown picture type {kind!r}")


def triangle(u: np.ndarray) -> np.ndarray:
    """Triangle wave in [0, 1] with period 1."""
    return 1 - np.abs(2 * (u % 1) - 1)


def _render_video(kind: str, seconds: int, rng: np.random.Generator) -> np.ndarray:
    """RGB frames uint8 [frames, HEIGHT, WIDTH, 3]: pattern, random colours, pixel noise."""
    t = np.arange(seconds * FPS, dtype=np.float32) / FPS
    level = np.broadcast_to(picture(kind, t, rng), (t.size, HEIGHT, WIDTH)).astype(np.float32)
    level += rng.uniform(0.02, 0.08) * (rng.random(level.shape, dtype=np.float32) - 0.5)
    return colourise(level, palette(rng))


def palette(rng: np.random.Generator, fg_range=(150, 255), bg_range=(0, 90)) -> np.ndarray:
    """A random per-clip palette uint8 [256, 3]: level 0 -> dark background colour,
    255 -> bright foreground colour."""
    fg, bg = rng.uniform(*fg_range, size=3), rng.uniform(*bg_range, size=3)
    return (bg + (fg - bg) * np.linspace(0, 1, 256)[:, None]).astype(np.uint8)


def colourise(level: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Intensities in [0, 1] [..., H, W] -> RGB uint8 [..., H, W, 3] through a palette."""
    return np.take(colours, (np.clip(level, 0, 1) * 255).astype(np.uint8), axis=0)


# ------------------------------------------------------------------------------- sounds
def sound(kind: str, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mono class sound with unit RMS, shape [samples]."""
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "hum":  # the neutral sound: a low tone with harmonics
        f0 = rng.uniform(110, 170)
        wave = sum(np.sin(2 * np.pi * k * f0 * t + k * phase) / k for k in (1, 2, 3))
    elif kind == "whistle":
        f = rng.uniform(2500, 3500)
        wave = np.sin(2 * np.pi * f * t + phase) * (1 + 0.05 * np.sin(2 * np.pi * 5 * t))
    elif kind == "chirps":  # log sweeps 400 Hz -> 2.5 kHz, repeating
        period = rng.uniform(0.4, 0.7)
        u = ((t + rng.uniform(0, period)) % period) / period
        f_lo, f_hi = 400 * rng.uniform(0.9, 1.1), 2500 * rng.uniform(0.9, 1.1)
        # instantaneous phase of an exponential sweep, restarted every period
        k = np.log(f_hi / f_lo)
        wave = np.sin(2 * np.pi * f_lo * period * (np.exp(k * u) - 1) / k + phase)
    elif kind == "clicks":  # 10 ms broadband bursts at 6-10 Hz
        rate = rng.uniform(6, 10)
        env = ((t * rate + rng.uniform()) % 1) < 0.01 * rate
        wave = rng.standard_normal(t.size) * env
    elif kind == "hiss":  # steady noise band around 5-6 kHz
        centre = rng.uniform(4800, 6000)
        wave = band_noise(t.size, centre - 500, centre + 500, rng)
    else:
        raise ValueError(f"unknown sound type {kind!r}")
    return wave / (np.sqrt(np.mean(wave**2)) + 1e-12)


def band_noise(n: int, f_lo: float, f_hi: float, rng: np.random.Generator) -> np.ndarray:
    """White noise band-passed to [f_lo, f_hi] Hz in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < f_lo) | (freqs > f_hi)] = 0
    return np.fft.irfft(spectrum, n)


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


# ------------------------------------------------------------------------------ encoding
def write_mp4(path: Path, frames: np.ndarray, audio: np.ndarray | None,
              fps: int = FPS, sample_rate: int = SAMPLE_RATE) -> None:
    """Encode RGB frames [T, H, W, 3] (and int16 stereo audio [N, 2]) to an H.264/AAC mp4.

    One ffmpeg call: frames go through stdin, audio through a temporary raw file.
    The file appears at ``path`` only once complete.
    """
    _, h, w, _ = frames.shape
    with tempfile.TemporaryDirectory() as tmp, atomic_path(path) as out:
        cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps),
               "-i", "pipe:0"]
        if audio is not None:
            raw_audio = Path(tmp) / "audio.s16le"
            raw_audio.write_bytes(np.ascontiguousarray(audio, dtype="<i2").tobytes())
            # AAC is most of the encoding time; the fast coder and an 8 kHz cutoff (16 kHz
            # features see nothing above it) keep it low.
            cmd += ["-f", "s16le", "-ar", str(sample_rate), "-ac", str(audio.shape[1]),
                    "-i", str(raw_audio),
                    "-c:a", "aac", "-aac_coder", "fast", "-b:a", "64k", "-cutoff", "8000"]
        # A keyframe every 2 s, like YouTube; one thread, so the bytes do not depend on cores.
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-g", str(2 * fps),
                "-pix_fmt", "yuv420p", "-threads", "1", "-map_metadata", "-1", str(out)]
        proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(),
                              capture_output=True, check=False)
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip()[-500:]
            raise RuntimeError(f"ffmpeg failed writing {path} (exit {proc.returncode}): {tail}")


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


def run_jobs(work, jobs: list, workers: int, desc: str) -> list:
    """``work(job)`` for every job on ``workers`` threads (numpy and ffmpeg release the
    GIL), with a progress bar; results in job order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(work, jobs), total=len(jobs), desc=desc, unit="clip"))


def random_ids(n: int, rng: np.random.Generator, avoid: set[str] = frozenset()) -> list[str]:
    """n distinct 11-character YouTube-like ids, none of them in ``avoid``."""
    ids: list[str] = []
    seen: set[str] = set(avoid)
    while len(ids) < n:
        vid = "".join(rng.choice(ID_ALPHABET, size=11))
        if vid not in seen:
            seen.add(vid)
            ids.append(vid)
    return ids


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


# format -> the generator's own options (besides out_dir, media_dir, seed and workers)
GENERATOR_OPTIONS = {
    "vggsound": ("clips_per_class", "test_fraction"),
    "audioset": ("unbalanced", "balanced_per_class", "eval_per_class"),
    "epic": ("train_participants", "unseen_participants", "videos_per_participant",
             "segments_per_video"),
}


def make_toy(fmt: str, out_dir: str | os.PathLike, media_dir: str | os.PathLike | None = None,
             seed: int = 0, workers: int = 2, **options) -> None:
    """Run the toy generator of list format ``fmt`` (vggsound, audioset or epic); options
    that belong to another generator are an error naming them."""
    if fmt not in GENERATOR_OPTIONS:
        raise ValueError(f"no toy generator for format {fmt!r}; expected one of "
                         f"{', '.join(GENERATOR_OPTIONS)}")
    foreign = sorted(set(options) - set(GENERATOR_OPTIONS[fmt]))
    if foreign:
        raise ValueError(f"option(s) {', '.join(foreign)} do not apply to the {fmt} toy "
                         f"generator (its options: {', '.join(GENERATOR_OPTIONS[fmt])})")
    if fmt == "vggsound":
        make_toy_vggsound(out_dir, seed=seed, workers=workers, media_dir=media_dir, **options)
    elif fmt == "audioset":
        from avmae.data.toy_audioset import make_toy_audioset
        make_toy_audioset(out_dir, seed=seed, workers=workers, media_dir=media_dir, **options)
    else:
        from avmae.data.toy_epic import make_toy_epic
        make_toy_epic(out_dir, seed=seed, workers=workers, media_dir=media_dir, **options)
