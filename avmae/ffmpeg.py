"""The one place that decides which ffmpeg binary the project uses.

We use the static build shipped in the ``imageio-ffmpeg`` wheel, so a plain
``pip install`` is enough on any machine. Set ``AVMAE_FFMPEG`` to use another
binary (e.g. a system ffmpeg with extra codecs).
"""

from __future__ import annotations

import functools
import os


@functools.cache
def ffmpeg_exe() -> str:
    """Absolute path of the ffmpeg binary."""
    override = os.environ.get("AVMAE_FFMPEG")
    if override:
        if not os.access(override, os.X_OK):
            raise FileNotFoundError(f"AVMAE_FFMPEG={override!r} is not an executable file")
        return override
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()
