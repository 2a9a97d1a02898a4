"""Pre-norm ViT blocks with fused attention, and fixed 1D sinusoidal positions."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn


@functools.lru_cache(maxsize=64)
def sincos_1d(n: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed 1D sinusoidal position embeddings, shape [n, dim], as the official table
    (Scenic ``attention_layers.sinusoidal_init``): channel ``2i`` holds ``sin(p w_i)``,
    ``2i + 1`` holds ``cos(p w_i)``, ``w_i = 10000^(-2i/dim)``, computed in float64 (as
    its numpy table) and then cast.

    Cached per (n, dim, device, dtype): every forward pass reuses the same table.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embedding needs an even width, got {dim}")
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
    angle = torch.arange(n, dtype=torch.float64)[:, None] * freq[None, :]
    table = torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(n, dim)
    return table.to(device=device, dtype=dtype)


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
    """Transformer encoder block: x + Attn(LN(x)), then x + MLP(LN(x)), with stochastic depth.

    The MLP's GELU is the tanh approximation, Flax's ``nn.gelu`` default, which the
    official ViViT and MBT blocks use.
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(approximate="tanh"), nn.Linear(mlp_dim, dim))
        self.drop_path = drop_path

    def _residual(self, x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """Stochastic depth as Scenic's ``StochasticDepth``: in training, a sample's branch
        is dropped with probability ``drop_path`` and kept as it is (no 1/(1-p) rescale)."""
        if not self.training or self.drop_path == 0.0:
            return x + branch
        keep = torch.empty(x.shape[0], 1, 1, device=x.device, dtype=x.dtype).bernoulli_(1.0 - self.drop_path)
        return x + branch * keep

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


def lecun_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Flax's default kernel init: a normal truncated at two standard deviations, scaled so
    the variance is 1 / fan_in (fan_in: input channels x kernel volume)."""
    fan_in = weight[0].numel()
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978   # the std of N(0, 1) truncated to [-2, 2]
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def init_weights(module: nn.Module) -> None:
    """The official initialisers (Scenic ViViT / MBT blocks, AV-MAE projections):

    - attention: xavier-uniform per projection, each of q, k, v over its own (D, D), zero biases;
    - MLP: xavier-uniform kernels, biases normal with std 1e-6;
    - other linears (decoder projections, heads before their zeroing): xavier-uniform, zero bias;
    - patch embeddings (convolutions): lecun-normal (Flax's default), zero bias;
    - LayerNorms: unit scale, zero bias.
    """
    blocks = [b for b in module.modules() if isinstance(b, Block)]
    mlp = {id(m) for b in blocks for m in b.mlp if isinstance(m, nn.Linear)}
    qkv = {id(b.attn.qkv) for b in blocks}
    for m in module.modules():
        if id(m) in qkv:
            for w in m.weight.chunk(3, dim=0):
                nn.init.xavier_uniform_(w)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if id(m) in mlp:
                nn.init.normal_(m.bias, std=1e-6)
            elif m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.Conv3d)):
            lecun_normal_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
