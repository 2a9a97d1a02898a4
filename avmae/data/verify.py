"""Check a downloaded clip: it decodes, it has an audio stream, its duration is as expected."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from avmae.data.ffmpeg import ffmpeg_exe

DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
DECODE_TIMEOUT_S = 120


class VerifyError(Exception):
    """A clip failed verification. ``permanent``: the source lacks something (no audio), so
    downloading it again would not help."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


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
    match = DURATION.search(log)
    if not match:
        raise VerifyError("no duration in the file")
    hours, minutes, seconds = match.groups()
    duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if not re.search(r"Stream #\S+.*: Audio:", log):
        raise VerifyError("no audio stream", permanent=True)
    if abs(duration - expected_seconds) > max(tolerance, 0.05 * expected_seconds):
        raise VerifyError(f"duration {duration:.2f} s, expected {expected_seconds:.2f} s")
    return duration
