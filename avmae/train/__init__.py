"""Training: DeepSpeed engine set-up, pretraining, finetuning, metrics."""
