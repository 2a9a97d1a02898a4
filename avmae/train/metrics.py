"""Evaluation metrics computed from per-clip logits."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * accuracy_score(labels, logits.argmax(axis=1))


def average_views(logits: np.ndarray, clip_index: np.ndarray, num_clips: int) -> np.ndarray:
    """Average the logits of every view of each clip; rows come out in clip order."""
    out = np.zeros((num_clips, logits.shape[1]), dtype=np.float64)
    counts = np.bincount(clip_index, minlength=num_clips)
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} clips have no evaluated view")
    np.add.at(out, clip_index, logits)
    return out / counts[:, None]
