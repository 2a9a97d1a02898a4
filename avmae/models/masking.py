"""Independent random token masking per sample (MAE-style).

Masks come from uniform noise per token (the lowest scores stay visible). The noise is
drawn from a batch generator, or per sample from a seed of its own (``sample_noise``):
then a clip's mask depends only on its seed, not on which process or batch it lands
in, so a run's masks are the same on any number of GPUs.
"""

from __future__ import annotations

import numpy as np
import torch


def num_visible(n: int, ratio: float) -> int:
    """Visible tokens after masking ``ratio`` of ``n`` (at least one): the official model
    masks ``int(ratio * n)`` tokens (ViT-B video, 1568 at 0.9: 157 stay visible)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    return max(1, n - int(ratio * n))


def sample_seeds(seed: int, epoch: int, clips: torch.Tensor) -> list[int]:
    """One mask seed per clip of a training batch, from (run seed, epoch, clip index)."""
    return [int(np.random.SeedSequence([seed, epoch, int(c)]).generate_state(1)[0]) for c in clips.tolist()]


def sample_noise(seeds: list[int], sizes: dict[str, int], device=None) -> dict[str, torch.Tensor]:
    """Masking noise [B, n] per modality, row ``b`` drawn from ``seeds[b]`` alone (in ``sizes`` order)."""
    rows = {m: [] for m in sizes}
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        for m, n in sizes.items():
            rows[m].append(torch.rand(n, generator=g))
    return {m: torch.stack(r).to(device) for m, r in rows.items()}


def random_masking(batch: int, n: int, ratio: float, device=None, generator=None, noise=None):
    """Draw a random subset of visible tokens per sample (from ``noise`` [B, n] when given).

    Returns ``keep`` ([B, n_visible] token indices, sorted) and ``mask``
    ([B, n] bool, True where the token is hidden from the encoder).
    """
    if noise is None:
        noise = torch.rand(batch, n, device=device, generator=generator)
    keep = noise.argsort(dim=1)[:, : num_visible(n, ratio)].sort(dim=1).values
    mask = torch.ones(batch, n, dtype=torch.bool, device=device)
    mask.scatter_(1, keep, False)
    return keep, mask


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[b, idx[b]] for a [B, N, D] tensor and [B, K] indices."""
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def hidden_indices(mask: torch.Tensor, count: int) -> torch.Tensor:
    """Ascending indices of the ``count`` hidden tokens per row of a [B, n] mask (True = hidden)."""
    return mask.to(torch.uint8).argsort(dim=1, descending=True, stable=True)[:, :count]
