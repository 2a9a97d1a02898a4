"""Registering a copy already on disk (``datasets.NAME.local``): clips a second, and the
projection to VGGSound's ~200k clips (goal: under an hour on 2 cores); prints numbers,
passes or fails nothing.

A mirror of ``--clips`` pre-cut 10 s clips named ``{id}_{start:06d}.mp4`` (one real
clip, hard-linked under every name, so the file system holds one copy; the cheap check
reads each file's boxes, as it would read distinct files), registered with the ``clips``
layout (linked) and, from one tar of the same clips as regular members,
the ``tar`` layout (extracted: a copy of each clip's bytes).

    python benchmarks/local_register.py [--clips 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from avmae.acquire.lists import Clip
from avmae.acquire.local import check_local, register
from avmae.toy.media import write_mp4

VGGSOUND_CLIPS = 199_467  # rows of vggsound.csv


def mirror(root: Path, n: int) -> list[Clip]:
    """``n`` clip names over one real 10 s, 96x64, 25 fps clip with stereo sound."""
    root.mkdir(parents=True)
    source = root.parent / "source.mp4"
    frames = np.random.default_rng(0).integers(0, 255, (250, 64, 96, 3), dtype=np.uint8)
    write_mp4(source, frames, np.random.default_rng(1).normal(0, 3000, (441000, 2)).astype(np.int16))
    clips = [Clip(f"vid{i:08d}", float(10 * (i % 3)), "x", "train") for i in range(n)]
    for clip in clips:
        os.link(source, root / f"{clip.id}_{int(clip.start):06d}.mp4")
    return clips


def timed(label: str, clips: list[Clip], layout: str, root: Path, out: Path, workers: int) -> None:
    local = check_local(root, layout, "{id}_{start:06d}.mp4")
    t0 = time.perf_counter()
    manifest = register(clips, local, out / "media", out / "manifest.csv", workers=workers)
    seconds = time.perf_counter() - t0
    ok = int((manifest.status == "ok").sum())
    rate = len(clips) / seconds
    size = (root.parent / "source.mp4").stat().st_size / 1e6   # mirror() and the tar sit beside it
    print(f"{label}: {len(clips)} clips of {size:.2f} MB ({ok} ok) in {seconds:.1f} s = {rate:.0f} clips/s; "
          f"VGGSound's {VGGSOUND_CLIPS:,} clips: {VGGSOUND_CLIPS / rate / 60:.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="avmae-register-") as tmp:
        tmp = Path(tmp)
        clips = mirror(tmp / "mirror", a.clips)
        timed("clips layout (hard links)", clips, "clips", tmp / "mirror", tmp / "out_clips", a.workers)
        with tarfile.open(tmp / "shard.tar", "w") as tar:   # regular members, as in a mirror's tars
            for path in sorted((tmp / "mirror").iterdir()):
                info = tar.gettarinfo(path, arcname=path.name)
                info.type, info.linkname, info.size = tarfile.REGTYPE, "", path.stat().st_size
                with path.open("rb") as f:
                    tar.addfile(info, f)
        timed("tar layout (extracted)", clips, "tar", tmp / "shard.tar", tmp / "out_tar", a.workers)


if __name__ == "__main__":
    main()
