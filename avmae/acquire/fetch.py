"""Official files (lists, released checkpoints): fetched once from their URL, identified
by their SHA-256.

``fetch`` downloads a file (https:// or file://) to its configured path through a
partial file that a rerun resumes, so an interrupted transfer leaves nothing that looks
complete, and checks it against an expected SHA-256 when the config gives one. ``describe`` records
which exact list a run used (path, size, SHA-256, source URL) whether it was fetched or
is a local copy the user provided.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (lists: SHA-256; EPIC videos: md5)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def fetch(url: str, out: str | Path, sha256: str | None = None, retries: int = 3,
          backoff: float = 5.0, timeout: float = 60.0, what: str = "the list") -> str:
    """Download ``url`` to ``out``; returns its SHA-256. A mismatch with ``sha256`` keeps nothing.

    Bytes arrive in ``.{name}.part`` beside ``out``; a later call (or retry) asks the
    server for the rest with an HTTP Range request, and starts over when the server
    answers with the whole file. ``out`` appears only complete and verified.
    """
    out = Path(out)
    part = out.with_name(f".{out.name}.part")
    out.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout)
            got = file_digest(part)
            if sha256 and got != sha256.lower():
                part.unlink()
                raise ValueError(f"{url}: SHA-256 {got} differs from the expected {sha256} "
                                 f"(config); {out} was not written")
            part.replace(out)
            return got
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            if isinstance(e, urllib.error.HTTPError) and e.code in (403, 404, 410):
                raise OSError(f"{url}: cannot fetch {what} for {out} (HTTP {e.code}: {e.reason})") from e
            if attempt == retries:
                raise OSError(f"{url}: cannot fetch {what} for {out} ({e})") from e
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def _transfer(url: str, part: Path, timeout: float) -> None:
    """Append the bytes of ``url`` that ``part`` lacks; a short transfer raises ConnectionError."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        src = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416:       # range not satisfiable: the part holds it all, or is stale
            raise
        part.unlink()
        src = urllib.request.urlopen(url, timeout=timeout)
    with src:
        resumed = have and getattr(src, "status", None) == 206
        expected = src.headers.get("Content-Length")
        with open(part, "ab" if resumed else "wb") as dst:
            copied = _copy(src, dst)
    if expected is not None and copied != int(expected):
        raise ConnectionError(f"transfer ended after {copied} of {expected} bytes (resumable)")


def _copy(src, dst) -> int:
    copied = 0
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        copied += len(chunk)
    return copied


def describe(path: str | Path, url: str | None = None) -> dict:
    """What identifies a list file: path, bytes, SHA-256 and (when known) its source URL."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: list file not found (fetch it, or point the config at a local copy)")
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": file_digest(path), "url": url}
