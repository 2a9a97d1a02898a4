"""The authors' Model Zoo: Flax checkpoints read without JAX, mapped onto our modules."""
