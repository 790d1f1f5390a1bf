"""Training: loops, distributed set-up, mixed precision, checkpoints, logging."""
