"""What `ttskit train-vocoder` is configured by: the generator architecture and the GAN training run
(the mel settings come from the WORK folder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ttskit.config import require
from ttskit.models.hifigan import PRESETS, HiFiGANConfig
from ttskit.skeleton.config import BaseTrainConfig


@dataclass(frozen=True)
class VocoderTrainConfig(BaseTrainConfig):
    pinned_on_resume: ClassVar[tuple[str, ...]] = (*BaseTrainConfig.pinned_on_resume, "lr_decay", "batch_size",
                                                   "segment_samples")

    # The global batch: with --gpus N each rank takes batch_size / N segments.
    batch_size: int = 16
    segment_samples: int = 8192
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    lr_decay: float = 0.999  # per epoch, both optimisers
    weight_decay: float = 0.01  # AdamW's; the paper's code used this default too
    grad_clip: float | None = None
    # Steps trained on the mel loss alone before the discriminators join (0: adversarial from the
    # start, as the paper). A warm-up gives an intelligible generator far sooner where a GAN step
    # is expensive (a CPU, where the discriminators take ~90% of a step).
    discriminator_start_step: int = 0
    mel_loss_weight: float = 45.0
    feature_loss_weight: float = 2.0
    # The mel loss looks at the whole band (None: Nyquist), as the paper does, even when the
    # input mels stop at audio.fmax.
    loss_fmax: float | None = None
    log_every: int = 100
    val_utterances: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.batch_size > 0, "train.batch_size", "must be positive")
        require(self.segment_samples > 0, "train.segment_samples", "must be positive")
        require(0 < self.lr_decay <= 1, "train.lr_decay", "must be in (0, 1]")
        require(self.discriminator_start_step >= 0, "train.discriminator_start_step", "must be >= 0")


@dataclass(frozen=True)
class VocoderRunConfig:
    model: HiFiGANConfig = field(default_factory=HiFiGANConfig)
    train: VocoderTrainConfig = field(default_factory=VocoderTrainConfig)


VOCODER_PRESETS: dict[str, VocoderRunConfig] = {name: VocoderRunConfig(config) for name, config in PRESETS.items()}
