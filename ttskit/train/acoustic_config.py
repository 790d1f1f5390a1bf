"""What `ttskit train-acoustic` is configured by: the model and the training run (audio and text
come from the WORK folder, which was made with them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ttskit.config import require
from ttskit.models.fastspeech2 import FASTSPEECH_PRESETS, PRESETS, FastSpeech2Config
from ttskit.skeleton.config import BaseTrainConfig


@dataclass(frozen=True)
class TrainConfig(BaseTrainConfig):
    pinned_on_resume: ClassVar[tuple[str, ...]] = (*BaseTrainConfig.pinned_on_resume, "warmup_steps",
                                                   "max_frames_per_batch")

    # Batches hold utterances of similar length up to this many (padded) mel frames.
    max_frames_per_batch: int = 12000
    learning_rate: float = 1e-3  # peak of the warm-up schedule
    warmup_steps: int = 4000  # Noam: linear warm-up, then decay with 1/sqrt(step)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.max_frames_per_batch > 0, "train.max_frames_per_batch", "must be positive")
        require(self.warmup_steps > 0, "train.warmup_steps", "must be positive")


@dataclass(frozen=True)
class AcousticRunConfig:
    model: FastSpeech2Config = field(default_factory=FastSpeech2Config)
    train: TrainConfig = field(default_factory=TrainConfig)


# Minutes on 2 CPU cores: short warm-up, small batches, frequent logs and checkpoints.
SMALL_TRAIN = TrainConfig(max_frames_per_batch=4000, warmup_steps=300, learning_rate=2e-3, log_every=10,
                          val_every=200, checkpoint_every=200, num_workers=0)

RUN_PRESETS: dict[str, AcousticRunConfig] = {
    "base": AcousticRunConfig(PRESETS["base"], TrainConfig()),
    "small": AcousticRunConfig(PRESETS["small"], SMALL_TRAIN),
}

# `train-acoustic --model NAME --preset PRESET`. A model is told apart in a run's config by its
# model section (FastSpeech: `variance_predictors: false`), so checkpoints need no other tag.
MODEL_PRESETS: dict[str, dict[str, AcousticRunConfig]] = {
    "fastspeech2": RUN_PRESETS,
    "fastspeech": {"base": AcousticRunConfig(FASTSPEECH_PRESETS["base"], TrainConfig()),
                   "small": AcousticRunConfig(FASTSPEECH_PRESETS["small"], SMALL_TRAIN)},
}
DEFAULT_MODEL = "fastspeech2"
