"""Check a clip: it is complete, has an audio and a video stream, and lasts as expected.

Two depths:

- :func:`probe_clip`, the cheap check that always runs: the container is complete
  (:func:`incomplete`: for MP4/MOV, every top-level box lies within the file, so a file cut
  short mid-stream is caught whether its ``moov`` index comes first or last), and a
  header read (nothing decoded) gives the duration and the streams: of an MP4/MOV file
  in Python from its ``moov`` box (:func:`iso_header`, well under a millisecond), of
  any other container with ``ffmpeg -i`` (~16 ms of CPU, most of it starting ffmpeg).
- :func:`verify_clip`, the full check of a download: the same, plus decoding every packet.

:func:`media_seconds` reads a media file's duration from its header.
"""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

from avmae.ffmpeg import ffmpeg_exe, first_error

DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
STREAM = re.compile(r"Stream #\S+.*?: (Audio|Video):")
DECODE_TIMEOUT_S = 120
PROBE_TIMEOUT_S = 60
# ISO base media (MP4, MOV, M4A, 3GP): the first box's type
MAX_MOOV = 64 << 20  # a larger index: ask ffmpeg
ISO_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp"}


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


def _header(path: Path, timeout: float) -> subprocess.CompletedProcess:
    """``ffmpeg -i path`` without an output: it reads the header, logs it, decodes nothing."""
    return subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", f"file:{path}"],
                          capture_output=True, text=True, errors="replace",
                          timeout=timeout, check=False)


def media_seconds(path: Path) -> float:
    """A media file's duration from its header (``ffmpeg -i``, nothing decoded); raise
    RuntimeError when ffmpeg finds none."""
    proc = _header(path, DECODE_TIMEOUT_S)
    duration = _duration(proc.stderr)
    if duration is None:
        tail = " ".join(proc.stderr.strip().splitlines()[-1:])
        raise RuntimeError(f"no duration in {path.name}: {tail}")
    return duration


def incomplete(path: Path) -> str | None:
    """Why an MP4/MOV file is incomplete (a top-level box runs past the end of the file, the
    ``moov`` index is missing), or None: complete, or not an ISO base media file (nothing
    is said about other containers). Reads only the box headers."""
    size = path.stat().st_size
    seen: list[bytes] = []
    with path.open("rb") as f:
        offset = 0
        while offset < size:
            f.seek(offset)
            head = f.read(16)
            if len(head) < 8:
                return f"truncated: {size - offset} stray byte(s) at the end (offset {offset})"
            length, kind = struct.unpack(">I4s", head[:8])
            if not seen and kind not in ISO_FIRST_BOXES:
                return None  # not ISO base media: ffmpeg's header read decides alone
            name = kind.decode("latin-1")
            if length == 1:  # 64-bit size follows
                if len(head) < 16:
                    return f"truncated inside the header of box {name!r} at offset {offset}"
                length = struct.unpack(">Q", head[8:16])[0]
            elif length == 0:  # the box extends to the end of the file
                length = size - offset
            if length < 8:
                return f"corrupt: box {name!r} at offset {offset} declares {length} bytes"
            if offset + length > size:
                return (f"truncated: box {name!r} at offset {offset} declares {length} bytes, "
                        f"the file ends {size - offset} bytes after its start")
            seen.append(kind)
            offset += length
    if b"moov" not in seen and b"moof" not in seen:
        return "incomplete: no 'moov' box (the index is missing)"
    return None


def _children(data: bytes, start: int = 0, end: int | None = None):
    """(type, payload start, box end) of the boxes of ``data[start:end]``; stops at a box
    that does not fit."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, start)
        head = 8
        if length == 1:
            if start + 16 > end:
                return
            length, head = struct.unpack_from(">Q", data, start + 8)[0], 16
        elif length == 0:
            length = end - start
        if length < head or start + length > end:
            return
        yield kind, start + head, start + length
        start += length


def _full_box_time(data: bytes, at: int) -> tuple[int, int]:
    """(timescale, duration) of an mvhd or mdhd box whose payload starts at ``at``."""
    if data[at] == 1:
        return struct.unpack_from(">I", data, at + 20)[0], struct.unpack_from(">Q", data, at + 24)[0]
    return struct.unpack_from(">II", data, at + 12)


def iso_header(path: Path) -> tuple[float, list[str]] | None:
    """(duration in seconds, stream kinds) of an MP4/MOV file read from its ``moov`` box in
    Python (what ``ffmpeg -i`` reads, without starting ffmpeg), or None when the file is
    not plain ISO base media (another container, fragmented, no durations): ask ffmpeg.
    Stream kinds: ``video`` and ``audio`` by the tracks' handlers. Call :func:`incomplete`
    first: this assumes the top-level boxes fit."""
    with Path(path).open("rb") as f:
        offset, moov = 0, None
        while True:
            f.seek(offset)
            head = f.read(16)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head[:8])
            size = struct.unpack(">Q", head[8:16])[0] if length == 1 and len(head) == 16 else length
            if kind == b"moov":
                if not 8 <= size <= MAX_MOOV:
                    return None
                f.seek(offset)
                moov = f.read(size)
                break
            if size < 8:  # size 0: the last box, no moov after it
                return None
            offset += size
    try:
        kinds, movie, tracks = [], 0.0, []
        for kind, at, end in _children(moov, 0):
            for child, cat, cend in _children(moov, at, end):
                if child == b"mvhd":
                    scale, duration = _full_box_time(moov, cat)
                    movie = duration / scale if scale else 0.0
                elif child == b"trak":
                    mdia = next(((a, e) for k, a, e in _children(moov, cat, cend) if k == b"mdia"), None)
                    if mdia is None:
                        continue
                    for k, a, e in _children(moov, *mdia):
                        if k == b"hdlr":
                            handler = moov[a + 8:a + 12]
                            kinds += {b"vide": ["video"], b"soun": ["audio"]}.get(handler, [])
                        elif k == b"mdhd":
                            scale, duration = _full_box_time(moov, a)
                            tracks.append(duration / scale if scale else 0.0)
    except struct.error:
        return None
    seconds = movie or max(tracks, default=0.0)
    return (seconds, kinds) if seconds > 0 and kinds else None


def _log_header(log: str) -> tuple[float | None, list[str]]:
    """(duration, stream kinds: audio, video) that ffmpeg logs for its input."""
    return _duration(log), [kind.lower() for kind in STREAM.findall(log)]


def _checked(duration: float | None, kinds: list[str], expected_seconds: float | None,
             tolerance: float) -> float:
    """A clip's duration, once its streams and duration pass; raise VerifyError."""
    if duration is None:
        raise VerifyError("no duration in the file")
    if "audio" not in kinds:
        raise VerifyError("no audio stream", permanent=True)
    if "video" not in kinds:
        raise VerifyError("no video stream", permanent=True)
    if expected_seconds is not None and \
            abs(duration - expected_seconds) > max(tolerance, 0.05 * expected_seconds):
        raise VerifyError(f"duration {duration:.2f} s, expected {expected_seconds:.2f} s")
    return duration


def probe_clip(path: Path, expected_seconds: float | None, tolerance: float = 0.5) -> float:
    """The cheap check (no decoding): the file is complete (:func:`incomplete`), its header
    reads, it has an audio and a video stream, and its duration is ``expected_seconds``
    (when given) within ``max(tolerance, 5 %)``. Return the duration or raise VerifyError."""
    path = Path(path)
    try:
        why = incomplete(path)
    except OSError as e:
        raise VerifyError(f"cannot read: {e}") from None
    if why:
        raise VerifyError(why)
    try:
        header = iso_header(path)
    except OSError as e:
        raise VerifyError(f"cannot read: {e}") from None
    if header is not None:  # MP4/MOV: read in Python, no ffmpeg to start
        return _checked(*header, expected_seconds, tolerance)
    try:
        proc = _header(path, PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"reading the header took over {PROBE_TIMEOUT_S} s") from None
    if "Error opening input" in proc.stderr or "Invalid data found" in proc.stderr:
        tail = " ".join(proc.stderr.strip().splitlines()[-1:])
        raise VerifyError(f"header does not read: {tail}")
    return _checked(*_log_header(proc.stderr), expected_seconds, tolerance)


def verify_clip(path: Path, expected_seconds: float, tolerance: float = 0.5) -> float:
    """The full check: :func:`probe_clip`'s checks, and the whole file decodes. Return its
    duration or raise VerifyError.

    Accepts ``|duration - expected| <= max(tolerance, 5 % of expected)``.
    """
    path = Path(path)
    why = incomplete(path)
    if why:
        raise VerifyError(why)
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "level+info", "-xerror", "-i", f"file:{path}",
           "-map", "0", "-f", "null", "-"]   # level+: error lines are tagged [error]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=DECODE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"decoding took over {DECODE_TIMEOUT_S} s") from None
    log = proc.stderr
    if proc.returncode != 0:   # the first error says what broke; the last is often "Conversion failed!"
        raise VerifyError(f"does not decode: {first_error(log) or f'ffmpeg exited {proc.returncode}'}")
    return _checked(*_log_header(log), expected_seconds, tolerance)
