"""AV-MAE pretraining on DeepSpeed: features -> ``model.pt`` + ``metrics.json`` + ``config.yaml``."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from avmae.data.dataset import AVClipDataset
from avmae.io import atomic_path, write_json, write_run_config
from avmae.models.avmae import AVMAE, ModelConfig
from avmae.models.masking import sample_seeds
from avmae.train import engine as eng
from avmae.train.loop import Trainer


def steps_per_epoch(n_clips: int, stage: dict, world: int, where) -> int:
    """Optimizer steps per epoch (the clips left over by the last full batch wait for the next epoch)."""
    steps = n_clips // stage["batch_size"]
    eng.batch_split(stage["batch_size"], stage["micro_batch_size"], world)  # refuse a bad split early
    if steps == 0:
        raise ValueError(f"{where}: {n_clips} training clips are fewer than one batch of {stage['batch_size']}")
    return steps


def train_dataset(features_dir, stage: dict, seed: int) -> AVClipDataset:
    inp = stage["input"]
    return AVClipDataset(features_dir, "train", inp["video_frames"], inp["video_stride"], inp["crop"],
                         inp["audio_frames"], train=True, seed=seed, video_decode=stage["video_decode"],
                         audio=inp)


def export_fp32(engine, path: Path, rank: int) -> None:
    """The consolidated fp32 state dict that finetuning and the tables read, written by
    rank 0: with bf16 or ZeRO, the optimizer's fp32 master weights, gathered from the
    ranks (every rank calls this); otherwise the module's own fp32 weights."""
    state = eng.fp32_weights(engine)
    if rank == 0:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)


def run(settings: dict, features_dir: str | Path, out_dir: str | Path) -> dict:
    """Pretrain one AV-MAE as ``settings`` (``seed``, ``model``, ``pretrain``) says."""
    out_dir = Path(out_dir)
    rank, world = eng.setup_distributed()
    stage = settings["pretrain"]
    torch.manual_seed(settings["seed"] + rank)
    dataset = train_dataset(features_dir, stage, settings["seed"])
    steps = steps_per_epoch(len(dataset), stage, world, features_dir)
    model = AVMAE(ModelConfig.from_dict(settings["model"]))
    engine, ds_config = eng.initialize(model, stage, steps * stage["epochs"], world)
    trainer = Trainer(engine, dataset, stage, steps, out_dir, settings, rank, world, settings["seed"], "pretrain")

    start = time.time()
    def loss_fn(b):  # masks seeded per clip: the same on any number of processes
        seeds = sample_seeds(settings["seed"], trainer.state["epoch"], b["index"])
        return engine({"audio": b["audio"], "video": b["video"]}, seeds=seeds)[0]

    state = trainer.fit(loss_fn)
    seconds = time.time() - start
    metrics = {
        "final_loss": state["curve"][-1], "loss_curve": state["curve"], "epochs": stage["epochs"],
        "steps": state["step"], "skipped_batches": state["skipped"], "resumed_at_steps": state["resumed_at"],
        "train_clips": len(dataset), "world_size": world, "train_seconds": seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    export_fp32(engine, out_dir / "model.pt", rank)
    if rank == 0:
        write_run_config(out_dir, settings, deepspeed=ds_config, features=str(features_dir))
        write_json(out_dir / "metrics.json", metrics)
    return metrics
