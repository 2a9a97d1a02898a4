"""Finetuning a pretrained encoder on audio, video or both, then multi-view evaluation."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from avmae.data.dataset import AVClipDataset
from avmae.io import write_json, write_run_config
from avmae.models.avmae import ModelConfig
from avmae.models.classifier import AVClassifier
from avmae.train import engine as eng
from avmae.train.evaluate import ids_digest, predict
from avmae.train.loop import Trainer
from avmae.train.metrics import top1
from avmae.train.pretrain import steps_per_epoch

MODALITY_SETS = {"audio": ["audio"], "video": ["video"], "av": ["audio", "video"]}


def dataset(features_dir, split: str, stage: dict, train: bool, seed: int) -> AVClipDataset:
    inp = stage["input"]
    return AVClipDataset(features_dir, split, inp["video_frames"], inp["video_stride"], inp["crop"],
                         inp["audio_frames"], train=train, num_clips=stage["eval_clips"], seed=seed)


def evaluate(model: AVClassifier, data: AVClipDataset, stage: dict, device, dtype) -> dict:
    """Top-1 over the test clips, logits averaged over ``eval_clips`` views per clip."""
    per_clip = predict(model, data, stage["micro_batch_size"], stage["num_workers"], device, dtype)
    labels = data.index.label_index.to_numpy()
    return {"top1": top1(per_clip, labels), "test_clips": len(labels),
            "test_ids_sha256": ids_digest(data.index.id)}


def run(settings: dict, features_dir: str | Path, pretrained: str | Path, modality: str,
        out_dir: str | Path) -> dict:
    """Finetune ``pretrained`` (an AV-MAE ``model.pt``) on ``modality`` in {audio, video, av}."""
    if modality not in MODALITY_SETS:
        raise ValueError(f"modality must be one of {sorted(MODALITY_SETS)}, got {modality!r}")
    out_dir = Path(out_dir)
    rank, world = eng.setup_distributed()
    stage = settings["finetune"]
    torch.manual_seed(settings["seed"] + rank)
    train_set = dataset(features_dir, "train", stage, train=True, seed=settings["seed"])
    test_set = dataset(features_dir, "test", stage, train=False, seed=settings["seed"])
    steps = steps_per_epoch(len(train_set), stage, world, features_dir)

    model = AVClassifier(ModelConfig.from_dict(settings["model"]), len(train_set.classes),
                         MODALITY_SETS[modality], drop_path=stage["drop_path"])
    model.load_pretrained(torch.load(pretrained, map_location="cpu", weights_only=True))
    engine, ds_config = eng.initialize(model, stage, steps * stage["epochs"], world)
    trainer = Trainer(engine, train_set, stage, steps, out_dir, settings, rank, world, settings["seed"],
                      f"finetune {modality}")
    smoothing = stage["label_smoothing"]

    def loss_fn(b):
        logits = engine({m: b[m] for m in model.modalities})
        return F.cross_entropy(logits.float(), b["label"], label_smoothing=smoothing)

    start = time.time()
    state = trainer.fit(loss_fn)
    seconds = time.time() - start
    dtype = torch.bfloat16 if engine.bfloat16_enabled() else torch.float32
    metrics = {"modality": modality, "loss_curve": state["curve"], "train_clips": len(train_set),
               "steps": state["step"], "skipped_batches": state["skipped"],
               "resumed_at_steps": state["resumed_at"],
               "epochs": stage["epochs"], "train_seconds": seconds, "world_size": world,
               "eval_clips": stage["eval_clips"],
               **evaluate(engine.module, test_set, stage, engine.device, dtype)}
    if rank == 0:
        write_run_config(out_dir, settings, deepspeed=ds_config, features=str(features_dir),
                         pretrained=str(pretrained), modality=modality)
        write_json(out_dir / "metrics.json", metrics)
    return metrics
