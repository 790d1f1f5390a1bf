"""NVIDIA's published Tacotron 2 checkpoints as ttskit acoustic models (nothing of NVIDIA's code
is imported or run).

Two layouts: NVIDIA/tacotron2's `tacotron2_statedict.pt` ({"state_dict": ..., "optimizer": ...,
"iteration": ...}) and NVIDIA DeepLearningExamples' Tacotron2 checkpoints ({"state_dict": ...} with
"module."-prefixed names from DistributedDataParallel, plus "epoch", "config", ...). Both are read
with `weights_only=True` (`store.load_checkpoint`). The parameter names are those of
`ttskit.models.tacotron2.Tacotron2`; the sizes are read off the tensors. Text goes through NVIDIA's
character symbols and cleaners (`ttskit.text.nvidia_chars`); the audio settings are NVIDIA's
(22,050 Hz, 1024-point STFT, hop 256, 80 mels, 0-8,000 Hz, log of the magnitude mel clamped at
1e-5), which are ttskit's defaults, so ttskit's and jik876's HiFi-GAN vocoders fit them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ttskit.checkpoints.formats import ACOUSTIC_FORMAT
from ttskit.checkpoints.store import CheckpointError, non_finite_tensor
from ttskit.config import AudioConfig, TextConfig, config_to_dict
from ttskit.models.tacotron2 import Tacotron2, Tacotron2Config
from ttskit.text.nvidia_chars import NvidiaCharsFrontend, nvidia_vocab

NVIDIA_AUDIO = AudioConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0,
                           fmax=8000.0, mel_floor=1e-5)
_MARKERS = ("embedding.weight", "decoder.attention_rnn.weight_ih", "decoder.gate_layer.linear_layer.weight")


def nvidia_weights(state: Any) -> dict[str, torch.Tensor] | None:
    """The state dict of an NVIDIA Tacotron 2 checkpoint ("module." prefixes removed), else None."""
    if not isinstance(state, dict) or "format" in state or not isinstance(state.get("state_dict"), dict):
        return None
    weights = {key.removeprefix("module."): value for key, value in state["state_dict"].items()}
    return weights if all(marker in weights for marker in _MARKERS) else None


def config_from_weights(weights: dict[str, torch.Tensor], source: Path) -> tuple[Tacotron2Config, int, int]:
    """(the model's sizes, symbols, mel bands) read off its tensors."""
    try:
        convolutions = sum(1 for k in weights if k.startswith("encoder.convolutions.") and k.endswith(".0.conv.weight"))
        postnet = sum(1 for k in weights if k.startswith("postnet.convolutions.") and k.endswith(".0.conv.weight"))
        encoder = weights["encoder.convolutions.0.0.conv.weight"]
        location = weights["decoder.attention_layer.location_layer.location_conv.conv.weight"]
        first_post = weights["postnet.convolutions.0.0.conv.weight"]
        n_mels = first_post.shape[1]
        projection = weights["decoder.linear_projection.linear_layer.weight"].shape[0]
        config = Tacotron2Config(
            symbols_embedding=weights["embedding.weight"].shape[1], encoder_convolutions=convolutions,
            encoder_kernel=encoder.shape[2], encoder_channels=encoder.shape[0],
            attention_rnn=weights["decoder.attention_rnn.weight_hh"].shape[1],
            decoder_rnn=weights["decoder.decoder_rnn.weight_hh"].shape[1],
            prenet=weights["decoder.prenet.layers.0.linear_layer.weight"].shape[0],
            attention=weights["decoder.attention_layer.query_layer.linear_layer.weight"].shape[0],
            location_filters=location.shape[0], location_kernel=location.shape[2],
            postnet_channels=first_post.shape[0], postnet_kernel=first_post.shape[2], postnet_convolutions=postnet,
            reduction=projection // n_mels)
    except KeyError as missing:
        raise CheckpointError(f"{source}: an NVIDIA Tacotron 2 checkpoint without {missing}") from None
    if config.reduction != 1 or weights["decoder.prenet.layers.0.linear_layer.weight"].shape[1] != n_mels:
        raise CheckpointError(f"{source}: {config.reduction} frames per decoder step; NVIDIA's code supports 1, "
                              "and so does this reader")
    return config, weights["embedding.weight"].shape[0], n_mels


def _checked_config(weights: dict[str, torch.Tensor], source: Path) -> Tacotron2Config:
    config, symbols, n_mels = config_from_weights(weights, source)
    if symbols != len(nvidia_vocab()) or n_mels != NVIDIA_AUDIO.n_mels:
        raise CheckpointError(f"{source}: {symbols} symbols and {n_mels} mel bands; NVIDIA's English checkpoints "
                              f"have {len(nvidia_vocab())} and {NVIDIA_AUDIO.n_mels} (another symbol set is not "
                              "supported)")
    if (broken := non_finite_tensor(weights)) is not None:
        raise CheckpointError(f"{source}: its weights hold NaN or infinite values ({broken})")
    return config


def nvidia_init_state(weights: dict[str, torch.Tensor], source: Path) -> dict[str, Any]:
    """An NVIDIA checkpoint as what `train-acoustic --init` reads of a ttskit one: model weights and
    section, vocabulary, (no) speakers, text and audio settings. The WORK folder it fine-tunes on
    must be preprocessed with NVIDIA's front end (`--set text.frontend=nvidia-chars`)."""
    config = _checked_config(weights, source)
    return {"format": ACOUSTIC_FORMAT, "model": weights, "vocab": list(nvidia_vocab().symbols), "speakers": {},
            "text": config_to_dict(TextConfig(frontend="nvidia-chars")), "audio": config_to_dict(NVIDIA_AUDIO),
            "run_config": {"model": config_to_dict(config)}}


def load_nvidia_tacotron2(weights: dict[str, torch.Tensor], source: Path) -> tuple[Tacotron2, Any, Any, AudioConfig]:
    """(model on the CPU in eval mode, front end, vocabulary, audio settings)."""
    config = _checked_config(weights, source)
    vocab = nvidia_vocab()
    model = Tacotron2(config, len(vocab), NVIDIA_AUDIO.n_mels)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{source}: does not fit Tacotron 2 (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), NvidiaCharsFrontend(), vocab, NVIDIA_AUDIO
