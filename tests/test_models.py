"""Model shapes, masking, loss placement and fusion wiring, at toy and paper sizes."""

import pytest
import torch

from avmae.models.avmae import AVMAE, ModelConfig, masked_mse
from avmae.models.classifier import AVClassifier
from avmae.models.fusion import FusionTransformer
from avmae.models.masking import num_visible, random_masking
from avmae.models.tokenizers import AudioPatches, VideoTubelets

TINY = dict(encoder=dict(width=32, depth=3, heads=2, mlp_dim=64),
            decoder=dict(width=16, depth=1, heads=2, mlp_dim=32),
            video_patch=[2, 8, 8], audio_patch=[16, 16], joint_layers=1)


def tiny(encoder="mid", decoder="shared", **kw) -> ModelConfig:
    return ModelConfig.from_dict({**TINY, "encoder_strategy": encoder, "decoder_strategy": decoder, **kw})


def inputs(b=2):
    torch.manual_seed(0)
    return {"audio": torch.randn(b, 1, 64, 128), "video": torch.rand(b, 3, 4, 16, 16) * 2 - 1}


def test_paper_token_counts():
    assert VideoTubelets((2, 16, 16), 8).num_tokens(16, 224) == 1568
    assert AudioPatches((16, 16), 8).num_tokens(800, 128) == 400
    assert AudioPatches((16, 16), 8).num_tokens(1000, 128) == 62 * 8
    v = VideoTubelets((2, 16, 16), 8)(torch.zeros(1, 3, 16, 224, 224))
    assert v.shape == (1, 1568, 8)
    assert num_visible(1568, 0.9) == 156 and num_visible(400, 0.5) == 200


def test_patchify_matches_tokenizer_order():
    """Target patch i is exactly the input region that the conv turns into token i."""
    tok = VideoTubelets((2, 8, 8), 4)
    x = torch.randn(1, 3, 4, 16, 16)
    patches = tok.patchify(x)
    # token 3 = t-block 0, h-block 1, w-block 1
    region = x[0, :, 0:2, 8:16, 8:16].permute(1, 2, 3, 0).reshape(-1)
    assert torch.equal(patches[0, 3], region)
    a = AudioPatches((16, 16), 4)
    spec = torch.randn(1, 1, 32, 128)
    # token 9 = time-block 1, mel-block 1
    assert torch.equal(a.patchify(spec)[0, 9], spec[0, 0, 16:32, 16:32].reshape(-1))


def test_random_masking_ratio_and_independence():
    g = torch.Generator().manual_seed(0)
    keep, mask = random_masking(4, 100, 0.9, generator=g)
    assert keep.shape == (4, 10)
    assert (mask.sum(1) == 90).all()
    assert not torch.equal(mask[0], mask[1]), "each sample draws its own mask"
    assert not mask.gather(1, keep).any()
    with pytest.raises(ValueError):
        random_masking(1, 10, 1.0)


@pytest.mark.parametrize("encoder", ["early", "separate", "shared", "mid"])
@pytest.mark.parametrize("decoder", ["early", "separate", "shared"])
def test_every_strategy_runs(encoder, decoder):
    if (encoder, decoder) == ("separate", "separate"):
        with pytest.raises(ValueError, match="two unrelated MAEs"):
            AVMAE(tiny(encoder, decoder))
        return
    model = AVMAE(tiny(encoder, decoder))
    loss, out = model(inputs())
    loss.backward()
    assert out["pred"]["audio"].shape == (2, 32, 256)
    assert out["pred"]["video"].shape == (2, 8, 384)
    assert out["mask"]["audio"].sum(1).tolist() == [16, 16]   # 0.5 of 32
    assert out["mask"]["video"].sum(1).tolist() == [8 - num_visible(8, 0.9)] * 2
    assert torch.isfinite(loss)


def test_output_heads_start_at_zero():
    model = AVMAE(tiny())
    _, out = model(inputs())
    assert all(p.abs().max() == 0 for p in out["pred"].values())


def test_loss_only_on_masked_tokens():
    pred, target = torch.zeros(1, 4, 3), torch.zeros(1, 4, 3)
    mask = torch.tensor([[True, False, True, False]])
    target[0, 1] = 100.0  # error on a visible token: ignored
    assert masked_mse(pred, target, mask) == 0
    target[0, 2] = 3.0    # error on a masked token: mean over 2 masked tokens and 3 dims
    assert masked_mse(pred, target, mask) == pytest.approx(9.0 * 3 / 3 / 2)


def test_model_loss_is_masked_mse_of_recorded_mask():
    """The model's audio loss is unchanged by target errors on visible tokens."""
    model = AVMAE(tiny())
    with torch.no_grad():
        for m in ("audio", "video"):
            model.head[m].weight.normal_()
    x = inputs()
    _, out = model(x, generator=torch.Generator().manual_seed(1))
    target = model.targets(x)["audio"]
    target[~out["mask"]["audio"]] += 50.0
    recomputed = masked_mse(out["pred"]["audio"], target, out["mask"]["audio"])
    assert recomputed.item() == pytest.approx(out["losses"]["audio"].item(), rel=1e-5)


def cross_modal_gradient(encoder: str) -> float:
    """How much audio encoder outputs depend on the video input."""
    enc = FusionTransformer(["audio", "video"], encoder, 16, 2, 2, 32, joint_layers=1)
    a = torch.randn(1, 5, 16)
    v = torch.randn(1, 7, 16, requires_grad=True)
    # a random readout: a plain sum of LayerNorm outputs would be constant
    (enc({"audio": a, "video": v})["audio"] * torch.randn(1, 5, 16)).sum().backward()
    return 0.0 if v.grad is None else v.grad.abs().sum().item()


def test_fusion_wiring():
    assert cross_modal_gradient("early") > 0
    assert cross_modal_gradient("mid") > 0
    assert cross_modal_gradient("separate") == 0
    assert cross_modal_gradient("shared") == 0
    sizes = {s: sum(p.numel() for p in FusionTransformer(["audio", "video"], s, 16, 4, 2, 32, 2).parameters())
             for s in ("early", "separate", "shared", "mid")}
    assert sizes["separate"] == 2 * sizes["shared"]  # two untied stacks (and final norms) vs one
    assert sizes["early"] == sizes["shared"]
    assert sizes["early"] < sizes["mid"] < sizes["separate"]


def test_fusion_rejects_bad_settings():
    with pytest.raises(ValueError, match="joint_layers"):
        FusionTransformer(["audio", "video"], "mid", 16, 2, 2, 32, joint_layers=2)
    with pytest.raises(ValueError, match="unknown fusion strategy"):
        FusionTransformer(["audio", "video"], "late", 16, 2, 2, 32)


@pytest.mark.parametrize("modalities", [["audio"], ["video"], ["audio", "video"]])
def test_classifier_loads_pretrained_encoder(modalities):
    mae = AVMAE(tiny("separate", "shared"))
    clf = AVClassifier(tiny("separate", "shared"), 5, modalities)
    left = clf.load_pretrained(mae.state_dict())
    assert left and all(k.startswith("head.") for k in left)
    for k, v in clf.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(v, mae.state_dict()[k]), k
    assert clf(inputs()).shape == (2, 5)


def test_classifier_rejects_mismatched_checkpoint():
    mae = AVMAE(tiny("early", "shared"))
    clf = AVClassifier(tiny("separate", "shared"), 5, ["audio"])
    with pytest.raises(ValueError, match="does not match"):
        clf.load_pretrained(mae.state_dict())
