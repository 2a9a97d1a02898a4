"""The audiovisual masked autoencoder (paper Sec. 3) and its configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .fusion import FusionTransformer
from .masking import gather_tokens, random_masking
from .tokenizers import AudioPatches, VideoTubelets
from .vit import init_weights, sincos_1d

MODALITIES = ("audio", "video")


@dataclass(frozen=True)
class TransformerSize:
    width: int
    depth: int
    heads: int
    mlp_dim: int


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the network's shape; built from the config's ``model`` section."""

    encoder: TransformerSize
    decoder: TransformerSize
    encoder_strategy: str = "mid"
    decoder_strategy: str = "shared"
    joint_layers: int = 2
    video_patch: tuple[int, int, int] = (2, 16, 16)
    audio_patch: tuple[int, int] = (16, 16)
    mask_ratio: dict = field(default_factory=lambda: {"audio": 0.5, "video": 0.9})
    loss_weight: dict = field(default_factory=lambda: {"audio": 0.5, "video": 0.5})
    norm_targets: bool = False
    drop_path: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["encoder"] = TransformerSize(**d["encoder"])
        d["decoder"] = TransformerSize(**d["decoder"])
        d["video_patch"] = tuple(d.get("video_patch", cls.video_patch))
        d["audio_patch"] = tuple(d.get("audio_patch", cls.audio_patch))
        return cls(**d)


def make_tokenizers(cfg: ModelConfig) -> nn.ModuleDict:
    return nn.ModuleDict({
        "audio": AudioPatches(cfg.audio_patch, cfg.encoder.width),
        "video": VideoTubelets(cfg.video_patch, cfg.encoder.width),
    })


def make_encoder(cfg: ModelConfig, drop_path: float = 0.0) -> FusionTransformer:
    e = cfg.encoder
    return FusionTransformer(list(MODALITIES), cfg.encoder_strategy, e.width, e.depth, e.heads,
                             e.mlp_dim, cfg.joint_layers, drop_path)


def embed(tokenizers: nn.ModuleDict, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tokenize each modality and add its fixed 1D sinusoidal positions (no modality embedding)."""
    out = {}
    for m, x in inputs.items():
        t = tokenizers[m](x)
        out[m] = t + sincos_1d(t.shape[1], t.shape[2], t.device, t.dtype)
    return out


class AVMAE(nn.Module):
    """Masked autoencoder over audio and video with a configurable fusion strategy.

    ``forward`` returns the joint-reconstruction loss (MSE on masked tokens only,
    per-element mean = squared error divided by the patch dimension, modality
    weights from config) and a dict of diagnostics.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.encoder_strategy == "separate" and cfg.decoder_strategy == "separate":
            raise ValueError("encoder 'separate' with decoder 'separate' is two unrelated MAEs "
                             "(paper Sec. 3.3); choose decoder 'early' or 'shared'")
        if cfg.decoder_strategy == "mid":
            raise ValueError("decoder strategy must be one of 'early', 'separate', 'shared'")
        self.cfg = cfg
        self.tokenizers = make_tokenizers(cfg)
        self.encoder = make_encoder(cfg)
        d = cfg.decoder
        self.decoder_embed = nn.ModuleDict({m: nn.Linear(cfg.encoder.width, d.width) for m in MODALITIES})
        self.mask_token = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, d.width)) for m in MODALITIES})
        self.decoder = FusionTransformer(list(MODALITIES), cfg.decoder_strategy, d.width, d.depth, d.heads,
                                         d.mlp_dim)
        self.head = nn.ModuleDict({m: nn.Linear(d.width, self.tokenizers[m].patch_dim) for m in MODALITIES})
        init_weights(self)
        for m in MODALITIES:
            nn.init.normal_(self.mask_token[m], std=0.02)
            nn.init.zeros_(self.head[m].weight)
            nn.init.zeros_(self.head[m].bias)

    def targets(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for m, x in inputs.items():
            t = self.tokenizers[m].patchify(x)
            if self.cfg.norm_targets:
                t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True, unbiased=False) + 1e-6).sqrt()
            out[m] = t
        return out

    def forward(self, inputs: dict[str, torch.Tensor], generator: torch.Generator | None = None):
        tokens = embed(self.tokenizers, inputs)
        keep, mask, visible = {}, {}, {}
        for m, t in tokens.items():
            keep[m], mask[m] = random_masking(t.shape[0], t.shape[1], self.cfg.mask_ratio[m], t.device, generator)
            visible[m] = gather_tokens(t, keep[m])
        encoded = self.encoder(visible)
        pred = self.decoder(self._unshuffle(encoded, keep, mask))
        pred = {m: self.head[m](x) for m, x in pred.items()}
        targets = self.targets(inputs)
        losses = {m: masked_mse(pred[m], targets[m], mask[m]) for m in pred}
        loss = sum(self.cfg.loss_weight[m] * losses[m] for m in losses)
        return loss, {"losses": losses, "pred": pred, "mask": mask}

    def _unshuffle(self, encoded, keep, mask) -> dict[str, torch.Tensor]:
        """Full-length decoder sequences: projected visible tokens in place, mask tokens elsewhere."""
        out = {}
        for m, e in encoded.items():
            e = self.decoder_embed[m](e)
            b, n = mask[m].shape
            z = self.mask_token[m].expand(b, n, -1).clone()
            z.scatter_(1, keep[m].unsqueeze(-1).expand(-1, -1, e.shape[-1]), e)
            out[m] = z + sincos_1d(n, z.shape[-1], z.device, z.dtype)
        return out


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked tokens only, averaged over the patch dimension."""
    per_token = (pred.float() - target.float()).pow(2).mean(-1)
    weights = mask.float()
    return (per_token * weights).sum() / weights.sum().clamp(min=1.0)
