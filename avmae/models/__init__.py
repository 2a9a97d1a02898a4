"""Models: ViT blocks, tokenizers, masking, fusion strategies, AV-MAE and classifiers."""
