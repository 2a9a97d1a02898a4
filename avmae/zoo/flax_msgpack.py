"""Flax's checkpoint format (``flax.serialization.msgpack_serialize``), read and written
with ``msgpack`` and numpy alone.

A checkpoint is one msgpack map: nested string-keyed maps (tuples and lists become maps
keyed ``"0"``, ``"1"``, ...), with arrays as msgpack extension objects:

- code 1, an ndarray: the msgpack of ``[shape, dtype name, C-order bytes]``;
- code 3, a numpy scalar: the msgpack of ``[dtype name, bytes]``;
- code 2, a complex number (never in a model; refused).

Arrays over Flax's chunk size are maps ``{"__msgpack_chunked_array__": True, "shape":
{...}, "chunks": {...}}`` of flat pieces. ``bfloat16`` (no numpy dtype) is widened to
float32 exactly.
"""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np

from avmae.io import atomic_path

NDARRAY, NATIVE_COMPLEX, NPSCALAR = 1, 2, 3
CHUNKED = "__msgpack_chunked_array__"


class CheckpointFormatError(ValueError):
    """A file that is not a readable Flax msgpack checkpoint."""


def _array(dtype: str, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "bfloat16":   # the upper half of a float32
        return (np.frombuffer(data, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape).copy()


def _ext(code: int, payload: bytes):
    if code == NDARRAY:
        shape, dtype, data = msgpack.unpackb(payload, raw=False)
        return _array(dtype, data, tuple(shape))
    if code == NPSCALAR:
        dtype, data = msgpack.unpackb(payload, raw=False)
        return _array(dtype, data, ())
    raise CheckpointFormatError(f"msgpack extension type {code} is not an array")


def _unchunk(tree):
    if isinstance(tree, dict):
        if CHUNKED in tree:
            shape = tuple(tree["shape"][str(i)] for i in range(len(tree["shape"])))
            chunks = [tree["chunks"][str(i)] for i in range(len(tree["chunks"]))]
            return np.concatenate(chunks).reshape(shape)
        return {k: _unchunk(v) for k, v in tree.items()}
    return tree


def read(path: str | Path) -> dict:
    """The checkpoint at ``path`` as nested dicts of numpy arrays (and plain scalars)."""
    path = Path(path)
    try:
        tree = msgpack.unpackb(path.read_bytes(), ext_hook=_ext, raw=False, strict_map_key=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as e:
        raise CheckpointFormatError(f"{path}: not a Flax msgpack checkpoint ({type(e).__name__}: {e}); "
                                    "truncated or corrupt? fetch it again") from None
    if not isinstance(tree, dict):
        raise CheckpointFormatError(f"{path}: a Flax checkpoint is a map, this holds {type(tree).__name__}")
    return _unchunk(tree)


def _pack(obj):
    if isinstance(obj, np.ndarray):
        return msgpack.ExtType(NDARRAY, msgpack.packb((obj.shape, obj.dtype.name, obj.tobytes("C"))))
    if isinstance(obj, np.generic):
        return msgpack.ExtType(NPSCALAR, msgpack.packb((obj.dtype.name, obj.tobytes())))
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def write(tree: dict, path: str | Path) -> None:
    """Write nested dicts of numpy arrays as Flax would (``msgpack_serialize``), atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(msgpack.packb(tree, default=_pack, strict_types=True))


def leaves(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten to ``{"a/b/c": array}`` (Flax's path notation)."""
    out = {}
    for k, v in tree.items():
        path = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(leaves(v, path))
        else:
            out[path] = v
    return out
