"""The official audio recipe, value by value, with hand-computed expectations: audio window
alignment (official | centred), normalisation (raw | fixed | dataset), the circular time
shift, SpecAugment without time masks, and 10 s AudioSet windows."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from avmae.data.audio import AudioInput, normalise, official_train_frames, spaced_start
from avmae.data.augment import Augment, SpecAugment, circular_time_shift, spec_augment
from avmae.data.dataset import AVClipDataset

RAW = {"audio_norm": "raw"}


def stored(features_dir, split="train"):
    return np.load(features_dir / split / "audio.npy").astype(np.float32)


def ten_second_features(root, n=4, seed=0):
    """Clips as the feature stage stores 10 s: 1000 log-mel frames, 250 frames at 25 fps
    (8 x 8 px). Audio frame ``t`` of clip ``i`` holds ``t + 1000 i`` in every bin, so a
    window shows where it was cut."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        d = root / split
        d.mkdir(parents=True)
        audio = (np.arange(1000)[None, :, None] + 1000 * np.arange(n)[:, None, None]
                 + np.zeros((1, 1, 128))).astype(np.float32)
        np.save(d / "audio.npy", audio)     # float32: float16 holds integers up to 2048 only
        np.save(d / "video.npy", rng.integers(0, 256, size=(n, 250, 8, 8, 3), dtype=np.uint8))
        pd.DataFrame({"id": [f"{split}{i}" for i in range(n)], "label": "a", "label_index": 0, "split": split,
                      "action_first": 0, "action_last": 249}).to_csv(d / "index.csv", index=False)
    meta = {"label_kind": "single", "classes": ["a"], "audio_frames": 1000, "video_frames": 250, "fps": 25,
            "short_side": 8, "n_mels": 128, "sample_rate": 16000, "clip_seconds": 10.0,
            "audio_mean": -4.0, "audio_std": 4.0, "counts": {"train": n, "test": n},
            "parts": {"train": [[".", n]], "test": [[".", n]]}}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def first_frames(item):
    """The stored audio frame numbers of an item of :func:`ten_second_features` (raw)."""
    return (item["audio"][0, :, 0].numpy() % 1000).astype(int)


# --------------------------------------------------------------- window alignment
def test_official_train_window_starts_at_the_video_fraction_and_wraps():
    assert official_train_frames(7, 250, 1000, 5).tolist() == [28, 29, 30, 31, 32]    # 7/250 x 1000
    assert official_train_frames(1, 3, 10, 4).tolist() == [3, 4, 5, 6]               # 3.33 -> 3
    assert official_train_frames(2, 3, 10, 4).tolist() == [7, 8, 9, 0]               # 6.67 -> 7, wraps
    assert official_train_frames(1, 4, 10, 2).tolist() == [2, 3]                     # 2.5 -> 2 (half to even)
    assert official_train_frames(3, 4, 10, 2).tolist() == [8, 9]                     # 7.5 -> 8
    # AudioSet: 10 s of audio from a video window starting at 7.56 s (frame 189)
    frames = official_train_frames(189, 250, 1000, 1000)
    assert frames[:3].tolist() == [756, 757, 758] and frames[243:246].tolist() == [999, 0, 1]


def test_official_test_windows_are_spaced_over_the_audio_on_their_own():
    clip = (0, 249)
    # VGGSound, 8 s of 10 s: int(linspace(0, 200, 4)) (the video views are 0/62/124/186 of 250)
    assert [spaced_start(clip, 250, 1000, 800, v, 4) for v in range(4)] == [0, 66, 133, 200]
    # AudioSet, 10 s of 10 s: every view is the whole clip
    assert [spaced_start(clip, 250, 1000, 1000, v, 4) for v in range(4)] == [0, 0, 0, 0]
    assert spaced_start(clip, 250, 1000, 800, 0, 1) == 100                              # one view: centred
    # an action (video frames 40-45 = audio 160-184) shorter than the window: held whole
    assert [spaced_start((40, 45), 75, 300, 40, v, 3) for v in range(3)] == [144, 152, 160]
    # a longer one (frames 10-60 = audio 40-244): the windows stay inside it
    assert [spaced_start((10, 60), 75, 300, 40, v, 3) for v in range(3)] == [40, 122, 204]


def test_official_window_in_the_dataset(tmp_path):
    root = ten_second_features(tmp_path / "f")
    kw = dict(video_frames=4, video_stride=16, crop=8, audio_frames=800, audio={"audio_window": "official", **RAW})
    train = AVClipDataset(root, "train", train=True, **kw)
    for epoch in range(6):
        item = train[(epoch, 1)]
        start = train._video_start(1, 0, np.random.default_rng([0, epoch, 1]))
        a0 = 4 * start                                               # start / 250 x 1000
        assert first_frames(item).tolist() == [(a0 + i) % 1000 for i in range(800)]
        assert item["audio"][0, 0, 0] == 1000 + a0                   # clip 1's own audio
    test = AVClipDataset(root, "test", train=False, num_clips=4, **kw)
    assert [first_frames(test[4 + v])[0] for v in range(4)] == [0, 66, 133, 200]
    centred = AVClipDataset(root, "test", train=False, num_clips=4,
                            **{**kw, "audio": {"audio_window": "centred", **RAW}})
    # video views 0/62/124/186: centred on each (4 x start + 128 - 400), clamped to 0..200
    assert [first_frames(centred[4 + v])[0] for v in range(4)] == [0, 0, 200, 200]


def test_audioset_ten_seconds_official_is_the_clip_rotated_to_the_video_start(tmp_path):
    root = ten_second_features(tmp_path / "f")
    kw = dict(video_frames=4, video_stride=16, crop=8, audio_frames=1000, audio={"audio_window": "official", **RAW})
    train = AVClipDataset(root, "train", train=True, **kw)
    item = train[(3, 2)]
    start = train._video_start(2, 0, np.random.default_rng([0, 3, 2]))
    assert first_frames(item).tolist() == np.roll(np.arange(1000), -4 * start).tolist()
    test = AVClipDataset(root, "test", train=False, num_clips=4, **kw)
    for v in range(4):
        assert first_frames(test[v]).tolist() == list(range(1000))   # every view: the whole clip


def test_toy_windows_are_the_same_under_both_rules(tmp_path):
    """The toy's audio window lasts as long as its video window (256 frames = 4 x 16 at
    25 fps), so the official rule gives the toy's 10 s clips the items of the centred one."""
    root = ten_second_features(tmp_path / "f")
    kw = dict(video_frames=4, video_stride=16, crop=8, audio_frames=256)
    for split, train, keys in (("train", True, [(e, c) for e in range(5) for c in range(4)]),
                               ("test", False, range(16))):
        ds = {w: AVClipDataset(root, split, train=train, num_clips=4, **kw, audio={"audio_window": w})
              for w in ("official", "centred")}
        for key in keys:
            assert torch.equal(ds["official"][key]["audio"], ds["centred"][key]["audio"]), key


# ---------------------------------------------------------------- normalisation
def test_fixed_normalisation_is_the_official_audioset_constants():
    x = torch.tensor([1.102, 3.864, -1.66])
    assert torch.allclose(normalise(x, (1.102, 2.762)), torch.tensor([0.0, 1.0, -1.0]), atol=1e-6)
    assert normalise(x, None) is x


@pytest.mark.parametrize("audio, expected", [
    (RAW, lambda raw: raw),
    ({"audio_norm": "fixed", "audio_mean": 1.102, "audio_std": 2.762}, lambda raw: (raw - 1.102) / 2.762),
    ({"audio_norm": "dataset"}, lambda raw: (raw + 4.0) / 4.0),      # meta.json: mean -4, std 4
    (None, lambda raw: raw),                                          # the default: raw, as in the configs
])
def test_normalisation_modes_in_the_dataset(tmp_path, audio, expected):
    root = ten_second_features(tmp_path / "f")
    ds = AVClipDataset(root, "test", 4, 16, 8, 800, train=False, num_clips=1, audio=audio)
    raw = torch.from_numpy(stored(root, "test")[1, 100:900])         # one view: centred, 100..900
    assert torch.allclose(ds[1]["audio"][0], expected(raw), rtol=1e-6)


def test_raw_and_fixed_need_no_dataset_statistics(features_dir):
    meta = json.loads((features_dir / "meta.json").read_text())
    (features_dir / "meta.json").write_text(json.dumps({**meta, "audio_mean": None, "audio_std": None}))
    raw = AVClipDataset(features_dir, "test", 4, 5, 20, 40, train=False, audio=RAW)
    # one view, official window: the middle start of the 300 stored frames, (0 + 300 - 40) // 2 = 130
    assert torch.equal(raw[0]["audio"][0], torch.from_numpy(stored(features_dir, "test")[0, 130:170]))
    AVClipDataset(features_dir, "test", 4, 5, 20, 40, train=False,
                  audio={"audio_norm": "fixed", "audio_mean": 1.0, "audio_std": 2.0})
    with pytest.raises(ValueError, match="audio_mean None, audio_std None: no normalisation"):
        AVClipDataset(features_dir, "test", 4, 5, 20, 40, train=False, audio={"audio_norm": "dataset"})


# ------------------------------------------------------------ circular time shift
def test_circular_time_shift_rolls_by_the_drawn_frames():
    audio = torch.arange(5.0).reshape(1, 5, 1).expand(1, 5, 2)
    shift = int(np.random.default_rng(1).integers(0, 5))
    assert shift == 2
    rolled = circular_time_shift(audio, np.random.default_rng(1))
    assert rolled[0, :, 0].tolist() == [3.0, 4.0, 0.0, 1.0, 2.0]    # frame i moves to (i + 2) % 5
    assert torch.equal(rolled[0, :, 1], rolled[0, :, 0])
    shifts = {int(circular_time_shift(torch.arange(8.0).reshape(1, 8, 1), np.random.default_rng(s))[0, 0, 0])
              for s in range(200)}
    assert shifts == set(range(8))                                     # uniform over 0..T-1: each seen


def test_circular_time_shift_is_train_only_and_audio_only(tmp_path):
    root = ten_second_features(tmp_path / "f")
    kw = dict(video_frames=4, video_stride=16, crop=8, audio_frames=1000, audio=RAW)
    shifted = Augment(circular_time_shift=True)
    for train, keys in ((True, [(0, 0), (1, 2), (4, 3)]), (False, [0, 3])):
        plain = AVClipDataset(root, "train", train=train, augment=Augment(), **kw)
        rolled = AVClipDataset(root, "train", train=train, augment=shifted, **kw)
        for key in keys:
            a, b = plain[key], rolled[key]
            assert torch.equal(a["video"], b["video"])
            if not train:
                assert torch.equal(a["audio"], b["audio"])
                continue
            # b is a rolled: frame i of a at (i + shift) % 1000, one shift for the whole window
            frames_a, frames_b = first_frames(a), first_frames(b)
            shift = int(np.flatnonzero(frames_b == frames_a[0])[0])
            assert frames_b.tolist() == np.roll(frames_a, shift).tolist()
            assert torch.equal(b["audio"], torch.roll(a["audio"], shift, dims=1))


# ------------------------------------------------------------------ SpecAugment
def test_official_spec_augment_zeroes_no_frame():
    """Official: 1 frequency mask of 0-47 bins (VGGSound), time_masks 0: no time frame is
    zeroed; only whole mel bins are."""
    official = SpecAugment(freq_masks=1, freq_width=48, time_masks=0, time_width=48)
    variant = SpecAugment(freq_masks=1, freq_width=48, time_masks=4, time_width=48)
    widths, frames_zeroed = set(), 0
    for seed in range(25):
        out = spec_augment(torch.ones(1, 200, 128), official, np.random.default_rng(seed))[0]
        zero_bins = (out == 0).all(dim=0)
        assert torch.equal(out == 0, zero_bins.expand_as(out))         # whole bins, never frames
        assert not (out == 0).all(dim=1).any()
        widths.add(int(zero_bins.sum()))
        v = spec_augment(torch.ones(1, 200, 128), variant, np.random.default_rng(seed))[0]
        frames_zeroed += int((v == 0).all(dim=1).sum())
    assert max(widths) <= 47 and len(widths) > 8
    assert frames_zeroed > 0                                            # the listed variant masks frames


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize("cfg, message", [
    ({"audio_window": "centered"}, r"input.audio_window: 'centered' is not one of \('official', 'centred'\)"),
    ({"audio_norm": "zscore"}, r"input.audio_norm: 'zscore' is not one of \('raw', 'fixed', 'dataset'\)"),
    ({"audio_norm": "fixed", "audio_mean": 1.1}, r"input.audio_norm 'fixed' needs audio_mean and audio_std"),
    ({"audio_norm": "fixed", "audio_mean": 1.1, "audio_std": 0}, r"input.audio_std: must be > 0"),
    ({"audio_mean": "1.1"}, r"input.audio_mean: expected a number"),
    ({"audio_align": "official"}, r"input: unknown key\(s\) \['audio_align'\]"),
])
def test_bad_audio_input_values_name_their_key(cfg, message):
    with pytest.raises(ValueError, match=message):
        AudioInput.from_config({"video_frames": 4, "audio_frames": 8, **cfg})


def test_bad_circular_time_shift_names_its_key():
    with pytest.raises(ValueError, match=r"finetune.augment.circular_time_shift: expected true or false"):
        Augment.from_config({"circular_time_shift": "yes"})
