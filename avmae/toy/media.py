"""What every toy generator shares: the frame size and rates, the pictures and sounds
that carry the classes, random YouTube-like ids, the threaded job runner, and the
H.264 + AAC encoder (:func:`write_mp4`)."""

from __future__ import annotations

import math
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avmae.ffmpeg import ffmpeg_exe
from avmae.io import atomic_path

WIDTH, HEIGHT, FPS = 96, 64, 25
SAMPLE_RATE = 44100
CLIP_SECONDS = 10
ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


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
