"""MBT: bottleneck fusion wiring, stochastic depth, and initialisation from every pretraining variant."""

import pytest
import torch

from avmae.models.avmae import AVMAE, ModelConfig
from avmae.models.mbt import MBT, init_mbt_from_avmae

TINY = dict(encoder=dict(width=32, depth=3, heads=2, mlp_dim=64),
            decoder=dict(width=16, depth=1, heads=2, mlp_dim=32),
            video_patch=[2, 8, 8], audio_patch=[16, 16], joint_layers=1)


def cfg(encoder="separate", decoder="shared", **kw) -> ModelConfig:
    return ModelConfig.from_dict({**TINY, "encoder_strategy": encoder, "decoder_strategy": decoder, **kw})


def inputs(b=2, requires_grad=False):
    torch.manual_seed(0)
    return {"audio": torch.randn(b, 1, 32, 64),
            "video": (torch.rand(b, 3, 2, 16, 16) * 2 - 1).requires_grad_(requires_grad)}


def video_influence_on_audio_stream(fusion_layer: int) -> float:
    """Gradient reaching the video input through the audio classifier alone."""
    mbt = MBT(cfg(), 5, ["audio", "video"], fusion_layer=fusion_layer)
    with torch.no_grad():
        mbt.head.weight.normal_()
    x = inputs(requires_grad=True)
    (mbt(x, per_modality=True)["audio"] * torch.randn(2, 5)).sum().backward()   # the audio stream alone
    return 0.0 if x["video"].grad is None else x["video"].grad.abs().sum().item()


def test_bottlenecks_carry_information_only_from_the_fusion_layer_on():
    """Video reaches audio tokens when a fusion layer reads bottlenecks averaged by an earlier one."""
    assert video_influence_on_audio_stream(fusion_layer=3) == 0.0  # depth 3: no fusion layer
    assert video_influence_on_audio_stream(fusion_layer=2) == 0.0  # last layer's bottleneck output is unread
    assert video_influence_on_audio_stream(fusion_layer=1) > 0.0
    assert video_influence_on_audio_stream(fusion_layer=0) > 0.0


def test_mbt_shapes_and_bottleneck_use():
    mbt = MBT(cfg(), 7, ["audio", "video"], fusion_layer=1, bottlenecks=4)
    assert mbt.bottleneck.shape == (1, 4, 32)
    logits = mbt(inputs())
    assert logits.shape == (2, 7)
    assert torch.equal(logits, torch.zeros(2, 7))  # classifiers start at zero
    with torch.no_grad():
        mbt.head.weight.normal_()
    mbt.loss(mbt(inputs()), torch.tensor([1, 6])).backward()
    assert mbt.bottleneck.grad.abs().sum() > 0
    assert MBT(cfg(), 7, ["audio", "video"], fusion_layer=3).bottleneck is None  # no fusion layer


def test_single_modality_mbt_is_a_plain_vit():
    mbt = MBT(cfg(), 3, ["video"], fusion_layer=1)
    assert mbt.bottleneck is None and set(mbt.tokenizers) == {"video"} and set(mbt.streams) == {"video"}
    assert mbt(inputs()).shape == (2, 3)


def test_stochastic_depth_only_in_training():
    mbt = MBT(cfg(), 3, ["audio", "video"], fusion_layer=1, drop_path=0.5)
    with torch.no_grad():
        mbt.head.weight.normal_()
    x = inputs()
    torch.manual_seed(1)
    a = mbt(x)
    torch.manual_seed(2)
    assert not torch.equal(a, mbt(x))
    mbt.eval()
    assert torch.equal(mbt(x), mbt(x))


def test_mbt_rejects_bad_settings():
    with pytest.raises(ValueError, match="fusion_layer"):
        MBT(cfg(), 3, ["audio", "video"], fusion_layer=4)
    with pytest.raises(ValueError, match="bottlenecks"):
        MBT(cfg(), 3, ["audio", "video"], fusion_layer=1, bottlenecks=0)
    with pytest.raises(ValueError, match="modalities"):
        MBT(cfg(), 3, ["rgb"], fusion_layer=1)


# Expected sources, written out per variant (depth 3, S = 1 joint layer for mid-fusion).
SOURCES = {
    "separate": {m: [f"encoder.split.{m}.blocks.{i}." for i in range(3)] + [f"encoder.split_norm.{m}."]
                 for m in ("audio", "video")},
    "shared": {m: [f"encoder.split.shared.blocks.{i}." for i in range(3)] + ["encoder.split_norm.shared."]
               for m in ("audio", "video")},
    "early": {m: [f"encoder.joint.blocks.{i}." for i in range(3)] + ["encoder.joint_norm."]
              for m in ("audio", "video")},
    "mid": {m: [f"encoder.split.{m}.blocks.0.", f"encoder.split.{m}.blocks.1.", "encoder.joint.blocks.0.",
                "encoder.joint_norm."] for m in ("audio", "video")},
}


@pytest.mark.parametrize("encoder", ["separate", "shared", "early", "mid"])
def test_init_from_every_encoder_strategy(encoder):
    mae_cfg = cfg(encoder, "early" if encoder == "separate" else "separate")
    state = AVMAE(mae_cfg).state_dict()
    mbt = MBT(mae_cfg, 5, ["audio", "video"], fusion_layer=2)
    left = init_mbt_from_avmae(mbt, state, mae_cfg, transfer="full")
    assert all(k.startswith(("head.", "bottleneck")) for k in left) and "bottleneck" in left
    got = mbt.state_dict()
    for m in ("audio", "video"):
        *layers, norm = SOURCES[encoder][m]
        for i, src in enumerate(layers):
            for name in ("attn.qkv.weight", "attn.proj.bias", "mlp.0.weight", "mlp.2.weight", "norm1.weight"):
                assert torch.equal(got[f"streams.{m}.blocks.{i}.{name}"], state[src + name]), (m, i, name)
        assert torch.equal(got[f"norm.{m}.weight"], state[norm + "weight"])
        assert torch.equal(got[f"tokenizers.{m}.proj.weight"], state[f"tokenizers.{m}.proj.weight"])
    # streams loaded from the same weights are untied copies
    a = mbt.streams["audio"].blocks[0].attn.qkv.weight
    v = mbt.streams["video"].blocks[0].attn.qkv.weight
    assert a.data_ptr() != v.data_ptr()
    with torch.no_grad():
        a.add_(1.0)
    assert not torch.equal(a, v)


@pytest.mark.parametrize("encoder", ["separate", "mid", "early"])
def test_official_transfer_leaves_out_the_audio_embedding_and_separate_encoders_norm(encoder):
    """av_mae/mbt.py renames the audio patch embedding to a key MBT lacks, and drops the
    per-stream norms of separate encoders; mid-fusion's joint norm becomes the final norm."""
    mae_cfg = cfg(encoder, "early" if encoder == "separate" else "separate")
    state = {k: v + 1.0 for k, v in AVMAE(mae_cfg).state_dict().items()}   # nothing equals an init
    mbt = MBT(mae_cfg, 5, ["audio", "video"], fusion_layer=2)
    fresh = {k: v.clone() for k, v in mbt.state_dict().items()}
    left = set(init_mbt_from_avmae(mbt, state, mae_cfg, transfer="official"))
    got = mbt.state_dict()
    assert {"tokenizers.audio.proj.weight", "tokenizers.audio.proj.bias"} <= left
    assert torch.equal(got["tokenizers.audio.proj.weight"], fresh["tokenizers.audio.proj.weight"])
    assert torch.equal(got["tokenizers.video.proj.weight"], state["tokenizers.video.proj.weight"])
    norm_left = {"norm.audio.weight", "norm.video.weight"} <= left
    assert norm_left == (encoder == "separate")
    if encoder == "separate":
        assert (got["norm.video.weight"] == 1).all()   # identity, as the official MBT's
    else:
        assert torch.equal(got["norm.audio.weight"], state["encoder.joint_norm.weight"])
    with pytest.raises(ValueError, match="transfer must be one of"):
        init_mbt_from_avmae(mbt, state, mae_cfg, transfer="paper")


@pytest.mark.parametrize("modality", ["audio", "video"])
def test_init_both_streams_from_a_unimodal_mae(modality):
    mae_cfg = cfg("separate", "separate", modalities=[modality])
    state = AVMAE(mae_cfg).state_dict()
    mbt = MBT(mae_cfg, 5, ["audio", "video"], fusion_layer=2)
    left = init_mbt_from_avmae(mbt, state, mae_cfg)
    other = {"audio": "video", "video": "audio"}[modality]
    assert f"tokenizers.{other}.proj.weight" in left  # the MAE has no tokenizer for it
    got = mbt.state_dict()
    for m in ("audio", "video"):
        for i in range(3):
            assert torch.equal(got[f"streams.{m}.blocks.{i}.mlp.0.weight"],
                               state[f"encoder.split.{modality}.blocks.{i}.mlp.0.weight"])
        assert torch.equal(got[f"norm.{m}.bias"], state[f"encoder.split_norm.{modality}.bias"])
    assert mbt(inputs()).shape == (2, 5)


def test_init_rejects_a_mismatched_checkpoint():
    state = AVMAE(cfg("early", "shared")).state_dict()
    mbt = MBT(cfg(), 5, ["audio", "video"], fusion_layer=2)
    with pytest.raises(ValueError, match="checkpoint lacks"):
        init_mbt_from_avmae(mbt, state, cfg("separate", "shared"))
    wide = ModelConfig.from_dict({**TINY, "encoder": dict(width=64, depth=3, heads=2, mlp_dim=64),
                                  "encoder_strategy": "early"})
    with pytest.raises(ValueError, match="has shape"):
        init_mbt_from_avmae(mbt, AVMAE(wide).state_dict(), wide)
