"""The vocoder interface: log-mel (B, n_mels, T) -> wave (B, T * hop), plus loading one from
whatever a user points at (a ttskit vocoder run or checkpoint, or a jik876/hifi-gan checkpoint).

Synthesis and `ttskit vocode` only see `Vocoder`; another architecture (MelGAN, multi-band
MelGAN, WaveGlow) joins by adding a builder to `ARCHITECTURES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from torch import nn

from ttskit.config import AudioConfig, config_from_dict, mel_mismatches
from ttskit.models import jik876
from ttskit.models.hifigan import Generator, HiFiGANConfig
from ttskit.train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from ttskit.train.loop import autocast

GENERATOR_FORMAT = "ttskit-vocoder-generator-1"
TRAINING_FORMAT = "ttskit-vocoder-1"
# fp32: the reference output. bf16: the generator's convolutions in bfloat16 autocast, about twice
# as fast where the hardware has bfloat16 arithmetic (CUDA GPUs since Ampere, CPUs with AVX-512
# BF16 or AMX); the audio moves ~40 dB below the signal (docs/benchmarks.md measures it).
InferencePrecision = Literal["fp32", "bf16"]
INFERENCE_PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


class VocoderError(ValueError):
    """A vocoder cannot be loaded, or does not fit the mels it is given; the message says which values differ."""


def _build_hifigan(model: dict[str, Any], n_mels: int, source: str) -> Generator:
    return Generator(config_from_dict(HiFiGANConfig, model, source=source), n_mels=n_mels)


ARCHITECTURES: dict[str, Callable[[dict[str, Any], int, str], nn.Module]] = {"hifigan": _build_hifigan}


@dataclass
class Vocoder:
    """A generator ready for inference, with the mel settings it was trained on."""

    generator: nn.Module
    audio: AudioConfig
    source: str
    device: torch.device
    precision: InferencePrecision = "fp32"

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

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) or (n_mels, T) -> (B, T * hop) float32 in [-1, 1]."""
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        if mel.shape[1] != self.audio.n_mels:
            raise VocoderError(f"mel has {mel.shape[1]} bands; the vocoder {self.source} takes {self.audio.n_mels}")
        with autocast(self.device, torch.bfloat16 if self.precision == "bf16" else None):
            return self.generator(mel.to(self.device, torch.float32)).squeeze(1).float()


def check_precision(precision: str, device: torch.device) -> str | None:
    """Refuse an unknown precision; a warning (else None) when bf16 would run emulated, i.e. slower."""
    if precision not in INFERENCE_PRECISIONS:
        raise VocoderError(f"unknown precision {precision!r}; choose one of {', '.join(INFERENCE_PRECISIONS)}")
    if precision != "bf16":
        return None
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return None if native else (f"this {device.type.upper()} has no native bfloat16 arithmetic: --precision bf16 "
                                "will be slower than fp32 here")


def for_inference(generator: Generator, device: torch.device) -> nn.Module:
    """Weight norm folded away; on a CPU the channels-last FastGenerator (same output, faster)."""
    from ttskit.models.hifigan_inference import FastGenerator

    generator = generator.remove_weight_norm().eval()
    for parameter in generator.parameters():
        parameter.requires_grad_(False)
    return FastGenerator(generator) if device.type == "cpu" else generator.to(device)


def generator_state(state: dict[str, Any], source: Path) -> tuple[nn.Module, AudioConfig, str]:
    """(generator with weight norm, audio config, architecture) from a loaded ttskit checkpoint."""
    if state.get("format") not in (GENERATOR_FORMAT, TRAINING_FORMAT):
        raise VocoderError(f"{source}: not a vocoder checkpoint (format {state.get('format')!r})")
    audio = config_from_dict(AudioConfig, state["audio"], source=str(source))
    architecture = state.get("architecture", "hifigan")
    if architecture not in ARCHITECTURES:
        raise VocoderError(f"{source}: unknown vocoder architecture {architecture!r}")
    model_config = state["model"] if state["format"] == GENERATOR_FORMAT else state["run_config"]["model"]
    generator = ARCHITECTURES[architecture](model_config, audio.n_mels, str(source))
    generator.load_state_dict(state["generator"])
    return generator, audio, architecture


def resolve_vocoder_path(path: Path) -> Path:
    """A checkpoint file as given; for a folder, the best (else the latest) generator in it."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise VocoderError(f"{path}: no such vocoder checkpoint or run folder")
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if (folder / "generator_best.pt").is_file():
        return folder / "generator_best.pt"
    latest = latest_checkpoint(folder, prefix="generator")
    if latest is not None:
        return latest
    latest = jik876.latest_generator(folder)
    if latest is not None:
        return latest
    raise VocoderError(f"{path}: no vocoder checkpoint in it (looked for generator_*.pt and jik876 g_* files)")


def load_generator_and_state(path: Path) -> tuple[Generator, AudioConfig, Path, dict[str, Any]]:
    """The trainable generator (weight norm kept) behind `path`, its audio config, the resolved
    file and that file's whole content (which may hold discriminators too)."""
    path = resolve_vocoder_path(path)
    try:
        state = load_checkpoint(path)
    except CheckpointError as err:
        raise VocoderError(str(err)) from None
    if jik876.is_jik876_checkpoint(state):
        try:
            generator, audio = jik876.load_generator(path, state=state)
        except jik876.Jik876Error as err:
            raise VocoderError(str(err)) from None
        return generator, audio, path, state
    generator, audio, _ = generator_state(state, path)
    return generator, audio, path, state


def load_generator(path: Path) -> tuple[Generator, AudioConfig, Path]:
    """The trainable generator (weight norm kept) behind `path`, with its audio config."""
    generator, audio, resolved, _ = load_generator_and_state(path)
    return generator, audio, resolved


def load_vocoder(path: Path, device: str | torch.device | None = None,
                 precision: InferencePrecision = "fp32") -> Vocoder:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    check_precision(precision, device)
    generator, audio, resolved = load_generator(Path(path))
    return Vocoder(for_inference(generator, device), audio, str(resolved), device, precision)
