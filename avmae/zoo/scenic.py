"""The authors' Scenic parameter trees (``scenic/projects/av_mae``) mapped onto our modules.

Two trees, one per released kind:

- **AV-MAE** (pretraining, ``ViViTMultiMaskedAutoencoder``): ``embedding_{rgb,spectrogram}``,
  the encoder ``Transformer_rgb`` / ``Transformer_spectrogram`` (separate, or mid-fusion's
  split part) / ``Transformer_concat`` (mid-fusion's joint part) / ``Transformer`` (early
  fusion or shared: the same tree, told apart only by the config), ``decoder_projection_*``,
  ``mask_token_*``, ``Decoder`` (shared or early) / ``Decoder_{rgb,spectrogram}``,
  ``output_projection_*``. Each transformer is ``encoderblock_{i}`` + ``encoder_norm``.
- **MBT** (finetuning, ``av_mae/mbt.py``): ``embedding`` (video), ``embedding_spectrogram``,
  ``bottleneck``, ``Transformer/encoderblock_{i}`` (the first modality: video when both),
  ``Transformer/encoderblock_{i}_spec`` (audio beside video), one ``Transformer/encoder_norm``
  over both streams (copied into each of our per-stream norms: a LayerNorm is per token),
  and ``ProjectionHeadAndClassifier_0/output_projection``, shared by the streams.

Layout conversions: Dense kernels (in, out) are transposed; attention ``query/key/value``
kernels (D, heads, head_dim) are flattened head-major into our fused qkv rows, ``out``
(heads, head_dim, D) likewise; 3D conv kernels (t, h, w, C, D) and 2D (time, mel, C, D)
become (D, C, ...). A spectrogram embedding over C identical channels (VGGSound finetuning
tiles the log-mel to 3) is summed over C: the same function of a 1-channel input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

KEYS = {"video": "rgb", "audio": "spectrogram"}   # our modality -> the official key


class TreeMismatch(ValueError):
    """A tree that does not map exactly onto the model: names what differs."""


@dataclass
class Mapping:
    """Our parameter -> (the official leaf path, the array in our layout)."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def put(self, ours: str, leaf: str, value: np.ndarray) -> None:
        self.tensors[ours] = value
        self.sources[ours] = leaf
        self.used.add(leaf)


def params_of(tree: dict) -> tuple[dict, str]:
    """The parameter tree of a train state and where it sat: ``params`` (the finetuning
    trainer's optax state) or ``optimizer/target`` (the pretraining trainer's flax.optim)."""
    if "params" in tree and isinstance(tree["params"], dict):
        return tree["params"], "params"
    target = tree.get("optimizer", {}).get("target") if isinstance(tree.get("optimizer"), dict) else None
    if isinstance(target, dict):
        if isinstance(target.get("params"), dict):   # pre-Linen layout
            return target["params"], "optimizer/target/params"
        return target, "optimizer/target"
    raise TreeMismatch(f"no parameters: neither 'params' nor 'optimizer/target' among the top-level keys "
                       f"{sorted(tree)}")


def _leaf(tree: dict, path: str) -> np.ndarray:
    node = tree
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise TreeMismatch(f"the checkpoint lacks {path!r}")
        node = node[part]
    return np.asarray(node, dtype=np.float32)


def blocks_of(tree: dict, prefix: str, suffix: str = "") -> int:
    """How many ``encoderblock_{i}{suffix}`` children ``prefix`` has (0 if it is absent)."""
    node = tree.get(prefix, {})
    n = 0
    while f"encoderblock_{n}{suffix}" in node:
        n += 1
    return n


def _block(mapping: Mapping, tree: dict, src: str, dst: str) -> None:
    """One official EncoderBlock at ``src`` onto our ``Block`` at ``dst``."""
    att = f"{src}/MultiHeadDotProductAttention_0"
    q, k, v = (_leaf(tree, f"{att}/{n}/kernel") for n in ("query", "key", "value"))
    d = q.shape[0]
    mapping.put(f"{dst}.attn.qkv.weight", f"{att}/query|key|value/kernel",
                np.concatenate([w.reshape(d, -1).T for w in (q, k, v)]))
    mapping.put(f"{dst}.attn.qkv.bias", f"{att}/query|key|value/bias",
                np.concatenate([_leaf(tree, f"{att}/{n}/bias").reshape(-1) for n in ("query", "key", "value")]))
    mapping.used.update(f"{att}/{n}/{p}" for n in ("query", "key", "value") for p in ("kernel", "bias"))
    out = _leaf(tree, f"{att}/out/kernel")
    mapping.put(f"{dst}.attn.proj.weight", f"{att}/out/kernel", out.reshape(-1, out.shape[-1]).T)
    mapping.put(f"{dst}.attn.proj.bias", f"{att}/out/bias", _leaf(tree, f"{att}/out/bias"))
    for norm, ours in (("LayerNorm_0", "norm1"), ("LayerNorm_1", "norm2")):
        _norm(mapping, tree, f"{src}/{norm}", f"{dst}.{ours}")
    for dense, ours in (("Dense_0", "mlp.0"), ("Dense_1", "mlp.2")):
        _dense(mapping, tree, f"{src}/MlpBlock_0/{dense}", f"{dst}.{ours}")


def _norm(mapping: Mapping, tree: dict, src: str, dst: str) -> None:
    mapping.put(f"{dst}.weight", f"{src}/scale", _leaf(tree, f"{src}/scale"))
    mapping.put(f"{dst}.bias", f"{src}/bias", _leaf(tree, f"{src}/bias"))


def _dense(mapping: Mapping, tree: dict, src: str, dst: str) -> None:
    mapping.put(f"{dst}.weight", f"{src}/kernel", _leaf(tree, f"{src}/kernel").T)
    mapping.put(f"{dst}.bias", f"{src}/bias", _leaf(tree, f"{src}/bias"))


def _stack(mapping: Mapping, tree: dict, src: str, dst: str, norm_dst: str, suffix: str = "") -> None:
    for i in range(blocks_of(tree, src, suffix)):
        _block(mapping, tree, f"{src}/encoderblock_{i}{suffix}", f"{dst}.blocks.{i}")
    if norm_dst:
        _norm(mapping, tree, f"{src}/encoder_norm", norm_dst)


def _embedding(mapping: Mapping, tree: dict, src: str, modality: str) -> None:
    kernel = _leaf(tree, f"{src}/kernel")
    if modality == "video":   # (t, h, w, C, D) -> (D, C, t, h, w)
        weight = kernel.transpose(4, 3, 0, 1, 2)
    else:                     # (time, mel, C, D) -> (D, 1, time, mel), identical channels summed
        weight = kernel.sum(axis=2, keepdims=True).transpose(3, 2, 0, 1)
    mapping.put(f"tokenizers.{modality}.proj.weight", f"{src}/kernel", weight)
    mapping.put(f"tokenizers.{modality}.proj.bias", f"{src}/bias", _leaf(tree, f"{src}/bias"))


# ------------------------------------------------------------------------------- AV-MAE
def avmae_architecture(tree: dict) -> dict:
    """What an AV-MAE tree says about its model: modalities, encoder strategy (early and
    shared are the same tree: ``early|shared``), S, depths, widths, patch sizes."""
    modalities = [m for m in ("audio", "video") if f"embedding_{KEYS[m]}" in tree]
    if not modalities:
        raise TreeMismatch("not an AV-MAE tree: no embedding_rgb or embedding_spectrogram")
    split = {m: blocks_of(tree, f"Transformer_{KEYS[m]}") for m in modalities}
    joint_concat, plain = blocks_of(tree, "Transformer_concat"), blocks_of(tree, "Transformer")
    if plain:
        strategy, depth, joint = "early|shared", plain, 0
    elif joint_concat:
        strategy, depth, joint = "mid", max(split.values()) + joint_concat, joint_concat
    else:
        strategy, depth, joint = "separate", max(split.values()), 0
    first = next(p for p in ("Transformer", "Transformer_concat", *(f"Transformer_{KEYS[m]}" for m in modalities))
                 if blocks_of(tree, p))
    q = _leaf(tree, f"{first}/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel")
    mlp = _leaf(tree, f"{first}/encoderblock_0/MlpBlock_0/Dense_0/kernel")
    targets = [m for m in modalities if f"output_projection_{KEYS[m]}" in tree]
    if "Decoder" in tree:
        decoder, dec_first = "shared|early", "Decoder"
    else:
        decoder, dec_first = "separate", f"Decoder_{KEYS[targets[0]]}"
    dq = _leaf(tree, f"{dec_first}/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel")
    dmlp = _leaf(tree, f"{dec_first}/encoderblock_0/MlpBlock_0/Dense_0/kernel")
    arch = {"modalities": modalities, "encoder_strategy": strategy, "joint_layers": joint,
            "encoder": {"width": q.shape[0], "depth": depth, "heads": q.shape[1], "mlp_dim": mlp.shape[1]},
            "decoder": {"width": dq.shape[0], "depth": blocks_of(tree, dec_first), "heads": dq.shape[1],
                        "mlp_dim": dmlp.shape[1]},
            "decoder_strategy": decoder, "targets": targets}
    if "video" in modalities:
        arch["video_patch"] = list(_leaf(tree, "embedding_rgb/kernel").shape[:3])
    if "audio" in modalities:
        arch["audio_patch"] = list(_leaf(tree, "embedding_spectrogram/kernel").shape[:2])
    return arch


def map_avmae(tree: dict, cfg) -> Mapping:
    """The AV-MAE ``tree`` in our ``AVMAE(cfg)`` parameter names (``cfg``: ModelConfig)."""
    mapping = Mapping()
    for m in cfg.modalities:
        _embedding(mapping, tree, f"embedding_{KEYS[m]}", m)
    s = cfg.encoder_strategy
    if s in ("separate", "mid"):
        for m in cfg.modalities:
            _stack(mapping, tree, f"Transformer_{KEYS[m]}", f"encoder.split.{m}", f"encoder.split_norm.{m}")
    if s == "mid":
        _stack(mapping, tree, "Transformer_concat", "encoder.joint", "encoder.joint_norm")
    if s == "early":
        _stack(mapping, tree, "Transformer", "encoder.joint", "encoder.joint_norm")
    if s == "shared":
        _stack(mapping, tree, "Transformer", "encoder.split.shared", "encoder.split_norm.shared")
    for m in cfg.source_modalities:
        _dense(mapping, tree, f"decoder_projection_{KEYS[m]}", f"decoder_embed.{m}")
    for m in cfg.target_modalities:
        mapping.put(f"mask_token.{m}", f"mask_token_{KEYS[m]}", _leaf(tree, f"mask_token_{KEYS[m]}"))
        _dense(mapping, tree, f"output_projection_{KEYS[m]}", f"head.{m}")
    d = cfg.decoder_strategy
    if d == "separate":
        for m in cfg.target_modalities:
            _stack(mapping, tree, f"Decoder_{KEYS[m]}", f"decoder.split.{m}", f"decoder.split_norm.{m}")
    elif d == "shared":
        _stack(mapping, tree, "Decoder", "decoder.split.shared", "decoder.split_norm.shared")
    else:
        _stack(mapping, tree, "Decoder", "decoder.joint", "decoder.joint_norm")
    return mapping


# ---------------------------------------------------------------------------------- MBT
def mbt_architecture(tree: dict) -> dict:
    """What an MBT tree says: modalities, depth, widths, patch sizes, classes."""
    modalities = [m for m, key in (("audio", "embedding_spectrogram"), ("video", "embedding")) if key in tree]
    if not modalities or "Transformer" not in tree:
        raise TreeMismatch("not an MBT tree: no embedding/embedding_spectrogram and Transformer")
    depth = blocks_of(tree, "Transformer")
    q = _leaf(tree, "Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel")
    mlp = _leaf(tree, "Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel")
    head = _leaf(tree, "ProjectionHeadAndClassifier_0/output_projection/kernel")
    arch = {"modalities": modalities, "encoder": {"width": q.shape[0], "depth": depth, "heads": q.shape[1],
                                                  "mlp_dim": mlp.shape[1]},
            "classes": head.shape[1]}
    if len(modalities) == 2 and blocks_of(tree, "Transformer", "_spec") != depth:
        raise TreeMismatch(f"MBT tree with {depth} video blocks but {blocks_of(tree, 'Transformer', '_spec')} "
                           "audio (_spec) blocks")
    if "bottleneck" in tree:
        arch["bottlenecks"] = _leaf(tree, "bottleneck").shape[1]
    if "video" in modalities:
        arch["video_patch"] = list(_leaf(tree, "embedding/kernel").shape[:3])
    if "audio" in modalities:
        arch["audio_patch"] = list(_leaf(tree, "embedding_spectrogram/kernel").shape[:2])
        arch["audio_channels"] = _leaf(tree, "embedding_spectrogram/kernel").shape[2]
    return arch


def map_mbt(tree: dict, mbt) -> Mapping:
    """The MBT ``tree`` in our ``MBT`` parameter names. With one modality the official
    ``bottleneck`` exists but is unused by its forward too: it is recorded as used."""
    mapping = Mapping()
    if "video" in mbt.modalities:
        _embedding(mapping, tree, "embedding", "video")
    if "audio" in mbt.modalities:
        _embedding(mapping, tree, "embedding_spectrogram", "audio")
    for m in mbt.modalities:
        suffix = "_spec" if m == "audio" and len(mbt.modalities) == 2 else ""
        _stack(mapping, tree, "Transformer", f"streams.{m}", "", suffix)
        _norm(mapping, tree, "Transformer/encoder_norm", f"norm.{m}")
    _dense(mapping, tree, "ProjectionHeadAndClassifier_0/output_projection", "head")
    if mbt.bottleneck is not None:
        mapping.put("bottleneck", "bottleneck", _leaf(tree, "bottleneck"))
    elif "bottleneck" in tree:
        mapping.used.add("bottleneck")
    return mapping


def check(mapping: Mapping, state: dict[str, torch.Tensor], leaves: set[str]) -> None:
    """Refuse, naming them, leaves left unused, parameters left unset, shapes that differ."""
    unused = sorted(leaves - mapping.used)
    unset = sorted(set(state) - set(mapping.tensors))
    shapes = [f"{k}: checkpoint {tuple(v.shape)} ({mapping.sources[k]}), ours {tuple(state[k].shape)}"
              for k, v in mapping.tensors.items() if k in state and tuple(v.shape) != tuple(state[k].shape)]
    def listed(names: list[str]) -> str:
        return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")

    problems = []
    if unused:
        problems.append(f"{len(unused)} checkpoint leaves map to nothing: {listed(unused)}")
    if unset:
        problems.append(f"{len(unset)} of our parameters have no leaf: {listed(unset)}")
    if shapes:
        problems.append("shapes differ: " + "; ".join(shapes[:8]))
    if problems:
        raise TreeMismatch("; ".join(problems))
