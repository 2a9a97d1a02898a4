"""Loading for training: the feature dataset, frame decoding, augmentation, label spaces."""
