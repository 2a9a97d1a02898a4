"""Broken training state: each refusal names the file or tag at fault.

A run's checkpoints (avmae.train.loop.Trainer) resume a rerun with the same settings;
these are the ways a kill, a full disk or a hand edit can leave them, and a
``--pretrained`` model that is not there or not whole."""

import shutil

import pytest

from avmae.train import finetune, pretrain


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """One pretraining run with a checkpoint after each of its 2 steps (the last kept: step2)."""
    import os

    from conftest import LAUNCHER_ENV, TINY_MODEL, stage, write_features
    env = {k: os.environ.get(k) for k in LAUNCHER_ENV}
    root = tmp_path_factory.mktemp("ckpt")
    features = write_features(root / "features")
    settings = {"seed": 0, "model": dict(TINY_MODEL), "pretrain": stage(epochs=1, checkpoint_every=1),
                "finetune": stage(eval_clips=1, label_smoothing=0.0, drop_path=0.0, layer_decay=0.75,
                                  mbt={"bottlenecks": 4, "fusion_layer": 1, "transfer": "official"})}
    pretrain.run(settings, features, root / "pre")
    assert (root / "pre" / "checkpoints" / "latest").read_text() == "step2"
    yield root, features, settings
    import torch.distributed as dist  # the module fixture's own group (conftest tears down per test)
    if dist.is_initialized():
        import deepspeed.comm
        deepspeed.comm.destroy_process_group()
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def copy_run(root, name):
    out = root / name
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(root / "pre", out)
    return out


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_rerun_resumes_the_intact_checkpoint(checkpointed):
    root, features, settings = checkpointed
    out = copy_run(root, "intact")
    assert pretrain.run(settings, features, out)["resumed_at_steps"] == [2]   # the contrast to the rest


def test_latest_naming_a_missing_tag(checkpointed):
    root, features, settings = checkpointed
    out = copy_run(root, "missing_tag")
    (out / "checkpoints" / "latest").write_text("step99")
    with pytest.raises(RuntimeError, match=rf"{out}/checkpoints/latest: names checkpoint 'step99', which is not in "
                                           rf"{out}/checkpoints; delete {out}/checkpoints to start this run afresh"):
        pretrain.run(settings, features, out)


def test_a_missing_rng_file(checkpointed):
    root, features, settings = checkpointed
    out = copy_run(root, "missing_rng")
    (out / "checkpoints" / "step2" / "rng_rank0.pt").unlink()
    with pytest.raises(RuntimeError, match=rf"{out}/checkpoints/step2/rng_rank0.pt: missing, so rank 0 cannot "
                                           r"resume its random state"):
        pretrain.run(settings, features, out)


def test_a_truncated_rng_file(checkpointed):
    root, features, settings = checkpointed
    out = copy_run(root, "truncated_rng")
    truncate(out / "checkpoints" / "step2" / "rng_rank0.pt")
    with pytest.raises(RuntimeError, match=rf"{out}/checkpoints/step2/rng_rank0.pt: cannot read rank 0's random state"):
        pretrain.run(settings, features, out)


def test_a_truncated_checkpoint(checkpointed):
    root, features, settings = checkpointed
    out = copy_run(root, "truncated_ckpt")
    (state,) = (out / "checkpoints" / "step2").glob("mp_rank_00_model_states.pt")
    truncate(state)
    with pytest.raises(RuntimeError, match=rf"{out}/checkpoints/step2: cannot load the checkpoint \(RuntimeError: "):
        pretrain.run(settings, features, out)


def test_a_pretrained_path_that_does_not_exist(checkpointed, tmp_path):
    _, features, settings = checkpointed
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere" / "model.pt")):
        finetune.run(settings, features, tmp_path / "nowhere" / "model.pt", "av", tmp_path / "ft")
    assert not (tmp_path / "ft" / "metrics.json").exists()


def test_a_truncated_pretrained_model_names_the_file(checkpointed, tmp_path):
    root, features, settings = checkpointed
    model = tmp_path / "model.pt"
    shutil.copy(root / "pre" / "model.pt", model)
    truncate(model)
    with pytest.raises(ValueError, match=f"{model}: cannot read the pretrained model"):
        finetune.run(settings, features, model, "av", tmp_path / "ft")
