"""Numbers published in the paper, quoted for comparison only (never used as our results).

Source: Georgescu et al., "Audiovisual Masked Autoencoders", ICCV 2023, Tables 1-7 and
the "Additional baseline" paragraph of Sec. 4.2. ``None`` is a cell the paper leaves
empty ("-"). Accuracies are top-1 %, AudioSet numbers mAP %, Epic Kitchens numbers
top-1 % (action = verb and noun both right). ``tests/test_report.py`` checks every
number here against the paper text.
"""

# Table 1: ViT-B, 400 epochs of pretraining on VGGSound, finetuned on VGGSound.
# (encoder, decoder) -> (audio-only, video-only, audiovisual).
TABLE1 = {
    ("early", "shared"): (55.5, 46.5, 62.2),
    ("shared", "shared"): (55.5, 44.7, 62.5),
    ("separate", "shared"): (55.4, 48.9, 63.0),
    ("mid", "shared"): (55.8, 48.5, 63.5),
    ("mid", "early"): (55.5, 48.5, 63.3),
    ("mid", "separate"): (55.5, 47.4, 63.4),
}

# Table 2: pretraining objectives; ViT-B, 400 epochs on VGGSound, early-fusion encoder,
# shared decoder. objective -> (audio-only, video-only, audiovisual).
TABLE2 = {
    "joint": (55.5, 46.5, 62.2),
    "inpaint_video": (51.5, 39.9, 58.4),   # "Inpainting (video from audio)"
    "inpaint_audio": (52.5, 38.1, 58.2),   # "Inpainting (audio from video)"
    "inpaint_both": (54.1, 38.6, 58.4),
}

# Table 3: unimodal vs audiovisual pretraining; ViT-B, 400 epochs on VGGSound.
# pretraining modalities -> (audio-only, video-only, audiovisual).
TABLE3 = {
    "audio": (55.7, 42.1, 58.3),   # AudioMAE
    "video": (52.8, 49.3, 62.1),   # VideoMAE
    "av": (55.8, 48.5, 63.5),      # Audiovisual MAE
}

# Sec. 4.2, "Additional baseline": two separate MAEs (audio-only, video-only) pretrained
# for 800 epochs on VGGSound initialise MBT; audiovisual top-1 on VGGSound, against the
# Audiovisual MAE (ViT-B, 800 epochs; the same 64.2 as Table 6's Base column).
SEC42_BASELINE = {"two_maes": 63.3, "av": 64.2}

# Table 4: transfer, ViT-L, equal iterations (800 epochs VGGSound, 80 epochs AudioSet);
# audiovisual finetuning. (pretraining dataset, finetuning dataset) -> VGGSound top-1,
# AudioSet mAP, Epic Kitchens action top-1.
TABLE4 = {
    ("vggsound", "vggsound"): 65.0,
    ("vggsound", "audioset"): 51.2,
    ("vggsound", "epic"): 45.5,
    ("audioset", "vggsound"): 64.7,
    ("audioset", "audioset"): 51.3,
    ("audioset", "epic"): 43.5,
}

# Table 5: pretraining epochs, ViT-L pretrained on VGGSound, audiovisual finetuning.
# finetuning dataset -> {epochs: VGGSound top-1 / Epic Kitchens action top-1}.
TABLE5 = {
    "vggsound": {200: 63.2, 400: 63.9, 800: 65.0, 1200: 64.9},
    "epic": {200: 41.8, 400: 42.5, 800: 45.5, 1200: 46.0},
}

# Table 6: backbone size, audiovisual top-1 on VGGSound. The supervised ImageNet-21K row
# is itself quoted by the paper from MBT [52]. initialisation -> {size: top-1}.
TABLE6 = {
    "in21k": {"base": 64.1, "large": 61.4},   # ImageNet-21K [52] (Supervised), quoted
    "avmae": {"base": 64.2, "large": 65.0},   # Audiovisual MAE (Self-supervised)
}

# Table 7: state of the art. Rows are (method, pretraining, *values); the last row,
# "Ours", is the paper's own result, every other row the paper quotes from its reference.
# (a) VGGSound, top-1: A, V, AV.
TABLE7A = [
    ("Kazakos et al. [45]", "Sup. Im1K", 52.5, None, None),
    ("PlayItBack [66]", "Sup. Im21K", 53.7, None, None),
    ("PolyViT [48]", "Sup. Im21K, AS", 55.1, None, None),
    ("MBT [52]", "Sup. Im21K", 52.3, 51.2, 64.1),
    ("Ours", "SSL VGGSound", 57.2, 50.3, 65.0),
]
# (b) AudioSet, mAP: (method, pretraining, training set, A, V, AV).
TABLE7B = [
    ("GBlend [75]", "Im1K", "AS-2M", 32.4, 18.8, 41.8),
    ("Perceiver [43]", "None", "AS-2M", 38.4, 25.8, 44.2),
    ("PerceiverIO [42]", "None", "AS-2M", None, None, 44.9),
    ("Fayek et al. [25]", "Im1K", "AS-2M", 38.4, 25.7, 46.2),
    ("MBT [52]", "Im21K", "AS-500K", 41.5, 31.3, 49.6),
    ("Ours", "SSL AS-2M", "AS-500K", 46.6, 31.1, 51.8),
]
# (c) Epic Kitchens, top-1: audio (verb, noun, action), video (...), audiovisual (...).
TABLE7C = [
    ("Damen et al. [19]", "Sup. Im1K", 42.6, 22.4, 14.5, None, None, None, None, None, None),
    ("Kazakos et al. [45]", "Sup. VGGSound", 46.1, 23.0, 15.2, None, None, None, None, None, None),
    ("PlayItBack [66]", "Sup. Im21K", 47.0, 23.1, 15.9, None, None, None, None, None, None),
    ("TSM [49]", "Sup. Im1K + K400", None, None, None, 67.9, 49.0, 38.3, None, None, None),
    ("ViViT-L Fact. Encoder [6]", "Sup. Im21K + K400", None, None, None, 66.4, 56.8, 44.0, None, None, None),
    ("MotionFormer [57]", "Sup. Im21K + K400", None, None, None, 67.0, 58.5, 44.5, None, None, None),
    ("MTV [77]", "Sup. Im21K + K400", None, None, None, 67.8, 60.5, 46.7, None, None, None),
    ("MBT [52]", "Sup. Im21K", 44.3, 22.4, 13.0, 62.0, 56.4, 40.7, 64.8, 58.0, 43.4),
    ("Ours", "SSL VGGSound", 52.7, 27.2, 19.7, 70.8, 55.9, 45.8, 71.4, 56.4, 46.0),
]
