"""The vocoder interface: what synthesis, `ttskit vocode` and `ttskit eval` see of any vocoder.

A vocoder turns log-mels made with its `audio` settings into waves. HiFi-GAN (`NeuralVocoder`
around its generator) and Griffin-Lim implement it; a new vocoder (MelGAN, WaveGlow, ...) is one
more subclass, built from its checkpoint by `ttskit.checkpoints.vocoder`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from ttskit.audio import MelSpectrogram, griffin_lim
from ttskit.config import AudioConfig, mel_mismatches
from ttskit.errors import TtskitError
from ttskit.runtime import INFERENCE_PRECISIONS, InferencePrecision, autocast, inference_dtype, native_bfloat16

GRIFFIN_LIM = "griffin-lim"


class VocoderError(TtskitError, ValueError):
    """A vocoder cannot be loaded, or does not fit the mels it is given; the message says which values differ."""


class Vocoder(ABC):
    """log-mel (B, n_mels, T) or (n_mels, T), natural log as `audio` defines it -> wave
    (B, T * hop_length) float32 in [-1, 1] at `audio.sample_rate`."""

    audio: AudioConfig
    source: str  # the file it came from, or its name
    device: torch.device

    @property
    def hop_length(self) -> int:
        return self.audio.hop_length

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    def check_mel_config(self, audio: AudioConfig, what: str) -> None:
        """Refuse mels made with other settings: a vocoder fed them makes noise, not speech."""
        mismatches = mel_mismatches(audio, self.audio)
        if mismatches:
            listed = ", ".join(f"{key} {a!r} vs {b!r}" for key, a, b in mismatches)
            raise VocoderError(f"{what} and the vocoder {self.source} use different mel settings ({listed}); "
                               "use a vocoder trained on the same audio config")

    @abstractmethod
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) or (n_mels, T) -> (B, T * hop_length)."""


class NeuralVocoder(Vocoder):
    """A trained generator ready for inference (weight norm folded away), with the mel settings it
    was trained on and the arithmetic it runs in."""

    def __init__(self, generator: nn.Module, audio: AudioConfig, source: str, device: torch.device,
                 precision: InferencePrecision = "fp32") -> None:
        self.generator, self.audio, self.source, self.device, self.precision = generator, audio, source, device, precision

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        if mel.shape[1] != self.audio.n_mels:
            raise VocoderError(f"mel has {mel.shape[1]} bands; the vocoder {self.source} takes {self.audio.n_mels}")
        with autocast(self.device, inference_dtype(self.precision)):
            return self.generator(mel.to(self.device, torch.float32)).squeeze(1).float()


class GriffinLimVocoder(Vocoder):
    """The vocoder that needs no training: fast Griffin-Lim on the acoustic model's own mel
    settings (so `check_mel_config` always agrees), on the CPU."""

    source = GRIFFIN_LIM

    def __init__(self, audio: AudioConfig, device: torch.device) -> None:
        self.audio, self.device = audio, device
        self.analysis = MelSpectrogram(audio, double_precision=False)

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        mel = mel.unsqueeze(0) if mel.dim() == 2 else mel
        return torch.stack([griffin_lim(m.float().cpu(), self.analysis) for m in mel])


def check_precision(precision: str, device: torch.device) -> str | None:
    """Refuse an unknown precision; a warning (else None) when bf16 would run emulated, i.e. slower."""
    if precision not in INFERENCE_PRECISIONS:
        raise VocoderError(f"unknown precision {precision!r}; choose one of {', '.join(INFERENCE_PRECISIONS)}")
    if precision != "bf16" or native_bfloat16(device):
        return None
    return (f"this {device.type.upper()} has no native bfloat16 arithmetic: --precision bf16 "
            "will be slower than fp32 here")
