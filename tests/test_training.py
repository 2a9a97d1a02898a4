"""DeepSpeed engine set-up, a loss that goes down, and the pretrain -> finetune runs."""

import json
import math

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_MODEL, as_jpeg, stage, write_features

from avmae.models.avmae import AVMAE, ModelConfig
from avmae.train import engine as eng
from avmae.train import finetune, pretrain
from avmae.train.metrics import average_views, top1


def test_batch_split_keeps_the_global_batch():
    assert eng.batch_split(512, 8, 4) == 16
    assert eng.batch_split(512, 64, 8) == 1
    with pytest.raises(ValueError, match="not a multiple"):
        eng.batch_split(512, 24, 4)


def test_weight_decay_only_on_weight_matrices():
    model = AVMAE(ModelConfig.from_dict(TINY_MODEL))
    decay, no_decay = sorted(eng.param_groups(model, 0.05), key=lambda g: -g["weight_decay"])
    assert decay["lr_scale"] == no_decay["lr_scale"] == 1.0  # no layer-wise decay in pretraining
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith(".weight") and p.ndim >= 2 for p in decay["params"])
    assert any("mask_token" in names[id(p)] for p in no_decay["params"])
    assert any(names[id(p)].endswith(".bias") for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0


def test_layer_wise_lr_decay():
    from avmae.models.mbt import MBT
    cfg = ModelConfig.from_dict(TINY_MODEL)  # encoder depth 2
    model = MBT(cfg, 5, ["audio", "video"], fusion_layer=1)
    sgd = {"name": "sgd", "lr": 0.4, "lr_batch": 8, "momentum": 0.9, "weight_decay": 0.0}
    opt = eng.make_optimizer(model, sgd, global_batch=4, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    base = 0.4 * 4 / 8
    # depth 2: head/norms/bottleneck at layer 3 (full lr), block i at layer i + 1, tokenizers at 0
    assert lr_of[id(params["head.weight"])] == pytest.approx(base)
    assert lr_of[id(params["streams.video.blocks.1.mlp.0.weight"])] == pytest.approx(base * 0.5)
    assert lr_of[id(params["streams.audio.blocks.0.attn.qkv.bias"])] == pytest.approx(base * 0.25)
    assert lr_of[id(params["tokenizers.video.proj.weight"])] == pytest.approx(base * 0.125)
    assert lr_of[id(params["bottleneck"])] == pytest.approx(base)   # untrained: the full lr, as official
    assert sum(len(g["params"]) for g in opt.param_groups) == len(params)


def test_deepspeed_steps_lower_the_loss():
    eng.setup_distributed()
    torch.manual_seed(0)
    model = AVMAE(ModelConfig.from_dict(TINY_MODEL))
    adam = {"name": "adamw", "lr": 3e-3, "lr_batch": 4, "betas": [0.9, 0.95], "weight_decay": 0.0}
    engine, ds_config = eng.initialize(model, stage(epochs=1, batch_size=4, micro_batch_size=4, optimizer=adam,
                                                    warmup_epochs=0.0), total_steps=30, world_size=1)
    assert ds_config["gradient_clipping"] == 0.0
    # learnable targets (random noise would leave mostly irreducible error)
    batch = {"audio": 2.0 + 0.1 * torch.randn(4, 1, 64, 128), "video": torch.full((4, 3, 4, 16, 16), 0.5)}
    losses = []
    for step in range(30):
        loss, _ = engine(batch, generator=torch.Generator().manual_seed(step % 3))
        engine.backward(loss)
        engine.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3])


@pytest.mark.parametrize("warmup_epochs,warmup", [(0.3, 3), (0.0, 0)])
def test_lr_warms_up_from_zero_then_follows_a_cosine_to_zero(warmup_epochs, warmup):
    """Scenic's schedule: optimizer step k trains at base x k / warmup, then at base x
    (1 + cos(pi (k - warmup) / (total - warmup))) / 2; without warmup, step 0 at base."""
    eng.setup_distributed()
    torch.manual_seed(0)
    adam = {"name": "adamw", "lr": 1.0, "lr_batch": 4, "betas": [0.9, 0.95], "weight_decay": 0.0}
    engine, _ = eng.initialize(AVMAE(ModelConfig.from_dict(TINY_MODEL)),
                               stage(epochs=1, batch_size=4, micro_batch_size=4, optimizer=adam,
                                     warmup_epochs=warmup_epochs), total_steps=10, world_size=1)
    batch = {"audio": torch.randn(4, 1, 64, 128), "video": torch.rand(4, 3, 4, 16, 16)}
    used = []
    for step in range(10):
        loss, _ = engine(batch, generator=torch.Generator().manual_seed(step))
        engine.backward(loss)
        used.append(engine.get_lr()[0])
        engine.step()
    expected = [k / warmup if k < warmup else (1 + math.cos(math.pi * (k - warmup) / (10 - warmup))) / 2
                for k in range(10)]
    assert used == pytest.approx(expected)
    assert used[warmup] == 1.0 and used[0] == (0.0 if warmup else 1.0)


def test_metrics():
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0], [1.0, 0.0]]).numpy()
    per_clip = average_views(logits, torch.tensor([0, 0, 1, 1]).numpy(), 2)
    assert per_clip.tolist() == [[1.0, 0.5], [0.5, 1.5]]
    assert top1(per_clip, torch.tensor([0, 1]).numpy()) == 100.0
    with pytest.raises(ValueError, match="no evaluated view"):
        average_views(logits, torch.tensor([0, 0, 0, 0]).numpy(), 2)


def test_pretrain_then_finetune(features_dir, tiny_settings, tmp_path):
    pre = pretrain.run(tiny_settings, features_dir, tmp_path / "pre")
    assert pre["steps"] == 2 * 2 and len(pre["loss_curve"]) == 2
    record = yaml.safe_load((tmp_path / "pre" / "config.yaml").read_text())
    assert record["settings"] == tiny_settings
    assert record["software"]["torch"].startswith("2.")
    assert record["deepspeed"]["gradient_accumulation_steps"] == 2

    for modality in ("audio", "av"):
        out = tmp_path / f"ft_{modality}"
        metrics = finetune.run(tiny_settings, features_dir, tmp_path / "pre" / "model.pt", modality, out)
        saved = json.loads((out / "metrics.json").read_text())
        assert saved == json.loads(json.dumps(metrics))   # the file holds exactly what run() returned
        assert saved["test_clips"] == 6 and 0.0 <= saved["top1"] <= 100.0
        assert saved["eval_clips"] == 2


def test_decoding_on_the_device_trains_as_decoding_in_the_loader(features_dir, tiny_settings, tmp_path):
    """video_decode 'device' (JPEG frames decoded in the training process, on the GPU at
    paper scale) gives the loader-decoded run's losses and metrics, here on the CPU; the
    device run also loads through 2 DataLoader workers, kept across its 3 finetuning
    epochs, against none."""
    jpeg_dir = as_jpeg(features_dir, tmp_path / "jpeg", quality=90)
    tiny_settings["finetune"]["augment"] = {"color": {}, "scale_jitter": [0.9, 1.33]}
    runs = {}
    for where, workers in (("loader", 0), ("device", 2)):
        for section in ("pretrain", "finetune"):
            tiny_settings[section] = {**tiny_settings[section], "video_decode": where, "num_workers": workers,
                                      "epochs": 1 if section == "pretrain" else 3}
        pre = pretrain.run(tiny_settings, jpeg_dir, tmp_path / where / "pre")
        ft = finetune.run(tiny_settings, jpeg_dir, tmp_path / where / "pre" / "model.pt", "av",
                          tmp_path / where / "ft")
        runs[where] = (pre["loss_curve"], ft["loss_curve"], ft["top1"])
    assert runs["device"] == runs["loader"]


@pytest.mark.parametrize("zero", [1, 2])
def test_finetuning_sgd_under_zero_takes_the_steps_of_stage_0(features_dir, tiny_settings, tmp_path, zero):
    """ZeRO partitions SGD's momentum as it partitions Adam's moments: same losses, same model."""
    tiny_settings["finetune"]["drop_path"] = 0.0
    pre = tmp_path / "pre.pt"
    torch.manual_seed(0)
    torch.save(AVMAE(ModelConfig.from_dict(TINY_MODEL)).state_dict(), pre)
    runs = {}
    for stage_ in (0, zero):
        tiny_settings["finetune"]["zero_stage"] = stage_
        runs[stage_] = finetune.run(tiny_settings, features_dir, pre, "av", tmp_path / f"zero{stage_}")
    assert runs[zero]["loss_curve"] == pytest.approx(runs[0]["loss_curve"], rel=1e-5)
    assert runs[zero]["top1"] == runs[0]["top1"]


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_bf16_master_weights_start_from_the_exact_fp32_weights(tmp_path, zero):
    """DeepSpeed would copy its fp32 masters from the bf16 cast of the model (rounding a
    finetuning run's pretrained weights); an export before any step gives back the exact
    fp32 weights the engine was given, at every ZeRO stage."""
    eng.setup_distributed()
    torch.manual_seed(0)
    model = AVMAE(ModelConfig.from_dict(TINY_MODEL))
    exact = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert any(not torch.equal(w, w.bfloat16().float()) for w in exact.values())
    engine, _ = eng.initialize(model, stage(zero_stage=zero, precision="bf16", batch_size=4, micro_batch_size=4),
                               total_steps=10, world_size=1)
    pretrain.export_fp32(engine, tmp_path / "model.pt", rank=0)
    exported = torch.load(tmp_path / "model.pt")
    assert [n for n, w in exact.items() if not torch.equal(exported[n], w)] == []


class Scale(torch.nn.Module):
    """y = w x with one weight, so that dloss/dw of loss = y.sum() is x: gradients we choose."""

    depth = 0

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.w * x

    def layer_of(self, name):
        return 0


@pytest.mark.parametrize("zero", [1, 2])
def test_bf16_gradients_accumulate_in_fp32(zero):
    """8 micro-batches with gradients 256, 1, ..., 1 (each exact in bf16): their sum, 263,
    is not, and a bf16 accumulator keeps 256 (256 + 1 rounds back to 256 every time).
    The step must use the fp32 sum: w = -lr x 263 / 8."""
    eng.setup_distributed()
    engine, ds_config = eng.initialize(
        Scale(), stage(zero_stage=zero, precision="bf16", batch_size=8, micro_batch_size=1, warmup_epochs=0,
                       optimizer={"name": "sgd", "lr": 1 / 32, "lr_batch": 8, "momentum": 0.0,
                                  "weight_decay": 0.0}),
        total_steps=10, world_size=1)
    assert ds_config["gradient_accumulation_steps"] == 8
    for x in [256.0] + [1.0] * 7:
        engine.backward(engine(torch.tensor([x], dtype=torch.bfloat16)).sum())
        engine.step()
    assert eng.fp32_weights(engine)["w"].item() == -263 / 8 / 32


def test_bf16_training_follows_fp32(features_dir, tiny_settings, tmp_path):
    """The paper profile's training path at a tiny size: bf16 (``auto``, and on the GPU
    where there is one), ZeRO 1, JPEG frames decoded where the model runs (nvJPEG on a
    GPU) from 2 workers, against fp32 ZeRO 0 with loader decoding. bf16 (and nvJPEG's)
    rounding moves the losses a little; a wrong device or dtype anywhere fails the run
    or moves them far. The first epoch's loss is mostly the initial weights', so it is
    compared."""
    jpeg_dir = as_jpeg(features_dir, tmp_path / "jpeg", quality=90)
    tiny_settings["finetune"]["augment"] = {"color": {}, "scale_jitter": [0.9, 1.33], "mixup_alpha": 0.3}
    bf16 = "auto" if torch.cuda.is_available() else "bf16"   # auto is fp32 on a CPU
    runs = {}
    for name, precision, zero, decode, workers in (("bf16", bf16, 1, "device", 2), ("fp32", "fp32", 0, "loader", 0)):
        for section in ("pretrain", "finetune"):
            tiny_settings[section] = {**tiny_settings[section], "precision": precision, "zero_stage": zero,
                                      "video_decode": decode, "num_workers": workers}
        pre = pretrain.run(tiny_settings, jpeg_dir, tmp_path / name / "pre")
        assert yaml.safe_load((tmp_path / name / "pre" / "config.yaml").read_text())["deepspeed"]["bf16"] == \
            {"enabled": name == "bf16"}
        ft = finetune.run(tiny_settings, jpeg_dir, tmp_path / name / "pre" / "model.pt", "av", tmp_path / name / "ft")
        assert all(math.isfinite(v) for v in pre["loss_curve"] + ft["loss_curve"]), (pre, ft)
        assert 0.0 <= ft["top1"] <= 100.0 and ft["test_clips"] == 6
        runs[name] = (pre["loss_curve"][0], ft["loss_curve"][0])
    assert runs["bf16"] == pytest.approx(runs["fp32"], rel=0.03), runs


@pytest.mark.parametrize("kind,metrics", [("multi", {"mAP"}), ("verb_noun", {"verb_top1", "noun_top1", "action_top1"})])
def test_finetune_heads_and_metrics_follow_the_label_kind(tiny_settings, tmp_path, kind, metrics):
    features = write_features(tmp_path / "features", kind=kind)
    pretrain.run(tiny_settings, features, tmp_path / "pre")
    s = {**tiny_settings, "finetune": {**tiny_settings["finetune"], "augment": {"mixup_alpha": 0.5}}}
    result = finetune.run(s, features, tmp_path / "pre" / "model.pt", "av", tmp_path / "ft")
    assert metrics <= set(result) and "top1" not in result
    assert all(0.0 <= result[m] <= 100.0 for m in metrics)
    assert all(math.isfinite(x) for x in result["loss_curve"])


def finetune_batch(b=4):
    g = torch.Generator().manual_seed(0)
    return {"audio": torch.randn(b, 1, 64, 128, generator=g), "video": torch.rand(b, 3, 4, 16, 16, generator=g),
            "label": torch.tensor([0, 1, 2, 1]), "index": torch.tensor([3, 0, 7, 5])}


def test_training_loss_scores_each_modality_against_its_targets():
    from avmae.models.mbt import MBT
    model = MBT(ModelConfig.from_dict(TINY_MODEL), 3, ["audio", "video"], fusion_layer=1)
    with torch.no_grad():
        model.head.weight.normal_()
    b = finetune_batch()
    stage = {"label_smoothing": 0.1, "augment": {"mixup_alpha": 0.0}}
    loss = finetune.make_loss(model, model, stage, seed=0, epoch_of=lambda: 0)(b)
    logits = model({"audio": b["audio"], "video": b["video"]}, per_modality=True)
    expected = sum(torch.nn.functional.cross_entropy(logits[m], b["label"], label_smoothing=0.1)
                   for m in logits) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_mixup_is_seeded_by_epoch_and_clips():
    from avmae.models.mbt import MBT
    model = MBT(ModelConfig.from_dict(TINY_MODEL), 3, ["audio", "video"], fusion_layer=1)
    with torch.no_grad():
        model.head.weight.normal_()
    stage = {"label_smoothing": 0.0, "augment": {"mixup_alpha": 0.5}}
    epoch = [0]
    loss_fn = finetune.make_loss(model, model, stage, seed=0, epoch_of=lambda: epoch[0])
    b = finetune_batch()
    first, again = loss_fn(b).item(), loss_fn(b).item()
    epoch[0] = 1
    assert first == again != loss_fn(b).item()   # same batch, epoch: same lambdas; next epoch: new ones
    plain = finetune.make_loss(model, model, {**stage, "augment": {"mixup_alpha": 0.0}}, 0, lambda: 0)(b)
    assert plain.item() != first


def test_finetune_on_a_subset_of_the_training_clips(features_dir, tiny_settings, tmp_path):
    """AS-500K style: only the listed clips train; the test split stays whole."""
    from avmae.acquire.lists import Clip, write_clips
    pretrain.run(tiny_settings, features_dir, tmp_path / "pre")
    subset = tmp_path / "as500k.csv"
    write_clips(subset, [Clip(f"train{i:03d}", 0.0, "x", "train") for i in range(8)] + [Clip("gone", 0.0, "x", "train")])
    result = finetune.run(tiny_settings, features_dir, tmp_path / "pre" / "model.pt", "audio", tmp_path / "ft", subset)
    assert result["train_clips"] == 8 and result["test_clips"] == 6
    assert result["train_subset"] == {"list": str(subset), "missing_clips": 1}
    write_clips(subset, [Clip("nowhere", 0.0, "x", "train")])
    with pytest.raises(ValueError, match=f"{subset}: none of its 1 ids"):
        finetune.run(tiny_settings, features_dir, tmp_path / "pre" / "model.pt", "audio", tmp_path / "ft2", subset)


def test_finetune_rejects_unknown_modality(features_dir, tiny_settings, tmp_path):
    with pytest.raises(ValueError, match="modality"):
        finetune.run(tiny_settings, features_dir, tmp_path / "none.pt", "text", tmp_path)


def test_map_and_epic_metrics():
    from avmae.train.metrics import mean_average_precision, verb_noun_action

    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    perfect = targets + 0.1
    assert mean_average_precision(perfect, targets) == pytest.approx(100.0)  # class 2 has no positive
    worst = 1.0 - targets
    assert mean_average_precision(worst, targets) < 70.0
    with pytest.raises(ValueError):
        mean_average_precision(perfect, np.zeros_like(targets))
    m = verb_noun_action(np.eye(3), np.eye(3), np.array([0, 1, 0]), np.array([0, 2, 2]))
    assert m == {"verb_top1": pytest.approx(200 / 3), "noun_top1": pytest.approx(200 / 3),
                 "action_top1": pytest.approx(100 / 3)}
