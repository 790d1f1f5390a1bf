"""FastSpeech2's training loss: mel L1 before and after the postnet, log-duration MSE, pitch and
energy MSE, every term averaged over real (unpadded) positions only (FastSpeech: mel and duration)."""

from __future__ import annotations

import torch

from ttskit.models.fastspeech2 import FastSpeech2Output


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    while valid.dim() < values.dim():
        valid = valid.unsqueeze(-1)
    valid = valid.expand_as(values).to(values.dtype)
    return (values * valid).sum() / valid.sum().clamp(min=1)


def fastspeech2_loss(output: FastSpeech2Output, mels: torch.Tensor, durations: torch.Tensor, pitch: torch.Tensor,
                     energy: torch.Tensor, *, postnet: bool = True,
                     variance_predictors: bool = True) -> dict[str, torch.Tensor]:
    """Loss terms and their sum ("loss"). Targets: mels (B, T, M), durations (B, N), pitch and
    energy at the model's feature level; computed in float32 whatever the autocast dtype. A model
    without a postnet or without pitch and energy predictors (FastSpeech) has no such terms."""
    frames = mels.shape[1]
    frame_valid = ~output.frame_mask[:, :frames]
    phoneme_valid = ~output.phoneme_mask
    mel, mel_postnet = output.mel[:, :frames].float(), output.mel_postnet[:, :frames].float()
    variance_valid = phoneme_valid if pitch.shape == durations.shape else frame_valid
    terms = {"mel_l1": _masked_mean((mel - mels).abs(), frame_valid)}
    if postnet:
        terms["postnet_l1"] = _masked_mean((mel_postnet - mels).abs(), frame_valid)
    terms["duration_mse"] = _masked_mean((output.log_duration.float() - torch.log1p(durations.float())) ** 2,
                                         phoneme_valid)
    if variance_predictors:
        terms["pitch_mse"] = _masked_mean((output.pitch.float()[:, :pitch.shape[1]] - pitch) ** 2, variance_valid)
        terms["energy_mse"] = _masked_mean((output.energy.float()[:, :energy.shape[1]] - energy) ** 2,
                                           variance_valid)
    terms["loss"] = sum(terms.values())
    return terms
