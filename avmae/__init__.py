"""avmae: reproducibility suite for Audiovisual Masked Autoencoders (ICCV 2023)."""

__version__ = "0.1.0"
