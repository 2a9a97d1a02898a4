"""Where a log-mel window lies against its video window, and how it is normalised.

Two config values of a stage's ``input`` (``pretrain.input``, ``finetune.input``, and
their ``by_dataset`` overrides), read by :class:`AudioInput`:

* ``audio_window``: where the audio window of an item lies.

  - ``official``: the authors' DMVR pipeline (``sample_sequence`` with a state shared by
    the modalities, ``sync_random_state``). Training: the audio window starts at the same
    fraction of the clip as the video window, ``a0 = round(start / video_frames x
    audio_frames)`` (stored frames), and wraps past the clip's end to its start (DMVR
    tiles the sequence). Evaluation: the audio windows are spaced over the audio on
    their own, ``int(linspace(lo, hi, num_clips))`` (one clip: the centred start), not
    tied to the video views; ``lo``/``hi`` keep the window on the audio of the clip's
    action (below), so on a VGGSound or AudioSet clip they are ``0`` and
    ``audio_frames - window``: with a 1000-frame window on a 10 s clip every view hears
    the whole clip.
  - ``centred``: the audio window is centred on the centre of the video window and
    clamped to the clip (no wrap), in training and evaluation alike (our former rule).

  An EPIC clip is the 10 s context of a shorter action: ``official`` training windows
  start with the video window and wrap over the context; evaluation windows stay on the
  action's audio (inside it, or holding all of it), as the video windows do.

* ``audio_norm``: what the stored raw log-mel becomes.

  - ``raw``: unchanged (the official pretraining on both datasets and the VGGSound
    finetuning: no ``normalization_*_spec``, so mean 0 and std 1);
  - ``fixed``: ``(x - audio_mean) / audio_std`` with the config's constants (the
    official AudioSet finetuning: 1.102 / 2.762, statistics of *its* front end over the
    unbalanced train set);
  - ``dataset``: ``(x - mean) / std`` with the training split's statistics, which the
    feature stage stores in ``meta.json`` (our former rule for every stage; the toy
    AudioSet finetuning's, ``config/config.yaml``).

  Features always hold the raw log-mel and those statistics, so every mode reads the
  same extraction. ``audio_mean``/``audio_std`` are read by ``fixed`` only (left in
  place, they let ``fixed`` and ``dataset`` stay one value apart).

SpecAugment masks (:func:`avmae.data.augment.spec_augment`) fill with 0 after this
normalisation, as the official pipeline does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np  # no torch here: avmae.config checks a stage's input at planning time

WINDOWS = ("official", "centred")
NORMS = ("raw", "fixed", "dataset")
# Keys of a stage's ``input`` that are not the audio's (read by the dataset's arguments).
OTHER_INPUT_KEYS = frozenset({"video_frames", "video_stride", "crop", "audio_frames"})


@dataclass(frozen=True)
class AudioInput:
    """A stage's audio window rule and normalisation. The defaults (a key left out, or no
    mapping) are the official pipeline's, which both config profiles set."""

    window: str = "official"
    norm: str = "raw"
    mean: float | None = None
    std: float | None = None

    @classmethod
    def from_config(cls, cfg: dict | None, where: str = "input") -> "AudioInput":
        """From a stage's ``input`` mapping (its video and size keys are skipped); None gives
        the defaults. An unknown key or a bad value raises ValueError naming it."""
        if cfg is None:
            return cls()
        if not isinstance(cfg, dict):
            raise ValueError(f"{where}: expected a mapping, got {type(cfg).__name__}")
        known = {"audio_window", "audio_norm", "audio_mean", "audio_std"}
        unknown = sorted(set(cfg) - known - OTHER_INPUT_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known | OTHER_INPUT_KEYS)}")
        window, norm = cfg.get("audio_window", cls.window), cfg.get("audio_norm", cls.norm)
        if window not in WINDOWS:
            raise ValueError(f"{where}.audio_window: {window!r} is not one of {WINDOWS}")
        if norm not in NORMS:
            raise ValueError(f"{where}.audio_norm: {norm!r} is not one of {NORMS}")
        mean, std = cfg.get("audio_mean"), cfg.get("audio_std")
        for key, value in (("audio_mean", mean), ("audio_std", std)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
        if norm == "fixed":
            if mean is None or std is None:
                raise ValueError(f"{where}.audio_norm 'fixed' needs audio_mean and audio_std "
                                 f"(got {mean!r}, {std!r})")
        if std is not None and not std > 0:
            raise ValueError(f"{where}.audio_std: must be > 0, got {std!r}")
        return cls(window, norm, None if mean is None else float(mean), None if std is None else float(std))

    def stats(self, meta: dict) -> tuple[float, float] | None:
        """(mean, std) to normalise with, or None (raw): ``meta`` is the features' meta.json."""
        if self.norm == "raw":
            return None
        if self.norm == "fixed":
            return self.mean, self.std
        return meta["audio_mean"], meta["audio_std"]


def normalise(audio, stats: tuple[float, float] | None):
    """``(audio - mean) / std``, or ``audio`` itself for raw (``stats`` None)."""
    if stats is None:
        return audio
    mean, std = stats
    return (audio - mean) / std


def official_train_frames(start: int, video_total: int, audio_total: int, frames: int) -> np.ndarray:
    """Stored audio frames of a training window (``official``): it starts at the fraction
    ``start / video_total`` of the clip's ``audio_total`` frames and wraps past its end."""
    a0 = int(np.round(start / video_total * audio_total))   # round half to even, as tf.math.round
    return (a0 + np.arange(frames)) % audio_total


def centred_start(start: int, video_span: int, fps: float, audio_fps: int, audio_total: int,
                  frames: int) -> int:
    """First stored audio frame of the window centred on the video window that starts at
    frame ``start`` and spans ``video_span`` frames, clamped to the clip (``centred``)."""
    centre = (start + video_span / 2) / fps * audio_fps
    a0 = int(round(centre - frames / 2))
    return min(max(a0, 0), audio_total - frames)


def spaced_start(action: tuple[int, int], video_total: int, audio_total: int, frames: int,
                 view: int, num_clips: int) -> int:
    """First stored audio frame of evaluation view ``view`` of ``num_clips`` (``official``):
    ``int(linspace(lo, hi, num_clips))[view]`` (one clip: ``(lo + hi) // 2``) between the
    starts that keep the window on the audio of ``action`` (its first and last stored
    video frames): inside it when it is longer than the window, holding all of it when
    shorter, never off the clip."""
    first = int(round(action[0] / video_total * audio_total))
    end = int(round((action[1] + 1) / video_total * audio_total))
    lo, hi = np.clip(sorted((first, end - frames)), 0, audio_total - frames).tolist()
    if num_clips == 1:
        return (lo + hi) // 2
    return lo + int(np.linspace(0.0, hi - lo, num_clips)[view])
