"""Finetuning model: the pretrained tokenizers and encoder, plus one classifier per modality.

Each modality's encoded tokens are global-average-pooled and classified by its own
head; the logits of the modalities fed are averaged (as MBT does). With one modality
this is AST (audio) or an unfactorised ViViT (video). The audiovisual model of the
paper is MBT (``mbt.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from .avmae import ModelConfig, embed, make_encoder, make_tokenizers
from .heads import HeadSpec
from .vit import init_weights


class AVClassifier(nn.Module):
    """``num_classes`` is an int, or (verbs, nouns) for ``head='verb_noun'`` (see ``heads.py``)."""

    def __init__(self, cfg: ModelConfig, num_classes, modalities: list[str], drop_path: float = 0.0,
                 head: str = "single"):
        super().__init__()
        if not modalities or set(modalities) - set(cfg.modalities):
            raise ValueError(f"modalities must be a non-empty subset of the model's {cfg.modalities}, "
                             f"got {modalities}")
        self.modalities = [m for m in cfg.modalities if m in modalities]
        self.head_spec = HeadSpec.of(head, num_classes)
        self.tokenizers = make_tokenizers(cfg)
        self.encoder = make_encoder(cfg, drop_path)
        init_weights(self)
        self.head = nn.ModuleDict({m: self.head_spec.layer(cfg.encoder.width) for m in self.modalities})

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = embed(self.tokenizers, {m: inputs[m] for m in self.modalities})
        encoded = self.encoder(tokens)
        logits = [self.head[m](encoded[m].mean(dim=1)) for m in self.modalities]
        return torch.stack(logits).mean(0)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        return self.head_spec.loss(logits, labels, label_smoothing)

    def load_pretrained(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Copy the tokenizers and encoder from an AV-MAE state dict; returns keys left at init."""
        wanted = {k: v for k, v in state.items() if k.startswith(("tokenizers.", "encoder."))}
        if not wanted:
            raise ValueError("checkpoint holds no 'tokenizers.*' or 'encoder.*' weights")
        missing, unexpected = self.load_state_dict(wanted, strict=False)
        if unexpected:
            raise ValueError(f"checkpoint does not match this encoder: unexpected keys {unexpected[:5]}")
        not_head = [k for k in missing if not k.startswith("head.")]
        if not_head:
            raise ValueError(f"checkpoint does not match this encoder: missing keys {not_head[:5]}")
        return missing
