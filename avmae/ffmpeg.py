"""The one place that decides which ffmpeg binary the project uses.

We use the static build shipped in the ``imageio-ffmpeg`` wheel, so a plain
``pip install`` is enough on any machine. Set ``AVMAE_FFMPEG`` to use another
binary (e.g. a system ffmpeg with extra codecs).
"""

from __future__ import annotations

import functools
import os
import re

# what ffmpeg puts before a message: "[h264 @ 0x55..] ", and with -v level+... "[error] "
_PREFIXES = re.compile(r"^(\[[^\]]* @ 0x[0-9a-f]+\]\s*|\[(?:panic|fatal|error|warning|info|verbose)\]\s*)+")
_ERROR_LEVEL = re.compile(r"^(\[[^\]]* @ 0x[0-9a-f]+\]\s*)*\[(?:panic|fatal|error)\]")


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


def first_error(log: str) -> str | None:
    """The first error of an ffmpeg log, its prefixes removed: the first line tagged error
    or worse in a log written with ``-v level+...``, else (a log at ``-v error``, errors
    only) the first line; None when there is none."""
    lines = log.splitlines()
    for line in [ln for ln in lines if _ERROR_LEVEL.match(ln)] or lines:
        line = _PREFIXES.sub("", line).strip()
        if line:
            return line
    return None
