"""Finetuning augmentations: config parsing, scale jitter, colour, SpecAugment, mixup."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torchvision.transforms.v2 import functional as TF

from avmae.data.augment import (
    Augment,
    Box,
    Color,
    SpecAugment,
    apply_box,
    apply_color,
    draw_color,
    eval_box,
    mixup,
    spec_augment,
    train_box,
)

ROOT = Path(__file__).resolve().parents[1]


def rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------ config
@pytest.mark.parametrize("profile", ["config.yaml", "paper.yaml"])
def test_both_profiles_parse(profile):
    cfg = yaml.safe_load((ROOT / "config" / profile).read_text())
    aug = Augment.from_config(cfg["finetune"]["augment"])
    assert aug.scale_jitter == (0.9, 1.33) and aug.flip
    assert aug.color == Color(prob=0.8, brightness=pytest.approx(32 / 255, abs=1e-4), contrast=0.4, saturation=0.4,
                              hue=0.2, grayscale_prob=0.1)
    assert aug.mixup_alpha == (0.5 if profile == "paper.yaml" else 0.0)  # the toy turns mixup off
    assert aug.spec_augment.time_masks == 0 and not aug.circular_time_shift   # official: no time masks
    if profile == "paper.yaml":  # official VGGSound finetune config
        assert aug.spec_augment == SpecAugment(freq_masks=1, freq_width=48, time_masks=0, time_width=48)
        assert aug.eval_short_side == 256


def test_pretraining_default_is_crop_and_flip_only():
    aug = Augment.from_config(None)
    assert aug == Augment() and aug.flip and aug.scale_jitter is None and aug.color is None
    assert aug.spec_augment is None and aug.mixup_alpha == 0 and not aug.circular_time_shift


@pytest.mark.parametrize("cfg, message", [
    ({"colour": {}}, r"finetune.augment: unknown key\(s\) \['colour'\]"),
    ({"color": {"prob": 0.5, "tint": 1}}, r"finetune.augment.color: unknown key\(s\) \['tint'\]"),
    ({"scale_jitter": [1.33, 0.9]}, r"finetune.augment.scale_jitter: expected \[min, max\]"),
    ({"color": {"prob": 1.5}}, r"finetune.augment.color.prob: must be in \[0, 1\]"),
    ({"spec_augment": {"time_masks": -1}}, r"finetune.augment.spec_augment.time_masks: must be >= 0"),
    ({"mixup_alpha": -0.1}, r"finetune.augment.mixup_alpha: must be >= 0"),
    ({"circular_time_shift": "on"}, r"finetune.augment.circular_time_shift: expected true or false"),
])
def test_bad_config_values_name_their_key(cfg, message):
    with pytest.raises(ValueError, match=message):
        Augment.from_config(cfg)


# ------------------------------------------------------------------------- video
def test_train_box_without_jitter_is_a_random_crop():
    sizes, lefts, flips = set(), set(), 0
    for seed in range(200):
        box = train_box(40, 60, 32, Augment(), rng(seed))
        sizes.add((box.height, box.width))
        lefts.add(box.left)
        flips += box.flip
        assert 0 <= box.top <= 8 and 0 <= box.left <= 28
    assert sizes == {(32, 32)} and lefts == set(range(29)) and 70 < flips < 130


def test_scale_jitter_boxes_cover_the_official_range():
    aug = Augment(scale_jitter=(0.9, 1.33))
    boxes = [train_box(256, 456, 224, aug, rng(seed)) for seed in range(300)]
    heights = np.array([b.height for b in boxes])
    widths = np.array([b.width for b in boxes])
    assert heights.min() >= round(224 / 1.33) and heights.max() <= round(224 / 0.9)
    assert heights.min() < 175 and heights.max() > 240        # the whole range is drawn
    assert np.corrcoef(heights, widths)[0, 1] < 0.3           # height and width factors independent
    for b in boxes:
        assert b.top + b.height <= 256 and b.left + b.width <= 456 and b.out == 224


def test_jittered_box_equals_rescaling_the_frame_then_cropping():
    """Resizing only the box gives the pixels of rescaling the whole frame (bar the border)."""
    frames = torch.from_numpy(rng(1).integers(0, 256, (2, 3, 64, 96), dtype=np.uint8))
    frames = TF.gaussian_blur(frames.float(), [5, 5], [2.0, 2.0]).round().to(torch.uint8)  # smooth content
    scale = 1.25
    whole = TF.resize(frames, [80, 120], antialias=True)           # 64 x 96 rescaled by 1.25
    top, left = 10, 20                                             # crop 40 x 40 there
    expected = whole[..., top:top + 40, left:left + 40].float()
    got = apply_box(frames, Box(round(top / scale), round(left / scale), 32, 32, 40)).float()
    assert got.shape == (2, 3, 40, 40)
    assert (got - expected)[..., 2:-2, 2:-2].abs().mean() < 2.0


def test_eval_box_resizes_the_short_side_then_centre_crops():
    frames = torch.from_numpy(rng(2).integers(0, 256, (3, 3, 40, 60), dtype=np.uint8))
    box = eval_box(40, 60, 16, short_side=20)
    resized = TF.resize(frames, [20, 30], antialias=True)
    expected = TF.center_crop(resized, [16, 16]).float()
    got = apply_box(frames, box).float()
    assert (box.height, box.width) == (32, 32) and not box.flip
    assert (got - expected).abs().mean() < 3.0
    assert eval_box(40, 60, 16, None) == Box(12, 22, 16, 16, 16)   # no resize: a plain centre crop
    with pytest.raises(ValueError, match="does not fit"):
        eval_box(40, 60, 32, short_side=16)


def test_three_eval_crops_span_the_long_side():
    assert [eval_box(40, 60, 16, None, p).left for p in (0, 0.5, 1)] == [0, 22, 44]
    assert [eval_box(60, 40, 16, None, p).top for p in (0, 0.5, 1)] == [0, 22, 44]
    assert {eval_box(60, 40, 16, None, p).left for p in (0, 0.5, 1)} == {12}


def test_colour_augmentation():
    video = torch.rand(1, 3, 8, 8).repeat(4, 1, 1, 1) * 0.5 + 0.25   # 4 identical frames
    same = apply_color(video, draw_color(Color(prob=0.0, grayscale_prob=0.0), rng()))
    assert torch.equal(same, video)
    bright = apply_color(video, draw_color(Color(prob=1.0, brightness=0.1, contrast=0, saturation=0,
                                                 hue=0, grayscale_prob=0), rng(3)))
    delta = bright - video
    assert torch.allclose(delta, delta.flatten()[0].expand_as(delta), atol=1e-5)  # one additive shift
    assert 0 < abs(delta.flatten()[0]) <= 0.1
    full = apply_color(video, draw_color(Color(prob=1.0, grayscale_prob=1.0), rng(4)))
    assert torch.allclose(full[:, 0], full[:, 1]) and torch.allclose(full[:, 1], full[:, 2])  # grey
    for t in range(1, 4):
        assert torch.equal(full[t], full[0])                 # one draw for the whole clip
    assert full.min() >= 0 and full.max() <= 1
    # the same generator state gives the same result
    assert torch.equal(apply_color(video, draw_color(Color(), rng(5))),
                       apply_color(video, draw_color(Color(), rng(5))))


def test_hue_rotation_turns_colours_about_the_grey_axis():
    from avmae.data.augment import hue_rotate
    grey = torch.full((1, 3, 2, 2), 0.4)
    assert torch.allclose(hue_rotate(grey, 0.3), grey, atol=1e-5)          # greys stay grey
    x = torch.rand(2, 3, 4, 4) * 0.2 + 0.4                                   # in gamut after turning
    assert torch.allclose(hue_rotate(hue_rotate(x, 0.15), -0.15), x, atol=1e-4)   # invertible
    assert torch.allclose(hue_rotate(x, 1.0), x, atol=1e-4)                  # a full turn
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((hue_rotate(x, 0.2) * luma).sum(1), (x * luma).sum(1), atol=1e-4)  # luma kept
    red = torch.tensor([0.8, 0.2, 0.2]).view(1, 3, 1, 1)
    turned = hue_rotate(red, 1 / 3).flatten()                                # a third of a turn: red -> green-ish
    assert turned[1] > turned[0] and turned[1] > turned[2]


# ------------------------------------------------------------------------- audio
def _bands(mask: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor."""
    runs, n = [], 0
    for v in mask.tolist() + [False]:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def test_spec_augment_masks_counts_and_widths():
    audio = torch.randn(1, 800, 128) + 5.0          # no natural zeros
    cfg = SpecAugment(freq_masks=1, freq_width=48, time_masks=4, time_width=48)
    state = torch.get_rng_state()
    widths_f, masked_any = [], 0
    for seed in range(30):
        out = spec_augment(audio, cfg, rng(seed))
        zero = out[0] == 0
        freq_cols = zero.all(dim=0)                  # masked mel bins (whole time axis)
        time_rows = zero[:, ~freq_cols].all(dim=1) if (~freq_cols).any() else zero.all(dim=1)
        bands_f = _bands(freq_cols)
        assert len(bands_f) <= 1 and all(w < 48 for w in bands_f)
        assert len(_bands(time_rows)) <= 4 and all(w < 4 * 48 for w in _bands(time_rows))
        assert torch.equal(out[0][~zero], audio[0][~zero])   # nothing else changes
        widths_f += bands_f
        masked_any += bool(zero.any())
    assert masked_any >= 28 and max(widths_f) > 24
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    assert torch.equal(spec_augment(audio, cfg, rng(7)), spec_augment(audio, cfg, rng(7)))


# ------------------------------------------------------------------------- mixup
def test_mixup_has_one_lambda_per_modality():
    audio, video = torch.randn(4, 1, 8, 8), torch.randn(4, 3, 2, 4, 4)
    labels = torch.tensor([0, 1, 2, 1])
    out = mixup(audio, video, labels, alpha=0.5, rng=rng(0), num_classes=3)
    la, lv = out["lam"]["audio"], out["lam"]["video"]
    assert 0 <= la <= 1 and 0 <= lv <= 1 and la != lv
    assert torch.allclose(out["audio"], la * audio + (1 - la) * audio.flip(0))
    assert torch.allclose(out["video"], lv * video + (1 - lv) * video.flip(0))
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    assert torch.allclose(out["targets"]["audio"], la * onehot + (1 - la) * onehot.flip(0))
    assert torch.allclose(out["targets"]["video"], lv * onehot + (1 - lv) * onehot.flip(0))
    assert torch.allclose(out["targets"]["all"], (out["targets"]["audio"] + out["targets"]["video"]) / 2)
    for t in out["targets"].values():
        assert torch.allclose(t.sum(1), torch.ones(4))


def test_mixup_of_one_modality_mixes_it_as_the_audiovisual_batch_would():
    audio, video, labels = torch.randn(4, 1, 8, 8), torch.randn(4, 3, 2, 4, 4), torch.tensor([0, 1, 2, 1])
    both = mixup(audio, video, labels, 0.5, rng(7), num_classes=3)
    for m, x in (("audio", audio), ("video", video)):
        one = mixup(*((x, None) if m == "audio" else (None, x)), labels, 0.5, rng(7), num_classes=3)
        other = "video" if m == "audio" else "audio"
        assert one[other] is None and torch.equal(one[m], both[m])
        assert torch.equal(one["targets"][m], both["targets"][m])


def test_mixup_lambdas_follow_beta_alpha():
    lams = np.array([[mixup(torch.zeros(2, 1), torch.zeros(2, 1), torch.tensor([0, 1]), 0.5, rng(s), 2)["lam"][m]
                      for m in ("audio", "video")] for s in range(2000)])
    assert abs(lams.mean() - 0.5) < 0.03
    assert abs(lams.var() - 0.125) < 0.01            # Beta(0.5, 0.5): variance 1/8
    assert abs(np.corrcoef(lams[:, 0], lams[:, 1])[0, 1]) < 0.1


def test_mixup_multi_hot_dict_targets_and_alpha_zero():
    multi = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    out = mixup(torch.randn(2, 5), torch.randn(2, 5), multi, 0.5, rng(1))
    la = out["lam"]["audio"]
    assert torch.allclose(out["targets"]["audio"], la * multi + (1 - la) * multi.flip(0))
    vn = {"verb": torch.tensor([1, 2]), "noun": torch.tensor([0, 3])}
    out = mixup(torch.randn(2, 5), torch.randn(2, 5), vn, 0.5, rng(2), num_classes={"verb": 3, "noun": 4})
    assert out["targets"]["video"]["verb"].shape == (2, 3) and out["targets"]["all"]["noun"].shape == (2, 4)
    a, v = torch.randn(2, 5), torch.randn(2, 5)
    off = mixup(a, v, torch.tensor([0, 1]), 0.0, rng(3), num_classes=2)
    assert off["lam"] == {"audio": 1.0, "video": 1.0} and torch.equal(off["audio"], a)
    assert torch.equal(off["targets"]["all"], torch.eye(2))


def test_mixup_errors():
    with pytest.raises(ValueError, match="pass num_classes"):
        mixup(torch.zeros(2, 1), torch.zeros(2, 1), torch.tensor([0, 1]), 0.5, rng())
    with pytest.raises(ValueError, match=r"one batch size, got \{'audio': 2, 'video': 3\}"):
        mixup(torch.zeros(2, 1), torch.zeros(3, 1), torch.tensor([0, 1]), 0.5, rng(), 2)
    with pytest.raises(ValueError, match="audio and/or video"):
        mixup(None, None, torch.tensor([0, 1]), 0.5, rng(), 2)
    with pytest.raises(ValueError, match="have batch 3, inputs 2"):
        mixup(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(3, 4), 0.5, rng())
