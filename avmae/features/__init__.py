"""Feature extraction: clips to log-mel spectrograms and stored frames, sharded, then joined."""
