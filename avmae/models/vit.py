"""Pre-norm ViT blocks with fused attention, and fixed 1D sinusoidal positions."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn


@functools.lru_cache(maxsize=64)
def sincos_1d(n: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed 1D sinusoidal position embeddings, shape [n, dim] (sin half, cos half).

    Cached per (n, dim, device, dtype): every forward pass reuses the same table.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embedding needs an even width, got {dim}")
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / half)
    angle = torch.arange(n, device=device, dtype=torch.float32)[:, None] * freq[None, :]
    return torch.cat([angle.sin(), angle.cos()], dim=1).to(dtype)


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Transformer encoder block: x + Attn(LN(x)), then x + MLP(LN(x)), with stochastic depth."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        self.drop_path = drop_path

    def _residual(self, x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_path == 0.0:
            return x + branch
        keep = 1.0 - self.drop_path
        scale = torch.empty(x.shape[0], 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep) / keep
        return x + branch * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._residual(x, self.attn(self.norm1(x)))
        return self._residual(x, self.mlp(self.norm2(x)))


class Stack(nn.Module):
    """A sequence of blocks; ``drop_paths`` gives each block its stochastic-depth rate."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, drop_paths: list[float]):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_dim, p) for p in drop_paths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def init_weights(module: nn.Module) -> None:
    """MAE-style init: xavier-uniform linears, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def compile_blocks(module: nn.Module, **options) -> nn.Module:
    """Compile every transformer ``Block`` of ``module`` in place (regional ``torch.compile``).

    Parameter names, state dicts and the surrounding Python (masking, fusion) stay as
    they are, so checkpoints and DeepSpeed wrapping are unaffected. ``options`` go to
    ``torch.compile`` (e.g. ``backend``, ``mode``, ``dynamic``).
    """
    for m in module.modules():
        if isinstance(m, Block):
            m.compile(**options)
    return module
