"""The `train` keys every ttskit training run shares; each trainer's config adds its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ttskit.config import TrainingBasics, require
from ttskit.runtime import Precision


@dataclass(frozen=True)
class BaseTrainConfig(TrainingBasics):
    # What a resumed run cannot change: the saved optimizer state, schedule or data order depend on it.
    pinned_on_resume: ClassVar[tuple[str, ...]] = ("seed", "betas", "weight_decay")

    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0  # max gradient norm; None leaves gradients as they are
    # auto: bf16 autocast on CUDA, fp32 on CPU; fp16 uses a GradScaler.
    precision: Precision = "auto"
    # fp16 only: the GradScaler's first loss scale. It halves on every overflowing step (logged,
    # skipped, not counted by the NaN guard) and doubles after 2000 clean ones.
    fp16_initial_scale: float = 65536.0
    log_every: int = 50
    val_every: int = 1000
    keep_last: int = 3  # step checkpoints kept
    num_workers: int = 2  # DataLoader worker processes
    # Non-finite losses or gradients in a row before the last good checkpoint is restored.
    nan_patience: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        require(all(0 <= beta < 1 for beta in self.betas), "train.betas", "must both be in [0, 1)")
        require(self.weight_decay >= 0, "train.weight_decay", "must be >= 0")
        require(self.grad_clip is None or self.grad_clip > 0, "train.grad_clip", "must be positive, or null for none")
        require(self.fp16_initial_scale >= 1, "train.fp16_initial_scale", "must be at least 1")
        require(self.log_every >= 1, "train.log_every", "must be at least 1")
        require(self.val_every >= 1, "train.val_every", "must be at least 1")
        require(self.keep_last >= 1, "train.keep_last", "must be at least 1")
        require(self.num_workers >= 0, "train.num_workers", "must be >= 0")
        require(self.nan_patience >= 1, "train.nan_patience", "must be at least 1")
