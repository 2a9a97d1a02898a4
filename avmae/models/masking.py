"""Independent random token masking per sample (MAE-style)."""

from __future__ import annotations

import torch


def num_visible(n: int, ratio: float) -> int:
    """Visible tokens after masking ``ratio`` of ``n`` (at least one)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    return max(1, int(n * (1.0 - ratio) + 1e-6))


def random_masking(batch: int, n: int, ratio: float, device=None, generator=None):
    """Draw a random subset of visible tokens per sample.

    Returns ``keep`` ([B, n_visible] token indices, sorted) and ``mask``
    ([B, n] bool, True where the token is hidden from the encoder).
    """
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
