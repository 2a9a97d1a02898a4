"""The audiovisual masked autoencoder (paper Sec. 3) and its configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .fusion import FusionTransformer
from .masking import gather_tokens, hidden_indices, random_masking, sample_noise
from .objectives import MODALITIES, OBJECTIVES
from .tokenizers import AudioPatches, VideoTubelets
from .vit import init_weights, sincos_1d


@dataclass(frozen=True)
class TransformerSize:
    width: int
    depth: int
    heads: int
    mlp_dim: int


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the network's shape; built from the config's ``model`` section.

    ``modalities`` is both (AV-MAE) or one (the unimodal "AudioMAE"/"VideoMAE" of Table 3).
    ``objective`` is joint reconstruction or modality inpainting (Sec. 3.4).
    """

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
    objective: str = "joint"
    modalities: tuple[str, ...] = MODALITIES

    def __post_init__(self):
        given = tuple(self.modalities)
        if not given or set(given) - set(MODALITIES) or len(set(given)) != len(given):
            raise ValueError(f"modalities must be one or both of {MODALITIES}, got {given}")
        object.__setattr__(self, "modalities", tuple(m for m in MODALITIES if m in given))
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {tuple(OBJECTIVES)}, got {self.objective!r}")
        if self.objective != "joint" and self.modalities != MODALITIES:
            raise ValueError(f"objective {self.objective!r} reconstructs one modality from the other; "
                             f"it needs modalities {MODALITIES}, got {self.modalities}")

    @property
    def target_modalities(self) -> tuple[str, ...]:
        """Modalities the decoder reconstructs."""
        return self.modalities if self.objective == "joint" else OBJECTIVES[self.objective][0]

    @property
    def source_modalities(self) -> tuple[str, ...]:
        """Modalities whose encoded tokens are projected into the decoder."""
        return self.modalities if self.objective == "joint" else OBJECTIVES[self.objective][1]

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["encoder"] = TransformerSize(**d["encoder"])
        d["decoder"] = TransformerSize(**d["decoder"])
        d["video_patch"] = tuple(d.get("video_patch", cls.video_patch))
        d["audio_patch"] = tuple(d.get("audio_patch", cls.audio_patch))
        d["modalities"] = tuple(d.get("modalities", MODALITIES))
        return cls(**d)


def make_tokenizers(cfg: ModelConfig, modalities=None) -> nn.ModuleDict:
    """Tokenizers of ``modalities`` (default: the model's) at the config's patch sizes and width."""
    make = {"audio": lambda: AudioPatches(cfg.audio_patch, cfg.encoder.width),
            "video": lambda: VideoTubelets(cfg.video_patch, cfg.encoder.width)}
    return nn.ModuleDict({m: make[m]() for m in (modalities or cfg.modalities)})


def make_encoder(cfg: ModelConfig, drop_path: float = 0.0) -> FusionTransformer:
    e = cfg.encoder
    return FusionTransformer(list(cfg.modalities), cfg.encoder_strategy, e.width, e.depth, e.heads,
                             e.mlp_dim, cfg.joint_layers, drop_path)


def embed(tokenizers: nn.ModuleDict, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tokenize each modality and add its fixed 1D sinusoidal positions (no modality embedding)."""
    out = {}
    for m, x in inputs.items():
        t = tokenizers[m](x)
        out[m] = t + sincos_1d(t.shape[1], t.shape[2], t.device, t.dtype)
    return out


def check_pretraining(cfg: ModelConfig) -> None:
    """Refuse the encoder/decoder/objective combinations the paper rules out (Sec. 3.3, 3.4)."""
    if cfg.decoder_strategy == "mid":
        raise ValueError("decoder_strategy must be one of 'early', 'separate', 'shared', got 'mid'")
    if len(cfg.modalities) == 2 and cfg.encoder_strategy == cfg.decoder_strategy == "separate":
        raise ValueError("encoder_strategy 'separate' with decoder_strategy 'separate' is two unrelated MAEs "
                         "(paper Sec. 3.3); choose decoder 'early' or 'shared'")
    if cfg.objective == "joint":
        return
    if cfg.encoder_strategy not in ("early", "mid"):
        raise ValueError(f"objective {cfg.objective!r} needs a cross-modal encoder (encoder_strategy 'early' "
                         f"or 'mid'): with {cfg.encoder_strategy!r} the other modality's tokens carry nothing "
                         "of the target, and the paper reports that training does not converge (Sec. 4.2)")
    if cfg.objective == "inpaint_both" and cfg.decoder_strategy == "early":
        raise ValueError("objective 'inpaint_both' with decoder_strategy 'early' would decode both inpainting "
                         "sequences together, so each target would see its own encoded tokens; "
                         "choose decoder 'shared' or 'separate'")


class AVMAE(nn.Module):
    """Masked autoencoder over audio and/or video with a configurable fusion strategy.

    Objectives (``cfg.objective``):

    * ``joint``: each reconstructed modality's decoder sequence is its full token grid,
      projected visible tokens in place and its mask token elsewhere, with decoder
      positions over that grid.
    * ``inpaint_<m>``: the decoder sequence of target ``m`` is
      ``[proj(encoded visible tokens of the other modality) || mask token of m, once per
      hidden position of m, in increasing position order]``. Every token carries the
      decoder position it has in its own modality's grid: the encoded tokens their
      positions in the other modality, the mask tokens the positions of the patches they
      must reconstruct (a running index over the concatenation would not tell a mask
      token which hidden patch is its own, since the hidden set differs per sample).
      Only the mask-token outputs are predictions; ``inpaint_both`` decodes the two
      sequences separately (decoder ``shared``: the same weights; ``separate``: one
      decoder per target).

      The authors' Scenic code (``av_mae/vivit_multimodal.py``,
      ``unshuffle_tokens_inpainting``) differs: its sequence has the target's length,
      other-modality tokens first and then mask tokens, with positions by running
      index over the target's grid, and it scores the mask-token slots, i.e. always
      the target patches after the first ``k`` (``k`` = visible tokens of the other
      modality), whichever were hidden. We keep each token's own position and score
      exactly the hidden patches.

    ``forward`` returns the loss (MSE over hidden tokens only, each squared error divided
    by the patch dimension) and a dict of diagnostics: per-modality ``losses``; ``pred``,
    [B, n, patch_dim] per reconstructed modality (inpainting fills the hidden positions
    and leaves zeros elsewhere); and the ``mask`` (True = hidden). With two reconstructed
    modalities the losses are weighted by ``cfg.loss_weight``; a single one has weight 1.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        check_pretraining(cfg)
        self.cfg = cfg
        self.tokenizers = make_tokenizers(cfg)
        self.encoder = make_encoder(cfg)
        d = cfg.decoder
        self.decoder_embed = nn.ModuleDict({m: nn.Linear(cfg.encoder.width, d.width) for m in cfg.source_modalities})
        self.mask_token = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, d.width)) for m in cfg.target_modalities})
        self.decoder = FusionTransformer(list(cfg.target_modalities), cfg.decoder_strategy, d.width, d.depth, d.heads,
                                         d.mlp_dim)
        self.head = nn.ModuleDict({m: nn.Linear(d.width, self.tokenizers[m].patch_dim)
                                   for m in cfg.target_modalities})
        init_weights(self)
        for m in cfg.target_modalities:   # mask tokens stay at zero, as the official model's
            nn.init.zeros_(self.head[m].weight)
            nn.init.zeros_(self.head[m].bias)

    def targets(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Patchified reconstruction targets of the reconstructed modalities."""
        out = {}
        for m in self.cfg.target_modalities:
            t = self.tokenizers[m].patchify(inputs[m])
            if self.cfg.norm_targets:
                t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True, unbiased=False) + 1e-6).sqrt()
            out[m] = t
        return out

    def forward(self, inputs: dict[str, torch.Tensor], generator: torch.Generator | None = None,
                seeds: list[int] | None = None, noise: dict[str, torch.Tensor] | None = None):
        """Masks are drawn from ``generator`` (default: the global RNG), per sample from
        ``seeds`` (one per clip, see ``masking.sample_seeds``), or given as ``noise``
        ([B, n] per modality; the lowest ``n - int(ratio n)`` stay visible, as in the
        official ``random_masking``), which lets another implementation's masks be replayed."""
        tokens = embed(self.tokenizers, {m: inputs[m] for m in self.cfg.modalities})
        noise = dict(noise or {})
        if seeds is not None:
            noise = sample_noise(seeds, {m: t.shape[1] for m, t in tokens.items()}, next(iter(tokens.values())).device)
        keep, mask, visible = {}, {}, {}
        for m, t in tokens.items():
            keep[m], mask[m] = random_masking(t.shape[0], t.shape[1], self.cfg.mask_ratio[m], t.device, generator,
                                              noise.get(m))
            visible[m] = gather_tokens(t, keep[m])
        encoded = self.encoder(visible)
        if self.cfg.objective == "joint":
            decoded = self.decoder(self._unshuffle(encoded, keep, mask))
            pred = {m: self.head[m](x) for m, x in decoded.items()}
        else:
            pred = self._inpaint(encoded, keep, mask)
        targets = self.targets(inputs)
        losses = {m: masked_mse(pred[m], targets[m], mask[m]) for m in pred}
        if len(losses) == 1:
            loss = next(iter(losses.values()))
        else:
            loss = sum(self.cfg.loss_weight[m] * losses[m] for m in losses)
        return loss, {"losses": losses, "pred": pred, "mask": mask}

    def _unshuffle(self, encoded, keep, mask) -> dict[str, torch.Tensor]:
        """Full-length decoder sequences: projected visible tokens in place, mask tokens elsewhere."""
        out = {}
        for m in self.cfg.target_modalities:
            e = self.decoder_embed[m](encoded[m])
            b, n = mask[m].shape
            z = self.mask_token[m].to(e.dtype).expand(b, n, -1)
            z = z.scatter(1, keep[m].unsqueeze(-1).expand(-1, -1, e.shape[-1]), e)
            out[m] = z + sincos_1d(n, z.shape[-1], z.device, z.dtype)
        return out

    def _inpaint(self, encoded, keep, mask) -> dict[str, torch.Tensor]:
        """Decode ``[other modality's encoded tokens || target mask tokens]`` per target (see class doc)."""
        sequences, hidden = {}, {}
        for m in self.cfg.target_modalities:
            (o,) = set(self.cfg.modalities) - {m}
            context = self.decoder_embed[o](encoded[o])
            width = context.shape[-1]
            pos_o = sincos_1d(mask[o].shape[1], width, context.device, context.dtype)
            pos_m = sincos_1d(mask[m].shape[1], width, context.device, context.dtype)
            hidden[m] = hidden_indices(mask[m], mask[m].shape[1] - keep[m].shape[1])
            queries = self.mask_token[m].to(context.dtype) + pos_m[hidden[m]]
            sequences[m] = torch.cat([context + pos_o[keep[o]], queries], dim=1)
        decoded = self.decoder(sequences)
        pred = {}
        for m, x in decoded.items():
            p = self.head[m](x[:, -hidden[m].shape[1]:])
            full = p.new_zeros(mask[m].shape + (p.shape[-1],))
            pred[m] = full.scatter(1, hidden[m].unsqueeze(-1).expand(-1, -1, p.shape[-1]), p)
        return pred


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked tokens only, averaged over the patch dimension."""
    per_token = (pred.float() - target.float()).pow(2).mean(-1)
    weights = mask.float()
    return (per_token * weights).sum() / weights.sum().clamp(min=1.0)
