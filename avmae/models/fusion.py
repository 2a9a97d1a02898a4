"""One transformer, four ways to fuse modalities (paper Sec. 3.2-3.3, Fig. 2).

Every strategy is ``split`` layers run on each modality's own sequence followed by
``joint`` layers run on their concatenation:

=========  =================  ==============  ==============
strategy   split layers       split weights   joint layers
=========  =================  ==============  ==============
early      0                  -               depth
separate   depth              per modality    0
shared     depth              tied            0
mid        depth - S          per modality    S
=========  =================  ==============  ==============

The same class serves as encoder and as decoder ("early", "separate", "shared").
It accepts any subset of its modalities, so one pretrained encoder also runs on
audio alone or video alone for unimodal finetuning.
"""

from __future__ import annotations

import torch
from torch import nn

from .vit import Stack

STRATEGIES = ("early", "separate", "shared", "mid")


def split_joint_depths(strategy: str, depth: int, joint_layers: int) -> tuple[int, int]:
    """(split depth, joint depth) of a strategy."""
    if strategy == "early":
        return 0, depth
    if strategy in ("separate", "shared"):
        return depth, 0
    if strategy == "mid":
        if not 1 <= joint_layers < depth:
            raise ValueError(f"mid-fusion needs 1 <= joint_layers < depth, got S={joint_layers}, depth={depth}")
        return depth - joint_layers, joint_layers
    raise ValueError(f"unknown fusion strategy {strategy!r}; expected one of {STRATEGIES}")


class FusionTransformer(nn.Module):
    """Transformer over a dict of modality token sequences; returns the same dict shape."""

    def __init__(self, modalities: list[str], strategy: str, width: int, depth: int, heads: int,
                 mlp_dim: int, joint_layers: int = 2, drop_path: float = 0.0):
        super().__init__()
        self.modalities = list(modalities)
        self.strategy = strategy
        split, joint = split_joint_depths(strategy, depth, joint_layers)
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]

        def stack(n_layers: int, offset: int) -> nn.Module:
            return Stack(width, heads, mlp_dim, rates[offset:offset + n_layers])

        def norm() -> nn.Module:
            return nn.LayerNorm(width, eps=1e-6)

        self.split = nn.ModuleDict()
        self.split_norm = nn.ModuleDict()
        if split:   # each split stack ends in its LayerNorm, also before joint layers (as official)
            names = ["shared"] if strategy == "shared" else self.modalities
            self.split.update({m: stack(split, 0) for m in names})
            self.split_norm.update({m: norm() for m in names})
        self.joint = stack(joint, split) if joint else None
        self.joint_norm = norm() if joint else None

    def _split_key(self, modality: str) -> str:
        return "shared" if self.strategy == "shared" else modality

    def forward(self, tokens: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        unknown = set(tokens) - set(self.modalities)
        if unknown:
            raise KeyError(f"modalities {sorted(unknown)} not in this model's {self.modalities}")
        names = [m for m in self.modalities if m in tokens]
        out = {m: tokens[m] for m in names}
        if self.split:
            for m, x in out.items():
                key = self._split_key(m)
                out[m] = self.split_norm[key](self.split[key](x))
        if self.joint is None:
            return out
        lengths = [out[m].shape[1] for m in names]
        joint = self.joint_norm(self.joint(torch.cat([out[m] for m in names], dim=1)))
        return dict(zip(names, joint.split(lengths, dim=1)))
