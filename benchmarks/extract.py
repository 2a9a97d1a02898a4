"""Feature extraction throughput, its decode floor, peak memory and disk footprint.

Generates ``--clips`` 10 s 360p clips (640x360, 30 fps H.264 + 44.1 kHz stereo AAC,
a keyframe every 2 s, like YouTube's) with the bundled ffmpeg, in two kinds of
content: ``detailed`` (a zooming Mandelbrot set with film grain: hard to compress, an
upper bound for JPEG sizes) and ``plain`` (ffmpeg's ``testsrc2`` pattern: large flat
areas). Then, one clip at a time on one core (ffmpeg ``-threads 1``, torch 1 thread):

* **decode floor**: ``ffmpeg -i clip -f null -`` (both streams decoded, nothing else);
* **jpeg**: :func:`avmae.features.extract.clip_features_jpeg` (one ffmpeg: audio decode,
  video decode + 25 fps + short side 256; then log-mel and libjpeg-turbo JPEG encoding
  in Python), the stored format;
* **array**: :func:`avmae.features.extract.clip_features` (uint8 256x256 frames), for
  comparison.

Costs are CPU seconds (this process plus its ffmpeg children, ``getrusage``), so
"clips/s per core" is 1 / CPU seconds per clip and does not depend on how busy the
shared machine is; ffmpeg's decoder, filters and muxers run as threads of one process,
and the JPEG encoding overlaps it, so wall time is lower than CPU time. Finally
``extract()`` runs over all clips with ``--workers`` threads for the wall-clock rate and
the peak memory of a real job.

    python benchmarks/extract.py --clips 6 --workers 2
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from avmae.features.extract import (
    JPEG_QUALITY,
    Spec,
    clip_features,
    clip_features_jpeg,
    extract,
    ffmpeg_command,
)
from avmae.ffmpeg import ffmpeg_exe

SOURCES = {
    "detailed": "mandelbrot=s=640x360:r=30,noise=alls=12:allf=t",
    "plain": "testsrc2=s=640x360:r=30",
}
VGGSOUND, AS2M = 200_000, 1_857_210


def make_clip(path: Path, kind: str, seed: int) -> None:
    """A 10 s 360p H.264/AAC clip; ``seed`` shifts the content so clips differ."""
    video = SOURCES[kind]
    if kind == "detailed":
        video = video.replace("mandelbrot=", f"mandelbrot=start_scale={3 + 0.1 * seed}:")
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", video,
           "-f", "lavfi", "-i", f"sine=f={220 + 55 * seed}:r=44100",
           "-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "60",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2", str(path)]
    subprocess.run(cmd, check=True)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def measure(fn, clips: list[Path]) -> tuple[float, float, list]:
    """(CPU s per clip, wall s per clip, results) of fn over the clips, one at a time."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    out = [fn(p) for p in clips]
    return (cpu_seconds() - c0) / len(clips), (time.perf_counter() - t0) / len(clips), out


def ffmpeg_peak_mib(path: Path, spec: Spec) -> str:
    """Peak RSS of the ffmpeg that extracts one clip: the command of
    :func:`avmae.features.extract.ffmpeg_command` (audio to /dev/null instead of a pipe),
    started by a bare Python (a child's peak RSS counts the process it was forked from,
    ~10 MiB here against ~900 MiB for a Python with torch imported)."""
    code = ("import resource, subprocess, sys; "
            "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    cmd = ffmpeg_command(path, spec, "/dev/null", "jpeg")
    r = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, check=True, text=True)
    return f"{int(r.stdout.split()[-1]) / 1024:.0f}"


def floor(path: Path) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-threads", "1", "-i", f"file:{path}",
                    "-f", "null", "-"], check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=6, help="clips per content kind")
    p.add_argument("--workers", type=int, default=2, help="threads of the whole-job extract() run")
    p.add_argument("--short-side", type=int, default=256)
    p.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY, help="libjpeg quality")
    a = p.parse_args()
    torch.set_num_threads(1)
    spec = Spec(10.0, 25, a.short_side, 16000, 128)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {}
        for kind in SOURCES:
            clips[kind] = [tmp / f"{kind}{i}.mp4" for i in range(a.clips)]
            for i, path in enumerate(clips[kind]):
                make_clip(path, kind, i)
        mp4 = np.mean([p.stat().st_size for ps in clips.values() for p in ps]) / 1e6
        print(f"{a.clips} clips per kind, 10 s 640x360 30 fps H.264 + AAC, mean {mp4:.2f} MB; "
              f"stored: 25 fps, short side {a.short_side}, JPEG quality {a.jpeg_quality}; 1 core per clip\n")
        print(f"{'content':9} {'stage':14} {'CPU s/clip':>10} {'wall s/clip':>11} {'clips/s/core':>12} "
              f"{'x floor':>7} {'video MB/clip':>13}")
        for kind, paths in clips.items():
            clip_features_jpeg(paths[0], spec, a.jpeg_quality)  # warm caches and imports
            f_cpu, f_wall, _ = measure(floor, paths)
            j_cpu, j_wall, res = measure(lambda q: clip_features_jpeg(q, spec, a.jpeg_quality), paths)
            r_cpu, r_wall, _ = measure(lambda q: clip_features(q, spec), paths)
            jpeg_mb = np.mean([len(r[1]) for r in res]) / 1e6
            raw_mb = spec.video_frames * a.short_side ** 2 * 3 / 1e6
            for stage, cpu, wall, mb in (("decode floor", f_cpu, f_wall, None),
                                         ("jpeg (stored)", j_cpu, j_wall, jpeg_mb),
                                         ("array", r_cpu, r_wall, raw_mb)):
                print(f"{kind:9} {stage:14} {cpu:10.3f} {wall:11.3f} {1 / cpu:12.2f} {cpu / f_cpu:7.2f} "
                      f"{'' if mb is None else f'{mb:13.2f}'}")
            audio_mb = spec.audio_frames * spec.n_mels * 2 / 1e6
            total = jpeg_mb + audio_mb
            print(f"{kind:9} footprint per 10 s clip: JPEG frames {jpeg_mb:.2f} MB + log-mel {audio_mb:.3f} MB "
                  f"= {total:.2f} MB (uint8 256x256 arrays: {raw_mb + audio_mb:.1f} MB); "
                  f"VGGSound {VGGSOUND:,}: {total * VGGSOUND / 1e6:.2f} TB, AS-2M {AS2M:,}: "
                  f"{total * AS2M / 1e6:.1f} TB\n")

        # The whole job: extract() with its thread pool, as the workflow runs it.
        rows = [{"id": p.stem, "label": "x", "split": "train", "status": "ok", "path": str(p)}
                for ps in clips.values() for p in ps]
        pd.DataFrame(rows).to_csv(tmp / "manifest.csv", index=False)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        extract(tmp / "manifest.csv", tmp / "out", short_side=a.short_side, workers=a.workers,
                jpeg_quality=a.jpeg_quality)
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child = ffmpeg_peak_mib(clips["detailed"][0], spec)
        on_disk = sum(f.stat().st_size for f in (tmp / "out").rglob("*") if f.is_file()) / len(rows) / 1e6
        print(f"extract(): {len(rows)} clips, {a.workers} workers: {wall:.1f} s wall, "
              f"{len(rows) / wall:.2f} clips/s; {on_disk:.2f} MB/clip on disk; peak RSS: this process "
              f"{rss:.0f} MiB (before the job {rss0:.0f} MiB: torch and friends), one clip's ffmpeg {child} MiB")


if __name__ == "__main__":
    main()
