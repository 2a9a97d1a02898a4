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
        assert saved["top1"] == metrics["top1"]
        # write_features: 6 test clips, so top-1 is k/6 of 100 for a whole number k of right clips
        assert saved["test_clips"] == 6 and saved["eval_clips"] == 2
        right = saved["top1"] * 6 / 100
        assert right == pytest.approx(round(right), abs=1e-9) and 0 <= round(right) <= 6
        # 2 epochs of 16 train clips in batches of 8: 4 steps, the curve one value per epoch
        assert saved["steps"] == 2 * 16 // 8 and len(saved["loss_curve"]) == 2


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
    if kind == "verb_noun":   # 6 test clips: each is k/6 of 100; an action needs both right
        assert all(result[m] * 6 / 100 == pytest.approx(round(result[m] * 6 / 100), abs=1e-9) for m in metrics)
        assert result["action_top1"] <= min(result["verb_top1"], result["noun_top1"]) + 1e-9
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
    # a clip is its (id, start): train000's segment at 5 s is not the extracted one at 0 s
    write_clips(subset, [Clip(f"train{i:03d}", 0.0, "x", "train") for i in range(8)]
                + [Clip("gone", 0.0, "x", "train"), Clip("train000", 5.0, "x", "train")])
    result = finetune.run(tiny_settings, features_dir, tmp_path / "pre" / "model.pt", "audio", tmp_path / "ft", subset)
    assert result["train_clips"] == 8 and result["test_clips"] == 6
    assert result["train_subset"] == {"list": str(subset), "missing_clips": 2}
    write_clips(subset, [Clip("train000", 5.0, "x", "train")])   # an extracted id, another segment
    with pytest.raises(ValueError, match=rf"{subset}: none of its 1 clips \(id, start\)"):
        finetune.run(tiny_settings, features_dir, tmp_path / "pre" / "model.pt", "audio", tmp_path / "ft2", subset)


def test_test_clip_hash_covers_id_and_start():
    """The hash reported with a score names the clips by (id, start): two segments of one
    video are two clips. Expected: sha256 of the lines "id,start" (hashlib by hand)."""
    import hashlib

    from avmae.train.evaluate import ids_digest
    keys = [("vid", 0.0), ("vid", 5.0)]
    assert ids_digest(keys) == hashlib.sha256(b"vid,0.0\nvid,5.0").hexdigest()
    assert ids_digest(keys) != ids_digest([("vid", 0.0), ("vid", 7.0)])


def test_finetune_rejects_unknown_modality(features_dir, tiny_settings, tmp_path):
    with pytest.raises(ValueError, match="modality"):
        finetune.run(tiny_settings, features_dir, tmp_path / "none.pt", "text", tmp_path)


def test_map_and_epic_metrics():
    from avmae.train.metrics import mean_average_precision, verb_noun_action

    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    perfect = targets + 0.1
    assert mean_average_precision(perfect, targets) == pytest.approx(100.0)  # class 2 has no positive
    worst = 1.0 - targets
    # By hand (sklearn AP: sum over thresholds of (R_n - R_{n-1}) P_n, ties one threshold):
    # class 0 scores [0, 1, 0] for targets [1, 0, 1]: at 1 nothing is found, at 0 both
    # positives with one negative -> P = 2/3 at R = 1: AP 2/3; class 1 the same; class 2
    # has no positive and is left out. mAP = 200/3.
    assert mean_average_precision(worst, targets) == pytest.approx(200 / 3)
    # no ties: scores 0.9 0.8 0.7 0.6 for targets 1 0 1 0: positives at ranks 1 and 3,
    # AP = (1/1 + 2/3) / 2 = 5/6; the second class ranks its one positive second: AP 1/2;
    # mAP = (5/6 + 1/2) / 2 = 2/3 (pooling both classes, "micro", would give 13/18)
    ranked = np.array([[0.9, 0.5], [0.8, 0.4], [0.7, 0.3], [0.6, 0.2]])
    assert mean_average_precision(ranked, np.array([[1, 0], [0, 1], [1, 0], [0, 0]])) == \
        pytest.approx(100 * 2 / 3)
    with pytest.raises(ValueError):
        mean_average_precision(perfect, np.zeros_like(targets))
    m = verb_noun_action(np.eye(3), np.eye(3), np.array([0, 1, 0]), np.array([0, 2, 2]))
    assert m == {"verb_top1": pytest.approx(200 / 3), "noun_top1": pytest.approx(200 / 3),
                 "action_top1": pytest.approx(100 / 3)}


# --- metrics of a run against models whose answers are known -------------------------------

class Oracle(torch.nn.Module):
    """A "model" that reads the class off the features (write_features adds 2 x class to the
    first 16 mel bins of every frame) and answers it shifted by ``shift``: top-1 100 % for
    shift 0, 0 % for any other shift; ``constant`` answers class 0 for every clip."""

    def __init__(self, shift=0, constant=False):
        super().__init__()
        from avmae.models.heads import HeadSpec
        self.modalities, self.head_spec = ["audio", "video"], HeadSpec.of("single", 4)
        self.shift, self.constant = shift, constant
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        level = x["audio"][:, 0, :, :16].float().mean(dim=(1, 2))          # ~ 2 x class
        label = torch.zeros_like(level).long() if self.constant else (level / 2).round().long()
        return torch.nn.functional.one_hot((label + self.shift) % 4, 4).float()


def test_evaluation_gives_the_known_answers(features_dir, tiny_settings):
    """The evaluation path (views, averaging, scoring) against answers known beforehand:
    labels of the 6 test clips are 0 1 2 3 0 1 (write_features: i % 4), so a right oracle
    scores 100, a shifted one 0, and always answering class 0 scores 2/6 = 33.3."""
    stage = dict(tiny_settings["finetune"])
    stage["input"] = {**stage["input"], "audio_norm": "raw"}
    data = finetune.dataset(features_dir, "test", stage, train=False, seed=0, modality="av")
    assert data.targets["label"].tolist() == [0, 1, 2, 3, 0, 1]
    got = {name: finetune.evaluate(model, data, stage, "cpu", torch.float32)
           for name, model in (("right", Oracle()), ("shifted", Oracle(shift=1)), ("zero", Oracle(constant=True)))}
    assert got["right"]["top1"] == 100.0 and got["shifted"]["top1"] == 0.0
    assert got["zero"]["top1"] == pytest.approx(100 * 2 / 6)
    assert all(g["test_clips"] == 6 for g in got.values())


# --- non-finite losses (finetune/pretrain ``on_nonfinite``) ----------------------------------

def nan_at(monkeypatch, call: int, values: list):
    """Make the AV-MAE's loss NaN at its ``call``-th forward (0-based), recording every loss."""
    original = AVMAE.forward
    calls = [0]

    def forward(self, *args, **kw):
        loss, out = original(self, *args, **kw)
        k, calls[0] = calls[0], calls[0] + 1
        if k == call:
            loss = loss * float("nan")
        values.append(loss.item())
        return loss, out

    monkeypatch.setattr(AVMAE, "forward", forward)


def test_nonfinite_loss_stop_names_the_step(features_dir, tiny_settings, tmp_path, monkeypatch):
    """16 clips, batch 8 in micro-batches of 4: 2 micro-batches per optimizer step, 2 steps
    per epoch. Micro-batch 5 (0-based) is the second of step index 2, the first of epoch 2."""
    values = []
    nan_at(monkeypatch, 5, values)
    with pytest.raises(FloatingPointError, match=r"pretrain: non-finite loss at optimizer step 2 \(epoch 2\)"):
        pretrain.run(tiny_settings, features_dir, tmp_path / "pre")
    assert len(values) == 6 and math.isnan(values[5]) and all(math.isfinite(v) for v in values[:5])
    assert not (tmp_path / "pre" / "model.pt").exists() and not (tmp_path / "pre" / "metrics.json").exists()


def test_nonfinite_loss_skip_drops_that_micro_batch_and_goes_on(features_dir, tiny_settings, tmp_path,
                                                                monkeypatch):
    import pandas as pd
    tiny_settings["pretrain"]["on_nonfinite"] = "skip"
    values = []
    nan_at(monkeypatch, 5, values)
    metrics = pretrain.run(tiny_settings, features_dir, tmp_path / "pre")
    assert len(values) == 8 and math.isnan(values[5])          # all 8 micro-batches ran
    assert metrics["skipped_batches"] == 1 and metrics["steps"] == 4
    assert json.loads((tmp_path / "pre" / "metrics.json").read_text())["skipped_batches"] == 1
    log = pd.read_csv(tmp_path / "pre" / "log" / "steps.csv")
    assert log.step.tolist() == [1, 2, 3, 4]
    # step 3 averages only its finite micro-batch (4); the others average their two
    assert log.loss[2] == pytest.approx(values[4], rel=1e-6)
    assert log.loss[0] == pytest.approx((values[0] + values[1]) / 2, rel=1e-6)
    assert all(math.isfinite(v) for v in metrics["loss_curve"])
    weights = torch.load(tmp_path / "pre" / "model.pt")
    assert all(torch.isfinite(w).all() for w in weights.values())
