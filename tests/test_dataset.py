"""Windows, crops, augmentations, JPEG shards, workers and ranks of the training dataset."""


import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import as_jpeg, model_video
from torch.utils.data import DataLoader
from torchvision.io import encode_jpeg
from torchvision.transforms.v2 import functional as TF

from avmae.data.augment import Augment, Color, SpecAugment, train_box
from avmae.data.dataset import AVClipDataset, make_loader
from avmae.data.frames import collate, finish_batch, jpeg_size
from avmae.train.loop import EpochSampler

FINETUNE = Augment(scale_jitter=(0.9, 1.33), color=Color(),
                   spec_augment=SpecAugment(freq_masks=1, freq_width=48, time_masks=4, time_width=16))


def test_shapes_and_ranges(features_dir):
    ds = AVClipDataset(features_dir, "train", video_frames=4, video_stride=4, crop=16, audio_frames=64,
                       train=True)
    item = ds[0]
    assert item["video"].shape == (4, 16, 16, 3) and item["video"].dtype == torch.uint8
    video = model_video(item)
    assert video.shape == (3, 4, 16, 16) and video.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1
    assert item["audio"].shape == (1, 64, 128)
    assert len(ds) == 16 and ds.classes[0] == "class 0"


def test_eval_views_are_spaced_linearly_and_audio_is_centred(features_dir):
    ds = AVClipDataset(features_dir, "test", video_frames=4, video_stride=5, crop=20, audio_frames=40,
                       train=False, num_clips=3, audio={"audio_window": "centred"})
    assert len(ds) == 6 * 3
    video = np.load(features_dir / "test" / "video.npy")
    audio = np.load(features_dir / "test" / "audio.npy")
    last = 75 - 20
    for view, start in enumerate([0, 28, last]):   # round(55 / 2) = 28
        item = ds[1 * 3 + view]
        assert item["index"] == 1
        expected = torch.from_numpy(video[1, start:start + 20:5]).permute(3, 0, 1, 2).float() / 127.5 - 1
        assert torch.allclose(model_video(item), expected, atol=1e-6)
        centre = (start + 10) / 25 * 100          # video window centre, in audio frames
        a0 = min(max(int(round(centre - 20)), 0), 300 - 40)
        assert torch.allclose(item["audio"][0], torch.from_numpy(audio[1, a0:a0 + 40].astype(np.float32)))


def test_windows_stay_on_the_action(features_dir):
    """Windows (20 frames) lie inside an action longer than them, hold one that is
    shorter, and stay within the clip's 75 frames; evaluation views spread over the
    same starts."""
    for split in ("train", "test"):
        index = pd.read_csv(features_dir / split / "index.csv")
        index.loc[:2, ["action_first", "action_last"]] = [[40, 45], [10, 60], [70, 74]]
        index.to_csv(features_dir / split / "index.csv", index=False)
    means = {split: np.load(features_dir / split / "video.npy").astype(np.float64).mean(axis=(2, 3, 4))
             for split in ("train", "test")}

    def start(split, item):
        """The window's first frame, found by its frames' means (a flip keeps them)."""
        got = item["video"].double().mean(dim=(1, 2, 3)).numpy()
        found = [s for s in range(56) if np.allclose(means[split][item["index"], s:s + 20:5], got)]
        assert len(found) == 1
        return found[0]

    ds = AVClipDataset(features_dir, "train", 4, 5, 20, 40, train=True)
    for clip, (lo, hi) in enumerate([(26, 40), (10, 41), (55, 55), (0, 55)]):
        starts = {start("train", ds[(epoch, clip)]) for epoch in range(60)}
        assert min(starts) >= lo and max(starts) <= hi and (len(starts) > 5 or lo == hi), (clip, starts)
    ds = AVClipDataset(features_dir, "test", 4, 5, 20, 40, train=False, num_clips=3)
    for clip, expected in enumerate([[26, 33, 40], [10, 26, 41], [55, 55, 55], [0, 28, 55]]):
        assert [start("test", ds[clip * 3 + view]) for view in range(3)] == expected


def test_bad_action_frames_are_named(features_dir):
    path = features_dir / "train" / "index.csv"
    index = pd.read_csv(path)
    index.loc[3, "action_last"] = 75
    index.to_csv(path, index=False)
    with pytest.raises(ValueError,
                       match=r"index.csv: line 5: action frames \[0, 75\] are not 0 <= first <= last < 75"):
        AVClipDataset(features_dir, "train", 4, 5, 20, 40, train=True)
    index.drop(columns="action_first").to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"index.csv: no action_first column \(features from an older avmae"):
        AVClipDataset(features_dir, "train", 4, 5, 20, 40, train=True)


def test_rejects_windows_longer_than_the_clip(features_dir):
    with pytest.raises(ValueError, match="exceeds the stored 75"):
        AVClipDataset(features_dir, "train", 16, 8, 16, 64, train=True)
    with pytest.raises(FileNotFoundError, match="val"):
        AVClipDataset(features_dir, "val", 4, 4, 16, 64, train=True)


def smooth(features_dir):
    """Blur the fixture's noise frames: JPEG (4:2:0 chroma) is meant for pictures, not noise."""
    for split in ("train", "test"):
        path = features_dir / split / "video.npy"
        v = torch.from_numpy(np.load(path)).permute(0, 1, 4, 2, 3).float()      # N, T, 3, H, W
        v = TF.gaussian_blur(v.flatten(0, 1), [7, 7], [3.0, 3.0]).reshape(v.shape)
        v = (v - v.mean()) * 4 + 128                                               # keep contrast
        np.save(path, v.clamp(0, 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy())
    return features_dir


def test_jpeg_shards_give_the_same_items_as_arrays(features_dir, tmp_path):
    smooth(features_dir)
    jpeg_dir = as_jpeg(features_dir, tmp_path / "jpeg")
    for train, aug in ((True, None), (True, FINETUNE), (False, None)):
        kw = dict(video_frames=4, video_stride=4, crop=16, audio_frames=64, train=train, num_clips=2,
                  augment=aug)
        a = AVClipDataset(features_dir, "train", **kw)
        j = AVClipDataset(jpeg_dir, "train", **kw)
        for key in ([(0, 3), (5, 7)] if train else [0, 5]):
            ia, ij = a[key], j[key]
            assert torch.equal(ia["audio"], ij["audio"]) and ia["label"] == ij["label"]
            va, vj = model_video(ia), model_video(ij)
            assert vj.shape == (3, 4, 16, 16)
            # JPEG error (4:2:0 chroma of 20-px frames) is far below the gap to another clip
            other = model_video(a[(key[0], key[1] + 1) if train else key + 2])
            assert (va - vj).abs().mean() < 0.15 * (va - other).abs().mean()


def test_jpeg_frames_keep_their_aspect_and_crops_span_the_width(features_dir, tmp_path):
    smooth(features_dir)
    jpeg_dir = as_jpeg(features_dir, tmp_path / "wide", wide=10)      # 20 x 40 frames
    wide = AVClipDataset(jpeg_dir, "test", 4, 4, 16, 64, train=False, num_clips=2)
    square = AVClipDataset(features_dir, "test", 4, 4, 16, 64, train=False, num_clips=2)
    for key in range(4):  # the centre crop of the wide frame is the centre crop of the square one
        other = model_video(square[(key + 2) % 12])
        err = (model_video(wide[key]) - model_video(square[key])).abs().mean()
        assert err < 0.15 * (model_video(square[key]) - other).abs().mean()
    crops = AVClipDataset(jpeg_dir, "test", 4, 4, 16, 64, train=False, num_clips=2, num_crops=3)
    assert len(crops) == 6 * 2 * 3 and crops.views == 6
    left, centre, right = (crops[2 * 6 + 3 + c] for c in range(3))   # clip 2, second window
    assert {item["index"] for item in (left, centre, right)} == {2}
    assert torch.equal(centre["video"], wide[2 * 2 + 1]["video"])     # the middle crop is the centre one
    assert torch.equal(left["audio"], centre["audio"])
    assert not torch.equal(left["video"], right["video"])
    train = AVClipDataset(jpeg_dir, "train", 4, 4, 16, 64, train=True)
    lefts = {train_box(20, 40, 16, Augment(), np.random.default_rng([0, 0, c])).left for c in range(100)}
    assert max(lefts) > 4 and train[(0, 1)]["video"].shape == (4, 16, 16, 3)   # crops beyond the square


def test_eval_resizes_the_short_side_then_centre_crops(features_dir):
    ds = AVClipDataset(features_dir, "test", video_frames=4, video_stride=5, crop=16, audio_frames=40,
                       train=False, num_clips=1, augment={"eval_short_side": 16})
    video = torch.from_numpy(np.load(features_dir / "test" / "video.npy")[2, 27:47:5]).permute(0, 3, 1, 2)
    expected = TF.resize(video, [16, 16], antialias=True).float() / 127.5 - 1   # 20 -> 16: the whole frame
    assert torch.allclose(model_video(ds[2]), expected.permute(1, 0, 2, 3), atol=1e-5)
    with pytest.raises(ValueError, match="exceeds augment.eval_short_side 12"):
        AVClipDataset(features_dir, "test", 4, 5, 16, 40, train=False, augment={"eval_short_side": 12})


def test_finetune_augmentations_are_deterministic_per_epoch_and_clip(features_dir):
    ds = AVClipDataset(features_dir, "train", 4, 4, 16, 64, train=True, augment=FINETUNE)
    plain = AVClipDataset(features_dir, "train", 4, 4, 16, 64, train=True)
    a, b, c = ds[(1, 3)], ds[(1, 3)], ds[(2, 3)]
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["audio"], b["audio"])
    assert torch.equal(a["color"], b["color"]) and not torch.equal(a["color"], c["color"])
    assert not torch.equal(a["video"], c["video"])
    video = model_video(a)
    assert video.min() >= -1 and video.max() <= 1 and video.shape == (3, 4, 16, 16)
    masked = [(ds[(e, 3)]["audio"][0] == 0).any(1).sum().item() for e in range(10)]
    assert sum(masked) > 0                                              # SpecAugment zeroes frames
    assert not (plain[(1, 3)]["audio"][0] == 0).any(1).any()            # pretraining: no SpecAugment
    colour = model_video(ds[(1, 3)]).mean((1, 2, 3)) - model_video(plain[(1, 3)]).mean((1, 2, 3))
    assert colour.abs().max() > 0                                       # colour/scale changed the pixels


def _batches(ds, workers: int, rank: int, world: int, per_rank: int):
    sampler = EpochSampler(len(ds), per_rank, rank, world, seed=0)
    loader = make_loader(ds, 4, workers, sampler)
    out = []
    for epoch in range(2):
        sampler.set_position(epoch)
        out += list(loader)
    return out


def test_workers_and_ranks_see_the_same_items(features_dir, tmp_path):
    """2 DataLoader workers give the batches of 0 workers, and 2 ranks split the clips
    between them, each item as a single process would build it."""
    jpeg_dir = as_jpeg(features_dir, tmp_path / "jpeg", quality=90)
    ds = AVClipDataset(jpeg_dir, "train", 4, 4, 16, 64, train=True, augment=FINETUNE)
    single = _batches(ds, workers=0, rank=0, world=1, per_rank=16)
    threaded = _batches(ds, workers=2, rank=0, world=1, per_rank=16)
    assert len(single) == len(threaded) == 8
    for s, t in zip(single, threaded):
        assert set(s) == set(t) and all(torch.equal(s[k], t[k]) for k in s)
    r0 = _batches(ds, workers=2, rank=0, world=2, per_rank=8)
    r1 = _batches(ds, workers=1, rank=1, world=2, per_rank=8)
    for epoch in range(2):
        ranks = [torch.cat([b["index"] for b in r[2 * epoch:2 * epoch + 2]]) for r in (r0, r1)]
        assert not set(ranks[0].tolist()) & set(ranks[1].tolist())
        assert sorted(ranks[0].tolist() + ranks[1].tolist()) == list(range(16))
    # the same clip in the same epoch is the same item on either rank
    by_clip = {(e, int(i)): v for e, batches in ((0, single[:4]), (1, single[4:]))
               for b in batches for i, v in zip(b["index"], b["video"])}
    for epoch in range(2):
        for b in r1[2 * epoch:2 * epoch + 2]:
            for i, v in zip(b["index"], b["video"]):
                assert torch.equal(by_clip[(epoch, int(i))], v)


def test_device_decode_gives_the_loaders_batches(features_dir, tmp_path):
    """video_decode='device': workers pass JPEG bytes and draws, finish_batch renders them
    where the model runs; on the CPU the batches equal the loader-decoded ones exactly
    (pretraining, finetuning augmentations, 3-crop evaluation), through 2 workers."""
    jpeg_dir = as_jpeg(features_dir, tmp_path / "jpeg", wide=6, quality=90)   # 20 x 32 frames
    settings = [(True, None, [(0, c) for c in range(8)]), (True, FINETUNE, [(1, c) for c in range(8)]),
                (False, {"eval_short_side": 18}, list(range(12)))]
    for train, aug, keys in settings:
        kw = dict(video_frames=4, video_stride=4, crop=16, audio_frames=64, train=train, num_clips=2,
                  num_crops=3, augment=aug)
        loader = AVClipDataset(jpeg_dir, "train", **kw)
        device = AVClipDataset(jpeg_dir, "train", video_decode="device", **kw)
        item = device[keys[0]]
        assert "video" not in item and item["jpeg"].dtype == torch.uint8
        assert item["jpeg_sizes"].shape == (4,) and item["jpeg_sizes"].sum() == len(item["jpeg"])
        assert ("color" in item) == (aug is FINETUNE) == ("color" in loader[keys[0]])
        expected = DataLoader(loader, batch_size=4, sampler=keys, collate_fn=collate)
        got = DataLoader(device, batch_size=4, sampler=keys, collate_fn=collate, num_workers=2)
        for e, g in zip(expected, got):
            assert "jpeg" in g and e["video"].dtype == torch.uint8
            e, g = finish_batch(e, "cpu"), finish_batch(g, torch.device("cpu"))
            assert set(g) == set(e) and "color" not in e and e["video"].dtype == torch.float32
            for k in e:
                assert torch.equal(e[k], g[k]), k


@pytest.mark.parametrize("decode", ["loader", "device"])
def test_unimodal_items_carry_one_modality_with_the_same_draws(features_dir, tmp_path, decode):
    """An audio-only loader reads no frames and a video-only one no log-mel; either
    draws what the audiovisual item draws, so its window and augmentations are the same."""
    jpeg_dir = as_jpeg(features_dir, tmp_path / "jpeg", quality=90)
    kw = dict(video_frames=4, video_stride=4, crop=16, audio_frames=64, train=True, augment=FINETUNE,
              video_decode=decode)
    both = AVClipDataset(jpeg_dir, "train", **kw)
    audio = AVClipDataset(jpeg_dir, "train", modalities=["audio"], **kw)
    video = AVClipDataset(jpeg_dir, "train", modalities=("video",), **kw)
    for key in [(0, 1), (3, 5)]:
        b, a, v = both[key], audio[key], video[key]
        assert set(a) == {"audio", "label", "index"} and torch.equal(a["audio"], b["audio"])
        assert "audio" not in v and set(v) == set(b) - {"audio"}
        assert all(torch.equal(torch.as_tensor(v[k]), torch.as_tensor(b[k])) for k in v)
    batch = finish_batch(collate([audio[(0, c)] for c in range(4)]), "cpu")
    assert "video" not in batch and batch["audio"].shape == (4, 1, 64, 128)
    with pytest.raises(ValueError, match="non-empty subset"):
        AVClipDataset(jpeg_dir, "train", modalities=["audio", "depth"], **kw)


def test_truncated_or_mismatched_shards_are_named(features_dir, tmp_path):
    """A shard that does not hold its clips fails at the first item, naming the file."""
    jpeg = as_jpeg(features_dir, tmp_path / "jpeg")
    with open(jpeg / "train" / "video_jpeg.bin", "r+b") as f:
        f.truncate(f.seek(0, 2) - 100)
    with pytest.raises(ValueError, match=r"train/video_jpeg.bin: .* bytes .* \(truncated"):
        AVClipDataset(jpeg, "train", 4, 4, 16, 64, train=True)[0]
    np.save(features_dir / "test" / "audio.npy", np.load(features_dir / "test" / "audio.npy")[:-1])
    with pytest.raises(ValueError, match=r"test/audio.npy: 5 clips, but meta.json's parts say 6"):
        AVClipDataset(features_dir, "test", 4, 4, 16, 64, train=False, audio={"audio_norm": "dataset"})[0]


def test_missing_normalisation_statistics_are_named(features_dir):
    meta = json.loads((features_dir / "meta.json").read_text())
    (features_dir / "meta.json").write_text(json.dumps({**meta, "audio_mean": None}))
    dataset_norm = {"audio_norm": "dataset"}   # the rule that reads them (raw, the default, does not)
    with pytest.raises(ValueError, match=r"meta.json: audio_mean None, audio_std 1.0: no normalisation"):
        AVClipDataset(features_dir, "test", 4, 4, 16, 64, train=False, audio=dataset_norm)
    assert len(AVClipDataset(features_dir, "test", 4, 4, 16, 64, train=False, audio=dataset_norm,
                             modalities=("video",))) == 6
    assert len(AVClipDataset(features_dir, "test", 4, 4, 16, 64, train=False)) == 6


def test_device_decode_refuses_array_features(features_dir):
    with pytest.raises(ValueError, match="needs JPEG frames.*video_format 'array'"):
        AVClipDataset(features_dir, "train", 4, 4, 16, 64, train=True, video_decode="device")
    with pytest.raises(ValueError, match="video_decode 'gpu' is not one of"):
        AVClipDataset(features_dir, "train", 4, 4, 16, 64, train=True, video_decode="gpu")


def test_jpeg_size_reads_the_frame_header():
    image = torch.zeros(3, 21, 34, dtype=torch.uint8)
    assert jpeg_size(encode_jpeg(image).numpy()) == (21, 34)
    with pytest.raises(ValueError, match="not a JPEG image"):
        jpeg_size(b"\xff\xd8\x00\x00" + bytes(20))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (nvJPEG)")
def test_gpu_decode_matches_the_cpu(features_dir, tmp_path):
    """nvJPEG on the GPU gives the CPU decoder's batches to within JPEG decoder rounding."""
    jpeg_dir = as_jpeg(features_dir, tmp_path / "jpeg", wide=6, quality=90)
    ds = AVClipDataset(jpeg_dir, "train", 4, 4, 16, 64, train=True, augment=FINETUNE, video_decode="device")
    batch = collate([ds[(0, c)] for c in range(8)])
    cpu, gpu = finish_batch(batch, "cpu"), finish_batch(batch, "cuda")
    assert gpu["video"].is_cuda
    assert (gpu["video"].cpu() - cpu["video"]).abs().mean() < 0.02   # ~2.5 of 255 levels
