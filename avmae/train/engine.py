"""DeepSpeed set-up shared by pretraining and finetuning.

One process without a launcher gets a private ``file://`` rendezvous (nothing
listens on the network); under ``deepspeed``/``torchrun`` the launcher's
environment (RANK, WORLD_SIZE, MASTER_ADDR, ...) is used.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile

import torch
import torch.distributed as dist
from torch.optim.lr_scheduler import LambdaLR

from avmae.data.frames import finish_batch
from avmae.train import launch


def setup_distributed() -> tuple[int, int]:
    """Initialise the process group once; returns (rank, world size).

    * No launcher (no ``RANK``): one process with a private ``file://`` rendezvous.
    * ``AVMAE_INIT_METHOD`` set (e.g. ``file:///shared/dir/store``): ranks from ``RANK`` /
      ``WORLD_SIZE``, rendezvous through that URL; nothing listens on the network.
    * Otherwise the launcher's ``env://`` (``MASTER_ADDR``, ``MASTER_PORT``, ...).
    """
    launch.from_slurm()  # a task of a multi-task srun step: ranks from SLURM_PROCID etc.
    import deepspeed

    # The shared-memory comm op would be JIT-compiled on first use; gloo needs none.
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    init_method = os.environ.get("AVMAE_INIT_METHOD")
    # DeepSpeed reads RANK/LOCAL_RANK from the environment, so a single process sets them;
    # the marker keeps a child process that inherits them single-process too.
    inherited = os.environ.get("AVMAE_SINGLE_PROCESS") == "1" and os.environ.get("WORLD_SIZE") == "1"
    if "RANK" not in os.environ or inherited:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", AVMAE_SINGLE_PROCESS="1")
        rdzv = tempfile.mkdtemp(prefix="avmae-rdzv-")
        atexit.register(shutil.rmtree, rdzv, ignore_errors=True)
        init_method = "file://" + os.path.join(rdzv, "store")
    kwargs = {}
    if init_method:
        kwargs = {"init_method": init_method, "rank": int(os.environ["RANK"]),
                  "world_size": int(os.environ["WORLD_SIZE"])}
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False, **kwargs)
    return dist.get_rank(), dist.get_world_size()


def batch_split(global_batch: int, micro_batch: int, world_size: int) -> int:
    """Gradient-accumulation steps that keep the global batch fixed for any world size."""
    per_step = micro_batch * world_size
    if global_batch % per_step:
        raise ValueError(f"global batch {global_batch} is not a multiple of micro batch {micro_batch} "
                         f"x {world_size} processes; change batch_size or micro_batch_size")
    return global_batch // per_step


def param_groups(model: torch.nn.Module, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """Parameter groups with their weight decay and lr scale.

    Weight decay applies to weight matrices and conv kernels only (not biases, norms or
    tokens). With ``layer_decay`` < 1 (layer-wise lr decay, as BEiT/MAE finetuning), a
    parameter at depth ``l`` of ``L = model.depth + 1`` (``model.layer_of``) gets its lr
    scaled by ``layer_decay ** (L - l)``: the heads train at the full lr, the tokenizers
    at the smallest.
    """
    groups: dict[tuple[float, float], list] = {}
    top = model.depth + 1 if layer_decay != 1.0 else 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        wd = weight_decay if name.endswith(".weight") and p.ndim >= 2 else 0.0
        scale = layer_decay ** (top - model.layer_of(name)) if top else 1.0
        groups.setdefault((wd, scale), []).append(p)
    return [{"params": ps, "weight_decay": wd, "lr_scale": scale} for (wd, scale), ps in groups.items()]


def make_optimizer(model: torch.nn.Module, opt: dict, global_batch: int,
                   layer_decay: float = 1.0) -> torch.optim.Optimizer:
    """Optimizer from config; lr = lr x global batch / lr_batch (linear scaling rule), times
    each group's layer-wise decay."""
    lr = opt["lr"] * global_batch / opt["lr_batch"]
    groups = param_groups(model, opt["weight_decay"], layer_decay)
    for g in groups:
        g["lr"] = lr * g.pop("lr_scale")
    # foreach: one kernel per op over all tensors of a group (torch's default on GPUs only)
    if opt["name"] == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(opt["betas"]), foreach=True)
    if opt["name"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=opt["momentum"], foreach=True)
    raise ValueError(f"optimizer.name must be 'adamw' or 'sgd', got {opt['name']!r}")


def use_bf16(precision: str) -> bool:
    if precision == "auto":
        return torch.cuda.is_available()
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
    return precision == "bf16"


def warmup_cosine(warmup: int, total: int):
    """lr factor of optimizer step ``k`` (from 0): linear from 0 over ``warmup`` steps,
    then a cosine to 0 at ``total``, as Scenic's ``linear_warmup * cosine_decay``
    (DeepSpeed's WarmupCosineLR runs one step late: two steps at 0, never the peak)."""
    decay = max(total - warmup, 1)

    def factor(k: int) -> float:
        if k < warmup:
            return k / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(k - warmup, decay) / decay))
    return factor


def initialize(model: torch.nn.Module, stage: dict, total_steps: int, world_size: int,
               layer_decay: float = 1.0):
    """Wrap ``model`` in a DeepSpeed engine configured from a pretrain/finetune config section
    (``layer_decay``: layer-wise lr decay, see :func:`param_groups`)."""
    import deepspeed

    micro = stage["micro_batch_size"]
    accum = batch_split(stage["batch_size"], micro, world_size)
    steps_per_epoch = max(total_steps // stage["epochs"], 1)
    warmup = int(round(stage["warmup_epochs"] * steps_per_epoch))
    ds_config = {
        "train_batch_size": stage["batch_size"],
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": float(stage["grad_clip"]),
        "zero_optimization": {"stage": stage["zero_stage"]},
        # DeepSpeed lists the Adam family as "tested" under ZeRO; finetuning's SGD is
        # elementwise too, so partitioning its momentum changes nothing (tested).
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": use_bf16(stage["precision"])},
        "steps_per_print": 10**9,
    }
    if ds_config["bf16"]["enabled"] and stage["zero_stage"] >= 1:
        # Sum gradients in fp32, over micro-batches and over ranks, not in bf16
        # (DeepSpeed's default for both), which rounds away the small ones: gradients
        # 256, 1, ..., 1 summed to 256, or to 264 after an fp32 accumulation reduced in
        # bf16 (test). Set whatever the accumulation, so the optimizer is the same for
        # any GPU count. DeepSpeed offers fp32 accumulation under ZeRO only: stage 0
        # sums in bf16.
        ds_config["data_types"] = {"grad_accum_dtype": "fp32"}
        ds_config["communication_data_type"] = "fp32"
    optimizer = make_optimizer(model, stage["optimizer"], stage["batch_size"], layer_decay)
    schedule = LambdaLR(optimizer, warmup_cosine(warmup, total_steps))
    weights = {n: p.detach().clone() for n, p in model.named_parameters()} if ds_config["bf16"]["enabled"] else {}
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=schedule, config=ds_config)
    if weights:
        restore_fp32_masters(engine, weights)
    return engine, ds_config


def _unfused_masters(engine) -> dict[int, torch.Tensor]:
    """bf16 without ZeRO: the fp32 copies DeepSpeed's unfused optimizer keeps, by ``id``
    of their bf16 parameter (ZeRO 1-3 reach theirs through ``safe_*_full_fp32_param``)."""
    from deepspeed.runtime.fp16.unfused_optimizer import FP16_UnfusedOptimizer

    opt = engine.optimizer
    if not isinstance(opt, FP16_UnfusedOptimizer):
        return {}
    return {id(lp): hp for lps, hps in zip(opt.fp16_groups, opt.fp32_groups) for lp, hp in zip(lps, hps)}


def _has_zero_master(p: torch.nn.Parameter) -> bool:
    return hasattr(p, "_hp_mapping") or hasattr(p, "ds_id")


def restore_fp32_masters(engine, weights: dict[str, torch.Tensor]) -> None:
    """Set a bf16 engine's fp32 master weights to ``weights`` (the model's before
    ``deepspeed.initialize``), as rank 0 holds them.

    DeepSpeed casts the model to bf16 first and copies the masters from that cast, which
    rounds the weights a run starts from (the pretrained ones, when finetuning) to 8 bits
    of mantissa. Rank 0's weights are the ones DeepSpeed broadcast to every rank.
    """
    from deepspeed.utils import safe_set_full_fp32_param

    unfused = _unfused_masters(engine)
    for name, p in engine.module.named_parameters():
        if not p.requires_grad:
            continue
        w = weights[name].to(p.device, torch.float32)
        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(w, src=0)
        if id(p) in unfused:
            unfused[id(p)].data.copy_(w)
        elif _has_zero_master(p):
            safe_set_full_fp32_param(p, w)
        else:
            raise RuntimeError(f"cannot reach the fp32 master weight of {name} in DeepSpeed's "
                               f"{type(engine.optimizer).__name__}")


def fp32_weights(engine) -> dict[str, torch.Tensor]:
    """The engine's state dict, whole, fp32 and on the CPU: each parameter its fp32 master
    weight under bf16 or ZeRO (gathered from the ranks that hold it, so every rank calls
    this), the module's own otherwise."""
    from deepspeed.utils import safe_get_full_fp32_param

    unfused = _unfused_masters(engine)
    out = {k: v.detach().float().cpu() for k, v in engine.module.state_dict().items()}   # buffers too
    for name, p in engine.module.named_parameters():
        if id(p) in unfused:
            w = unfused[id(p)]
        elif _has_zero_master(p):
            w = safe_get_full_fp32_param(p)
        else:
            w = p
        out[name] = w.detach().float().cpu()
    return out


def to_device(batch: dict, engine) -> dict:
    """Move a batch to the engine's device: the model inputs (``audio``, ``video``) in its
    compute dtype, labels as they are; the clip indices stay on the CPU, where masking
    and mixup read them. The uint8 video (or JPEG frames) becomes the model's float video
    there (:func:`finish_batch`)."""
    dtype = torch.bfloat16 if engine.bfloat16_enabled() else torch.float32
    out = {}
    for k, v in finish_batch(batch, engine.device).items():
        if torch.is_tensor(v) and k != "index":
            v = v.to(engine.device, non_blocking=True)
            if k in ("audio", "video"):
                v = v.to(dtype)
        out[k] = v
    return out
