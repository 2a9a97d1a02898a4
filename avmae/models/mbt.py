"""MBT (Nagrani et al., NeurIPS 2021): the audiovisual finetuning model, and its initialisation
from every pretraining variant (paper Sec. 4.1, Table 3).

Two streams of ViT layers, one per modality, with separate weights. Layers before
``fusion_layer`` run each stream alone. From ``fusion_layer`` on, each layer runs each
stream on ``[its tokens || bottleneck tokens]`` and the bottleneck outputs are averaged
across the streams. Each stream ends in its own LayerNorm and global-average-pool
classifier; the logits are averaged. With one modality this is a plain ViT (AST for
audio, unfactorised ViViT for video). Positions are the fixed 1D sinusoids of
pretraining, computed for the actual token count, so a longer finetuning clip
(32 frames after 16 in pretraining) needs no position resizing.
"""

from __future__ import annotations

import torch
from torch import nn

from .avmae import MODALITIES, ModelConfig, embed, make_tokenizers
from .fusion import split_joint_depths
from .heads import HeadSpec
from .objectives import MODALITY_SETS
from .vit import Stack, init_weights


class MBT(nn.Module):
    """``num_classes`` is an int, or (verbs, nouns) for ``head='verb_noun'`` (see ``heads.py``)."""

    def __init__(self, cfg: ModelConfig, num_classes, modalities: list[str], fusion_layer: int,
                 bottlenecks: int = 4, drop_path: float = 0.0, head: str = "single"):
        super().__init__()
        e = cfg.encoder
        if not modalities or set(modalities) - set(MODALITIES):
            raise ValueError(f"modalities must be one or both of {MODALITIES}, got {modalities}")
        if not 0 <= fusion_layer <= e.depth:
            raise ValueError(f"fusion_layer must be in [0, depth={e.depth}], got {fusion_layer}")
        if bottlenecks < 1:
            raise ValueError(f"bottlenecks must be at least 1, got {bottlenecks}")
        self.modalities = [m for m in MODALITIES if m in modalities]
        self.fusion_layer = fusion_layer
        self.head_spec = HeadSpec.of(head, num_classes)
        self.depth = e.depth
        self.tokenizers = make_tokenizers(cfg, self.modalities)
        rates = [drop_path * i / max(e.depth - 1, 1) for i in range(e.depth)]
        self.streams = nn.ModuleDict({m: Stack(e.width, e.heads, e.mlp_dim, rates) for m in self.modalities})
        self.norm = nn.ModuleDict({m: nn.LayerNorm(e.width, eps=1e-6) for m in self.modalities})
        init_weights(self)
        self.head = self.head_spec.layer(e.width)   # one classifier for every stream, as official MBT
        self.bottleneck = None  # also without fusion layers, where it would be unused
        if len(self.modalities) > 1 and fusion_layer < e.depth:
            self.bottleneck = nn.Parameter(torch.empty(1, bottlenecks, e.width).normal_(std=0.02))

    def forward(self, inputs: dict[str, torch.Tensor], per_modality: bool = False):
        """Logits averaged over the modalities, or (``per_modality``) a dict of each stream's."""
        x = embed(self.tokenizers, {m: inputs[m] for m in self.modalities})
        shared = None
        for i in range(self.depth):
            blocks = {m: self.streams[m].blocks[i] for m in self.modalities}
            if self.bottleneck is None or i < self.fusion_layer:
                x = {m: blocks[m](t) for m, t in x.items()}
                continue
            if shared is None:
                t = x[self.modalities[0]]
                shared = self.bottleneck.to(t.dtype).expand(t.shape[0], -1, -1)
            updates = []
            for m, t in x.items():
                y = blocks[m](torch.cat([t, shared], dim=1))
                x[m], b = y.split([t.shape[1], shared.shape[1]], dim=1)
                updates.append(b)
            shared = torch.stack(updates).mean(0)
        logits = {m: self.head(self.norm[m](t).mean(dim=1)) for m, t in x.items()}
        return logits if per_modality else torch.stack(list(logits.values())).mean(0)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        return self.head_spec.loss(logits, labels, label_smoothing)

    def layer_of(self, name: str) -> int:
        """Depth of a parameter for layer-wise lr decay: 0 for tokenizers, ``i + 1`` for
        block ``i`` of either stream, ``depth + 1`` (the full lr) for norms, the head and
        the bottleneck tokens, which start untrained (as official ``_get_layer_id``)."""
        if name.startswith("tokenizers."):
            return 0
        if name.startswith("streams."):
            return int(name.split(".")[3]) + 1
        return self.depth + 1


def mbt_for(settings: dict, num_classes, modality: str, head: str, drop_path: float = 0.0) -> "MBT":
    """The MBT of a run's ``settings`` (``model`` and ``finetune.mbt``) for ``modality`` (audio,
    video or av) with a ``head`` of ``num_classes``."""
    mbt = settings["finetune"]["mbt"]
    return MBT(ModelConfig.from_dict(settings["model"]), num_classes, MODALITY_SETS[modality],
               fusion_layer=mbt["fusion_layer"], bottlenecks=mbt["bottlenecks"], drop_path=drop_path, head=head)


def encoder_sources(cfg: ModelConfig, stream: str) -> tuple[list[str], str]:
    """State-dict prefixes in a pretrained AV-MAE for ``stream``: one per layer, and the final norm.

    A stream takes the layers its modality passes through in the pretrained encoder:
    its own split layers (``separate``/``mid``), the tied ones (``shared``), the joint
    layers (``early``/``mid``). A modality the pretrained MAE lacks (unimodal MAE) takes
    the layers of the one it has.
    """
    split, _ = split_joint_depths(cfg.encoder_strategy, cfg.encoder.depth, cfg.joint_layers)
    own = stream if stream in cfg.modalities else cfg.modalities[0]
    key = "shared" if cfg.encoder_strategy == "shared" else own
    layers = [f"encoder.split.{key}.blocks.{i}." if i < split else f"encoder.joint.blocks.{i - split}."
              for i in range(cfg.encoder.depth)]
    norm = f"encoder.split_norm.{key}." if split == cfg.encoder.depth else "encoder.joint_norm."
    return layers, norm


TRANSFERS = ("official", "full")


def init_mbt_from_avmae(mbt: MBT, avmae_state_dict: dict[str, torch.Tensor], model_cfg: ModelConfig,
                        transfer: str = "official") -> list[str]:
    """Copy a pretrained AV-MAE (any encoder strategy, or a unimodal MAE) into ``mbt``.

    Each stream gets its own copy of its source layers (so streams initialised from the
    same weights are untied) and its modality's tokenizer when the MAE has one, and its
    final norm from the encoder's. ``transfer`` says which:

    - ``official`` (Scenic ``av_mae/mbt.py``, ``initialise_from_train_state``, which made
      the released models): the audio patch embedding is *not* transferred (the official
      code renames it to a key MBT lacks), and from ``separate`` encoders the final norm
      stays at its initial identity (the official code drops the per-stream norms). Where
      the official code crashes (audio finetuning from ``early`` or ``shared`` encoders,
      audio-only MAEs) it is read with the same two rules.
    - ``full`` (the paper's wording, "initialised from the pretrained encoder"): everything.

    ``model_cfg`` is the pretrained model's config. Returns the MBT keys left at their
    initial values (head, bottleneck tokens, and what ``transfer`` leaves out).
    """
    if transfer not in TRANSFERS:
        raise ValueError(f"transfer must be one of {TRANSFERS}, got {transfer!r}")
    if mbt.depth != model_cfg.encoder.depth:
        raise ValueError(f"MBT depth {mbt.depth} differs from the checkpoint's encoder depth "
                         f"{model_cfg.encoder.depth}")
    official = transfer == "official"
    mapping = {}  # MBT prefix -> checkpoint prefix
    for m in mbt.modalities:
        layers, norm = encoder_sources(model_cfg, m)
        mapping.update({f"streams.{m}.blocks.{i}.": src for i, src in enumerate(layers)})
        if not (official and model_cfg.encoder_strategy == "separate"):
            mapping[f"norm.{m}."] = norm
        if m in model_cfg.modalities and not (official and m == "audio"):
            mapping[f"tokenizers.{m}."] = f"tokenizers.{m}."
    target = mbt.state_dict()
    loaded = set()
    with torch.no_grad():
        for key, value in target.items():
            prefix = next((p for p in mapping if key.startswith(p)), None)
            if prefix is None:
                continue
            src = mapping[prefix] + key[len(prefix):]
            if src not in avmae_state_dict:
                raise ValueError(f"checkpoint lacks {src!r} (for MBT {key!r}); does model_cfg "
                                 f"(encoder_strategy={model_cfg.encoder_strategy!r}) match the checkpoint?")
            if avmae_state_dict[src].shape != value.shape:
                raise ValueError(f"checkpoint {src!r} has shape {tuple(avmae_state_dict[src].shape)}, "
                                 f"MBT {key!r} needs {tuple(value.shape)}")
            value.copy_(avmae_state_dict[src])
            loaded.add(key)
    return [k for k in target if k not in loaded]
