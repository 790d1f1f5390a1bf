"""What `ttskit train-acoustic` is configured by: the model and the training run (audio and text
come from the WORK folder, which was made with them)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from ttskit.checkpoints.acoustic import model_config_class
from ttskit.config import require
from ttskit.models.fastspeech2 import FASTSPEECH_PRESETS, PRESETS, FastSpeech2Config
from ttskit.models.tacotron2 import TACOTRON2_PRESETS, Tacotron2Config
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

@dataclass(frozen=True)
class Tacotron2RunConfig:
    model: Tacotron2Config = field(default_factory=Tacotron2Config)
    train: TrainConfig = field(default_factory=TrainConfig)


AnyAcousticRunConfig = AcousticRunConfig | Tacotron2RunConfig

# NVIDIA/tacotron2's optimiser settings (Adam 1e-3, weight decay 1e-6, gradient norm clipped at 1),
# with the trainer's warm-up in front.
TACOTRON2_TRAIN = TrainConfig(learning_rate=1e-3, warmup_steps=1000, weight_decay=1e-6, grad_clip=1.0)

# `train-acoustic --model NAME --preset PRESET`. FastSpeech is told apart from FastSpeech2 by its
# model section (`variance_predictors: false`), Tacotron2 by its own (`model_family`).
MODEL_PRESETS: dict[str, dict[str, AnyAcousticRunConfig]] = {
    "fastspeech2": dict(RUN_PRESETS),
    "fastspeech": {"base": AcousticRunConfig(FASTSPEECH_PRESETS["base"], TrainConfig()),
                   "small": AcousticRunConfig(FASTSPEECH_PRESETS["small"], SMALL_TRAIN)},
    "tacotron2": {"base": Tacotron2RunConfig(TACOTRON2_PRESETS["base"], TACOTRON2_TRAIN),
                  "small": Tacotron2RunConfig(TACOTRON2_PRESETS["small"],
                                              replace(SMALL_TRAIN, learning_rate=1e-3, weight_decay=1e-6,
                                                      grad_clip=1.0))},
}
DEFAULT_MODEL = "fastspeech2"


def run_config_class(family: str) -> type:
    return Tacotron2RunConfig if family == "tacotron2" else AcousticRunConfig


def model_family(model_section: FastSpeech2Config | Tacotron2Config | dict) -> str:
    """tacotron2 or fastspeech2 (FastSpeech included) from a run config's model section."""
    if isinstance(model_section, dict):
        return "tacotron2" if model_config_class(model_section) is Tacotron2Config else "fastspeech2"
    return "tacotron2" if isinstance(model_section, Tacotron2Config) else "fastspeech2"
