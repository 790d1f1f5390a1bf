"""What `ttskit train-acoustic` is configured by: the model and the training run (audio and text
come from the WORK folder, which was made with them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ttskit.config import require
from ttskit.models.fastspeech2 import PRESETS, FastSpeech2Config

Precision = Literal["auto", "bf16", "fp16", "fp32"]


@dataclass(frozen=True)
class TrainConfig:
    # Batches hold utterances of similar length up to this many (padded) mel frames.
    max_frames_per_batch: int = 12000
    learning_rate: float = 1e-3  # peak of the warm-up schedule
    warmup_steps: int = 4000  # Noam: linear warm-up, then decay with 1/sqrt(step)
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # auto: bf16 autocast on CUDA, fp32 on CPU; fp16 uses a GradScaler.
    precision: Precision = "auto"
    # fp16 only: the GradScaler's first loss scale. It halves on every overflowing step (logged,
    # skipped, not counted by the NaN guard) and doubles after 2000 clean ones.
    fp16_initial_scale: float = 65536.0
    log_every: int = 50
    val_every: int = 1000
    checkpoint_every: int = 1000
    keep_last: int = 3
    num_workers: int = 2
    seed: int = 1234
    # Non-finite losses or gradients in a row before the last good checkpoint is restored.
    nan_patience: int = 10

    def __post_init__(self) -> None:
        require(self.max_frames_per_batch > 0, "train.max_frames_per_batch", "must be positive")
        require(self.learning_rate > 0, "train.learning_rate", "must be positive")
        require(self.warmup_steps > 0, "train.warmup_steps", "must be positive")
        require(self.keep_last >= 1, "train.keep_last", "must be at least 1")
        require(self.fp16_initial_scale >= 1, "train.fp16_initial_scale", "must be at least 1")


@dataclass(frozen=True)
class AcousticRunConfig:
    model: FastSpeech2Config = field(default_factory=FastSpeech2Config)
    train: TrainConfig = field(default_factory=TrainConfig)


RUN_PRESETS: dict[str, AcousticRunConfig] = {
    "base": AcousticRunConfig(PRESETS["base"], TrainConfig()),
    # Minutes on 2 CPU cores: short warm-up, small batches, frequent logs and checkpoints.
    "small": AcousticRunConfig(PRESETS["small"], TrainConfig(max_frames_per_batch=4000, warmup_steps=300,
                                                             learning_rate=2e-3, log_every=10, val_every=200,
                                                             checkpoint_every=200, num_workers=0)),
}
