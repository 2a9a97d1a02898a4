"""Stochastic depth and initialisers as the official modules compute them.

Sources of truth (Scenic): ``vivit/model.py`` EncoderBlock (a branch times a per-sample
Bernoulli keep mask, no 1/(1-p); attention and MLP branches drawn independently; the
rate linear in the layer), Flax's initialisers (``xavier_uniform`` bound sqrt(6 / (fan_in
+ fan_out)) over each q/k/v projection's own (D, D); ``lecun_normal``: a normal truncated
at 2 std with variance 1 / fan_in; MLP bias ``normal(1e-6)``).
"""

import math

import torch

from avmae.models.avmae import AVMAE, ModelConfig
from avmae.models.vit import Block

TINY = {"encoder": {"width": 64, "depth": 2, "heads": 4, "mlp_dim": 128},
        "decoder": {"width": 32, "depth": 1, "heads": 2, "mlp_dim": 64},
        "encoder_strategy": "separate", "decoder_strategy": "shared", "video_patch": [2, 8, 8],
        "audio_patch": [16, 16]}


def test_a_dropped_branch_is_zero_and_a_kept_one_is_not_rescaled():
    torch.manual_seed(0)
    block = Block(16, 2, 32, drop_path=0.5).train()
    x = torch.randn(4000, 3, 16)
    attn = block.attn(block.norm1(x))
    with torch.no_grad():
        torch.manual_seed(1)
        y = block._residual(x, attn)
    kept = torch.isclose(y, x + attn, atol=1e-6).all(dim=(1, 2))
    dropped = torch.isclose(y, x, atol=1e-6).all(dim=(1, 2))
    assert (kept | dropped).all() and not (kept & dropped).any()   # x + branch or x, nothing between
    assert abs(kept.float().mean().item() - 0.5) < 0.03             # Bernoulli(0.5) per sample
    block.eval()
    assert torch.equal(block._residual(x, attn), x + attn)          # no scaling at test time either


def test_official_initialisers():
    torch.manual_seed(0)
    cfg = ModelConfig.from_dict(TINY)
    model = AVMAE(cfg)
    d = 64
    qkv = model.encoder.split["audio"].blocks[0].attn.qkv
    bound = math.sqrt(6 / (d + d))   # each projection over its own (D, D); over (3D, D) it would be sqrt(6 / 4D)
    for w in qkv.weight.detach().chunk(3):
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.05 * bound / math.sqrt(3)   # uniform's std
    assert (qkv.bias == 0).all()
    mlp = model.encoder.split["audio"].blocks[0].mlp
    assert 0 < mlp[0].bias.abs().max() < 1e-5 and 0 < mlp[2].bias.abs().max() < 1e-5   # normal(1e-6)
    conv = model.tokenizers["audio"].proj.weight.detach()   # fan_in 1 x 16 x 16
    std = math.sqrt(1 / 256)
    assert conv.abs().max() <= 2 * std / 0.87962566103423978 + 1e-7   # truncated at 2 std
    assert abs(conv.std().item() - std) < 0.05 * std                    # variance 1 / fan_in
    assert (model.tokenizers["audio"].proj.bias == 0).all()
    assert all((model.mask_token[m] == 0).all() and (model.head[m].weight == 0).all() for m in ("audio", "video"))
