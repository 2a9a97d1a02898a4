"""Model shapes, masking, loss placement and fusion wiring, at toy and paper sizes."""

import math

import pytest
import torch

from avmae.models.avmae import AVMAE, ModelConfig, masked_mse
from avmae.models.fusion import FusionTransformer
from avmae.models.masking import num_visible, random_masking
from avmae.models.mbt import MBT, init_mbt_from_avmae
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
    # 16 frames of 224^2 in 2x16x16 tubelets: 8 x 14 x 14; 8 s and 10 s of 128-bin log-mel in
    # 16x16 patches: 50 x 8 and (VALID) 62 x 8
    with torch.device("meta"):
        assert VideoTubelets((2, 16, 16), 8)(torch.empty(1, 3, 16, 224, 224)).shape == (1, 1568, 8)
        assert AudioPatches((16, 16), 8)(torch.empty(1, 1, 800, 128)).shape == (1, 400, 8)
        assert AudioPatches((16, 16), 8)(torch.empty(1, 1, 1000, 128)).shape == (1, 62 * 8, 8)
    assert num_visible(1568, 0.9) == 157 and num_visible(400, 0.5) == 200   # official: int(0.9 * 1568) masked


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
    # 8 video tokens (4 frames / 2, (16 / 8)^2), ratio 0.9: int(0.9 * 8) = 7 hidden (official masking)
    assert out["mask"]["video"].sum(1).tolist() == [7, 7]
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
    """The model's audio loss, recomputed by hand (not with ``masked_mse``): the target
    patches cut out of the spectrogram with slicing (token t * 8 + f is time block t, mel
    block f of 16x16, see test_patchify_matches_tokenizer_order), squared error averaged
    over the 256 values of each hidden patch, then over the hidden patches of the batch;
    errors on visible tokens do not count."""
    model = AVMAE(tiny())
    with torch.no_grad():
        for m in ("audio", "video"):
            model.head[m].weight.normal_()
    x = inputs()
    _, out = model(x, generator=torch.Generator().manual_seed(1))
    pred, mask = out["pred"]["audio"], out["mask"]["audio"]
    assert mask.shape == (2, 32) and mask.sum().item() == 2 * 16    # 64/16 x 128/16 tokens, half hidden
    total, hidden = 0.0, 0
    for b in range(2):
        for t in range(4):
            for f in range(8):
                token = t * 8 + f
                patch = x["audio"][b, 0, 16 * t:16 * t + 16, 16 * f:16 * f + 16].reshape(-1)
                if mask[b, token]:
                    total += ((pred[b, token] - patch) ** 2).mean().item()
                    hidden += 1
    assert hidden == 32
    assert out["losses"]["audio"].item() == pytest.approx(total / hidden, rel=1e-5)
    everywhere = ((pred - model.tokenizers["audio"].patchify(x["audio"])) ** 2).mean().item()
    assert abs(everywhere - total / hidden) > 1e-3    # so counting visible tokens too would be caught


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


# --- objectives (Sec. 3.4) -------------------------------------------------------------

def small_inputs(b=2):
    """4 audio tokens (32x32 spectrogram, 16x16 patches) and 4 video tokens (2x16x16, 2x8x8 tubelets)."""
    torch.manual_seed(0)
    return {"audio": torch.randn(b, 1, 32, 32), "video": torch.rand(b, 3, 2, 16, 16) * 2 - 1}


def test_inpainting_sequence_layout_and_loss_positions():
    """Video from audio: decoder sees [2 encoded audio tokens || 3 video mask tokens]; loss on those 3."""
    from avmae.models.vit import sincos_1d
    cfg = tiny("early", "shared", objective="inpaint_video", mask_ratio={"audio": 0.5, "video": 0.75})
    model = AVMAE(cfg)
    assert set(model.decoder_embed) == {"audio"} and set(model.mask_token) == {"video"} and set(model.head) == {"video"}
    with torch.no_grad():
        model.head["video"].weight.normal_()
    seen = {}
    model.encoder.register_forward_hook(lambda mod, inp, out: seen.update(encoded=out))
    model.decoder.register_forward_hook(lambda mod, inp, out: seen.update(dec_in=inp[0], dec_out=out))
    x = small_inputs()
    loss, out = model(x, generator=torch.Generator().manual_seed(3))
    manual = 0.0  # squared error per hidden patch / patch dim, averaged over the 2 x 3 hidden patches
    assert set(out["pred"]) == {"video"} and set(seen["dec_in"]) == {"video"}
    seq = seen["dec_in"]["video"]
    assert seq.shape == (2, 2 + 3, 16)
    pos_a, pos_v = sincos_1d(4, 16), sincos_1d(4, 16)
    for b in range(2):
        kept_audio = [i for i in range(4) if not out["mask"]["audio"][b, i]]
        hidden_video = [i for i in range(4) if out["mask"]["video"][b, i]]
        assert len(kept_audio) == 2 and len(hidden_video) == 3
        context = model.decoder_embed["audio"](seen["encoded"]["audio"][b])
        for j, i in enumerate(kept_audio):          # encoded audio first, at audio positions
            torch.testing.assert_close(seq[b, j], context[j] + pos_a[i])
        for j, i in enumerate(hidden_video):        # then one mask token per hidden video patch
            torch.testing.assert_close(seq[b, 2 + j], model.mask_token["video"][0, 0] + pos_v[i])
        decoded = model.head["video"](seen["dec_out"]["video"][b])
        target = model.targets(x)["video"][b]
        for j, i in enumerate(hidden_video):        # mask-token output j is scored against hidden patch j
            torch.testing.assert_close(out["pred"]["video"][b, i], decoded[2 + j])
            manual += ((decoded[2 + j] - target[i]) ** 2).mean().item() / 6
        visible = [i for i in range(4) if i not in hidden_video]
        assert (out["pred"]["video"][b, visible] == 0).all()
    assert loss.item() == pytest.approx(manual, rel=1e-5)


def test_inpaint_both_decodes_each_target_as_its_own_sequence():
    model = AVMAE(tiny("mid", "shared", objective="inpaint_both"))
    seen = {}
    model.decoder.register_forward_hook(lambda mod, inp, out: seen.update(dec_in=inp[0]))
    loss, out = model(inputs(), generator=torch.Generator().manual_seed(0))
    visible = {m: int((~out["mask"][m][0]).sum()) for m in ("audio", "video")}
    hidden = {m: int(out["mask"][m][0].sum()) for m in ("audio", "video")}
    assert seen["dec_in"]["audio"].shape[1] == visible["video"] + hidden["audio"]
    assert seen["dec_in"]["video"].shape[1] == visible["audio"] + hidden["video"]
    assert loss.item() == pytest.approx(0.5 * out["losses"]["audio"].item() + 0.5 * out["losses"]["video"].item())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("encoder", ["separate", "shared"])
def test_inpainting_refuses_encoders_without_cross_modal_flow(encoder):
    with pytest.raises(ValueError, match="cross-modal encoder"):
        AVMAE(tiny(encoder, "shared", objective="inpaint_audio"))


def test_objective_settings_are_checked():
    with pytest.raises(ValueError, match="decoder_strategy 'early'"):
        AVMAE(tiny("early", "early", objective="inpaint_both"))
    with pytest.raises(ValueError, match="objective must be one of"):
        tiny(objective="inpaint")
    with pytest.raises(ValueError, match="needs modalities"):
        tiny(objective="inpaint_video", modalities=["audio"])
    with pytest.raises(ValueError, match="modalities must be"):
        tiny(modalities=["depth"])


# --- unimodal MAEs (Table 3) -----------------------------------------------------------

@pytest.mark.parametrize("modality", ["audio", "video"])
def test_unimodal_mae(modality):
    model = AVMAE(tiny("separate", "separate", modalities=[modality]))
    other = {"audio": "video", "video": "audio"}[modality]
    assert not any(other in name for name, _ in model.named_parameters())
    loss, out = model(inputs())  # the other modality in the batch is ignored
    assert set(out["pred"]) == {modality}
    assert loss.item() == out["losses"][modality].item()  # one modality: weight 1
    loss.backward()
    clf = MBT(model.cfg, 3, [modality], fusion_layer=model.cfg.encoder.depth)
    init_mbt_from_avmae(clf, model.state_dict(), model.cfg)
    assert clf(inputs()).shape == (2, 3)


# --- heads ---------------------------------------------------------------------------

def test_head_losses():
    import torch.nn.functional as F

    from avmae.models.heads import HeadSpec
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    single = HeadSpec.of("single", 3)
    assert single.loss(logits, torch.tensor([0, 2])).item() == pytest.approx(
        F.cross_entropy(logits, torch.tensor([0, 2])).item())
    multi = HeadSpec.of("multi", 3)
    # zero logits: each of the 3 classes costs log 2, summed over classes, averaged over 2 clips
    assert multi.loss(torch.zeros(2, 3), torch.tensor([[1, 0, 1], [0, 0, 0]])).item() == pytest.approx(
        3 * math.log(2))
    # smoothing 0.3 over C=3 classes: targets 1 -> 0.8, 0 -> 0.1; BCE(l, t) = softplus(l) - t * l
    def softplus(v):
        return math.log1p(math.exp(v))
    expected = (softplus(2.0) - 0.8 * 2.0) + softplus(0.0) + (softplus(-1.0) + 0.1 * 1.0)
    assert multi.loss(logits[:1], torch.tensor([[1, 0, 0]]), 0.3).item() == pytest.approx(expected)
    verb_noun = HeadSpec.of("verb_noun", (2, 3))
    vn = torch.randn(2, 5)
    labels = torch.tensor([[1, 2], [0, 0]])
    expected = 0.5 * (F.cross_entropy(vn[:, :2], labels[:, 0]) + F.cross_entropy(vn[:, 2:], labels[:, 1]))
    assert verb_noun.loss(vn, labels).item() == pytest.approx(expected.item())
    assert [t.shape[1] for t in verb_noun.split(vn)] == [2, 3]
    with pytest.raises(ValueError, match="needs 2 positive class count"):
        HeadSpec.of("verb_noun", 5)
    with pytest.raises(ValueError, match="head must be one of"):
        HeadSpec.of("softmax", 5)


def test_mbt_verb_noun_head():
    clf = MBT(tiny(), (4, 6), ["audio", "video"], fusion_layer=1, head="verb_noun")
    logits = clf(inputs())
    assert logits.shape == (2, 10)
    clf.loss(logits, torch.tensor([[0, 5], [3, 1]])).backward()
    assert clf.head.weight.grad.abs().sum() > 0


# --- GPU-ready path at tiny size ---------------------------------------------------------

def test_bf16_autocast_forward_backward():
    model = AVMAE(tiny("mid", "shared"))
    with torch.no_grad():
        model.head["audio"].weight.normal_()
    x = inputs()
    ref, _ = model(x, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, out = model(x, generator=torch.Generator().manual_seed(0))
    assert out["pred"]["audio"].dtype == torch.bfloat16
    loss.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=5e-2)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    mbt = MBT(tiny(), 5, ["audio", "video"], fusion_layer=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = mbt(x)
    mbt.loss(logits, torch.tensor([0, 1])).backward()
    assert torch.isfinite(mbt.bottleneck.grad).all()


def test_seeded_masks_do_not_depend_on_the_batch():
    from avmae.models.masking import sample_seeds
    model = AVMAE(tiny("mid", "shared"))
    x = inputs()
    seeds = sample_seeds(0, 3, torch.tensor([5, 9]))
    # Literal values: numpy's SeedSequence([seed, epoch, clip]).generate_state(1), whose
    # output numpy keeps stable across versions; a salted hash or a shared RNG would differ.
    assert seeds == [2975998657, 112866602]
    _, both = model(x, seeds=seeds)
    _, second = model({m: v[1:] for m, v in x.items()}, seeds=seeds[1:])
    for m in ("audio", "video"):
        assert torch.equal(both["mask"][m][1:], second["mask"][m])
        assert not torch.equal(both["mask"][m][0], both["mask"][m][1])
    assert sample_seeds(0, 4, torch.tensor([5])) == [1462329772]  # a new epoch, a new seed, a new mask

