"""Training: the Trainer, its events and callbacks, checkpoints and evaluation."""
