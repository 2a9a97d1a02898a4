"""Tokenizers: video tubelets (3D conv) and spectrogram patches (2D conv).

Token order is row-major over the patch grid ((t, h, w) for video, (time, mel) for
audio); ``patchify`` returns the reconstruction targets in exactly that order.
"""

from __future__ import annotations

import torch
from torch import nn


class VideoTubelets(nn.Module):
    """[B, 3, T, H, W] in [-1, 1] -> [B, T/pt * H/ph * W/pw, dim]."""

    def __init__(self, patch: tuple[int, int, int], dim: int, channels: int = 3):
        super().__init__()
        self.patch = tuple(patch)
        self.proj = nn.Conv3d(channels, dim, kernel_size=self.patch, stride=self.patch)
        self.patch_dim = channels * self.patch[0] * self.patch[1] * self.patch[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T, H, W] -> [B, N, pt*ph*pw*C], the raw-pixel targets."""
        b, c, t, h, w = x.shape
        pt, ph, pw = self.patch
        x = x.reshape(b, c, t // pt, pt, h // ph, ph, w // pw, pw)
        return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, -1, pt * ph * pw * c)


class AudioPatches(nn.Module):
    """[B, 1, time, mel] log-mel -> [B, time/pt * mel/pf, dim]."""

    def __init__(self, patch: tuple[int, int], dim: int):
        super().__init__()
        self.patch = tuple(patch)
        self.proj = nn.Conv2d(1, dim, kernel_size=self.patch, stride=self.patch)
        self.patch_dim = self.patch[0] * self.patch[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, T, F] -> [B, N, pt*pf], the raw log-mel targets."""
        b, _, t, f = x.shape
        pt, pf = self.patch
        t, f = t // pt * pt, f // pf * pf   # VALID patches, as the conv: 1000 frames -> 62 x 16
        x = x[:, :, :t, :f].reshape(b, t // pt, pt, f // pf, pf)
        return x.permute(0, 1, 3, 2, 4).reshape(b, -1, pt * pf)
