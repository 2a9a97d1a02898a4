"""Numbers published in the paper, quoted for comparison only (never used as our results).

Source: Georgescu et al., "Audiovisual Masked Autoencoders", ICCV 2023.
"""

# Table 1: ViT-B, 400 epochs of pretraining on VGGSound, top-1 accuracy after
# finetuning on VGGSound. Key: (encoder, decoder) -> (audio, video, audiovisual).
TABLE1 = {
    ("early", "shared"): (55.5, 46.5, 62.2),
    ("shared", "shared"): (55.5, 44.7, 62.5),
    ("separate", "shared"): (55.4, 48.9, 63.0),
    ("mid", "shared"): (55.8, 48.5, 63.5),
    ("mid", "early"): (55.5, 48.5, 63.3),
    ("mid", "separate"): (55.5, 47.4, 63.4),
}
