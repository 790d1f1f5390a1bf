"""Copy-synthesis: recorded audio (or a stored mel) -> mel -> vocoder -> audio, to hear and measure
a vocoder on its own (`ttskit vocode`). A vocoder that uses F0 gets YIN's track of the recording;
from a stored mel it estimates F0 and voicing from the mel itself (its pitch head)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ttskit.audio import MelSpectrogram
from ttskit.audio.io import AUDIO_SUFFIXES, load_audio, save_wav
from ttskit.config import AudioConfig, ConfigError, load_config
from ttskit.models.vocoder import Vocoder, VocoderError
from ttskit.work import CONFIG


@dataclass(frozen=True)
class Vocoded:
    source: Path
    output: Path
    seconds: float  # of audio written
    compute_s: float  # vocoder time alone


def mel_settings_of(mel_file: Path, mel_config: Path | None) -> AudioConfig | None:
    """The audio config a stored mel was made with: `mel_config` (a WORK config.yaml), or the
    config.yaml of the WORK folder the file lies in (WORK/mel/<id>.npy, WORK/gta/<id>.npy)."""
    path = mel_config or mel_file.parent.parent / CONFIG
    if not path.is_file():
        return None
    try:
        return load_config(path).audio
    except ConfigError as err:
        raise VocoderError(f"cannot read the mel settings ({err})") from None


Pitch = tuple[torch.Tensor, torch.Tensor] | None  # (F0 (T,), voicing (T,)) for vocoders that use it


def load_mel(path: Path, vocoder: Vocoder, mel_config: Path | None = None) -> tuple[torch.Tensor, bool, Pitch]:
    """(log-mel (n_mels, T), whether its settings were checked, the recording's F0 where the
    vocoder uses it) from an audio file or a .npy mel (which has no F0: None)."""
    if path.suffix.lower() != ".npy":
        wave = load_audio(path, vocoder.sample_rate)
        # Analysed with the vocoder's own settings, so they agree by construction.
        return MelSpectrogram(vocoder.audio)(torch.from_numpy(wave))[0], True, vocoder.pitch_of(wave)
    try:
        mel = np.load(path)
    except (OSError, ValueError) as err:
        raise VocoderError(f"{path}: not a readable .npy mel ({err})") from None
    if mel.ndim != 2 or vocoder.audio.n_mels not in mel.shape:
        raise VocoderError(f"{path}: expected a mel of shape ({vocoder.audio.n_mels}, frames), got {mel.shape}")
    if mel.shape[0] != vocoder.audio.n_mels:
        mel = mel.T  # (frames, n_mels), as some tools store it
    settings = mel_settings_of(path, mel_config)
    if settings is not None:
        vocoder.check_mel_config(settings, str(path))
    if not np.all(np.isfinite(mel)):
        raise VocoderError(f"{path}: the mel contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32)), settings is not None, None


def vocode_file(path: Path, output: Path, vocoder: Vocoder, mel_config: Path | None = None) -> tuple[Vocoded, bool]:
    mel, checked, pitch = load_mel(path, vocoder, mel_config)
    start = time.perf_counter()
    wave = (vocoder(mel) if pitch is None else vocoder(mel, *pitch))[0].cpu().numpy()
    compute = time.perf_counter() - start
    output.parent.mkdir(parents=True, exist_ok=True)
    save_wav(output, wave, vocoder.sample_rate)
    return Vocoded(path, output, len(wave) / vocoder.sample_rate, compute), checked


def inputs_in(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (*AUDIO_SUFFIXES, ".npy"))
    if not found:
        raise VocoderError(f"{folder}: no audio files or .npy mels in it")
    return found


