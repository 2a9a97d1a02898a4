"""Tiny checkpoints in the Model Zoo's format: the official Scenic trees (names, shapes and
train-state layouts of ``av_mae/vivit_multimodal.py`` and ``av_mae/mbt.py``) at any size,
filled with seeded random values and written as Flax msgpack.

Written from the official layout alone, not from our modules, so importing one tests our
importer against the authors' names and shapes. Layouts: the pretraining trainer's
``optimizer/target`` (with ``optimizer/state`` Adam moments, ``global_step``, ``rng``) and
the finetuning trainer's ``params`` (with ``opt_state``, ``global_step``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avmae.models.objectives import MODALITY_SETS
from avmae.zoo import flax_msgpack

KEYS = {"video": "rgb", "audio": "spectrogram"}


def _block(rng: np.random.Generator, d: int, heads: int, mlp: int) -> dict:
    hd = d // heads
    r = lambda *shape: rng.normal(0, 0.2, shape).astype(np.float32)   # noqa: E731
    attention = {n: {"kernel": r(d, heads, hd), "bias": r(heads, hd)} for n in ("query", "key", "value")}
    attention["out"] = {"kernel": r(heads, hd, d), "bias": r(d)}
    return {"LayerNorm_0": {"scale": 1 + r(d), "bias": r(d)},
            "MultiHeadDotProductAttention_0": attention,
            "LayerNorm_1": {"scale": 1 + r(d), "bias": r(d)},
            "MlpBlock_0": {"Dense_0": {"kernel": r(d, mlp), "bias": r(mlp)},
                           "Dense_1": {"kernel": r(mlp, d), "bias": r(d)}}}


def _transformer(rng, n: int, d: int, heads: int, mlp: int, suffix: str = "") -> dict:
    tree = {f"encoderblock_{i}{suffix}": _block(rng, d, heads, mlp) for i in range(n)}
    tree["encoder_norm"] = {"scale": (1 + rng.normal(0, 0.2, d)).astype(np.float32),
                            "bias": rng.normal(0, 0.2, d).astype(np.float32)}
    return tree


def _embedding(rng, modality: str, patch, d: int, channels: int = 1) -> dict:
    shape = (*patch, 3, d) if modality == "video" else (*patch, channels, d)
    return {"kernel": rng.normal(0, 0.05, shape).astype(np.float32), "bias": rng.normal(0, 0.1, d).astype(np.float32)}


def avmae_tree(encoder: dict, decoder: dict, encoder_strategy: str, decoder_strategy: str, joint_layers: int,
               video_patch, audio_patch, modalities=("audio", "video"), seed: int = 0) -> dict:
    """The parameters of ``ViViTMultiMaskedAutoencoder`` (strategies in our names)."""
    rng = np.random.default_rng(seed)
    d, n, h, mlp = encoder["width"], encoder["depth"], encoder["heads"], encoder["mlp_dim"]
    patches = {"video": video_patch, "audio": audio_patch}
    tree = {f"embedding_{KEYS[m]}": _embedding(rng, m, patches[m], d) for m in modalities}
    if encoder_strategy in ("early", "shared"):
        tree["Transformer"] = _transformer(rng, n, d, h, mlp)
    else:
        split = n - joint_layers if encoder_strategy == "mid" else n
        for m in modalities:
            tree[f"Transformer_{KEYS[m]}"] = _transformer(rng, split, d, h, mlp)
        if encoder_strategy == "mid":
            tree["Transformer_concat"] = _transformer(rng, joint_layers, d, h, mlp)
    dd = decoder["width"]
    for m in modalities:
        out = int(np.prod(patches[m])) * (3 if m == "video" else 1)
        tree[f"decoder_projection_{KEYS[m]}"] = {"kernel": rng.normal(0, 0.1, (d, dd)).astype(np.float32),
                                                 "bias": rng.normal(0, 0.1, dd).astype(np.float32)}
        tree[f"mask_token_{KEYS[m]}"] = rng.normal(0, 0.2, (1, 1, dd)).astype(np.float32)
        tree[f"output_projection_{KEYS[m]}"] = {"kernel": rng.normal(0, 0.1, (dd, out)).astype(np.float32),
                                                "bias": rng.normal(0, 0.1, out).astype(np.float32)}
    dec = (decoder["depth"], dd, decoder["heads"], decoder["mlp_dim"])
    if decoder_strategy == "separate":
        for m in modalities:
            tree[f"Decoder_{KEYS[m]}"] = _transformer(rng, *dec)
    else:
        tree["Decoder"] = _transformer(rng, *dec)
    return tree


def mbt_tree(encoder: dict, classes: int, modalities, video_patch, audio_patch, bottlenecks: int = 4,
             audio_channels: int = 1, seed: int = 0) -> dict:
    """The parameters of the AV-MAE project's ``MBT`` (``modalities``: ours, video first)."""
    rng = np.random.default_rng(seed)
    d, n, h, mlp = encoder["width"], encoder["depth"], encoder["heads"], encoder["mlp_dim"]
    tree = {}
    if "video" in modalities:
        tree["embedding"] = _embedding(rng, "video", video_patch, d)
    if "audio" in modalities:
        tree["embedding_spectrogram"] = _embedding(rng, "audio", audio_patch, d, audio_channels)
    transformer = _transformer(rng, n, d, h, mlp)
    if set(modalities) == {"audio", "video"}:
        transformer.update({f"encoderblock_{i}_spec": _block(rng, d, h, mlp) for i in range(n)})
    tree["Transformer"] = transformer
    tree["bottleneck"] = rng.normal(0, 0.02, (1, bottlenecks, d)).astype(np.float32)  # also when unimodal
    tree["ProjectionHeadAndClassifier_0"] = {"output_projection": {
        "kernel": rng.normal(0, 0.1, (d, classes)).astype(np.float32),
        "bias": rng.normal(0, 0.1, classes).astype(np.float32)}}
    return tree


def _map_leaves(tree: dict, fn) -> dict:
    return {k: _map_leaves(v, fn) if isinstance(v, dict) else fn(v) for k, v in tree.items()}


def write_checkpoint(params: dict, path: str | Path, layout: str) -> None:
    """``params`` as a train state: ``pretrain`` (flax.optim Adam: ``optimizer/target`` and a
    ``{grad_ema, grad_sq_ema}`` pair per leaf) or ``finetune`` (optax: ``params`` and
    ``opt_state``), the way the official trainers save them."""
    zeros = np.zeros_like
    if layout == "pretrain":
        adam = _map_leaves(params, lambda v: {"grad_ema": zeros(v), "grad_sq_ema": zeros(v)})
        state = {"global_step": 1000, "rng": np.zeros(2, np.uint32), "model_state": {}, "accum_train_time": 0.0,
                 "optimizer": {"target": params, "state": {"step": np.int64(1000), "param_states": adam}}}
    elif layout == "finetune":
        state = {"global_step": 1000, "params": params, "model_state": {}, "rng": np.zeros(2, np.uint32),
                 "opt_state": {"0": {"trace": _map_leaves(params, zeros)}}, "metadata": {"chrono": {}}}
    else:
        raise ValueError(f"layout must be 'pretrain' or 'finetune', got {layout!r}")
    flax_msgpack.write(state, path)


def write_model(spec: dict, classes: int | None, path: str | Path, seed: int = 0) -> None:
    """A released model's stand-in at ``spec``'s size: a pretrained AV-MAE (``spec["model"]``:
    the run's model settings) or, with ``modality``, a finetuned MBT of ``classes`` classes."""
    m = spec["model"]
    if spec.get("modality") is None:
        tree = avmae_tree(m["encoder"], m["decoder"], m["encoder_strategy"], m["decoder_strategy"],
                          m.get("joint_layers", 0), m["video_patch"], m["audio_patch"], m["modalities"], seed)
        write_checkpoint(tree, path, "pretrain")
        return
    if classes is None:
        raise ValueError(f"{path}: a finetuned stand-in needs its target dataset's class count")
    tree = mbt_tree(m["encoder"], classes, MODALITY_SETS[spec["modality"]], m["video_patch"], m["audio_patch"],
                    spec["finetune"]["mbt"]["bottlenecks"], seed=seed)
    write_checkpoint(tree, path, "finetune")
