"""AS-500K: a class-balanced subset of AS-2M, drawn by a documented deterministic recipe.

The paper finetunes on MBT's "more balanced" 508,994-clip subset of AudioSet, whose list
was never published. Our recipe (deterministic given the list and the seed):

1. Count each class over the full list; a clip's *rarity* is the count of its rarest label.
2. Order clips by rarity (rarest first), ties broken by ``blake2b(f"{seed}:{id}")``, so
   the order does not depend on row order.
3. A pass with cap ``K`` walks that order and keeps a clip when each of its labels has been
   kept fewer than ``K`` times so far. Clips of rare classes come first and are all kept;
   frequent classes (Speech, Music) stop at ``K``.
4. ``K`` is the cap found by bisection over ``[1, max class count + 1]``: a pass with ``K``
   keeps at least ``size`` clips, and the pass with the next lower probed cap keeps fewer.
   The subset is the first ``size`` clips that pass keeps.

:func:`balance_stats` describes the class distribution before and after.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from avmae.acquire.lists import Clip


def _tiebreak(seed: int, clip_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{clip_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()


def _keep(order: list[tuple[int, ...]], n_classes: int, cap: int, size: int) -> list[int]:
    """Positions (in ``order``) a pass with ``cap`` keeps, stopping at ``size``."""
    counts = [0] * n_classes
    kept = []
    for pos, labels in enumerate(order):
        if all(counts[c] < cap for c in labels):
            for c in labels:
                counts[c] += 1
            kept.append(pos)
            if len(kept) == size:
                break
    return kept


def balance_stats(clips: list[Clip]) -> dict:
    """Clip count and the spread of per-class counts (a multi-label clip counts per label)."""
    counts = Counter(label for clip in clips for label in clip.labels)
    values = np.array(sorted(counts.values()), dtype=float)
    p = values / values.sum()
    return {
        "clips": len(clips),
        "classes": len(counts),
        "labels_per_clip": float(values.sum() / max(len(clips), 1)),
        "class_count": {"min": int(values[0]), "median": float(np.median(values)),
                        "max": int(values[-1])},
        "max_over_min": float(values[-1] / values[0]),
        # 1.0 when every class has as many clips as every other
        "normalised_entropy": float(-(p * np.log(p)).sum() / np.log(len(p))) if len(p) > 1 else 1.0,
        "most_common": counts.most_common(5),
    }


def draw_balanced(clips: list[Clip], size: int, seed: int = 0) -> tuple[list[Clip], dict]:
    """The subset of ``size`` clips (in list order) and ``{cap, before, after, ...}``."""
    if not 0 < size <= len(clips):
        raise ValueError(f"cannot draw {size} clips from a list of {len(clips)}")
    freq = Counter(label for clip in clips for label in clip.labels)
    index = {label: i for i, label in enumerate(sorted(freq))}
    ranked = sorted(range(len(clips)), key=lambda i: (
        min(freq[label] for label in clips[i].labels), _tiebreak(seed, clips[i].id)))
    order = [tuple(index[label] for label in set(clips[i].labels)) for i in ranked]
    lo, hi = 0, max(freq.values()) + 1  # a pass with hi keeps every clip
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if len(_keep(order, len(index), mid, size)) >= size:
            hi = mid
        else:
            lo = mid
    chosen = sorted(ranked[pos] for pos in _keep(order, len(index), hi, size))
    subset = [clips[i] for i in chosen]
    return subset, {"size": size, "seed": seed, "cap": hi, "before": balance_stats(clips),
                    "after": balance_stats(subset)}
