"""Check a downloaded clip: it decodes, it has an audio stream, its duration is as expected;
and read a media file's duration from its header (:func:`media_seconds`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from avmae.ffmpeg import ffmpeg_exe

DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
DECODE_TIMEOUT_S = 120


class VerifyError(Exception):
    """A clip failed verification. ``permanent``: the source lacks something (no audio), so
    downloading it again would not help."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def _duration(log: str) -> float | None:
    """The ``Duration:`` ffmpeg logs for its input, in seconds, or None."""
    match = DURATION.search(log)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def media_seconds(path: Path) -> float:
    """A media file's duration from its header (``ffmpeg -i``, nothing decoded); raise
    RuntimeError when ffmpeg finds none."""
    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", f"file:{path}"],
                          capture_output=True, text=True, errors="replace",
                          timeout=DECODE_TIMEOUT_S, check=False)
    duration = _duration(proc.stderr)
    if duration is None:
        tail = " ".join(proc.stderr.strip().splitlines()[-1:])
        raise RuntimeError(f"no duration in {path.name}: {tail}")
    return duration


def verify_clip(path: Path, expected_seconds: float, tolerance: float = 0.5) -> float:
    """Decode the whole file once; return its duration or raise VerifyError.

    Accepts ``|duration - expected| <= max(tolerance, 5 % of expected)``.
    """
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-xerror", "-i", f"file:{path}",
           "-map", "0", "-f", "null", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=DECODE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"decoding took over {DECODE_TIMEOUT_S} s") from None
    log = proc.stderr
    if proc.returncode != 0:
        tail = " ".join(log.strip().splitlines()[-1:])
        raise VerifyError(f"does not decode: {tail}")
    duration = _duration(log)
    if duration is None:
        raise VerifyError("no duration in the file")
    if not re.search(r"Stream #\S+.*: Audio:", log):
        raise VerifyError("no audio stream", permanent=True)
    if abs(duration - expected_seconds) > max(tolerance, 0.05 * expected_seconds):
        raise VerifyError(f"duration {duration:.2f} s, expected {expected_seconds:.2f} s")
    return duration
