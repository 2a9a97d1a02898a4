"""Classification heads and their losses: single-label, multi-label and verb+noun.

=========  =====================  ======================================  ===================
kind       datasets               loss                                    labels
=========  =====================  ======================================  ===================
single     VGGSound               softmax cross-entropy                   [B] class ids
multi      AudioSet               sigmoid BCE, summed over classes,       [B, C] 0/1
                                  mean over the batch
verb_noun  EPIC-KITCHENS-100      one softmax CE per head, mean of the    [B, 2] (verb, noun)
                                  two (equal weights)
=========  =====================  ======================================  ===================

Soft targets (mixup) are accepted in place of labels: [B, C] probabilities, and a
``{"verb", "noun"}`` dict of them for verb+noun; label smoothing then applies to them
as ``target * (1 - eps) + eps / C``.

A head's logits are one [B, sum(classes)] tensor (verb logits, then noun logits), so
averaging over modalities or test views works unchanged for every kind; ``split``
separates them. Label smoothing follows Scenic: targets become
``onehot * (1 - eps) + eps / C`` per softmax or sigmoid group of ``C`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

HEAD_KINDS = ("single", "multi", "verb_noun")


@dataclass(frozen=True)
class HeadSpec:
    """What a classifier predicts: ``kind`` and the class count of each of its heads."""

    kind: str
    classes: tuple[int, ...]

    @classmethod
    def of(cls, kind: str, num_classes: int | tuple[int, ...] | list[int]) -> HeadSpec:
        if kind not in HEAD_KINDS:
            raise ValueError(f"head must be one of {HEAD_KINDS}, got {kind!r}")
        classes = (num_classes,) if isinstance(num_classes, int) else tuple(num_classes)
        wanted = 2 if kind == "verb_noun" else 1
        if len(classes) != wanted or min(classes) < 1:
            raise ValueError(f"head {kind!r} needs {wanted} positive class count(s) in num_classes, "
                             f"got {num_classes}")
        return cls(kind, classes)

    @property
    def outputs(self) -> int:
        return sum(self.classes)

    def layer(self, width: int) -> nn.Module:
        """Linear classifier on pooled, normalised features, starting at zero (as MBT's
        ``output_projection``)."""
        linear = nn.Linear(width, self.outputs)
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)
        return linear

    def split(self, logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-head logits: one tensor, or (verb, noun)."""
        return logits.split(list(self.classes), dim=-1)

    def loss(self, logits: torch.Tensor, labels, label_smoothing: float = 0.0) -> torch.Tensor:
        """Loss against hard labels (table above) or soft targets (mixup): [B, C] floats for
        ``single``/``multi``, ``{"verb": [B, V], "noun": [B, N]}`` for ``verb_noun``."""
        logits = logits.float()
        if self.kind == "multi":
            c = self.classes[0]
            target = labels.float() * (1.0 - label_smoothing) + label_smoothing / c
            return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[0]
        if self.kind == "single":
            return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        verb, noun = self.split(logits)
        if isinstance(labels, dict):
            verb_t, noun_t = labels["verb"], labels["noun"]
        else:
            verb_t, noun_t = labels[:, 0], labels[:, 1]
        return 0.5 * (F.cross_entropy(verb, verb_t, label_smoothing=label_smoothing)
                      + F.cross_entropy(noun, noun_t, label_smoothing=label_smoothing))
