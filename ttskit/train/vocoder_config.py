"""What `ttskit train-vocoder` is configured by: the generator architecture and the training run
(the mel settings come from the WORK folder). Four families: HiFi-GAN (a GAN), the
harmonic-plus-noise source-filter vocoder (a multi-resolution STFT loss, no discriminator), and
MelGAN / multi-band MelGAN (a GAN with window discriminators; the multi-band one warms up on STFT
losses alone), and WaveGlow (a flow trained by maximum likelihood)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ttskit.config import require
from ttskit.models.discriminators import DISCRIMINATOR_WIDTHS
from ttskit.models.harmonic_noise import PRESETS as HARMONIC_NOISE_PRESETS
from ttskit.models.harmonic_noise import HarmonicNoiseConfig
from ttskit.models.hifigan import PRESETS, HiFiGANConfig
from ttskit.models.melgan import PRESETS as MELGAN_PRESETS
from ttskit.models.melgan import MelGANConfig
from ttskit.models.waveglow import PRESETS as WAVEGLOW_PRESETS
from ttskit.models.waveglow import WaveGlowConfig
from ttskit.skeleton.config import BaseTrainConfig


@dataclass(frozen=True)
class SegmentTrainConfig(BaseTrainConfig):
    """What every vocoder run has: random audio segments with their mel frames, a per-epoch decay."""

    pinned_on_resume: ClassVar[tuple[str, ...]] = (*BaseTrainConfig.pinned_on_resume, "lr_decay", "batch_size",
                                                   "segment_samples")

    # The global batch: with --gpus N each rank takes batch_size / N segments.
    batch_size: int = 16
    segment_samples: int = 8192
    betas: tuple[float, float] = (0.8, 0.99)
    lr_decay: float = 0.999  # per epoch, every optimiser
    log_every: int = 100
    val_utterances: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.batch_size > 0, "train.batch_size", "must be positive")
        require(self.segment_samples > 0, "train.segment_samples", "must be positive")
        require(0 < self.lr_decay <= 1, "train.lr_decay", "must be in (0, 1]")


@dataclass(frozen=True)
class VocoderTrainConfig(SegmentTrainConfig):
    pinned_on_resume: ClassVar[tuple[str, ...]] = (*SegmentTrainConfig.pinned_on_resume, "discriminator_width")

    learning_rate: float = 2e-4
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
    # The discriminators' channels as a fraction of the paper's (1: its MPD + MSD, ~71M
    # parameters; 1/8: ~1.1M, for quick CPU experiments and smoke tests). A paper-width
    # discriminator checkpoint (jik876's do_ files) loads only at 1.
    discriminator_width: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.discriminator_start_step >= 0, "train.discriminator_start_step", "must be >= 0")
        require(self.discriminator_width in DISCRIMINATOR_WIDTHS, "train.discriminator_width",
                f"must be one of {', '.join(str(w) for w in DISCRIMINATOR_WIDTHS)} (the grouped "
                "convolutions of the scale discriminators need whole groups)")


@dataclass(frozen=True)
class VocoderRunConfig:
    model: HiFiGANConfig = field(default_factory=HiFiGANConfig)
    train: VocoderTrainConfig = field(default_factory=VocoderTrainConfig)


@dataclass(frozen=True)
class HarmonicNoiseTrainConfig(SegmentTrainConfig):
    pinned_on_resume: ClassVar[tuple[str, ...]] = (*SegmentTrainConfig.pinned_on_resume, "discriminator_channels")

    # Measured on 2 CPU cores (docs/vocoder-candidates.md): small batches of short segments and a
    # high rate reach the copy-synthesis goals in minutes; a step costs ~0.08 s.
    batch_size: int = 8
    learning_rate: float = 1e-3
    grad_clip: float | None = 1.0
    # The pitch head (F0 and voicing from the mel) against YIN's tracks, beside the STFT loss.
    pitch_loss_weight: float = 1.0
    # A full-band log-mel L1 beside the STFT loss (HiFi-GAN's): its narrow low bands weigh the
    # fundamental, which the linear-frequency STFT loss barely sees (one bin in a thousand).
    mel_loss_weight: float = 0.0
    # The STFT loss's spectral convergence term (a squared error of magnitudes). Against noise it
    # is biased: two independent noises of one level are closest in squared error when the
    # generated one is pi/4 as loud, so it teaches a quieter noise branch than the recordings
    # have; the log-magnitude term (an L1 of logs) has no such bias.
    stft_convergence_weight: float = 1.0
    num_workers: int = 1
    # Adversarial training against a light multi-resolution spectrogram discriminator
    # (`ttskit.models.spectral_discriminator`), off by default (weight 0): the STFT loss alone gets
    # the words and the pitch; the discriminator is for the noise and timbre it averages away,
    # usually as a fine-tuning stage (`--init` a trained run) once the STFT loss has done its work.
    adversarial_weight: float = 0.0
    feature_loss_weight: float = 2.0
    discriminator_start_step: int = 0
    discriminator_channels: int = 16
    discriminator_learning_rate: float = 5e-4
    # The discriminator judges one random window of each segment (the same for recorded and
    # generated): its cost grows with the samples it sees, the generator's STFT loss sees them all.
    discriminator_segment_samples: int = 4096

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.pitch_loss_weight >= 0, "train.pitch_loss_weight", "must be >= 0")
        require(self.mel_loss_weight >= 0, "train.mel_loss_weight", "must be >= 0")
        require(self.stft_convergence_weight >= 0, "train.stft_convergence_weight", "must be >= 0")
        require(self.adversarial_weight >= 0, "train.adversarial_weight", "must be >= 0")
        require(self.feature_loss_weight >= 0, "train.feature_loss_weight", "must be >= 0")
        require(self.discriminator_start_step >= 0, "train.discriminator_start_step", "must be >= 0")
        require(self.discriminator_channels >= 1, "train.discriminator_channels", "must be at least 1")
        require(self.discriminator_segment_samples >= 2048, "train.discriminator_segment_samples",
                "must be at least 2048 (one window of the longest STFT)")
        require(self.discriminator_learning_rate > 0, "train.discriminator_learning_rate", "must be positive")

    @property
    def adversarial(self) -> bool:
        return self.adversarial_weight > 0


@dataclass(frozen=True)
class HarmonicNoiseRunConfig:
    model: HarmonicNoiseConfig = field(default_factory=HarmonicNoiseConfig)
    train: HarmonicNoiseTrainConfig = field(default_factory=HarmonicNoiseTrainConfig)


@dataclass(frozen=True)
class MelGANTrainConfig(SegmentTrainConfig):
    """MelGAN's training as its paper (descript's code): Adam 1e-4, betas (0.5, 0.9), hinge loss and
    feature matching (x10), adversarial from the first step, no spectral loss."""

    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    grad_clip: float | None = None
    adversarial: str = "hinge"  # or "lsgan" (least squares, multi-band MelGAN's)
    adversarial_weight: float = 1.0
    feature_loss_weight: float = 10.0
    # Multi-resolution STFT losses (spectral convergence + log magnitude) of the wave, and of its
    # PQMF sub-bands against the generator's (multi-band only).
    stft_loss_weight: float = 0.0
    subband_stft_loss_weight: float = 0.0
    discriminator_start_step: int = 0  # before it: the STFT losses alone (a generator warm-up)
    discriminator_downsample: tuple[int, ...] = (4, 4, 4, 4)
    discriminator_max_channels: int = 1024

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.adversarial in ("hinge", "lsgan"), "train.adversarial", "must be hinge or lsgan")
        require(self.discriminator_start_step >= 0, "train.discriminator_start_step", "must be >= 0")
        require(self.stft_loss_weight > 0 or self.subband_stft_loss_weight > 0 or self.discriminator_start_step == 0,
                "train.discriminator_start_step", "a warm-up needs an STFT loss (train.stft_loss_weight > 0)")


# Multi-band MelGAN as its paper and kan-bayashi's multi_band_melgan.v2: Adam 1e-3, the full-band
# and sub-band STFT losses (0.5 each), least-squares adversarial loss x2.5 without feature matching,
# the discriminator (downsampling x4 x4 x4, at most 512 channels) from step 200,000.
MB_MELGAN_TRAIN = MelGANTrainConfig(learning_rate=1e-3, betas=(0.9, 0.999), adversarial="lsgan",
                                    adversarial_weight=2.5, feature_loss_weight=0.0, stft_loss_weight=0.5,
                                    subband_stft_loss_weight=0.5, discriminator_start_step=200_000,
                                    discriminator_downsample=(4, 4, 4), discriminator_max_channels=512)


@dataclass(frozen=True)
class MelGANRunConfig:
    model: MelGANConfig = field(default_factory=MelGANConfig)
    train: MelGANTrainConfig = field(default_factory=MelGANTrainConfig)


@dataclass(frozen=True)
class WaveGlowTrainConfig(SegmentTrainConfig):
    """NVIDIA/waveglow's training: Adam 1e-4 on the negative log-likelihood, 16,000-sample segments
    (16,384 here: a whole number of hops), batches of 12."""

    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    grad_clip: float | None = None
    batch_size: int = 12
    segment_samples: int = 16384


@dataclass(frozen=True)
class WaveGlowRunConfig:
    model: WaveGlowConfig = field(default_factory=WaveGlowConfig)
    train: WaveGlowTrainConfig = field(default_factory=WaveGlowTrainConfig)


AnyVocoderRunConfig = VocoderRunConfig | HarmonicNoiseRunConfig | MelGANRunConfig | WaveGlowRunConfig

VOCODER_PRESETS: dict[str, AnyVocoderRunConfig] = {
    **{name: VocoderRunConfig(config) for name, config in PRESETS.items()},
    **{name: HarmonicNoiseRunConfig(config) for name, config in HARMONIC_NOISE_PRESETS.items()},
    "melgan": MelGANRunConfig(MELGAN_PRESETS["melgan"]),
    "mb-melgan": MelGANRunConfig(MELGAN_PRESETS["mb-melgan"], MB_MELGAN_TRAIN),
    **{name: WaveGlowRunConfig(config) for name, config in WAVEGLOW_PRESETS.items()},
}
