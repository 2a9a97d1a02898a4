"""Evaluation metrics computed from per-clip logits."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score


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


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """AudioSet mAP in percent: the mean over classes of sklearn's average precision.

    Classes with no positive clip in ``targets`` have no defined AP and are left out,
    as in the AudioSet literature.
    """
    present = targets.sum(axis=0) > 0
    if not present.any():
        raise ValueError("no class has a positive clip")
    return 100.0 * average_precision_score(targets[:, present], scores[:, present], average="macro")


def verb_noun_action(verb_logits: np.ndarray, noun_logits: np.ndarray, verbs: np.ndarray,
                     nouns: np.ndarray) -> dict[str, float]:
    """EPIC-KITCHENS top-1 in percent; an action is right when both verb and noun are."""
    v = verb_logits.argmax(axis=1) == verbs
    n = noun_logits.argmax(axis=1) == nouns
    return {"verb_top1": 100.0 * v.mean(), "noun_top1": 100.0 * n.mean(), "action_top1": 100.0 * (v & n).mean()}
