"""Training: DeepSpeed engine set-up, pretraining, finetuning, evaluation, metrics."""
