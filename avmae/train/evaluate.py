"""Multi-view evaluation, sharded across ranks.

Each rank predicts a strided share of the (clip, view) items; the shares are gathered
on every rank, so each item is evaluated exactly once, whatever the world size and
whether or not it divides the number of items.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Subset

from avmae.data.dataset import AVClipDataset, make_loader
from avmae.data.frames import finish_batch
from avmae.train.metrics import average_views


@torch.no_grad()
def predict(model, data: AVClipDataset, batch_size: int, num_workers: int, device, dtype) -> np.ndarray:
    """Per-clip logits (views averaged), rows in clip order, on every rank."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    model.eval()
    share = Subset(data, range(rank, len(data), world))
    logits, index = [], []
    for b in make_loader(share, batch_size, num_workers):
        b = finish_batch(b, device)
        x = {m: b[m].to(device, dtype) for m in model.modalities}
        logits.append(model(x).float().cpu().numpy())
        index.append(b["index"].numpy())
    mine = (np.concatenate(index), np.concatenate(logits)) if logits else None
    shares = [None] * world
    if world > 1:
        dist.all_gather_object(shares, mine)
    else:
        shares = [mine]
    shares = [s for s in shares if s is not None]
    all_index = np.concatenate([s[0] for s in shares])
    counts = np.bincount(all_index, minlength=len(data.index))
    if (counts != data.views).any():
        raise RuntimeError(f"evaluation covered clips {counts.min()}..{counts.max()} times, "
                           f"expected {data.views} views each")
    return average_views(np.concatenate([s[1] for s in shares]), all_index, len(data.index))


def ids_digest(keys) -> str:
    """SHA-256 of the evaluated clips' (id, start) keys, in order, as ``id,start`` lines
    (the start as Python writes the float): which clips a number was computed on."""
    return hashlib.sha256("\n".join(f"{vid},{float(start)!r}" for vid, start in keys).encode()).hexdigest()
