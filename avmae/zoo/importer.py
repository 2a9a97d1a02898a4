"""Released checkpoints into ``model.pt``: read, check against the settings, map, record;
and the evaluation of a released finetuned model with the official test protocol."""

from __future__ import annotations

from pathlib import Path

import torch

from avmae.acquire.fetch import file_digest
from avmae.io import atomic_path, write_json
from avmae.models.avmae import AVMAE, ModelConfig
from avmae.models.mbt import mbt_for
from avmae.models.objectives import MODALITY_SETS
from avmae.zoo import flax_msgpack, scenic


def _compare(pairs: dict) -> None:
    """Refuse settings the checkpoint contradicts, naming the config key."""
    wrong = [f"{key}: settings {want!r}, checkpoint {got!r}" for key, (want, got) in pairs.items()
             if want != got and not (isinstance(got, str) and want in got.split("|"))]
    if wrong:
        raise scenic.TreeMismatch("the checkpoint is another architecture: " + "; ".join(wrong))


def _size(ours, found: dict) -> tuple[list[int], list[int]]:
    """(settings, checkpoint) of a transformer's width, depth, heads and MLP width."""
    keys = ("width", "depth", "heads", "mlp_dim")
    return [getattr(ours, k) for k in keys], [found[k] for k in keys]


def _check_avmae(cfg: ModelConfig, arch: dict) -> None:
    pairs = {"model.modalities": (list(cfg.modalities), arch["modalities"]),
             "model.encoder_strategy": (cfg.encoder_strategy, arch["encoder_strategy"]),
             "model.decoder_strategy": (cfg.decoder_strategy, arch["decoder_strategy"]),
             "sizes.<size>.encoder": _size(cfg.encoder, arch["encoder"]),
             "sizes.<size>.decoder": _size(cfg.decoder, arch["decoder"])}
    if cfg.encoder_strategy == "mid":
        pairs["model.joint_layers"] = (cfg.joint_layers, arch["joint_layers"])
    _check_patches(cfg, arch, pairs)
    _compare(pairs)


def _check_patches(cfg: ModelConfig, arch: dict, pairs: dict) -> None:
    if "video_patch" in arch:
        pairs["model.video_patch"] = (list(cfg.video_patch), arch["video_patch"])
    if "audio_patch" in arch:
        pairs["model.audio_patch"] = (list(cfg.audio_patch), arch["audio_patch"])


def import_checkpoint(checkpoint: str | Path, settings: dict, out: str | Path, kind: str | None = None,
                      modality: str | None = None, head: str = "single", url: str | None = None) -> dict:
    """Import ``checkpoint`` into ``out/model.pt`` + ``out/import.json``; returns the record."""
    tree = flax_msgpack.read(checkpoint)
    params, where = scenic.params_of(tree)
    found = "mbt" if "ProjectionHeadAndClassifier_0" in params else "avmae"
    if kind and kind != found:
        raise scenic.TreeMismatch(f"expected an {kind} tree, found an {found} tree ({where})")
    cfg = ModelConfig.from_dict(settings["model"])
    if found == "avmae":
        arch = scenic.avmae_architecture(params)
        _check_avmae(cfg, arch)
        model = AVMAE(cfg)
        mapping = scenic.map_avmae(params, cfg)
    else:
        arch = scenic.mbt_architecture(params)
        modality = modality or ("av" if len(arch["modalities"]) == 2 else arch["modalities"][0])
        pairs = {"--modality": (sorted(MODALITY_SETS[modality]), sorted(arch["modalities"])),
                 "sizes.<size>.encoder": _size(cfg.encoder, arch["encoder"])}
        if modality == "av":
            pairs["finetune.mbt.bottlenecks"] = (settings["finetune"]["mbt"]["bottlenecks"], arch.get("bottlenecks"))
        _check_patches(cfg, arch, pairs)
        _compare(pairs)
        model = mbt_for(settings, arch["classes"], modality, head)
        mapping = scenic.map_mbt(params, model)
    state = model.state_dict()
    scenic.check(mapping, state, set(flax_msgpack.leaves(params)))
    state.update({k: torch.from_numpy(v.copy()).to(state[k].dtype) for k, v in mapping.tensors.items()})
    out = Path(out)
    record = {"kind": found, "source": {"path": str(checkpoint), "url": url, "sha256": file_digest(checkpoint),
                                        "bytes": Path(checkpoint).stat().st_size, "params_at": where},
              "architecture": arch, "modality": modality, "head": head if found == "mbt" else None,
              "leaf_of_parameter": dict(sorted(mapping.sources.items()))}
    with atomic_path(out / "model.pt") as tmp:
        torch.save(state, tmp)
    write_json(out / "import.json", record)
    return record


def evaluate_released(settings: dict, features_dir: str | Path, model_pt: str | Path, modality: str,
                      out_dir: str | Path) -> dict:
    """A released finetuned MBT on the test split, ``eval_clips`` x ``eval_crops`` views per clip,
    on the GPU when there is one (in bf16 under ``finetune.precision`` auto or bf16)."""
    from avmae.train import finetune
    from avmae.train.engine import use_bf16

    stage = settings["finetune"]
    test_set = finetune.dataset(features_dir, "test", stage, train=False, seed=settings["seed"], modality=modality)
    labels = test_set.label_space
    model = mbt_for(settings, labels.num_classes, modality, labels.kind)
    state = torch.load(model_pt, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise SystemExit(f"{model_pt}: does not fit the {modality} MBT of these settings and this dataset's "
                         f"{labels.num_classes} classes: {str(e).splitlines()[0]}") from None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if use_bf16(stage["precision"]) else torch.float32
    metrics = {"modality": modality, "model": str(model_pt), "eval_clips": stage["eval_clips"],
               "eval_crops": test_set.num_crops, "device": str(device), "dtype": str(dtype).split(".")[-1],
               **finetune.evaluate(model.to(device, dtype).eval(), test_set, stage, device, dtype)}
    write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics
