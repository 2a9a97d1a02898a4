"""The modalities and pretraining objectives (paper Sec. 3.4), without importing torch:
the workflow's run names (``avmae.config``) use them when Snakemake parses the rules."""

MODALITIES = ("audio", "video")
# the modality names of run names and finetuning (av, audio, video) -> their modalities
MODALITY_SETS = {"av": MODALITIES, "audio": ("audio",), "video": ("video",)}
# objective -> (modalities reconstructed, modalities whose encoded tokens enter the decoder)
OBJECTIVES = {
    "joint": (MODALITIES, MODALITIES),
    "inpaint_video": (("video",), ("audio",)),
    "inpaint_audio": (("audio",), ("video",)),
    "inpaint_both": (MODALITIES, MODALITIES),
}
