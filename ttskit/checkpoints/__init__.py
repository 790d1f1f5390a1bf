"""The checkpoint layer: reading, writing and finding checkpoints, and rebuilding any model from
one (ttskit's own formats and foreign ones such as jik876/hifi-gan). Below `train/`,
`synthesis/` and `align/`, above `models/`: inference never imports training code."""

from ttskit.checkpoints.store import (
                                      CheckpointError,
                                      checkpoint_step,
                                      latest_checkpoint,
                                      load_checkpoint,
                                      prune_checkpoints,
                                      save_checkpoint,
)

__all__ = ["CheckpointError", "checkpoint_step", "latest_checkpoint", "load_checkpoint", "prune_checkpoints",
           "save_checkpoint"]
