"""Multi-process DeepSpeed on the CPU (gloo), checkpoints, kill -9 and resume.

Processes meet through a ``file://`` rendezvous: nothing listens on the network.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TINY_MODEL, write_features
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from avmae.models.avmae import AVMAE, ModelConfig

# Every test here starts the training command line as one or more processes: end to end, minutes.
pytestmark = pytest.mark.slow


def cli(command: str, settings: dict, features: Path, out: Path, extra=()) -> list[str]:
    return [sys.executable, "-m", "avmae.cli", command, "--features", str(features), "--out", str(out),
            "--settings", json.dumps(settings), *extra]


def start(argv: list[str], world: int, tmp: Path) -> list[subprocess.Popen]:
    """Start ``argv`` as ``world`` ranks of one process group."""
    store = tmp / f"store-{time.monotonic_ns()}"
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "AVMAE_INIT_METHOD": f"file://{store}"}
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs


def launch(argv: list[str], world: int, tmp: Path) -> None:
    """Run ``argv`` as ``world`` ranks of one process group; fail with their output."""
    procs = start(argv, world, tmp)
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for rank, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {rank} failed:\n{out[-3000:]}"


@pytest.fixture
def pretrained(tmp_path):
    path = tmp_path / "model.pt"
    torch.manual_seed(0)
    torch.save(AVMAE(ModelConfig.from_dict(TINY_MODEL)).state_dict(), path)
    return path


def test_two_processes_match_one_with_twice_the_micro_batch(tiny_settings, pretrained, tmp_path):
    """Data parallelism changes nothing but the float summation order.

    Finetuning without stochastic depth is deterministic given the clips and their
    augmentations, which are drawn per clip (not per process), so 2 ranks x 4 clips
    and 1 rank x 8 clips take identical steps; 1e-4 allows for reduction order.
    7 test clips x 3 views do not split evenly over 2 ranks: evaluation must still
    see each view exactly once.
    """
    features_dir = write_features(tmp_path / "features", n_test=7)
    s = dict(tiny_settings)
    s["finetune"] = {**s["finetune"], "drop_path": 0.0, "epochs": 3, "batch_size": 8, "eval_clips": 3}
    runs = {}
    for world, micro in ((1, 8), (2, 4)):
        s["finetune"]["micro_batch_size"] = micro
        out = tmp_path / f"w{world}"
        launch(cli("finetune", s, features_dir, out, ["--pretrained", str(pretrained), "--modality", "av"]),
               world, tmp_path)
        runs[world] = json.loads((out / "metrics.json").read_text())
    assert runs[2]["world_size"] == 2 and runs[2]["steps"] == runs[1]["steps"] == 3 * 2
    assert runs[2]["loss_curve"] == pytest.approx(runs[1]["loss_curve"], rel=1e-4)
    assert runs[2]["top1"] == pytest.approx(runs[1]["top1"])
    assert runs[2]["test_clips"] == 7 and runs[2]["test_ids_sha256"] == runs[1]["test_ids_sha256"]


def test_two_process_pretraining_matches_one_process(features_dir, tiny_settings, tmp_path):
    """Masks are seeded per clip (not per process), so pretraining is as world-size free as finetuning."""
    s = dict(tiny_settings)
    s["pretrain"] = {**s["pretrain"], "epochs": 3, "batch_size": 8}
    curves = {}
    for world, micro in ((1, 8), (2, 4)):
        s["pretrain"]["micro_batch_size"] = micro
        out = tmp_path / f"w{world}"
        launch(cli("pretrain", s, features_dir, out), world, tmp_path)
        curves[world] = json.loads((out / "metrics.json").read_text())["loss_curve"]
    assert curves[2] == pytest.approx(curves[1], rel=1e-4)


def test_zero_3_and_bf16_zero_1_exports_match_stage_0(features_dir, tiny_settings, tmp_path):
    """2 ranks: ZeRO-3 partitions the weights, the paper profile's bf16 + ZeRO-1 the fp32
    master weights and optimizer state; each exported model.pt is whole, fp32 and the
    ZeRO-0 fp32 run's weights (to float rounding; bf16 gradients move them by ~2e-4, and
    masters copied from the bf16 cast would have moved them by up to ~1e-3)."""
    s = dict(tiny_settings)
    models = {}
    for name, zero, precision in (("zero0", 0, "fp32"), ("zero3", 3, "fp32"), ("bf16_zero1", 1, "bf16")):
        s["pretrain"] = {**s["pretrain"], "epochs": 2, "batch_size": 8, "micro_batch_size": 4, "zero_stage": zero,
                         "precision": precision}
        out = tmp_path / name
        launch(cli("pretrain", s, features_dir, out), 2, tmp_path)
        models[name] = torch.load(out / "model.pt")
    for name, atol in (("zero3", 1e-5), ("bf16_zero1", 5e-4)):
        assert models[name].keys() == models["zero0"].keys()
        for k, v in models["zero0"].items():
            assert models[name][k].shape == v.shape and models[name][k].dtype == torch.float32, (name, k)
            assert torch.allclose(models[name][k], v, atol=atol), (name, k)


# The training command line, each process of which kills itself (SIGKILL, as kill -9) right
# after its second checkpoint is written: the kill lands at a known point on any machine,
# where racing a running job from outside fails on a fast one (training already done).
KILLED_AFTER_SECOND_CHECKPOINT = """
import os, signal, sys
from avmae.train import loop
saved = [0]
original = loop.Trainer._save
def _save(self):
    original(self)
    saved[0] += 1
    if saved[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
loop.Trainer._save = _save
from avmae.cli import main
sys.exit(main(sys.argv[1:]))
"""


def killed(argv: list[str]) -> list[str]:
    """``argv`` (a cli() command line) run so that it dies by SIGKILL after its second checkpoint."""
    assert argv[1:3] == ["-m", "avmae.cli"]
    return [argv[0], "-c", KILLED_AFTER_SECOND_CHECKPOINT, *argv[3:]]


def kill_after_second_checkpoint(procs: list[subprocess.Popen], out: Path) -> None:
    """Wait for processes started with :func:`killed` to die by SIGKILL after their second
    checkpoint (checkpoint_every 2: step 4)."""
    for p in procs:
        p.communicate(timeout=300)
        assert p.returncode == -signal.SIGKILL, f"exit {p.returncode}: not killed"
    assert (out / "checkpoints" / "latest").read_text().strip() == "step4"
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("command", ["finetune", "pretrain"])
def test_two_ranks_resume_to_the_uninterrupted_run(tiny_settings, pretrained, tmp_path, command):
    """kill -9, then a rerun: 2 ranks finish as an uninterrupted run.

    finetune: stochastic depth draws from each rank's own generator (seeded by rank), and
    DeepSpeed keeps the client state of rank 0 only, so each rank's random state is
    saved beside the checkpoint. pretrain: the paper profile's bf16 + ZeRO 1, whose
    resumed fp32 master weights, optimizer partitions and lr schedule come from the
    checkpoint."""
    features_dir = write_features(tmp_path / "features")
    s = dict(tiny_settings)
    if command == "finetune":
        s["finetune"] = {**s["finetune"], "drop_path": 0.5, "epochs": 40, "checkpoint_every": 2}
        extra = ["--pretrained", str(pretrained), "--modality", "av"]
    else:
        s["pretrain"] = {**s["pretrain"], "precision": "bf16", "zero_stage": 1, "epochs": 40,
                         "checkpoint_every": 2}
        extra = []
    launch(cli(command, s, features_dir, tmp_path / "straight", extra), 2, tmp_path)
    out = tmp_path / "killed"
    kill_after_second_checkpoint(start(killed(cli(command, s, features_dir, out, extra)), 2, tmp_path), out)
    launch(cli(command, s, features_dir, out, extra), 2, tmp_path)
    straight, resumed = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "straight", out))
    assert resumed["resumed_at_steps"] and resumed["loss_curve"] == straight["loss_curve"]


def test_kill_9_then_rerun_resumes_to_the_same_result(features_dir, tiny_settings, tmp_path):
    s = dict(tiny_settings)
    s["pretrain"] = {**s["pretrain"], "epochs": 40, "checkpoint_every": 2}
    subprocess.run(cli("pretrain", s, features_dir, tmp_path / "straight"), check=True, capture_output=True, timeout=600)

    out = tmp_path / "killed"
    proc = subprocess.Popen(killed(cli("pretrain", s, features_dir, out)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    kill_after_second_checkpoint([proc], out)

    subprocess.run(cli("pretrain", s, features_dir, out), check=True, capture_output=True, timeout=600)
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["resumed_at_steps"] == [4]
    assert resumed["steps"] == straight["steps"] == 40 * 2
    # Same clips, augmentations, masks (restored RNG) and optimizer state: the same run.
    assert resumed["loss_curve"] == pytest.approx(straight["loss_curve"], rel=1e-5)
    steps = pd.read_csv(out / "log" / "steps.csv")
    assert steps.step.tolist() == list(range(1, 81))  # rows after the checkpoint were logged once
    assert steps.loss.to_numpy() == pytest.approx(
        pd.read_csv(tmp_path / "straight" / "log" / "steps.csv").loss.to_numpy(), rel=1e-5)
    events = EventAccumulator(str(out / "log" / "tensorboard"))
    events.Reload()  # TensorBoard drops the events after the checkpoint (purge_step) on reading
    assert [e.step for e in events.Scalars("pretrain/loss")] == list(range(1, 81))
    a = torch.load(tmp_path / "straight" / "model.pt")
    b = torch.load(out / "model.pt")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_checkpoints_of_other_settings_are_not_resumed(features_dir, tiny_settings, tmp_path):
    s = dict(tiny_settings)
    s["pretrain"] = {**s["pretrain"], "epochs": 1, "checkpoint_every": 1}
    subprocess.run(cli("pretrain", s, features_dir, tmp_path), check=True, capture_output=True, timeout=600)
    s["pretrain"]["optimizer"] = {**s["pretrain"]["optimizer"], "lr": 0.5}
    subprocess.run(cli("pretrain", s, features_dir, tmp_path), check=True, capture_output=True, timeout=600)
    assert json.loads((tmp_path / "metrics.json").read_text())["resumed_at_steps"] == []


def test_a_child_of_a_single_process_run_starts_its_own_group(features_dir, tiny_settings, tmp_path):
    """setup_distributed sets RANK etc. for DeepSpeed; a child inheriting them must not wait for env://."""
    from avmae.train.engine import setup_distributed

    setup_distributed()
    assert os.environ["RANK"] == "0" and "MASTER_ADDR" not in os.environ
    s = dict(tiny_settings)
    s["pretrain"] = {**s["pretrain"], "epochs": 1}
    proc = subprocess.run(cli("pretrain", s, features_dir, tmp_path), capture_output=True, text=True,
                          check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
