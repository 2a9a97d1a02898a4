"""Shared fixtures: a tiny feature folder in the layout ``features.extract`` writes, and
copies of the workflow with a shrunken config for the end-to-end tests."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torchvision.io import encode_jpeg

ROOT = Path(__file__).resolve().parents[1]


LABEL_META = {
    "single": lambda names: {"label_kind": "single", "classes": names},
    "multi": lambda names: {"label_kind": "multi", "classes": names},
    "verb_noun": lambda names: {"label_kind": "verb_noun", "verb_classes": [0, 1],
                                "noun_classes": list(range(len(names)))},
}


def label_columns(kind, labels, classes):
    """index.csv label columns (avmae.features.labels): class c, plus c + 1 (multi), or verb c % 2, noun c."""
    if kind == "multi":
        return {"label_indices": [f"{c};{(c + 1) % classes}" for c in labels]}
    if kind == "verb_noun":
        return {"verb_class": labels % 2, "noun_class": labels}
    return {"label_index": labels}


def write_features(root, n_train=16, n_test=6, classes=4, seed=0, kind="single"):
    """Random features whose first mel bins carry the class, so a classifier can learn them;
    ``kind``: the label kind (single, multi or verb_noun) of the index and meta.json."""
    rng = np.random.default_rng(seed)
    names = [f"class {i}" for i in range(classes)]
    for split, n in (("train", n_train), ("test", n_test)):
        d = root / split
        d.mkdir(parents=True)
        labels = np.arange(n) % classes
        audio = rng.normal(size=(n, 300, 128)).astype(np.float16)
        audio[:, :, :16] += 2.0 * labels[:, None, None]
        video = rng.integers(0, 256, size=(n, 75, 20, 20, 3), dtype=np.uint8)
        np.save(d / "audio.npy", audio)
        np.save(d / "video.npy", video)
        pd.DataFrame({"id": [f"{split}{i:03d}" for i in range(n)], "start_seconds": 0.0,
                      "label": [names[c] for c in labels],
                      **label_columns(kind, labels, classes), "split": split,
                      "action_first": 0, "action_last": 74}).to_csv(d / "index.csv", index=False)
    meta = {**LABEL_META[kind](names), "audio_frames": 300, "video_frames": 75, "fps": 25, "short_side": 20,
            "n_mels": 128, "sample_rate": 16000, "clip_seconds": 3.0, "audio_mean": 0.0, "audio_std": 1.0,
            "counts": {"train": n_train, "test": n_test},
            "parts": {"train": [[".", n_train]], "test": [[".", n_test]]}}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def decode_audio(path, spec):
    """A clip's mono float32 waveform as the feature stage decodes it (spec.audio_samples long)."""
    from avmae.features.extract import decode
    return decode(path, spec)[0]


def decode_video(path, spec):
    """A clip's uint8 frames [spec.video_frames, S, S, 3] as the feature stage's array
    layout decodes them: short side scaled to S, centre crop."""
    from avmae.features.extract import _read_rgb, decode
    return decode(path, spec, audio=False, video_format="array", read_video=_read_rgb(spec))[1]


def model_video(item: dict) -> torch.Tensor:
    """An item's video as the model gets it: float [3, T, H, W] in [-1, 1], coloured."""
    from avmae.data.frames import collate, finish_batch
    return finish_batch(collate([item]), "cpu")["video"][0]


def as_jpeg(array_dir, out_dir, wide: int = 0, quality: int = 100):
    """The same features in the JPEG-shard layout (frames widened by ``wide`` px per side)."""
    shutil.copytree(array_dir, out_dir)
    meta = json.loads((out_dir / "meta.json").read_text())
    meta.update(video_format="jpeg", jpeg_quality=quality)
    (out_dir / "meta.json").write_text(json.dumps(meta))
    for split in ("train", "test"):
        video = np.load(out_dir / split / "video.npy")
        (out_dir / split / "video.npy").unlink()
        if wide:
            video = np.pad(video, [(0, 0), (0, 0), (0, 0), (wide, wide), (0, 0)], mode="edge")
        blobs = [bytes(encode_jpeg(torch.from_numpy(f).permute(2, 0, 1).contiguous(), quality=quality).numpy())
                 for clip in video for f in clip]
        sizes = np.array([len(b) for b in blobs]).reshape(video.shape[:2])
        offsets = np.concatenate([np.zeros((len(video), 1), np.int64), np.cumsum(sizes, axis=1)], axis=1)
        offsets += np.concatenate([[0], np.cumsum(sizes.sum(1))[:-1]])[:, None]
        (out_dir / split / "video_jpeg.bin").write_bytes(b"".join(blobs))
        np.save(out_dir / split / "video_jpeg_offsets.npy", offsets)
    return out_dir


@pytest.fixture
def features_dir(tmp_path):
    return write_features(tmp_path / "features")


TINY_MODEL = {
    "encoder": {"width": 32, "depth": 2, "heads": 2, "mlp_dim": 64},
    "decoder": {"width": 16, "depth": 1, "heads": 2, "mlp_dim": 32},
    "encoder_strategy": "mid", "decoder_strategy": "shared", "joint_layers": 1,
    "video_patch": [2, 8, 8], "audio_patch": [16, 16],
    "mask_ratio": {"audio": 0.5, "video": 0.75}, "loss_weight": {"audio": 0.5, "video": 0.5},
    "norm_targets": False,
}


def stage(**kw):
    s = {"epochs": 2, "batch_size": 8, "micro_batch_size": 4, "warmup_epochs": 1,
         "optimizer": {"name": "adamw", "lr": 1e-2, "lr_batch": 256, "betas": [0.9, 0.95],
                       "weight_decay": 0.05},
         "grad_clip": 0.0, "checkpoint_every": 0, "on_nonfinite": "stop", "zero_stage": 0, "precision": "fp32", "num_workers": 0,
         "video_decode": "loader",
         "input": {"video_frames": 4, "video_stride": 4, "crop": 16, "audio_frames": 64}}
    s.update(kw)
    return s


@pytest.fixture
def tiny_settings():
    return {"seed": 0, "model": dict(TINY_MODEL),
            "pretrain": stage(),
            "finetune": stage(optimizer={"name": "sgd", "lr": 0.05, "lr_batch": 64, "momentum": 0.9,
                                         "weight_decay": 0.0},
                              grad_clip=1.0, label_smoothing=0.1, drop_path=0.1, eval_clips=2,
                              layer_decay=0.75, mbt={"bottlenecks": 4, "fusion_layer": 1,
                                                  "transfer": "official"})}


def copy_workflow(dst: Path) -> dict:
    """Copy the Snakefile, workflow/ and config/ into ``dst``; returns the default config to edit
    (write it back with :func:`write_config`)."""
    shutil.copy(ROOT / "Snakefile", dst)
    for folder in ("workflow", "config"):
        shutil.copytree(ROOT / folder, dst / folder)
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def write_config(dst: Path, cfg: dict) -> None:
    (dst / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))


def shrink(cfg: dict, epochs: int = 1, micro_batch_size: int = 8) -> dict:
    """The toy VGGSound chain in minutes: 4 clips per class, a 2-layer transformer, batch 8."""
    cfg["datasets"]["vggsound"]["toy"].update(clips_per_class=4, test_fraction=0.5)
    cfg["sizes"]["toy"] = {"encoder": {"width": 16, "depth": 2, "heads": 2, "mlp_dim": 32},
                           "decoder": {"width": 16, "depth": 1, "heads": 2, "mlp_dim": 32}}
    cfg["model"]["joint_layers"] = 1
    for stage in ("pretrain", "finetune"):
        cfg[stage].update(epochs=epochs, batch_size=8, micro_batch_size=micro_batch_size, warmup_epochs=0.5)
    cfg["finetune"]["eval_clips"] = 2
    return cfg


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """``snakemake --cores 2 ARGS`` in ``workdir``; with ``check``, fails the test with its
    output on an error."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args],
                          cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


# -- every test leaves the process as it found it; no test's subprocess runs unbounded -----
LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
                "AVMAE_SINGLE_PROCESS", "AVMAE_INIT_METHOD")


@pytest.fixture(autouse=True)
def distributed_teardown():
    """``setup_distributed()`` (in-process training) sets RANK / WORLD_SIZE / ... and opens
    a gloo group: a test that did so gets both removed afterwards, so later tests (and
    the processes they start) see the environment they would see alone."""
    import os

    import torch.distributed as dist
    before = {k: os.environ.get(k) for k in LAUNCHER_ENV}
    was_initialized = dist.is_available() and dist.is_initialized()
    yield
    if dist.is_available() and dist.is_initialized() and not was_initialized:
        if "deepspeed.comm" in sys.modules:   # also drops DeepSpeed's cached groups of that world
            sys.modules["deepspeed.comm"].destroy_process_group()
        else:
            dist.destroy_process_group()
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_subprocess_run = subprocess.run


def _run_requiring_timeout(*args, **kwargs):
    """subprocess.run as the tests call it: a call from a file in tests/ without
    ``timeout=`` raises TypeError, so a hung child (gloo, DeepSpeed, ffmpeg) can only fail
    its test with TimeoutExpired, never hang the suite. Calls from the code under test
    keep their own behaviour."""
    caller = sys._getframe(1)
    path = Path(caller.f_code.co_filename).resolve()
    if kwargs.get("timeout") is None and ROOT / "tests" in path.parents:
        raise TypeError(f"tests must pass timeout= to subprocess.run ({path.name}:{caller.f_lineno})")
    return _subprocess_run(*args, **kwargs)


subprocess.run = _run_requiring_timeout


# -- the slow half: end-to-end runs (Snakemake on the toy workflow, SLURM, multi-process CLI) --
# Tests in files that mark themselves (test_distributed.py, test_slurm.py) need nothing here;
# these are the workflow runs of the other files, found by the fixture that runs them.
SLOW_FIXTURES = {"workdir",   # test_workflow.py: the toy workflow to Table 1, then reruns
                 "clone"}     # test_front_door.py: snakemake on a clone of the repository
SLOW_TESTS = {"test_data_fetch.py::test_the_workflow_fetches_a_configured_list_once",
              "test_cache.py::test_second_clone_takes_data_features_and_pretraining_from_the_cache"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or \
                f"{item.path.name}::{item.originalname}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
