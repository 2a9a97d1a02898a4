"""Training augmentations of the paper's official recipes, as config values.

Pretraining (as MAE, and the official ``av_mae`` pretraining configs): random crop and
horizontal flip only. Finetuning adds (official ``av_mae/configs/{vggsound,audioset}/
finetune.py``, which use DMVR's video processors and lingvo's SpecAugment):

* **scale jitter**: the stored frames (short side 256) are rescaled by independent
  height and width factors drawn from U(0.9, 1.33) (probability 1.0) before the random
  224 crop. We draw the crop box in the rescaled frame and map it back, so only the
  box is resized (``torchvision.transforms.v2.functional.resized_crop``, bilinear with
  antialiasing): the same pixels as rescaling the whole frame, at a fraction of the cost.
* **colour**: with probability 0.8 one draw for the whole clip of brightness (additive,
  up to 32/255), saturation and contrast (factors in [0.6, 1.4]) and hue (shift up to
  0.2), in DMVR's order, then greyscale with probability 0.1. Saturation, contrast and
  greyscale are ``torchvision.transforms.v2.functional``; brightness is an addition
  (torchvision's brightness is a factor); hue is a rotation of the YIQ chroma plane
  (:func:`hue_rotate`), because torchvision's exact HSV ``adjust_hue`` costs 20x the
  rest of a finetuning item. Other differences from TF: torchvision clamps to [0, 1]
  after every step, its saturation blends with grey (TF scales HSV saturation), and its
  contrast pivots on the mean grey level instead of each channel's mean.
* **SpecAugment**: ``torchaudio.transforms.FrequencyMasking`` / ``TimeMasking``, counts
  and widths from the config. The official pipeline applies frequency masks only:
  VGGSound 1 mask of up to 48 bins, AudioSet 2 of up to 36 (each ``int(U[0, 1) x max)``
  wide, as torchaudio draws them). Its configs also list 4 time masks of up to 48
  frames, but set ``time_mask_max_ratio = 0``, and lingvo's ``SpectrumAugmenter`` then
  returns before any time masking; ``time_masks: 4`` (``time_width: 48``) is that
  listed variant, the one ``hyperparameters.md`` gives. Masks are filled with 0 after
  the stage's normalisation (``input.audio_norm``, :mod:`avmae.data.audio`): raw
  log-mel 0, the fixed constant's mean, or the dataset mean. The official time warp
  (``time_warp_max_ratio = 0``) is off, so we have none.
* **circular time shift** (``circular_time_shift``, official AudioSet finetuning; train
  only, audio only): the audio window is rolled along time by a shift drawn uniformly
  from 0 .. frames - 1 (:func:`circular_time_shift`), then SpecAugment (the official
  pipeline rolls before normalising, which is the same). The video is not shifted, so
  the two no longer line up.
* **mixup** (:func:`mixup`, applied on a batch by the training step): one lambda per
  modality (the official ``mixmod``).

Evaluation: the short side is resized to ``eval_short_side`` (official finetune
configs: 256, DMVR ``resize_smallest`` also at test time), then a centre crop.
Pixels end in [-1, 1].

Every random draw of one item comes from the numpy generator the dataset seeds with
``(seed, epoch, clip)``, so an item's augmentation does not depend on the worker or
process that builds it. torchaudio's masks draw from torch's global generator; we run
them under ``torch.random.fork_rng`` seeded from the item's generator.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torchaudio
from torchvision.transforms.v2 import functional as TF


@dataclass(frozen=True)
class SpecAugment:
    freq_masks: int = 0
    freq_width: int = 0
    time_masks: int = 0
    time_width: int = 0


@dataclass(frozen=True)
class Color:
    prob: float = 0.8
    brightness: float = 32 / 255   # additive shift, on pixels in [0, 1]
    contrast: float = 0.4          # factor in [1 - c, 1 + c]
    saturation: float = 0.4        # factor in [1 - s, 1 + s]
    hue: float = 0.2               # shift in [-h, h] (fraction of the hue circle)
    grayscale_prob: float = 0.1


@dataclass(frozen=True)
class Augment:
    """One stage's augmentations; the defaults are the pretraining ones (crop + flip)."""

    flip: bool = True
    scale_jitter: tuple[float, float] | None = None
    scale_jitter_prob: float = 1.0
    color: Color | None = None
    spec_augment: SpecAugment | None = None
    mixup_alpha: float = 0.0
    eval_short_side: int | None = None   # None: centre crop of the stored frames
    circular_time_shift: bool = False    # roll the training audio window by U{0..frames-1}

    @classmethod
    def from_config(cls, cfg: dict | None, where: str = "finetune.augment") -> "Augment":
        """Build from a config section; an unknown or bad key raises ValueError naming it."""
        if cfg is None:
            return cls()
        if not isinstance(cfg, dict):
            raise ValueError(f"{where}: expected a mapping, got {type(cfg).__name__}")
        _check_keys(cfg, cls, where)
        kw = dict(cfg)
        if kw.get("scale_jitter") is not None:
            lo_hi = kw["scale_jitter"]
            if (not isinstance(lo_hi, (list, tuple)) or len(lo_hi) != 2
                    or not 0 < float(lo_hi[0]) <= float(lo_hi[1])):
                raise ValueError(f"{where}.scale_jitter: expected [min, max] with 0 < min <= max, got {lo_hi!r}")
            kw["scale_jitter"] = (float(lo_hi[0]), float(lo_hi[1]))
        for key, sub in (("color", Color), ("spec_augment", SpecAugment)):
            if kw.get(key) is not None:
                if not isinstance(kw[key], dict):
                    raise ValueError(f"{where}.{key}: expected a mapping or null, got {kw[key]!r}")
                _check_keys(kw[key], sub, f"{where}.{key}")
                kw[key] = sub(**kw[key])
        aug = cls(**kw)
        for name in ("scale_jitter_prob",):
            if not 0 <= getattr(aug, name) <= 1:
                raise ValueError(f"{where}.{name}: must be in [0, 1], got {getattr(aug, name)}")
        if aug.color is not None:
            for name in ("prob", "grayscale_prob", "contrast", "saturation"):
                if not 0 <= getattr(aug.color, name) <= 1:
                    raise ValueError(f"{where}.color.{name}: must be in [0, 1], got {getattr(aug.color, name)}")
            if not 0 <= aug.color.hue <= 0.5:
                raise ValueError(f"{where}.color.hue: must be in [0, 0.5], got {aug.color.hue}")
        if aug.spec_augment is not None:
            for f in fields(SpecAugment):
                if int(getattr(aug.spec_augment, f.name)) < 0:
                    raise ValueError(f"{where}.spec_augment.{f.name}: must be >= 0")
        if not isinstance(aug.circular_time_shift, bool):
            raise ValueError(f"{where}.circular_time_shift: expected true or false, got {aug.circular_time_shift!r}")
        if aug.mixup_alpha < 0:
            raise ValueError(f"{where}.mixup_alpha: must be >= 0, got {aug.mixup_alpha}")
        if aug.eval_short_side is not None and aug.eval_short_side < 1:
            raise ValueError(f"{where}.eval_short_side: must be >= 1, got {aug.eval_short_side}")
        return aug


def _check_keys(cfg: dict, cls, where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


# ------------------------------------------------------------------------- video
@dataclass(frozen=True)
class Box:
    """A region of the stored frame, resized to ``out`` x ``out``, then maybe flipped."""

    top: int
    left: int
    height: int
    width: int
    out: int
    flip: bool = False

    def pack(self) -> torch.Tensor:
        """int64 [6]: the box as one tensor, to cross the DataLoader (:meth:`unpack`)."""
        return torch.tensor([self.top, self.left, self.height, self.width, self.out, self.flip])

    @classmethod
    def unpack(cls, t: torch.Tensor) -> "Box":
        top, left, height, width, out, flip = t.tolist()
        return cls(top, left, height, width, out, bool(flip))


def train_box(height: int, width: int, crop: int, aug: Augment, rng: np.random.Generator) -> Box:
    """Random crop (after scale jitter if configured) and flip of a ``height`` x ``width`` frame.

    Scale jitter rescales the frame by (sh, sw) and crops ``crop`` x ``crop`` there: in
    the stored frame that is a box of ``crop/sh`` x ``crop/sw`` pixels, placed uniformly.
    """
    box_h = box_w = crop
    if aug.scale_jitter is not None and rng.random() < aug.scale_jitter_prob:
        lo, hi = aug.scale_jitter
        sh, sw = rng.uniform(lo, hi, size=2)
        box_h, box_w = min(height, round(crop / sh)), min(width, round(crop / sw))
    if box_h > height or box_w > width:
        raise ValueError(f"crop {crop} does not fit the stored {height}x{width} frame")
    top = int(rng.integers(0, height - box_h + 1))
    left = int(rng.integers(0, width - box_w + 1))
    flip = bool(aug.flip and rng.random() < 0.5)
    return Box(top, left, box_h, box_w, crop, flip)


def eval_box(height: int, width: int, crop: int, short_side: int | None, position: float = 0.5) -> Box:
    """Resize the short side to ``short_side`` (None: keep it), then take a crop at
    ``position`` along the long side (0: start, 0.5: centre, 1: end) and centred across it."""
    scale = 1.0 if short_side is None else short_side / min(height, width)
    box_h, box_w = min(height, round(crop / scale)), min(width, round(crop / scale))
    if crop / scale > min(height, width) + 0.5:
        raise ValueError(f"eval crop {crop} after resizing the short side to {short_side} "
                         f"does not fit the stored {height}x{width} frame")
    top, left = (height - box_h) // 2, (width - box_w) // 2
    if height > width:
        top = int(position * (height - box_h))
    else:
        left = int(position * (width - box_w))
    return Box(top, left, box_h, box_w, crop)


def apply_box(frames: torch.Tensor, box: Box) -> torch.Tensor:
    """uint8 frames [T, 3, H, W] -> the box region [T, 3, out, out] (bilinear, antialiased)."""
    if box.height == box.out and box.width == box.out:
        out = frames[..., box.top:box.top + box.out, box.left:box.left + box.out]
    else:
        out = TF.resized_crop(frames, box.top, box.left, box.height, box.width, [box.out, box.out],
                              antialias=True)
    return TF.horizontal_flip(out) if box.flip else out


def draw_color(color: Color, rng: np.random.Generator) -> torch.Tensor:
    """One clip's colour draws (DMVR's recipe: one draw for the whole clip), packed as
    float32 [apply, grey, brightness delta, saturation, contrast, hue] for :func:`apply_color`."""
    # Draw everything first, so the number of draws does not depend on the coin tosses.
    apply, gray = rng.random() < color.prob, rng.random() < color.grayscale_prob
    delta = rng.uniform(-color.brightness, color.brightness)
    sat = rng.uniform(1 - color.saturation, 1 + color.saturation)
    con = rng.uniform(1 - color.contrast, 1 + color.contrast)
    hue = rng.uniform(-color.hue, color.hue)
    return torch.tensor([apply, gray, delta, sat, con, hue], dtype=torch.float32)


def apply_color(video: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
    """Float frames [T, 3, H, W] in [0, 1], coloured as :func:`draw_color` drew."""
    apply, gray, delta, sat, con, hue = draw.tolist()
    if apply:
        video = (video + delta).clamp_(0.0, 1.0)
        video = TF.adjust_saturation(video, sat)
        video = TF.adjust_contrast(video, con)
        video = hue_rotate(video, hue)
    if gray:
        video = TF.rgb_to_grayscale(video, num_output_channels=3)
    return video


# RGB <-> YIQ (NTSC): a hue shift is a rotation of the (I, Q) chroma plane about the grey axis.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def hue_rotate(video: torch.Tensor, shift: float) -> torch.Tensor:
    """Shift the hue of [..., 3, H, W] pixels in [0, 1] by ``shift`` turns (in [-0.5, 0.5]).

    One 3x3 matrix (RGB -> YIQ, rotate I/Q by 2*pi*shift, back), clamped to [0, 1]. It is
    the linear form of a hue shift; torchvision's ``adjust_hue`` (the exact HSV shift,
    TF's ``random_hue``) costs ~340 ms per 32-frame 224x224 clip on one core, 20x the
    rest of the item, this ~16 ms.
    """
    if shift == 0:
        return video
    # The sign makes a positive shift turn red towards green, as HSV hue (and TF) does.
    c, s = np.cos(2 * np.pi * shift), -np.sin(2 * np.pi * shift)
    rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float32)
    m = (_YIQ_TO_RGB @ rot @ _RGB_TO_YIQ).to(video.device, video.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, video).clamp_(0.0, 1.0)


def to_unit_range(video_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [T, 3, H, W] -> float [T, 3, H, W] in [0, 1]."""
    return video_u8.float().div_(255.0)


def to_model_range(video01: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], channels first: [T, 3, H, W] -> [3, T, H, W]."""
    out = torch.empty((video01.shape[1], video01.shape[0], *video01.shape[2:]), dtype=video01.dtype,
                      device=video01.device)
    torch.mul(video01.permute(1, 0, 2, 3), 2.0, out=out)   # one pass into the [3, T, H, W] layout
    return out.sub_(1.0)


# ------------------------------------------------------------------------- audio
def circular_time_shift(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Log-mel [1, frames, mels] rolled along time by a shift drawn uniformly from
    0 .. frames - 1: frame ``i`` moves to ``(i + shift) % frames`` (``tf.roll`` of the
    official ``_decode_spectrogram``)."""
    shift = int(rng.integers(0, audio.shape[1]))
    return torch.roll(audio, shifts=shift, dims=1)


def spec_augment(audio: torch.Tensor, cfg: SpecAugment, rng: np.random.Generator) -> torch.Tensor:
    """SpecAugment of a normalised (or raw) log-mel [1, frames, mels]; masked values become 0.
    ``time_masks: 0`` (the official recipe) zeroes no frame."""
    if not (cfg.freq_masks or cfg.time_masks):
        return audio
    spec = audio.transpose(1, 2)  # torchaudio masks (..., freq, time)
    seed = int(rng.integers(0, 2**62))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.freq_width > 0:
            freq = torchaudio.transforms.FrequencyMasking(freq_mask_param=cfg.freq_width)
            for _ in range(cfg.freq_masks):
                spec = freq(spec)
        if cfg.time_width > 0:
            time = torchaudio.transforms.TimeMasking(time_mask_param=cfg.time_width)
            for _ in range(cfg.time_masks):
                spec = time(spec)
    return spec.transpose(1, 2).contiguous()


# ------------------------------------------------------------------------- mixup
def _as_soft(targets: torch.Tensor, num_classes: int | None, name: str) -> torch.Tensor:
    if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8) and targets.dim() == 1:
        if num_classes is None:
            raise ValueError(f"mixup: targets {name!r} are class indices; pass num_classes")
        return torch.nn.functional.one_hot(targets.long(), num_classes).float()
    if targets.dim() != 2 or not targets.is_floating_point():
        raise ValueError(f"mixup: targets {name!r} must be class indices [B] or float "
                         f"(one-hot, soft or multi-hot) [B, C]; got {tuple(targets.shape)} {targets.dtype}")
    return targets


def mixup(audio: torch.Tensor | None, video: torch.Tensor | None, targets, alpha: float,
          rng: np.random.Generator, num_classes=None) -> dict:
    """Mix a batch with its reverse, with a separate lambda per modality.

    ``audio`` [B, ...] and ``video`` [B, ...] are mixed as ``lam_m * x + (1 - lam_m) * x[::-1]``
    with ``lam_audio`` and ``lam_video`` drawn independently from Beta(alpha, alpha),
    one value each per batch, as the official ``mixup_modalities(..., mixmod=True)``
    (scenic ``av_mae/train_utils.py``) does. ``targets`` are class indices [B]
    (with ``num_classes``), or float one-hot / soft / multi-hot [B, C], or a dict of
    these (e.g. ``{"verb": ..., "noun": ...}``; ``num_classes`` then a dict too).

    Targets with two lambdas: each modality gets the targets mixed with its own lambda,
    ``targets["audio"]`` and ``targets["video"]``; the official MBT loss scores each
    modality's logits against its own targets and averages the losses. For a head that
    sees both modalities (e.g. averaged logits) ``targets["all"]`` is the mean of the
    two, i.e. the targets mixed with ``(lam_audio + lam_video) / 2``. Multi-hot
    (AudioSet) targets are mixed the same way, for a sigmoid loss.

    Either input may be None (a unimodal batch; it stays None): both lambdas are drawn
    all the same, so a modality is mixed as it would be in the audiovisual run.

    ``alpha <= 0`` disables mixup: inputs unchanged, lambdas 1. Returns a dict with
    ``audio``, ``video``, ``targets`` (``{"audio", "video", "all"}``, each a tensor or
    a dict like the input) and ``lam`` (``{"audio": float, "video": float}``).
    """
    sizes = {m: x.shape[0] for m, x in (("audio", audio), ("video", video)) if x is not None}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"mixup: expected audio and/or video of one batch size, got {sizes}")
    b = next(iter(sizes.values()))
    if isinstance(targets, dict):
        nc = num_classes if isinstance(num_classes, dict) else {k: num_classes for k in targets}
        soft = {k: _as_soft(v, nc.get(k), k) for k, v in targets.items()}
    else:
        soft = {None: _as_soft(targets, num_classes, "targets")}
    for k, v in soft.items():
        if v.shape[0] != b:
            raise ValueError(f"mixup: targets {k or 'targets'!r} have batch {v.shape[0]}, inputs {b}")
    if alpha > 0:
        lam_a, lam_v = (float(x) for x in rng.beta(alpha, alpha, size=2))
    else:
        lam_a = lam_v = 1.0

    def mix(x: torch.Tensor | None, lam: float) -> torch.Tensor | None:
        return x if x is None or lam == 1.0 else lam * x + (1.0 - lam) * x.flip(0)

    out_t = {}
    for name, lam in (("audio", lam_a), ("video", lam_v), ("all", (lam_a + lam_v) / 2)):
        mixed = {k: mix(v, lam) for k, v in soft.items()}
        out_t[name] = mixed[None] if None in mixed else mixed
    return {"audio": mix(audio, lam_a), "video": mix(video, lam_v), "targets": out_t,
            "lam": {"audio": lam_a, "video": lam_v}}
