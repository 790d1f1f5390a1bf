"""One teacher-forced pass of any acoustic model, and its loss: what the trainer, GTA export and
the validation media share (a model joins training here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ttskit.data.dataset import AcousticBatch
from ttskit.models.fastspeech2 import VarianceTargets
from ttskit.models.losses import fastspeech2_loss
from ttskit.models.tacotron2 import Tacotron2, tacotron2_loss


def teacher_forced(call: Callable[..., Any], model: torch.nn.Module, batch: AcousticBatch) -> tuple[Any, torch.Tensor]:
    """(output, target mels) of `call` (the model, or its DDP wrapper) on `batch` with the ground
    truth fed in: FastSpeech2's durations, pitch and energy; Tacotron2's previous frames (the
    mels padded to a whole number of decoder steps)."""
    if isinstance(model, Tacotron2):
        extra = (-batch.mels.shape[1]) % model.config.reduction
        mels = torch.nn.functional.pad(batch.mels, (0, 0, 0, extra))
        return call(batch.phonemes, batch.phoneme_lengths, mels, batch.frame_lengths, batch.speakers), mels
    return call(batch.phonemes, batch.phoneme_lengths, batch.speakers,
                targets=VarianceTargets(batch.durations, batch.pitch, batch.energy),
                max_frames=batch.mels.shape[1]), batch.mels


def acoustic_loss(model: torch.nn.Module, out: Any, mels: torch.Tensor, batch: AcousticBatch) -> dict[str, torch.Tensor]:
    if isinstance(model, Tacotron2):
        return tacotron2_loss(out, mels, batch.phoneme_lengths, model.config)
    config = model.config
    return fastspeech2_loss(out, mels, batch.durations, batch.pitch, batch.energy,
                            postnet=config.postnet_layers > 0, variance_predictors=config.variance_predictors)
