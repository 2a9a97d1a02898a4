"""Figures (matplotlib, PNG + PDF): reconstructions, loss curves, Table 5 as a plot.

* :func:`reconstruction_figure`: as the supplementary material shows them: for a few
  test clips, the video frames and the log-mel spectrogram as the masked input, the
  reconstruction (predicted patches where hidden, the input where visible) and the
  original. Masks come from fixed per-clip seeds (``AVMAE.forward(seeds=...)``), so a
  figure is the same on every run. An inpainting model reconstructs only its target
  modality; the other shows its masked input alone.
* :func:`loss_curves_figure`: the per-epoch training loss (``loss_curve`` of the runs'
  metrics.json), one line per run, one panel per group (e.g. finetuning modality).
* :func:`epochs_figure`: Table 5's CSV as accuracy against pretraining epochs, ours
  beside the paper's.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from avmae.io import atomic_path  # noqa: E402


def save(fig, out_prefix: str | Path) -> list[Path]:
    """Write ``{out_prefix}.png`` and ``.pdf`` (atomically) and close the figure."""
    out_prefix = Path(out_prefix)
    paths = []
    for ext in (".png", ".pdf"):
        path = out_prefix.with_suffix(ext)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


# ----------------------------------------------------------------------------- reconstructions
def unpatchify_video(patches: torch.Tensor, patch: tuple[int, int, int], frames: int, size: int,
                     channels: int = 3) -> torch.Tensor:
    """Inverse of ``VideoTubelets.patchify``: [B, N, pt*ph*pw*C] -> [B, C, T, H, W]."""
    b = patches.shape[0]
    pt, ph, pw = patch
    x = patches.reshape(b, frames // pt, size // ph, size // pw, pt, ph, pw, channels)
    return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, channels, frames, size, size)


def unpatchify_audio(patches: torch.Tensor, patch: tuple[int, int], time: int, mels: int) -> torch.Tensor:
    """Inverse of ``AudioPatches.patchify``: [B, N, pt*pf] -> [B, 1, T, F]."""
    b = patches.shape[0]
    pt, pf = patch
    x = patches.reshape(b, time // pt, mels // pf, pt, pf)
    return x.permute(0, 1, 3, 2, 4).reshape(b, 1, time, mels)


def _denormalise(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Undo per-patch target normalisation (``norm_targets``) with the original patches' statistics."""
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True, unbiased=False)
    return pred * (var + 1e-6).sqrt() + mean


@torch.no_grad()
def reconstruct(model, batch: dict, seeds: list[int]) -> dict:
    """Per modality: ``masked``, ``reconstruction`` and ``original`` in input layout, and
    whether the model reconstructs it."""
    model.eval()
    inputs = {m: batch[m] for m in model.cfg.modalities}
    _, out = model(inputs, seeds=seeds)
    result = {}
    for m in model.cfg.modalities:
        tok = model.tokenizers[m]
        x = inputs[m].float()
        if m == "audio":   # the frames the VALID patches cover (1000 -> 992 at 16 x 16)
            x = x[:, :, : x.shape[2] // tok.patch[0] * tok.patch[0], : x.shape[3] // tok.patch[1] * tok.patch[1]]
        target = tok.patchify(x)
        mask = out["mask"][m].unsqueeze(-1)  # True = hidden
        if m == "video":
            def back(p, x=x, tok=tok):
                return unpatchify_video(p, tok.patch, x.shape[2], x.shape[3], x.shape[1])
        else:
            def back(p, x=x, tok=tok):
                return unpatchify_audio(p, tok.patch, x.shape[2], x.shape[3])
        blank = target.new_full(target.shape, float(target.min()))
        entry = {"original": x, "masked": back(torch.where(mask, blank, target)), "reconstructed": m in out["pred"]}
        if m in out["pred"]:
            pred = out["pred"][m].float()
            if model.cfg.norm_targets:
                pred = _denormalise(pred, target)
            entry["reconstruction"] = back(torch.where(mask, pred, target))
        result[m] = entry
    return result


def _frames_image(video: torch.Tensor) -> np.ndarray:
    """[C, T, H, W] in [-1, 1] -> an [H, T*W, C] strip of frames in [0, 1]."""
    v = ((video.clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).cpu().numpy()
    return np.concatenate(list(v), axis=1)


def reconstruction_figure(model, batch: dict, seeds: list[int], out_prefix: str | Path,
                          title: str = "") -> list[Path]:
    """Masked input / reconstruction / original for each clip of ``batch``, video and audio."""
    rec = reconstruct(model, batch, seeds)
    modalities = list(rec)
    n = batch[modalities[0]].shape[0]
    cols = ("masked", "reconstruction", "original")
    fig, axes = plt.subplots(n * len(modalities), 3, figsize=(11, 1.6 * n * len(modalities) + 0.6), squeeze=False)
    for i in range(n):
        for j, m in enumerate(modalities):
            r = i * len(modalities) + j
            entry = rec[m]
            audio_range = (float(entry["original"][i].min()), float(entry["original"][i].max()))
            for c, col in enumerate(cols):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:   # titles and labels on every panel's row/column, drawn or not
                    ax.set_title(col)
                if c == 0:
                    ax.set_ylabel(f"clip {i}\n{m}", fontsize=8)
                if col not in entry:
                    ax.text(0.5, 0.5, "not reconstructed\n(inpainting target is the other modality)",
                            ha="center", va="center", fontsize=7, transform=ax.transAxes)
                    continue
                if m == "video":
                    ax.imshow(_frames_image(entry[col][i]), interpolation="nearest")
                else:  # [1, time, mel] -> mel on the y axis, low frequencies at the bottom
                    ax.imshow(entry[col][i, 0].T.cpu().numpy(), origin="lower", aspect="auto",
                              cmap="magma", vmin=audio_range[0], vmax=audio_range[1])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out_prefix)


def load_model(settings: dict, model_path: str | Path):
    """An ``AVMAE`` of the pretraining ``settings`` with the weights of ``model.pt``."""
    from avmae.models.avmae import AVMAE, ModelConfig

    model = AVMAE(ModelConfig.from_dict(settings["model"]))
    state = torch.load(model_path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{model_path}: does not match the run's model settings "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model


def test_batch(features_dir: str | Path, stage: dict, clips: int, seed: int) -> dict:
    """The first ``clips`` test clips, one centred view each, at the pretraining input size."""
    from avmae.data.dataset import AVClipDataset
    from avmae.data.frames import collate, finish_batch

    inp = stage["input"]
    data = AVClipDataset(features_dir, "test", inp["video_frames"], inp["video_stride"], inp["crop"],
                         inp["audio_frames"], train=False, num_clips=1, seed=seed, audio=inp)
    batch = finish_batch(collate([data[i] for i in range(min(clips, len(data)))]), "cpu")
    return {k: batch[k] for k in ("audio", "video")}


# ----------------------------------------------------------------------------- curves
def _curve(path: str | Path) -> list[float]:
    path = Path(path)
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read metrics ({e})") from e
    if not isinstance(metrics, dict) or not metrics.get("loss_curve"):
        raise KeyError(f"{path}: metrics have no 'loss_curve'")
    return [float(v) for v in metrics["loss_curve"]]


def loss_curves_figure(groups: dict[str, dict[str, str | Path]], out_prefix: str | Path, title: str = "",
                       ylabel: str = "training loss") -> list[Path]:
    """One panel per group (title -> {line label -> metrics.json}), loss against epoch."""
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    for ax, (group, lines) in zip(axes[0], groups.items()):
        for label, path in lines.items():
            curve = _curve(path)
            ax.plot(range(1, len(curve) + 1), curve, marker="." if len(curve) < 30 else None, label=label)
        ax.set_title(group)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out_prefix)


def epochs_figure(table_csv: str | Path, out_prefix: str | Path, epoch_scale: float = 1.0) -> list[Path]:
    """Table 5 (rows: finetuning dataset; columns ``{epochs} (ours|paper)``) as a plot."""
    df = pd.read_csv(table_csv)
    epochs = sorted({int(c.split(" ")[0]) for c in df.columns if c.endswith("(ours)")})
    if not epochs:
        raise ValueError(f"{table_csv}: no '<epochs> (ours)' columns; is this Table 5?")
    label_col = df.columns[0]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, row in df.iterrows():
        colour = f"C{i}"
        ax.plot(epochs, [row[f"{e} (ours)"] for e in epochs], marker="o", color=colour,
                label=f"{row[label_col]} (ours)")
        ax.plot(epochs, [row[f"{e} (paper)"] for e in epochs], marker="s", ls="--", color=colour,
                label=f"{row[label_col]} (paper)")
    note = "" if epoch_scale == 1 else f" (ours trained x{epoch_scale:g})"
    ax.set_xlabel(f"pretraining epochs, paper's{note}")
    ax.set_ylabel("audiovisual accuracy (%)")
    ax.set_xticks(epochs)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Table 5: accuracy against pretraining epochs")
    fig.tight_layout()
    return save(fig, out_prefix)
