"""Vocoders from checkpoints: a ttskit vocoder run or checkpoint (HiFi-GAN, harmonic-plus-noise,
MelGAN / multi-band MelGAN, WaveGlow), or a published one (jik876/hifi-gan, descript melgan-neurips,
ParallelWaveGAN's MelGANs, NVIDIA's WaveGlows: `_foreign_or_native`).

Another generator architecture joins by adding a builder to
`ARCHITECTURES` (and, when it needs more than the mel, a `Vocoder` subclass that `load_vocoder`
returns for it): its checkpoints say `"architecture": <name>`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ttskit.checkpoints import jik876, melgan_checkpoints, waveglow_checkpoints
from ttskit.checkpoints.formats import VOCODER_GENERATOR_FORMAT, VOCODER_TRAINING_FORMAT
from ttskit.checkpoints.resolve import resolve_checkpoint
from ttskit.checkpoints.store import load_checkpoint, non_finite_tensor
from ttskit.config import AudioConfig, config_from_dict
from ttskit.models.harmonic_noise import HarmonicNoiseConfig, HarmonicNoiseGenerator
from ttskit.models.hifigan import Generator, HiFiGANConfig
from ttskit.models.hifigan_inference import for_inference
from ttskit.models.melgan import MelGANConfig, MelGANGenerator
from ttskit.models.melgan_inference import FastMelGAN
from ttskit.models.vocoder import NeuralVocoder, SourceFilterVocoder, Vocoder, VocoderError, check_precision
from ttskit.models.waveglow import WaveGlow, WaveGlowConfig, WaveGlowSynthesis
from ttskit.runtime import InferencePrecision, default_device, inference_dtype


def _build_hifigan(model: dict[str, Any], audio: AudioConfig, source: str) -> Generator:
    return Generator(config_from_dict(HiFiGANConfig, model, source=source), n_mels=audio.n_mels)


def _build_harmonic_noise(model: dict[str, Any], audio: AudioConfig, source: str) -> HarmonicNoiseGenerator:
    return HarmonicNoiseGenerator(config_from_dict(HarmonicNoiseConfig, model, source=source), audio.n_mels,
                                  audio.sample_rate, audio.hop_length)


def _build_waveglow(model: dict[str, Any], audio: AudioConfig, source: str) -> WaveGlow:
    return WaveGlow(config_from_dict(WaveGlowConfig, model, source=source), audio.n_mels, audio.hop_length)


def _build_melgan(model: dict[str, Any], audio: AudioConfig, source: str) -> MelGANGenerator:
    return MelGANGenerator(config_from_dict(MelGANConfig, model, source=source), n_mels=audio.n_mels)


ARCHITECTURES: dict[str, Callable[[dict[str, Any], AudioConfig, str], nn.Module]] = {
    "hifigan": _build_hifigan, "harmonic-noise": _build_harmonic_noise, "melgan": _build_melgan,
    "waveglow": _build_waveglow}


def generator_state(state: dict[str, Any], source: Path) -> tuple[nn.Module, AudioConfig, str]:
    """(generator with weight norm, audio config, architecture) from a loaded ttskit checkpoint."""
    if state.get("format") not in (VOCODER_GENERATOR_FORMAT, VOCODER_TRAINING_FORMAT):
        raise VocoderError(f"{source}: not a vocoder checkpoint (format {state.get('format')!r})")
    audio = config_from_dict(AudioConfig, state["audio"], source=str(source))
    architecture = state.get("architecture", "hifigan")
    if architecture not in ARCHITECTURES:
        raise VocoderError(f"{source}: unknown vocoder architecture {architecture!r}")
    model_config = state["model"] if state["format"] == VOCODER_GENERATOR_FORMAT else state["run_config"]["model"]
    generator = ARCHITECTURES[architecture](model_config, audio, str(source))
    if (broken := non_finite_tensor(state["generator"])) is not None:
        raise VocoderError(f"{source}: its weights hold NaN or infinite values ({broken}); the run that wrote it "
                           "had diverged, use an earlier checkpoint")
    generator.load_state_dict(state["generator"])
    return generator, audio, architecture


def _foreign_or_native(state: dict[str, Any], path: Path) -> tuple[nn.Module, AudioConfig, list[str]]:
    """(generator with weight norm, its mel settings, notes on conversions) of a loaded file."""
    if jik876.is_jik876_checkpoint(state):
        generator, audio = jik876.load_generator(path, state=state)
        return generator, audio, []
    if melgan_checkpoints.is_descript_generator(state):
        return melgan_checkpoints.load_descript(state, path)
    if melgan_checkpoints.is_kan_bayashi_checkpoint(state):
        return melgan_checkpoints.load_kan_bayashi(state, path)
    if (weights := waveglow_checkpoints.waveglow_weights(state)) is not None:
        return waveglow_checkpoints.load_waveglow(weights, path)
    generator, audio, _ = generator_state(state, path)
    return generator, audio, []


def _load(path: Path) -> tuple[nn.Module, AudioConfig, Path, dict[str, Any], list[str]]:
    path = resolve_checkpoint(path, "vocoder")
    if waveglow_checkpoints.is_pickled_module(path):  # NVIDIA/waveglow's: read without its code
        generator, audio, notes = waveglow_checkpoints.load_waveglow(waveglow_checkpoints.read_pickled_model(path),
                                                                     path)
        return generator, audio, path, {}, notes
    state = load_checkpoint(path, error=VocoderError)
    generator, audio, notes = _foreign_or_native(state, path)
    return generator, audio, path, state, notes


def load_generator_and_state(path: Path) -> tuple[nn.Module, AudioConfig, Path, dict[str, Any]]:
    """The trainable generator (weight norm kept) behind `path`, its audio config, the resolved
    file and that file's whole content (which may hold discriminators too; empty for a pickled
    NVIDIA WaveGlow). Besides ttskit's own, every published format `_foreign_or_native` reads."""
    generator, audio, resolved, state, _ = _load(path)
    return generator, audio, resolved, state


def load_generator(path: Path) -> tuple[nn.Module, AudioConfig, Path]:
    """The trainable generator (weight norm kept) behind `path`, with its audio config."""
    generator, audio, resolved, _ = load_generator_and_state(path)
    return generator, audio, resolved


def _frozen(network: nn.Module, device: torch.device) -> nn.Module:
    """For inference: eval mode, gradients off, on `device`."""
    network = network.eval().to(device)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


def load_vocoder(path: Path | str, device: str | Any | None = None,
                 precision: InferencePrecision = "fp32") -> Vocoder:
    """The vocoder behind `path`, ready for inference on `device` (None: CUDA when present)."""
    device = default_device(device)
    check_precision(precision, device)
    generator, audio, resolved, state, notes = _load(Path(path))
    if isinstance(generator, HarmonicNoiseGenerator):
        generator = _frozen(generator, device)
        fmin, fmax = state.get("pitch_range", (60.0, 800.0))
        return SourceFilterVocoder(generator, audio, str(resolved), device, (float(fmin), float(fmax)), precision)
    if isinstance(generator, MelGANGenerator):
        module = _frozen(generator.remove_weight_norm(), device)
        # The same output, ~1.5x faster on a CPU; in bfloat16 from end to end with --precision bf16.
        fast = FastMelGAN(module, inference_dtype(precision) or torch.float32) if device.type == "cpu" else module
        return NeuralVocoder(fast, audio, str(resolved), device, precision, notes)
    if isinstance(generator, WaveGlow):
        synthesis = WaveGlowSynthesis(_frozen(generator.remove_weight_norm(), device)).to(device)
        return NeuralVocoder(synthesis, audio, str(resolved), device, precision, notes)
    return NeuralVocoder(for_inference(generator, device), audio, str(resolved), device, precision)
