"""Finetuning a pretrained AV-MAE on audio, video or both, then multi-view evaluation.

The model is MBT (``avmae.models.mbt``) for every modality set: two streams with
bottleneck fusion for audiovisual input, a plain ViT (AST / unfactorised ViViT) for one
modality, initialised from the pretrained encoder by ``init_mbt_from_avmae``. The head
(single-label, multi-label or verb+noun) and the metrics follow the dataset's label
kind, read from the features' ``meta.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from avmae.acquire.lists import read_clips
from avmae.data.augment import Augment, mixup
from avmae.data.dataset import AVClipDataset, ClipSubset
from avmae.io import write_json, write_run_config
from avmae.models.avmae import ModelConfig
from avmae.models.mbt import MBT, init_mbt_from_avmae, mbt_for
from avmae.models.objectives import MODALITY_SETS
from avmae.train import engine as eng
from avmae.train.evaluate import ids_digest, predict
from avmae.train.loop import Trainer
from avmae.train.metrics import mean_average_precision, top1, verb_noun_action
from avmae.train.pretrain import steps_per_epoch


def dataset(features_dir, split: str, stage: dict, train: bool, seed: int, modality: str) -> AVClipDataset:
    """The ``split``'s clips as the ``modality`` model reads them (only its inputs loaded)."""
    inp = stage["input"]
    return AVClipDataset(features_dir, split, inp["video_frames"], inp["video_stride"], inp["crop"],
                         inp["audio_frames"], train=train, num_clips=stage["eval_clips"], seed=seed,
                         num_crops=stage.get("eval_crops", 1),
                         augment=stage.get("augment"),  # finetune.augment; None: crop + flip
                         video_decode=stage["video_decode"], modalities=MODALITY_SETS[modality],
                         audio=inp)  # audio_window, audio_norm (avmae.data.audio)


def targets(batch: dict, kind: str):
    """The loss targets of a batch for a head kind (see ``avmae.models.heads``)."""
    if kind == "multi":
        return batch["labels"]
    if kind == "verb_noun":
        return {"verb": batch["verb"], "noun": batch["noun"]}
    return batch["label"]


def class_counts(model: MBT):
    """``num_classes`` for ``mixup``: an int, or per verb/noun head."""
    spec = model.head_spec
    return dict(zip(("verb", "noun"), spec.classes)) if spec.kind == "verb_noun" else spec.classes[0]


def make_loss(model: MBT, engine, stage: dict, seed: int, epoch_of):
    """The training loss of a batch, as the official MBT trainer computes it.

    Each modality's logits are scored against their own targets and the losses averaged
    (evaluation averages the logits instead). With ``augment.mixup_alpha`` > 0 the batch
    is mixed with its reverse, with one lambda per modality (``augment.mixup``), so each
    modality's targets are mixed with its own lambda. The lambdas are drawn from a seed
    of (run seed, epoch, clips of the batch): a resumed run draws the same ones.
    """
    alpha = Augment.from_config(stage.get("augment")).mixup_alpha
    kind, smoothing = model.head_spec.kind, stage["label_smoothing"]

    def loss_fn(b):
        inputs = {m: b.get(m) for m in ("audio", "video")}
        labels = targets(b, kind)
        per_modality = {m: labels for m in model.modalities}
        if alpha > 0:
            rng = np.random.default_rng([seed, epoch_of(), *b["index"].tolist()])
            mixed = mixup(inputs["audio"], inputs["video"], labels, alpha, rng, class_counts(model))
            inputs = {m: mixed[m] for m in inputs}
            per_modality = {m: mixed["targets"][m] for m in model.modalities}
        logits = engine({m: inputs[m] for m in model.modalities}, per_modality=True)
        losses = [model.loss(logits[m], per_modality[m], smoothing) for m in model.modalities]
        return sum(losses) / len(losses)
    return loss_fn


def scores(model: MBT, logits: np.ndarray, data: AVClipDataset) -> dict:
    """The paper's metrics of per-clip ``logits`` against the test clips' labels."""
    kind, t = model.head_spec.kind, data.targets
    if kind == "single":
        return {"top1": top1(logits, t["label"])}
    if kind == "multi":
        return {"mAP": mean_average_precision(logits, t["labels"])}
    verb, noun = model.head_spec.split(torch.from_numpy(logits))
    return verb_noun_action(verb.numpy(), noun.numpy(), t["verb"], t["noun"])


def evaluate(model: MBT, data: AVClipDataset, stage: dict, device, dtype) -> dict:
    """Metrics over the test clips, logits averaged over ``eval_clips`` x ``eval_crops`` views per clip."""
    per_clip = predict(model, data, stage["micro_batch_size"], stage["num_workers"], device, dtype)
    return {**scores(model, per_clip, data), "test_clips": len(data.index),
            "test_ids_sha256": ids_digest(data.keys())}


def run(settings: dict, features_dir: str | Path, pretrained: str | Path, modality: str,
        out_dir: str | Path, train_ids: str | Path | None = None) -> dict:
    """Finetune ``pretrained`` (an AV-MAE ``model.pt``) on ``modality`` in {audio, video, av};
    ``train_ids``: a clip list (e.g. AS-500K) restricting the training clips."""
    if modality not in MODALITY_SETS:
        raise ValueError(f"modality must be one of {sorted(MODALITY_SETS)}, got {modality!r}")
    out_dir = Path(out_dir)
    rank, world = eng.setup_distributed()
    stage = settings["finetune"]
    torch.manual_seed(settings["seed"] + rank)
    clips = dataset(features_dir, "train", stage, train=True, seed=settings["seed"], modality=modality)
    train_set = clips
    if train_ids is not None:
        train_set = ClipSubset(clips, [(c.id, c.start) for c in read_clips(train_ids)], str(train_ids))
    test_set = dataset(features_dir, "test", stage, train=False, seed=settings["seed"], modality=modality)
    steps = steps_per_epoch(len(train_set), stage, world, features_dir)

    labels = clips.label_space
    model = mbt_for(settings, labels.num_classes, modality, labels.kind, stage["drop_path"])
    try:
        state = torch.load(pretrained, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError) as e:   # truncated or not a state dict (a missing file names itself)
        raise ValueError(f"{pretrained}: cannot read the pretrained model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); rerun its pretraining or fetch it again") from None
    init_mbt_from_avmae(model, state, ModelConfig.from_dict(settings["model"]), stage["mbt"]["transfer"])
    engine, ds_config = eng.initialize(model, stage, steps * stage["epochs"], world, stage["layer_decay"])
    trainer = Trainer(engine, train_set, stage, steps, out_dir, settings, rank, world, settings["seed"],
                      f"finetune {modality}")
    start = time.time()
    state = trainer.fit(make_loss(model, engine, stage, settings["seed"], lambda: trainer.state["epoch"]))
    seconds = time.time() - start
    dtype = torch.bfloat16 if engine.bfloat16_enabled() else torch.float32
    metrics = {"modality": modality, "loss_curve": state["curve"], "train_clips": len(train_set),
               "steps": state["step"], "skipped_batches": state["skipped"],
               "resumed_at_steps": state["resumed_at"],
               "epochs": stage["epochs"], "train_seconds": seconds, "world_size": world,
               "eval_clips": stage["eval_clips"], "eval_crops": test_set.num_crops,
               "train_subset": None if train_ids is None else {
                   "list": str(train_ids), "missing_clips": train_set.missing},
               **evaluate(engine.module, test_set, stage, engine.device, dtype)}
    if rank == 0:
        write_run_config(out_dir, settings, deepspeed=ds_config, features=str(features_dir),
                         pretrained=str(pretrained), modality=modality)
        write_json(out_dir / "metrics.json", metrics)
    return metrics
