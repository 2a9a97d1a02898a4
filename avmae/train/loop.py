"""The training loop shared by pretraining and finetuning.

* Sampling: :class:`EpochSampler` shuffles with a seed per epoch, splits the clips across
  ranks and yields ``(epoch, clip)`` keys, so every clip's augmentation is drawn from its
  own seed (see :mod:`avmae.data.dataset`) whatever the number of processes or workers.
  Each epoch holds exactly ``steps_per_epoch`` optimizer steps.
* Checkpoints: a DeepSpeed checkpoint every ``checkpoint_every`` optimizer steps and at
  the end, in ``{out}/checkpoints`` (not a Snakemake output, so a failed job keeps it),
  with the loop position, loss curve and RNG states as client state. A rerun with the
  same settings resumes from the latest one; other settings start afresh.
* Logs: one row per optimizer step, as CSV (``log/steps.csv``, read by the figures) and
  TensorBoard events (``log/tensorboard``): loss, lr, samples/s and peak memory (GPU
  memory allocated on a GPU, the process's peak RSS otherwise). A resumed run first drops
  the rows logged after its checkpoint, so each step appears once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import pickle
import random
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from avmae.data.dataset import make_loader
from avmae.io import write_text
from avmae.train import engine as eng


class EpochSampler(Sampler):
    """Seeded shuffle per epoch, split across ranks, yielding ``(epoch, clip index)``."""

    def __init__(self, n: int, per_rank: int, rank: int, world: int, seed: int):
        self.n, self.per_rank, self.rank, self.world, self.seed = n, per_rank, rank, world, seed
        self.epoch, self.skip = 0, 0

    def set_position(self, epoch: int, skip: int = 0) -> None:
        """Start at ``epoch``, ``skip`` keys into this rank's share."""
        self.epoch, self.skip = epoch, skip

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        mine = order[self.rank::self.world][: self.per_rank]
        return iter([(self.epoch, int(i)) for i in mine[self.skip:]])

    def __len__(self) -> int:
        return self.per_rank - self.skip


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _rng_state() -> dict:
    """This process's random state (its own GPU's, where it has one)."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"])


def peak_memory_gib() -> float:
    """Peak GPU memory allocated by this process, or its peak resident memory without a GPU."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


class Trainer:
    """Epochs of DeepSpeed steps over a dataset, with checkpoints and resume."""

    def __init__(self, engine, dataset, stage: dict, steps_per_epoch: int, out_dir: Path, settings: dict,
                 rank: int, world: int, seed: int, desc: str):
        self.engine, self.stage, self.rank, self.desc = engine, stage, rank, desc
        self.steps_per_epoch = steps_per_epoch
        self.accum = eng.batch_split(stage["batch_size"], stage["micro_batch_size"], world)
        per_rank = steps_per_epoch * self.accum * stage["micro_batch_size"]
        self.sampler = EpochSampler(len(dataset), per_rank, rank, world, seed)
        self.loader = make_loader(dataset, stage["micro_batch_size"], stage["num_workers"], self.sampler)
        self.ckpt_dir = out_dir / "checkpoints"
        self.log_path = out_dir / "log" / "steps.csv"
        self.tensorboard = None  # opened by rank 0 at its first log row
        self.digest = settings_digest(settings)
        self.state = {"epoch": 0, "step": 0, "curve": [], "epoch_loss": 0.0, "skipped": 0, "resumed_at": []}

    # ---------------------------------------------------------------- checkpoints
    def _rng_file(self, tag: str) -> Path:
        # per rank: DeepSpeed keeps the client state of rank 0 only, and each rank draws
        # its own stochastic depth and dropout
        return self.ckpt_dir / tag / f"rng_rank{self.rank}.pt"

    def _save(self) -> None:
        tag = f"step{self.state['step']}"
        rng = self._rng_file(tag)
        rng.parent.mkdir(parents=True, exist_ok=True)
        torch.save(_rng_state(), rng)
        # DeepSpeed's own 'latest' is written by rank 0 while other ranks may still be
        # writing their optimizer partitions, and not atomically: a kill then leaves it
        # naming a checkpoint they cannot load. save_checkpoint returns once every rank
        # has written (it ends in a barrier); only then is the tag named, atomically.
        self.engine.save_checkpoint(str(self.ckpt_dir), tag=tag, client_state=self.state, save_latest=False)
        if self.rank == 0:  # name it, then keep only the newest checkpoint
            write_text(self.ckpt_dir / "latest", tag)
            for old in self.ckpt_dir.glob("step*"):
                if old.name != tag:
                    shutil.rmtree(old, ignore_errors=True)

    def _resume(self) -> None:
        latest = self.ckpt_dir / "latest"
        if not latest.exists():
            return
        tag = latest.read_text().strip()
        fresh = f"; delete {self.ckpt_dir} to start this run afresh"
        if not tag or not (self.ckpt_dir / tag).is_dir():
            raise RuntimeError(f"{latest}: names checkpoint {tag!r}, which is not in {self.ckpt_dir}{fresh}")
        try:
            path, client = self.engine.load_checkpoint(str(self.ckpt_dir), tag=tag)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
            raise RuntimeError(f"{self.ckpt_dir / tag}: cannot load the checkpoint "
                               f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}){fresh}") from e
        if path is None:
            raise RuntimeError(f"{self.ckpt_dir / tag}: 'latest' names a checkpoint that cannot be loaded{fresh}")
        rng = self._rng_file(tag)
        if rng.exists():
            try:
                rng_state = torch.load(rng, weights_only=False)
            except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
                raise RuntimeError(f"{rng}: cannot read rank {self.rank}'s random state "
                                   f"({type(e).__name__}){fresh}") from e
            _set_rng_state(rng_state)
        elif "rng" in client:   # written before the per-rank files: rank 0's state
            _set_rng_state(client["rng"])
        else:
            raise RuntimeError(f"{rng}: missing, so rank {self.rank} cannot resume its random state")
        self.state = {k: client[k] for k in self.state}
        self.state["resumed_at"].append(self.state["step"])
        if self.rank == 0 and self.log_path.exists():  # rows of steps lost with the kill
            rows = [r for r in csv.DictReader(self.log_path.open()) if int(r["step"]) <= self.state["step"]]
            with self.log_path.open("w", newline="") as f:
                if rows:
                    w = csv.DictWriter(f, fieldnames=list(rows[0]))
                    w.writeheader()
                    w.writerows(rows)

    def discard_stale_checkpoints(self) -> None:
        """Delete checkpoints written with other settings (rank 0, before any rank loads)."""
        latest = self.ckpt_dir / "latest"
        digest_file = self.ckpt_dir / "settings.digest"
        if self.rank == 0:
            if latest.exists() and (not digest_file.exists() or digest_file.read_text() != self.digest):
                shutil.rmtree(self.ckpt_dir)
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            digest_file.write_text(self.digest)
        if dist.is_initialized():
            dist.barrier()

    # ---------------------------------------------------------------------- loop
    def _log(self, row: dict) -> None:
        if self.rank != 0:
            return
        new = not self.log_path.exists() or self.log_path.stat().st_size == 0
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self.tensorboard is None:  # purge_step drops events logged after the resumed checkpoint
            self.tensorboard = SummaryWriter(str(self.log_path.parent / "tensorboard"),
                                             purge_step=self.state["step"])
        for key, value in row.items():
            if key not in ("epoch", "step"):
                self.tensorboard.add_scalar(f"{self.desc}/{key}", value, row["step"])

    def _finite(self, loss: torch.Tensor) -> float | None:
        """The micro-batch's loss, or None where it is not finite on some rank: one read
        from the device, before the backward pass is queued."""
        loss = loss.detach().float().reshape(1)
        flag = torch.isfinite(loss).float()
        if dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        finite, value = torch.cat([flag, loss]).tolist()
        return value if finite else None

    def fit(self, loss_fn) -> dict:
        """Train to ``stage['epochs']``; returns the loop state (curve, steps, skips)."""
        self.discard_stale_checkpoints()
        self._resume()
        every = self.stage["checkpoint_every"]
        epochs = self.stage["epochs"]
        on_nonfinite = self.stage["on_nonfinite"]
        micro = self.stage["micro_batch_size"]
        while self.state["epoch"] < epochs:
            epoch = self.state["epoch"]
            done_in_epoch = self.state["step"] - epoch * self.steps_per_epoch
            self.sampler.set_position(epoch, done_in_epoch * self.accum * micro)
            self.engine.train()
            tick, micro_losses, n_micro = time.time(), [], 0
            bar = tqdm(self.loader, desc=f"{self.desc} epoch {epoch + 1}/{epochs}", disable=self.rank != 0,
                       leave=False, initial=done_in_epoch * self.accum, total=self.steps_per_epoch * self.accum)
            for batch in bar:
                loss = loss_fn(eng.to_device(batch, self.engine))
                value = self._finite(loss)
                if value is not None:
                    self.engine.backward(loss)
                    micro_losses.append(value)
                elif on_nonfinite == "stop":
                    raise FloatingPointError(f"{self.desc}: non-finite loss at optimizer step "
                                             f"{self.state['step']} (epoch {epoch + 1})")
                else:  # the micro-batch adds zero gradient; ranks stay in step
                    self.state["skipped"] += 1
                    self.engine.backward(sum(p.sum() for p in self.engine.module.parameters()) * 0.0)
                self.engine.step()
                n_micro += 1
                if n_micro % self.accum:
                    continue
                self._after_step(micro_losses, tick, micro)
                tick, micro_losses = time.time(), []
                if every and self.state["step"] % every == 0:
                    self._save()
            self.state["curve"].append(self.state["epoch_loss"] / self.steps_per_epoch)
            self.state["epoch_loss"] = 0.0
            self.state["epoch"] += 1
        self._save()
        if self.tensorboard is not None:
            self.tensorboard.close()
        return self.state

    def _after_step(self, micro_losses: list[float], tick: float, micro: int) -> None:
        """Bookkeeping after an optimizer step: the loss is averaged over micro-batches and ranks."""
        # on the engine's device: NCCL, the backend on GPUs, reduces no CPU tensors
        total = torch.tensor([sum(micro_losses), len(micro_losses)], dtype=torch.float64, device=self.engine.device)
        if dist.is_initialized():
            dist.all_reduce(total)
        loss = (total[0] / total[1]).item() if total[1] else math.nan
        self.state["step"] += 1
        self.state["epoch_loss"] += 0.0 if math.isnan(loss) else loss
        seconds = time.time() - tick
        self._log({"epoch": self.state["epoch"] + 1, "step": self.state["step"], "loss": loss,
                   "lr": self.engine.get_lr()[0],
                   "samples_per_s": self.accum * micro * self.engine.world_size / max(seconds, 1e-9),
                   "peak_mem_gib": peak_memory_gib()})
