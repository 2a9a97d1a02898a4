"""Training/evaluation dataset over the feature shards written by ``features.extract``.

Each item is one temporal window of one clip:

* video: ``video_frames`` frames taken every ``video_stride`` stored frames (25 fps),
  cropped to ``crop`` x ``crop`` (random crop + horizontal flip for training, centre
  crop for evaluation), scaled to [-1, 1], shape [3, T, crop, crop];
* audio: ``audio_frames`` log-mel frames (100 per second) centred on the centre of
  the video window, clamped to the clip, normalised with the training-split
  mean/std, shape [1, audio_frames, n_mels].

Training items are addressed by ``(epoch, clip)`` keys (see
``avmae.train.loop.EpochSampler``) and draw their window, crop and flip from a generator
seeded by ``(seed, epoch, clip)``: the same clip in the same epoch gets the same
augmentation whatever the number of processes, workers, or a resume in between.
Evaluation items are plain indices: ``num_clips`` windows spaced linearly over each clip,
carrying their clip ``index`` so that logits can be averaged per clip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from avmae.data.labels import LabelSpace

AUDIO_FPS = 100  # log-mel frames per second (10 ms hop)


class AVClipDataset(Dataset):
    def __init__(self, features_dir: str | Path, split: str, video_frames: int, video_stride: int,
                 crop: int, audio_frames: int, train: bool, num_clips: int = 1, seed: int = 0):
        self.dir = Path(features_dir)
        self.meta = json.loads((self.dir / "meta.json").read_text())
        split_dir = self.dir / split
        if not (split_dir / "index.csv").exists():
            raise FileNotFoundError(f"{split_dir / 'index.csv'}: split {split!r} has no extracted clips")
        self.index = pd.read_csv(split_dir / "index.csv", keep_default_na=False)
        self.split_dir = split_dir
        self.video_frames, self.video_stride, self.crop = video_frames, video_stride, crop
        self.audio_frames, self.train, self.num_clips, self.seed = audio_frames, train, num_clips, seed
        self.fps = self.meta["fps"]
        span = video_frames * video_stride
        if span > self.meta["video_frames"]:
            raise ValueError(f"video window of {span} frames exceeds the stored {self.meta['video_frames']}")
        if audio_frames > self.meta["audio_frames"]:
            raise ValueError(f"audio window of {audio_frames} frames exceeds the stored {self.meta['audio_frames']}")
        if crop > self.meta["short_side"]:
            raise ValueError(f"crop {crop} exceeds the stored frame size {self.meta['short_side']}")
        self._audio = self._video = None  # opened lazily, once per DataLoader worker
        # targets by label kind (avmae.data.labels): label | labels (multi-hot) | verb, noun
        self.label_space = LabelSpace.from_meta(self.meta, str(self.dir / "meta.json"))
        self.targets = self.label_space.targets(self.index, split_dir / "index.csv")

    @property
    def classes(self) -> list[str]:
        """Class names of a single- or multi-label set (verb+noun sets: meta's verb_classes, noun_classes)."""
        return self.meta["classes"]

    def target(self, clip: int) -> dict:
        """The item's target(s): ``label`` int, ``labels`` float [C], or ``verb`` and ``noun`` ints."""
        return {k: torch.from_numpy(v[clip].copy()) if v.ndim > 1 else int(v[clip])
                for k, v in self.targets.items()}

    def multi_hot(self) -> np.ndarray:
        """[clips, classes] 0/1 targets of a multi-label split, in index order (for mAP)."""
        if "labels" not in self.targets:
            raise ValueError(f"{self.split_dir / 'index.csv'}: label kind {self.label_space.kind!r} is not multi-label")
        return self.targets["labels"]

    def __len__(self) -> int:
        return len(self.index) * (1 if self.train else self.num_clips)

    def _arrays(self):
        if self._audio is None:
            self._audio = np.load(self.split_dir / "audio.npy", mmap_mode="r")
            self._video = np.load(self.split_dir / "video.npy", mmap_mode="r")
        return self._audio, self._video

    def _video_start(self, view: int, rng: np.random.Generator | None) -> int:
        last = self.meta["video_frames"] - self.video_frames * self.video_stride
        if rng is not None:
            return int(rng.integers(0, last + 1))
        if self.num_clips == 1:
            return last // 2
        return int(round(view * last / (self.num_clips - 1)))

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        if self.train:
            epoch, clip = key if isinstance(key, tuple) else (0, key)
            rng, view = np.random.default_rng([self.seed, epoch, clip]), 0
        else:
            (clip, view), rng = divmod(key, self.num_clips), None
        audio_all, video_all = self._arrays()
        start = self._video_start(view, rng)
        frames = video_all[clip, start:start + self.video_frames * self.video_stride:self.video_stride]
        size = frames.shape[1]
        if rng is not None:
            y, x = (int(v) for v in rng.integers(0, size - self.crop + 1, size=2))
        else:
            y = x = (size - self.crop) // 2
        video = torch.from_numpy(np.ascontiguousarray(frames[:, y:y + self.crop, x:x + self.crop]))
        if rng is not None and rng.random() < 0.5:
            video = video.flip(2)
        video = video.permute(3, 0, 1, 2).float() / 127.5 - 1.0

        centre = (start + self.video_frames * self.video_stride / 2) / self.fps * AUDIO_FPS
        a0 = int(round(centre - self.audio_frames / 2))
        a0 = min(max(a0, 0), self.meta["audio_frames"] - self.audio_frames)
        audio = torch.from_numpy(audio_all[clip, a0:a0 + self.audio_frames].astype(np.float32))
        audio = ((audio - self.meta["audio_mean"]) / self.meta["audio_std"]).unsqueeze(0)
        return {"audio": audio, "video": video, **self.target(clip), "index": clip}
