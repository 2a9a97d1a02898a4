"""Official list files: fetched once from their URL, identified by their SHA-256.

``fetch`` downloads a list (https:// or file://) to its configured path through a
temporary file, so an interrupted transfer leaves nothing that looks complete, and
checks it against an expected SHA-256 when the config gives one. ``describe`` records
which exact list a run used (path, size, SHA-256, source URL) whether it was fetched or
is a local copy the user provided.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from avmae.io import atomic_path

CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (lists: SHA-256; EPIC videos: md5)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def fetch(url: str, out: str | Path, sha256: str | None = None, retries: int = 3,
          backoff: float = 5.0, timeout: float = 60.0) -> str:
    """Download ``url`` to ``out``; returns its SHA-256. A mismatch with ``sha256`` keeps nothing."""
    out = Path(out)
    for attempt in range(retries + 1):
        try:
            with atomic_path(out) as tmp:
                with urllib.request.urlopen(url, timeout=timeout) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                got = file_digest(tmp)
                if sha256 and got != sha256.lower():
                    raise ValueError(f"{url}: SHA-256 {got} differs from the expected {sha256} "
                                     f"(config); {out} was not written")
            return got
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            if attempt == retries:
                raise OSError(f"{url}: cannot fetch the list for {out} ({e})") from e
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def describe(path: str | Path, url: str | None = None) -> dict:
    """What identifies a list file: path, bytes, SHA-256 and (when known) its source URL."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: list file not found (fetch it, or point the config at a local copy)")
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": file_digest(path), "url": url}
