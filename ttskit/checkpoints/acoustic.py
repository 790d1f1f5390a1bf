"""Acoustic models from checkpoints: the model rebuilt from what the checkpoint holds (its model
config, vocabulary, speakers, statistics, text and audio settings), with nothing else needed.
FastSpeech2 and FastSpeech share `FastSpeech2Config`; a Tacotron2 checkpoint's model section is a
`Tacotron2Config` (told apart by its keys)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ttskit.checkpoints.formats import ACOUSTIC_FORMAT
from ttskit.checkpoints.nvidia_tacotron2 import load_nvidia_tacotron2, nvidia_weights
from ttskit.checkpoints.resolve import resolve_checkpoint
from ttskit.checkpoints.store import CheckpointError, load_checkpoint, non_finite_tensor
from ttskit.config import AudioConfig, TextConfig, config_from_dict
from ttskit.models.fastspeech2 import FastSpeech2, FastSpeech2Config
from ttskit.models.tacotron2 import Tacotron2, Tacotron2Config
from ttskit.text.frontend import TextFrontend, build_frontend
from ttskit.text.vocab import Vocab


def build_acoustic_model(model_config: FastSpeech2Config | Tacotron2Config, n_symbols: int, n_mels: int,
                         n_speakers: int, stats: dict[str, Any]) -> FastSpeech2 | Tacotron2:
    """A fresh model for a WORK folder's (or a checkpoint's) vocabulary, speakers and statistics."""
    if isinstance(model_config, Tacotron2Config):
        return Tacotron2(model_config, n_symbols, n_mels, n_speakers)
    return FastSpeech2(model_config, n_symbols, n_mels, n_speakers,
                       (stats["pitch"]["normalized_min"], stats["pitch"]["normalized_max"]),
                       (stats["energy"]["normalized_min"], stats["energy"]["normalized_max"]),
                       feature_level=stats["feature_level"])


@dataclass
class AcousticModel:
    """A FastSpeech2 checkpoint with everything synthesis needs: front end, vocabulary, speakers,
    statistics and the mel settings it was trained on."""

    model: FastSpeech2 | Tacotron2
    frontend: TextFrontend
    vocab: Vocab
    speakers: dict[str, int]
    stats: dict[str, Any]
    audio: AudioConfig
    source: str


def model_config_class(section: dict[str, Any]) -> type[FastSpeech2Config] | type[Tacotron2Config]:
    """The config class of a stored model section: Tacotron2's has its attention LSTM's size."""
    return Tacotron2Config if "attention_rnn" in section else FastSpeech2Config


def is_acoustic_checkpoint(state: dict[str, Any]) -> bool:
    return str(state.get("format", "")).startswith(ACOUSTIC_FORMAT.rsplit("-", 1)[0])


def model_from_state(state: dict[str, Any], source: Path) -> FastSpeech2 | Tacotron2:
    """The model of a loaded acoustic checkpoint, weights in, on the CPU in training mode."""
    if not is_acoustic_checkpoint(state):
        raise CheckpointError(f"{source}: not an acoustic-model checkpoint (format {state.get('format')!r}); "
                              "vocoder checkpoints go to --vocoder")
    section = state["run_config"]["model"]
    model_config = config_from_dict(model_config_class(section), section, source=str(source), prefix="model")
    audio = config_from_dict(AudioConfig, state["audio"], source=str(source))
    model = build_acoustic_model(model_config, len(state["vocab"]), audio.n_mels, len(state["speakers"]),
                                 state["stats"])
    if (broken := non_finite_tensor(state["model"])) is not None:
        raise CheckpointError(f"{source}: its weights hold NaN or infinite values ({broken}); the run that wrote it "
                              "had diverged, use an earlier checkpoint")
    model.load_state_dict(state["model"])
    return model


def load_acoustic(path: Path | str, device: torch.device) -> AcousticModel:
    """The acoustic model behind `path` (a checkpoint, or a run folder: its best, else its latest;
    or an NVIDIA Tacotron 2 checkpoint)."""
    resolved = resolve_checkpoint(path, "acoustic")
    state = load_checkpoint(resolved)
    if (weights := nvidia_weights(state)) is not None:
        model, frontend, vocab, audio = load_nvidia_tacotron2(weights, resolved)
        # No pitch or energy statistics: Tacotron 2 predicts neither.
        return AcousticModel(model.to(device), frontend, vocab, {"nvidia": 0}, {}, audio, str(resolved))
    model = model_from_state(state, resolved).to(device).eval()
    audio = config_from_dict(AudioConfig, state["audio"], source=str(resolved))
    text = config_from_dict(TextConfig, state["text"], source=str(resolved))
    return AcousticModel(model, build_frontend(text), Vocab(tuple(state["vocab"])), dict(state["speakers"]),
                         state["stats"], audio, str(resolved))
