"""Windows, crops and audio/video alignment of the training dataset."""

import numpy as np
import pytest
import torch

from avmae.data.dataset import AVClipDataset


def test_shapes_and_ranges(features_dir):
    ds = AVClipDataset(features_dir, "train", video_frames=4, video_stride=4, crop=16, audio_frames=64,
                       train=True)
    item = ds[0]
    assert item["video"].shape == (3, 4, 16, 16)
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert item["audio"].shape == (1, 64, 128)
    assert len(ds) == 16 and ds.classes[0] == "class 0"


def test_eval_views_are_spaced_linearly_and_audio_is_centred(features_dir):
    ds = AVClipDataset(features_dir, "test", video_frames=4, video_stride=5, crop=20, audio_frames=40,
                       train=False, num_clips=3)
    assert len(ds) == 6 * 3
    video = np.load(features_dir / "test" / "video.npy")
    audio = np.load(features_dir / "test" / "audio.npy")
    last = 75 - 20
    for view, start in enumerate([0, 28, last]):   # round(55 / 2) = 28
        item = ds[1 * 3 + view]
        assert item["index"] == 1
        expected = torch.from_numpy(video[1, start:start + 20:5]).permute(3, 0, 1, 2).float() / 127.5 - 1
        assert torch.equal(item["video"], expected)
        centre = (start + 10) / 25 * 100          # video window centre, in audio frames
        a0 = min(max(int(round(centre - 20)), 0), 300 - 40)
        assert torch.allclose(item["audio"][0], torch.from_numpy(audio[1, a0:a0 + 40].astype(np.float32)))


def test_rejects_windows_longer_than_the_clip(features_dir):
    with pytest.raises(ValueError, match="exceeds the stored 75"):
        AVClipDataset(features_dir, "train", 16, 8, 16, 64, train=True)
    with pytest.raises(FileNotFoundError, match="val"):
        AVClipDataset(features_dir, "val", 4, 4, 16, 64, train=True)
