"""The vocoder interface: what synthesis, `ttskit vocode` and `ttskit eval` see of any vocoder.

A vocoder turns log-mels made with its `audio` settings into waves. HiFi-GAN (`NeuralVocoder`
around its generator), the harmonic-plus-noise vocoder (`SourceFilterVocoder`, which also takes
F0) and Griffin-Lim implement it; a new vocoder (MelGAN, WaveGlow, ...) is one more subclass,
built from its checkpoint by `ttskit.checkpoints.vocoder`.

F0, for the vocoders that use it (`uses_f0`): callers that know it pass it. Copy-synthesis
analyses the recording (`pitch_of`: ttskit's YIN, as training did); synthesis passes the acoustic
model's pitch. Where none is given (a stored mel), the vocoder estimates F0 and voicing from the
mel itself. The others ignore it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
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
    uses_f0: bool = False  # whether F0 passed to __call__ changes the output
    notes: tuple[str, ...] = ()  # how its mel convention was met (foreign checkpoints), for the user

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
            settings = " ".join(f"--set {key}={b}" for key, _, b in mismatches)
            raise VocoderError(f"{what} and the vocoder {self.source} use different mel settings ({listed}); "
                               "use a vocoder trained on the same audio config, or preprocess and train the "
                               f"acoustic model with the vocoder's: {settings}")

    @abstractmethod
    def __call__(self, mel: torch.Tensor, f0: torch.Tensor | None = None,
                 voiced: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_mels, T) or (n_mels, T) -> (B, T * hop_length). `f0`: (B, T) or (T,) Hz, a contour
        continuous through unvoiced frames; `voiced`: the same shape, 0/1 (None: the vocoder's own
        estimate, where it uses F0 at all)."""

    def pitch_of(self, wave: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(F0 (T,), voicing (T,)) of a recording for copy-synthesis, or None where F0 is not used."""
        return None

    def each(self, mels: list[torch.Tensor], f0s: list[torch.Tensor | None]) -> list[torch.Tensor]:
        """One wave (T * hop_length,) per utterance, in order: (n_mels, T) mels of their own lengths
        (no padding reaches an utterance's end) and their F0 (T,) or None. One after the other here
        (torch's eager ops take Python's lock, so utterances side by side gain nothing: measured);
        a backend that can run them side by side overrides it."""
        return [self(mel, f0)[0] for mel, f0 in zip(mels, f0s)]


def _batched(mel: torch.Tensor, n_mels: int, source: str) -> torch.Tensor:
    if mel.dim() == 2:
        mel = mel.unsqueeze(0)
    if mel.shape[1] != n_mels:
        raise VocoderError(f"mel has {mel.shape[1]} bands; the vocoder {source} takes {n_mels}")
    return mel


class NeuralVocoder(Vocoder):
    """A trained generator ready for inference (weight norm folded away), with the mel settings it
    was trained on and the arithmetic it runs in."""

    def __init__(self, generator: nn.Module, audio: AudioConfig, source: str, device: torch.device,
                 precision: InferencePrecision = "fp32", notes: list[str] | tuple[str, ...] = ()) -> None:
        self.generator, self.audio, self.source, self.device, self.precision = generator, audio, source, device, precision
        self.notes = tuple(notes)

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor, f0: torch.Tensor | None = None,
                 voiced: torch.Tensor | None = None) -> torch.Tensor:
        mel = _batched(mel, self.audio.n_mels, self.source)
        with autocast(self.device, inference_dtype(self.precision)):
            return self.generator(mel.to(self.device, torch.float32)).squeeze(1).float()


class SourceFilterVocoder(Vocoder):
    """A generator driven by F0 as well as the mel (`ttskit.models.harmonic_noise`), with the YIN
    pitch range it was trained with."""

    uses_f0 = True

    def __init__(self, generator: nn.Module, audio: AudioConfig, source: str, device: torch.device,
                 pitch_range: tuple[float, float], precision: InferencePrecision = "fp32") -> None:
        self.generator, self.audio, self.source, self.device = generator, audio, source, device
        self.pitch_range, self.precision = pitch_range, precision

    def pitch_of(self, wave: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        from ttskit.audio.pitch import extract_pitch

        track = extract_pitch(wave, self.audio, "yin", *self.pitch_range)
        return torch.from_numpy(track.f0), torch.from_numpy(track.voiced.astype(np.float32))

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor, f0: torch.Tensor | None = None,
                 voiced: torch.Tensor | None = None) -> torch.Tensor:
        mel = _batched(mel, self.audio.n_mels, self.source).to(self.device, torch.float32)
        frames = mel.shape[-1]

        def frame_track(values: torch.Tensor | None) -> torch.Tensor | None:
            if values is None:
                return None
            values = values.reshape(1, -1) if values.dim() == 1 else values
            if values.shape[-1] < frames:  # a track a frame short (rounding) is held at its last value
                values = torch.cat([values, values[:, -1:].expand(-1, frames - values.shape[-1])], -1)
            return values[:, :frames].to(self.device, torch.float32)

        with autocast(self.device, inference_dtype(self.precision)):
            return self.generator(mel, frame_track(f0), frame_track(voiced)).squeeze(1).float()


class GriffinLimVocoder(Vocoder):
    """The vocoder that needs no training: fast Griffin-Lim on the acoustic model's own mel
    settings (so `check_mel_config` always agrees), on the CPU."""

    source = GRIFFIN_LIM

    def __init__(self, audio: AudioConfig, device: torch.device) -> None:
        self.audio, self.device = audio, device
        self.analysis = MelSpectrogram(audio, double_precision=False)

    def __call__(self, mel: torch.Tensor, f0: torch.Tensor | None = None,
                 voiced: torch.Tensor | None = None) -> torch.Tensor:
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
