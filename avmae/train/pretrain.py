"""AV-MAE pretraining on DeepSpeed: features -> ``model.pt`` + ``metrics.json`` + ``config.yaml``."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from avmae.data.dataset import AVClipDataset
from avmae.io import atomic_path, write_json, write_run_config
from avmae.models.avmae import AVMAE, ModelConfig
from avmae.train import engine as eng


def make_loader(dataset, stage: dict, rank: int, world: int, seed: int, shuffle: bool, drop_last: bool):
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed,
                                 drop_last=drop_last)
    return DataLoader(dataset, batch_size=stage["micro_batch_size"], sampler=sampler,
                      num_workers=stage["num_workers"], pin_memory=torch.cuda.is_available(),
                      drop_last=drop_last, persistent_workers=stage["num_workers"] > 0)


def train_steps(engine, loader, epochs: int, loss_fn, desc: str, rank: int) -> list[float]:
    """Run ``epochs`` over ``loader``; returns the mean loss of each epoch."""
    curve = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        engine.train()
        total, count = 0.0, 0
        for batch in tqdm(loader, desc=f"{desc} epoch {epoch + 1}/{epochs}", disable=rank != 0, leave=False):
            loss = loss_fn(eng.to_device(batch, engine))
            engine.backward(loss)
            engine.step()
            total, count = total + loss.item(), count + 1
        curve.append(total / max(count, 1))
    return curve


def run(settings: dict, features_dir: str | Path, out_dir: str | Path) -> dict:
    """Pretrain one AV-MAE as ``settings`` (``seed``, ``model``, ``pretrain``) says."""
    out_dir = Path(out_dir)
    rank, world = eng.setup_distributed()
    stage = settings["pretrain"]
    torch.manual_seed(settings["seed"] + rank)
    inp = stage["input"]
    dataset = AVClipDataset(features_dir, "train", inp["video_frames"], inp["video_stride"], inp["crop"],
                            inp["audio_frames"], train=True)
    loader = make_loader(dataset, stage, rank, world, settings["seed"], shuffle=True, drop_last=True)
    steps_per_epoch = len(loader) // eng.batch_split(stage["batch_size"], stage["micro_batch_size"], world)
    if steps_per_epoch == 0:
        raise ValueError(f"{features_dir}: {len(dataset)} training clips are fewer than one batch "
                         f"of {stage['batch_size']}")
    model = AVMAE(ModelConfig.from_dict(settings["model"]))
    engine, ds_config = eng.initialize(model, stage, steps_per_epoch * stage["epochs"], world)

    start = time.time()
    curve = train_steps(engine, loader, stage["epochs"],
                        lambda b: engine({"audio": b["audio"], "video": b["video"]})[0], "pretrain", rank)
    seconds = time.time() - start
    metrics = {
        "final_loss": curve[-1], "loss_curve": curve, "epochs": stage["epochs"],
        "steps": steps_per_epoch * stage["epochs"], "train_clips": len(dataset), "world_size": world,
        "train_seconds": seconds, "clips_per_second": len(dataset) * stage["epochs"] / seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if rank == 0:
        state = {k: v.detach().float().cpu() for k, v in engine.module.state_dict().items()}
        with atomic_path(out_dir / "model.pt") as tmp:
            torch.save(state, tmp)
        write_run_config(out_dir, settings, deepspeed=ds_config, features=str(features_dir))
        write_json(out_dir / "metrics.json", metrics)
    return metrics
