"""Finetuning model: the pretrained tokenizers and encoder, plus one classifier per modality.

Each modality's encoded tokens are global-average-pooled and classified by its own
linear head; the logits of the modalities fed are averaged (as MBT does). With one
modality this is AST (audio) or an unfactorised ViViT (video). MBT-style bottleneck
fusion is a separate model (see the model-family issue).
"""

from __future__ import annotations

import torch
from torch import nn

from .avmae import MODALITIES, ModelConfig, embed, make_encoder, make_tokenizers
from .vit import init_weights


class AVClassifier(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int, modalities: list[str], drop_path: float = 0.0):
        super().__init__()
        bad = set(modalities) - set(MODALITIES)
        if bad or not modalities:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {modalities}")
        self.modalities = [m for m in MODALITIES if m in modalities]
        self.tokenizers = make_tokenizers(cfg)
        self.encoder = make_encoder(cfg, drop_path)
        w = cfg.encoder.width
        self.head = nn.ModuleDict({m: nn.Sequential(nn.LayerNorm(w, eps=1e-6), nn.Linear(w, num_classes))
                                   for m in self.modalities})
        init_weights(self)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = embed(self.tokenizers, {m: inputs[m] for m in self.modalities})
        encoded = self.encoder(tokens)
        logits = [self.head[m](encoded[m].mean(dim=1)) for m in self.modalities]
        return torch.stack(logits).mean(0)

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
