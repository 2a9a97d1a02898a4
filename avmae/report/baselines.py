"""The Sec. 4.2 baseline: two separate unimodal MAEs initialising one MBT.

An AudioMAE and a VideoMAE with the ``separate`` encoder strategy hold their layers
under ``encoder.split.{audio,video}``, ``encoder.split_norm.{...}`` and
``tokenizers.{...}``: exactly the keys an audiovisual AV-MAE with separate encoders
has. :func:`merge_unimodal_maes` puts the two encoders side by side in one checkpoint,
which the ordinary finetuning rule reads as the run ``..._av_separate-separate_...``
(separate encoders and separate decoders: "two separate, uncoupled masked autoencoder
models", paper Sec. 3.3). MBT's audio stream then starts from the AudioMAE and its
video stream from the VideoMAE (``avmae.models.mbt.init_mbt_from_avmae``). The decoders
are not needed for finetuning and are left out.
"""

from __future__ import annotations

from pathlib import Path

import torch

from avmae.io import atomic_path, write_run_config


def _encoder_part(state: dict, modality: str, path) -> dict:
    own = (f"encoder.split.{modality}.", f"encoder.split_norm.{modality}.", f"tokenizers.{modality}.")
    part = {k: v for k, v in state.items() if k.startswith(own)}
    other = [k for k in state if k.startswith(("encoder.", "tokenizers.")) and k not in part]
    if not part or other:
        raise ValueError(f"{path}: not a {modality}-only MAE with the 'separate' encoder strategy "
                         f"(found {'no ' + modality + ' encoder keys' if not part else 'other encoder keys: ' + other[0]})")
    return part


def merge_unimodal_maes(audio_model: str | Path, video_model: str | Path, out: str | Path,
                        settings: dict | None = None) -> dict:
    """Write ``out``: the encoders of an audio-only and a video-only MAE in one checkpoint."""
    merged = {}
    for modality, path in (("audio", audio_model), ("video", video_model)):
        state = torch.load(path, map_location="cpu", weights_only=True)
        merged.update(_encoder_part(state, modality, path))
    out = Path(out)
    with atomic_path(out) as tmp:
        torch.save(merged, tmp)
    write_run_config(out.parent, settings or {}, audio_model=str(audio_model), video_model=str(video_model))
    return merged
