"""Exactness at paper size: token counts and parameter counts worked out by hand.

Models are built on the meta device (shapes only, no memory), so ViT-L is free.

Parameter count of one pre-norm block of width d and MLP width h:
    LN1 2d + qkv (3d*d + 3d) + proj (d*d + d) + LN2 2d + fc1 (d*h + h) + fc2 (h*d + d)
    = 4d^2 + 2dh + 9d + h
"""

import pytest
import torch

from avmae.models.avmae import AVMAE, ModelConfig
from avmae.models.masking import num_visible
from avmae.models.mbt import MBT
from avmae.models.tokenizers import AudioPatches, VideoTubelets

SIZES = {
    "base": dict(encoder=dict(width=768, depth=12, heads=12, mlp_dim=3072),
                 decoder=dict(width=384, depth=4, heads=6, mlp_dim=1536)),
    "large": dict(encoder=dict(width=1024, depth=24, heads=16, mlp_dim=4096),
                  decoder=dict(width=512, depth=4, heads=8, mlp_dim=2048)),
}

# 4d^2 + 2dh + 9d + h
BLOCK = {
    "base": 4 * 768**2 + 2 * 768 * 3072 + 9 * 768 + 3072,         # 7,087,872
    "large": 4 * 1024**2 + 2 * 1024 * 4096 + 9 * 1024 + 4096,     # 12,596,224
    "dec_base": 4 * 384**2 + 2 * 384 * 1536 + 9 * 384 + 1536,     # 1,774,464
    "dec_large": 4 * 512**2 + 2 * 512 * 2048 + 9 * 512 + 2048,    # 3,152,384
}


def paper(size: str, encoder="mid", decoder="shared", **kw) -> ModelConfig:
    return ModelConfig.from_dict({**SIZES[size], "encoder_strategy": encoder, "decoder_strategy": decoder,
                                  "video_patch": [2, 16, 16], "audio_patch": [16, 16], "joint_layers": 2, **kw})


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_avmae(cfg: ModelConfig) -> AVMAE:
    with torch.device("meta"):
        return AVMAE(cfg)


def test_one_block_has_the_published_vit_block_size():
    """avmae's transformer block against numbers that do not come from this file's formula.

    Source of truth: the published totals of timm's ``vit_base_patch16_224`` (86,567,656)
    and ``vit_large_patch16_224`` (304,326,632), 1000 classes, 197 tokens, minus the parts
    outside the blocks: patch embedding (3*16*16*d + d), class token (d), position
    embedding (197 d), final norm (2d), head (1000 d + 1000); what is left, split over
    12 (24) blocks, is 7,087,872 (12,596,224) per block."""
    from avmae.models.vit import Block

    def per_block(total, d, depth):
        rest = (3 * 16 * 16 * d + d) + d + 197 * d + 2 * d + (1000 * d + 1000)
        assert (total - rest) % depth == 0
        return (total - rest) // depth

    assert per_block(86_567_656, 768, 12) == 7_087_872
    assert per_block(304_326_632, 1024, 24) == 12_596_224
    with torch.device("meta"):
        assert count(Block(768, 12, 3072)) == 7_087_872
        assert count(Block(1024, 16, 4096)) == 12_596_224
        assert count(Block(384, 6, 1536)) == 1_774_464    # 4d^2 + 2dh + 9d + h at d=384, h=1536
        assert count(Block(512, 8, 2048)) == 3_152_384    # and at d=512, h=2048
    assert (BLOCK["base"], BLOCK["large"], BLOCK["dec_base"], BLOCK["dec_large"]) == \
        (7_087_872, 12_596_224, 1_774_464, 3_152_384)


def test_paper_token_counts():
    video, audio = VideoTubelets((2, 16, 16), 8), AudioPatches((16, 16), 8)
    with torch.device("meta"):
        assert video(torch.empty(1, 3, 16, 224, 224)).shape == (1, (16 // 2) * (224 // 16) ** 2, 8)   # 1568
        assert audio(torch.empty(1, 1, 800, 128)).shape == (1, (800 // 16) * (128 // 16), 8)        # 400
        assert audio(torch.empty(1, 1, 1000, 128)).shape == (1, 62 * 8, 8)   # VALID: 1000 // 16 = 62
    # The official random_masking hides int(ratio * n) tokens, written out by hand:
    # video int(0.9 * 1568) = 1411 hidden -> 157 visible; audio int(0.5 * 400) = 200 -> 200;
    # AudioSet audio int(0.7 * 496) = int(347.2) = 347 -> 149 visible.
    assert num_visible(1568, 0.9) == 157 and num_visible(400, 0.5) == 200 and num_visible(496, 0.7) == 149


def test_paper_size_forward_shapes_on_meta():
    model = meta_avmae(paper("large"))
    x = {"audio": torch.empty(2, 1, 800, 128, device="meta"), "video": torch.empty(2, 3, 16, 224, 224, device="meta")}
    _, out = model(x)
    assert out["pred"]["video"].shape == (2, 1568, 2 * 16 * 16 * 3)
    assert out["pred"]["audio"].shape == (2, 400, 16 * 16)


@pytest.mark.parametrize("size,d", [("base", 768), ("large", 1024)])
def test_patch_embedding_parameters(size, d):
    model = meta_avmae(paper(size))
    assert count(model.tokenizers["video"]) == (3 * 2 * 16 * 16) * d + d   # conv kernel + bias
    assert count(model.tokenizers["audio"]) == (1 * 16 * 16) * d + d


@pytest.mark.parametrize("size,d,depth", [("base", 768, 12), ("large", 1024, 24)])
def test_encoder_parameters(size, d, depth):
    block, norm = BLOCK[size], 2 * d
    expected = {
        "early": depth * block + norm,                                # one stack, one final norm
        "shared": depth * block + norm,                               # tied weights: the same
        "separate": 2 * (depth * block + norm),                       # two stacks, two norms
        "mid": 2 * ((depth - 2) * block + norm) + 2 * block + norm,   # L-S + norm per modality, S=2 joint
    }
    for strategy, n in expected.items():
        decoder = "early" if strategy == "separate" else "shared"
        assert count(meta_avmae(paper(size, strategy, decoder)).encoder) == n, strategy


@pytest.mark.parametrize("size,d,dd", [("base", 768, 384), ("large", 1024, 512)])
def test_decoder_parameters(size, d, dd):
    block, norm = BLOCK["dec_" + size], 2 * dd
    model = meta_avmae(paper(size, "mid", "shared"))
    assert count(model.decoder) == 4 * block + norm
    assert count(meta_avmae(paper(size, "mid", "separate")).decoder) == 2 * (4 * block + norm)
    assert count(model.decoder_embed) == 2 * (d * dd + dd)
    assert count(model.mask_token) == 2 * dd
    assert count(model.head) == (dd * 1536 + 1536) + (dd * 256 + 256)  # zero-initialised patch regressors
    parts = (model.tokenizers, model.encoder, model.decoder_embed, model.mask_token, model.decoder, model.head)
    assert count(model) == sum(count(p) for p in parts)


def test_mbt_parameters_at_vit_large():
    d, classes = 1024, 309
    with torch.device("meta"):
        mbt = MBT(paper("large"), classes, ["audio", "video"], fusion_layer=16, bottlenecks=4)
    streams = 2 * (24 * BLOCK["large"] + 2 * d)
    tokenizers = (1536 * d + d) + (256 * d + d)
    heads = d * classes + classes                  # one linear classifier for both streams
    assert count(mbt) == streams + tokenizers + heads + 4 * d
