"""The Model Zoo importer against the official function.

The oracle is a NumPy transcription of the official Scenic forward passes, written in this
file from the authors' code (``av_mae/vivit_multimodal.py``, ``av_mae/mbt.py``,
``vivit/model.py`` EncoderBlock, ``attention_layers.sinusoidal_init`` / ``MlpBlock``):
pre-LN blocks with Flax's tanh GELU and LayerNorm eps 1e-6; attention on (D, heads,
head_dim) kernels; fixed 1D sin/cos positions interleaved on even/odd channels, per
modality over its own flattened tokens; conv embeddings as dot products of
(t, h, w, C) / (time, mel, C) patches with the kernel. Checkpoints come from
``avmae.toy.zoo``, which writes the official trees from their names and shapes alone.
"""

import json
import math

import numpy as np
import pytest
import torch

from avmae.models.avmae import AVMAE, ModelConfig
from avmae.toy import zoo as Z
from avmae.zoo import flax_msgpack
from avmae.zoo.importer import import_checkpoint
from avmae.zoo.scenic import TreeMismatch

ENC = {"width": 32, "depth": 4, "heads": 4, "mlp_dim": 64}
DEC = {"width": 16, "depth": 2, "heads": 2, "mlp_dim": 32}
VP, AP = [2, 8, 8], [16, 16]


# ----------------------------------------------------------- the official function in NumPy
def ln(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def attention(x, p):
    q, k, v = (np.einsum("nd,dhk->nhk", x, p[n]["kernel"]) + p[n]["bias"] for n in ("query", "key", "value"))
    logits = np.einsum("qhd,khd->hqk", q / math.sqrt(q.shape[-1]), k)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    o = np.einsum("hqk,khd->qhd", w, v)
    return np.einsum("qhd,hdD->qD", o, p["out"]["kernel"]) + p["out"]["bias"]


def block(x, p):
    x = x + attention(ln(x, p["LayerNorm_0"]), p["MultiHeadDotProductAttention_0"])
    m = p["MlpBlock_0"]
    h = gelu(ln(x, p["LayerNorm_1"]) @ m["Dense_0"]["kernel"] + m["Dense_0"]["bias"])
    return x + h @ m["Dense_1"]["kernel"] + m["Dense_1"]["bias"]


def transformer(x, tree, n=None):
    for i in range(n if n is not None else Z_blocks(tree)):
        x = block(x, tree[f"encoderblock_{i}"])
    return ln(x, tree["encoder_norm"])


def Z_blocks(tree, suffix=""):
    return sum(1 for k in tree if k.startswith("encoderblock_") and k.endswith(suffix) and
               (suffix or not k.endswith("_spec")))


def sinusoid(n, d):
    pe = np.zeros((n, d))
    div = np.exp(np.arange(0, d, 2) * -(np.log(1e4) / d))
    pe[:, 0::2] = np.sin(np.arange(n)[:, None] * div)
    pe[:, 1::2] = np.cos(np.arange(n)[:, None] * div)
    return pe.astype(np.float32)


def embed_video(clip, p):
    """clip [T, H, W, 3] -> tokens in (t', h', w') order."""
    pt, ph, pw = p["kernel"].shape[:3]
    t, h, w, c = clip.shape
    x = clip.reshape(t // pt, pt, h // ph, ph, w // pw, pw, c).transpose(0, 2, 4, 1, 3, 5, 6)
    return np.einsum("abcthwk,thwkd->abcd", x, p["kernel"]).reshape(-1, p["kernel"].shape[-1]) + p["bias"]


def embed_audio(spec, p):
    """spec [T, F] -> tokens in (t', f') order, the log-mel tiled to the kernel's channels."""
    pt, pf, c, d = p["kernel"].shape
    t, f = spec.shape
    x = spec[: t // pt * pt].reshape(t // pt, pt, f // pf, pf).transpose(0, 2, 1, 3)
    return np.einsum("abtfc,tfcd->abd", x[..., None].repeat(c, -1), p["kernel"]).reshape(-1, d) + p["bias"]


def official_mbt(tree, audio, video, fusion_layer):
    """Eval logits of av_mae/mbt.py's MBT for one clip (audio [T, F], video [T, H, W, 3])."""
    tr = tree["Transformer"]
    x = {"video": embed_video(video, tree["embedding"]), "audio": embed_audio(audio, tree["embedding_spectrogram"])}
    x = {m: t + sinusoid(*t.shape) for m, t in x.items()}
    suffix = {"video": "", "audio": "_spec"}
    bottleneck = tree["bottleneck"][0]
    for layer in range(Z_blocks(tr)):
        if layer < fusion_layer:
            x = {m: block(t, tr[f"encoderblock_{layer}{suffix[m]}"]) for m, t in x.items()}
            continue
        outs = {m: block(np.concatenate([t, bottleneck]), tr[f"encoderblock_{layer}{suffix[m]}"]) for m, t in x.items()}
        x = {m: o[: len(x[m])] for m, o in outs.items()}
        bottleneck = np.mean([o[len(x[m]):] for m, o in outs.items()], axis=0)
    joint = ln(np.concatenate([x["video"], x["audio"]]), tr["encoder_norm"])
    n = len(x["video"])
    head = tree["ProjectionHeadAndClassifier_0"]["output_projection"]
    logits = [joint[:n].mean(0) @ head["kernel"] + head["bias"], joint[n:].mean(0) @ head["kernel"] + head["bias"]]
    return np.mean(logits, axis=0)


KEY = {"video": "rgb", "audio": "spectrogram"}


def official_avmae(tree, inputs, masks, encoder, decoder, joint_layers):
    """Loss and predictions of vivit_multimodal.py's AV-MAE for one clip; ``masks``: bool, True = hidden."""
    tokens = {"video": embed_video(inputs["video"], tree["embedding_rgb"]),
              "audio": embed_audio(inputs["audio"], tree["embedding_spectrogram"])}
    tokens = {m: t + sinusoid(*t.shape) for m, t in tokens.items()}
    visible = {m: t[~masks[m]] for m, t in tokens.items()}
    order = ["video", "audio"]   # rgb first, as a jitted step's sorted keys
    if encoder == "separate":
        enc = {m: transformer(v, tree[f"Transformer_{KEY[m]}"]) for m, v in visible.items()}
    elif encoder == "shared":
        enc = {m: transformer(v, tree["Transformer"]) for m, v in visible.items()}
    else:
        if encoder == "mid":
            visible = {m: transformer(v, tree[f"Transformer_{KEY[m]}"]) for m, v in visible.items()}
        joint = transformer(np.concatenate([visible[m] for m in order]),
                            tree["Transformer_concat" if encoder == "mid" else "Transformer"])
        enc = {"video": joint[: len(visible["video"])], "audio": joint[len(visible["video"]):]}
    seq = {}
    for m, e in enc.items():
        p = tree[f"decoder_projection_{KEY[m]}"]
        full = np.repeat(tree[f"mask_token_{KEY[m]}"][0], len(masks[m]), axis=0)
        full[~masks[m]] = e @ p["kernel"] + p["bias"]
        seq[m] = full + sinusoid(*full.shape)
    if decoder == "separate":
        dec = {m: transformer(s, tree[f"Decoder_{KEY[m]}"]) for m, s in seq.items()}
    elif decoder == "shared":
        dec = {m: transformer(s, tree["Decoder"]) for m, s in seq.items()}
    else:
        joint = transformer(np.concatenate([seq[m] for m in order]), tree["Decoder"])
        dec = {"video": joint[: len(seq["video"])], "audio": joint[len(seq["video"]):]}
    pred = {m: d @ tree[f"output_projection_{KEY[m]}"]["kernel"] + tree[f"output_projection_{KEY[m]}"]["bias"]
            for m, d in dec.items()}
    v = inputs["video"]
    t, h, w, c = v.shape
    target_v = v.reshape(t // 2, 2, h // 8, 8, w // 8, 8, c).transpose(0, 2, 4, 1, 3, 5, 6).reshape(-1, 2 * 8 * 8 * c)
    a = inputs["audio"]
    target_a = a.reshape(a.shape[0] // 16, 16, a.shape[1] // 16, 16).transpose(0, 2, 1, 3).reshape(-1, 256)
    targets = {"video": target_v, "audio": target_a}
    losses = {m: (((pred[m] - targets[m]) ** 2).sum(-1)[masks[m]]).sum() / (masks[m].sum() + 1e-8) / pred[m].shape[-1]
              for m in pred}
    return 0.5 * losses["audio"] + 0.5 * losses["video"], pred


# ------------------------------------------------------------------------------- tests
def settings_for(encoder, decoder, **finetune):
    return {"seed": 0, "model": {"encoder": ENC, "decoder": DEC, "encoder_strategy": encoder,
                                 "decoder_strategy": decoder, "joint_layers": 2, "video_patch": VP,
                                 "audio_patch": AP}, "finetune": {"mbt": {"bottlenecks": 4, "fusion_layer": 2},
                                                                  **finetune}}


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


STRATEGIES = [("separate", "shared"), ("mid", "shared"), ("early", "shared"), ("shared", "shared"),
              ("mid", "early"), ("mid", "separate")]


@pytest.mark.parametrize("encoder,decoder", STRATEGIES)
def test_imported_avmae_computes_the_official_loss_and_predictions(tmp_path, encoder, decoder):
    tree = Z.avmae_tree(ENC, DEC, encoder, decoder, 2, VP, AP, seed=1)
    Z.write_checkpoint(tree, tmp_path / "checkpoint", "pretrain")
    record = import_checkpoint(tmp_path / "checkpoint", settings_for(encoder, decoder), tmp_path / "out")
    assert record["source"]["params_at"] == "optimizer/target"
    model = AVMAE(ModelConfig.from_dict(settings_for(encoder, decoder)["model"]))
    model.load_state_dict(torch.load(tmp_path / "out" / "model.pt", weights_only=True))
    model.eval()

    rng = np.random.default_rng(0)
    video = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)   # 2 x 2 x 2 = 8 tubelets
    audio = rng.normal(0, 1, (64, 32)).astype(np.float32)           # 4 x 2 = 8 patches
    masks = {"video": np.zeros(8, bool), "audio": np.zeros(8, bool)}
    masks["video"][[0, 2, 3, 5, 6, 7]] = True     # int(0.75 * 8) = 6 hidden
    masks["audio"][[1, 4, 6, 7]] = True           # int(0.5 * 8) = 4 hidden
    model.cfg = ModelConfig.from_dict({**settings_for(encoder, decoder)["model"],
                                       "mask_ratio": {"audio": 0.5, "video": 0.75}})
    inputs = {"video": torch.from_numpy(video).permute(3, 0, 1, 2)[None], "audio": torch.from_numpy(audio)[None, None]}
    noise = {m: torch.from_numpy(masks[m].astype(np.float32))[None] for m in masks}   # hidden sort last
    with torch.no_grad():
        loss, out = model(inputs, noise=noise)
    want_loss, want_pred = official_avmae(tree, {"video": video, "audio": audio}, masks, encoder, decoder, 2)
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-5)
    for m in ("audio", "video"):
        got = out["pred"][m][0].numpy()
        assert (out["mask"][m][0].numpy() == masks[m]).all()
        assert rel(got[masks[m]], want_pred[m][masks[m]]) < 1e-5, m


@pytest.mark.parametrize("channels", [1, 3])
def test_imported_mbt_gives_the_official_logits(tmp_path, channels):
    """VGGSound finetuning feeds 3 identical log-mel channels: the kernel is summed over them."""
    from avmae.models.mbt import MBT

    tree = Z.mbt_tree(ENC, 7, ["audio", "video"], VP, AP, audio_channels=channels, seed=2)
    Z.write_checkpoint(tree, tmp_path / "checkpoint", "finetune")
    record = import_checkpoint(tmp_path / "checkpoint", settings_for("separate", "shared"), tmp_path / "out",
                               kind="mbt", url="https://example.org/checkpoint")
    assert record["architecture"]["classes"] == 7 and record["architecture"]["audio_channels"] == channels
    assert record["source"]["url"] == "https://example.org/checkpoint" and len(record["source"]["sha256"]) == 64
    assert record["leaf_of_parameter"]["streams.audio.blocks.3.mlp.2.weight"] == \
        "Transformer/encoderblock_3_spec/MlpBlock_0/Dense_1/kernel"
    mbt = MBT(ModelConfig.from_dict(settings_for("separate", "shared")["model"]), 7, ["audio", "video"], 2)
    mbt.load_state_dict(torch.load(tmp_path / "out" / "model.pt", weights_only=True))
    rng = np.random.default_rng(3)
    video = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    audio = rng.normal(0, 1, (64, 32)).astype(np.float32)
    with torch.no_grad():
        got = mbt.eval()({"video": torch.from_numpy(video).permute(3, 0, 1, 2)[None],
                          "audio": torch.from_numpy(audio)[None, None]})[0].numpy()
    assert rel(got, official_mbt(tree, audio, video, fusion_layer=2)) < 1e-5


@pytest.mark.parametrize("modality", ["audio", "video"])
def test_unimodal_mbt_imports_with_its_unused_bottleneck(tmp_path, modality):
    tree = Z.mbt_tree(ENC, 5, [modality], VP, AP, seed=4)
    assert "bottleneck" in tree   # the official MBT creates it for one modality too
    Z.write_checkpoint(tree, tmp_path / "checkpoint", "finetune")
    record = import_checkpoint(tmp_path / "checkpoint", settings_for("separate", "shared"), tmp_path / "out")
    assert record["modality"] == modality and record["architecture"]["modalities"] == [modality]
    assert "bottleneck" not in record["leaf_of_parameter"]


def test_flax_msgpack_reads_chunked_and_bfloat16_arrays(tmp_path):
    """Flax splits arrays over its chunk size into flat pieces; bfloat16 is a float32's upper half."""
    import msgpack

    whole = np.arange(12, dtype=np.float32)
    chunked = {"__msgpack_chunked_array__": True, "shape": {"0": 3, "1": 4},
               "chunks": {"0": whole[:5], "1": whole[5:]}}
    bf16 = msgpack.ExtType(1, msgpack.packb(((2,), "bfloat16", np.array([0x3F80, 0xC000], "<u2").tobytes())))
    (tmp_path / "c").write_bytes(msgpack.packb({"a": chunked, "b": bf16},
                                               default=lambda o: msgpack.ExtType(1, msgpack.packb(
                                                   (o.shape, o.dtype.name, o.tobytes())))))
    tree = flax_msgpack.read(tmp_path / "c")
    assert tree["a"].shape == (3, 4) and tree["a"][2, 3] == 11
    assert tree["b"].tolist() == [1.0, -2.0]


def test_refusals_name_what_differs(tmp_path):
    tree = Z.avmae_tree(ENC, DEC, "mid", "shared", 2, VP, AP)
    Z.write_checkpoint(tree, tmp_path / "checkpoint", "pretrain")
    with pytest.raises(TreeMismatch, match="model.encoder_strategy: settings 'separate', checkpoint 'mid'"):
        import_checkpoint(tmp_path / "checkpoint", settings_for("separate", "shared"), tmp_path / "o1")
    wide = settings_for("mid", "shared")
    wide["model"]["encoder"] = {**ENC, "width": 48, "heads": 4}
    with pytest.raises(TreeMismatch, match=r"sizes.<size>.encoder: settings \[48, 4, 4, 64\], checkpoint \[32"):
        import_checkpoint(tmp_path / "checkpoint", wide, tmp_path / "o2")
    with pytest.raises(TreeMismatch, match="expected an mbt tree, found an avmae tree"):
        import_checkpoint(tmp_path / "checkpoint", settings_for("mid", "shared"), tmp_path / "o3", kind="mbt")

    extra = Z.avmae_tree(ENC, DEC, "mid", "shared", 2, VP, AP)
    extra["Transformer_concat"]["encoderblock_0"]["stray"] = {"kernel": np.zeros(3, np.float32)}
    Z.write_checkpoint(extra, tmp_path / "extra", "pretrain")
    with pytest.raises(TreeMismatch, match="1 checkpoint leaves map to nothing: Transformer_concat/encoderblock_0/stray"):
        import_checkpoint(tmp_path / "extra", settings_for("mid", "shared"), tmp_path / "o4")

    missing = Z.avmae_tree(ENC, DEC, "mid", "shared", 2, VP, AP)
    del missing["Decoder"]["encoder_norm"]
    Z.write_checkpoint(missing, tmp_path / "missing", "pretrain")
    with pytest.raises(TreeMismatch, match="the checkpoint lacks 'Decoder/encoder_norm/scale'"):
        import_checkpoint(tmp_path / "missing", settings_for("mid", "shared"), tmp_path / "o5")

    blob = (tmp_path / "checkpoint").read_bytes()
    (tmp_path / "truncated").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated: not a Flax msgpack checkpoint"):
        import_checkpoint(tmp_path / "truncated", settings_for("mid", "shared"), tmp_path / "o6")
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 7))   # nothing half-written


def test_import_scenic_cli_writes_model_and_record(tmp_path):
    import subprocess
    import sys

    Z.write_checkpoint(Z.mbt_tree(ENC, 3, ["audio", "video"], VP, AP), tmp_path / "checkpoint", "finetune")
    proc = subprocess.run([sys.executable, "-m", "avmae.cli", "import-scenic", "--checkpoint",
                           str(tmp_path / "checkpoint"), "--settings", json.dumps(settings_for("mid", "shared")),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "out" / "import.json").read_text())
    assert record["kind"] == "mbt" and (tmp_path / "out" / "model.pt").stat().st_size > 0
    bad = subprocess.run([sys.executable, "-m", "avmae.cli", "import-scenic", "--checkpoint",
                          str(tmp_path / "nope"), "--settings", "{}", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_a_released_model_evaluates_and_a_wrong_class_count_is_refused(tmp_path, features_dir, tiny_settings):
    """avmae evaluate scores an imported MBT on the test split with the finetuning protocol;
    a checkpoint of another class count stops naming the file and the counts."""
    from avmae.features.labels import LabelSpace
    from avmae.zoo.importer import evaluate_released

    meta = json.loads((features_dir / "meta.json").read_text())
    classes = LabelSpace.from_meta(meta).num_classes
    m = tiny_settings["model"]
    for n, name in ((classes, "right"), (classes + 3, "wrong")):
        tree = Z.mbt_tree(m["encoder"], n, ["audio", "video"], m["video_patch"], m["audio_patch"], seed=5)
        Z.write_checkpoint(tree, tmp_path / name / "checkpoint", "finetune")
        import_checkpoint(tmp_path / name / "checkpoint", tiny_settings, tmp_path / name)
    metrics = evaluate_released(tiny_settings, features_dir, tmp_path / "right" / "model.pt", "av", tmp_path / "eval")
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["test_clips"] == meta["counts"]["test"] and saved["eval_clips"] == 2
    assert 0 <= metrics["top1"] <= 100 and len(saved["test_ids_sha256"]) == 64
    with pytest.raises(SystemExit, match=rf"wrong/model.pt: does not fit .* {classes} classes"):
        evaluate_released(tiny_settings, features_dir, tmp_path / "wrong" / "model.pt", "av", tmp_path / "e2")


def test_zoo_fetch_refuses_a_checksum_mismatch_and_a_missing_file(tmp_path):
    import subprocess
    import sys

    Z.write_checkpoint(Z.mbt_tree(ENC, 3, ["audio"], VP, AP), tmp_path / "src", "finetune")

    def fetch(url, *extra):
        return subprocess.run([sys.executable, "-m", "avmae.cli", "zoo-fetch", "--url", url, "--out",
                               str(tmp_path / "got" / "checkpoint"), "--record", str(tmp_path / "got" / "c.json"),
                               *extra], capture_output=True, text=True, timeout=120)
    bad = fetch((tmp_path / "src").as_uri(), "--sha256", "0" * 64)
    assert bad.returncode != 0 and "differs from the expected" in bad.stderr
    missing = fetch((tmp_path / "nothere").as_uri())
    assert missing.returncode != 0 and "cannot fetch the checkpoint" in missing.stderr
    assert not (tmp_path / "got" / "checkpoint").exists()   # nothing half-written is left to use
    good = fetch((tmp_path / "src").as_uri())
    assert good.returncode == 0
    assert json.loads((tmp_path / "got" / "c.json").read_text())["bytes"] == (tmp_path / "src").stat().st_size
