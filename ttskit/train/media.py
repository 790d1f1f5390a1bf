"""Validation media for TensorBoard: predicted vs target mel, pitch curves (Tacotron2: the
attention alignment), and audio."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ttskit.audio import MelSpectrogram, griffin_lim
from ttskit.data.dataset import WorkDataset, collate
from ttskit.models.fastspeech2 import FastSpeech2
from ttskit.models.tacotron2 import Tacotron2
from ttskit.train.acoustic_step import teacher_forced


@torch.no_grad()
def log_validation_media(writer: Any, model: FastSpeech2 | Tacotron2, val_set: WorkDataset, mel: MelSpectrogram, step: int,
                         device: torch.device, vocoder: Any = None) -> None:
    """One validation utterance: its teacher-forced mel beside the recording's, the predicted and
    true pitch, and the free-running synthesis made audible with the vocoder (Griffin-Lim
    without one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(val_set) == 0:
        return
    model.eval()
    batch = collate([val_set[0]]).to(device)
    if isinstance(model, Tacotron2):
        _tacotron2_media(writer, model, batch, mel, step, vocoder)
        return
    forced, _ = teacher_forced(model, model, batch)
    free = model(batch.phonemes, batch.phoneme_lengths, batch.speakers)
    figure, axes = plt.subplots(2, 1, figsize=(8, 5), dpi=90)
    _mels(axes, forced.mel_postnet[0], batch.mels[0])
    figure.tight_layout()
    writer.add_figure("val/mel", figure, step)
    plt.close(figure)
    if model.config.variance_predictors:  # FastSpeech predicts no pitch
        figure, axis = plt.subplots(figsize=(8, 3), dpi=90)
        axis.plot(batch.pitch[0].cpu().numpy(), label="target")
        axis.plot(forced.pitch[0].float().cpu().numpy(), label="predicted")
        axis.set_xlabel("phoneme" if val_set.stats["feature_level"] == "phoneme" else "frame")
        axis.set_ylabel("normalised pitch")
        axis.legend()
        figure.tight_layout()
        writer.add_figure("val/pitch", figure, step)
        plt.close(figure)
    frames = int(free.frame_lengths[0])
    if frames > 0:
        predicted = free.mel_postnet[0, :frames].float().cpu().T
        if vocoder is not None:
            writer.add_audio("val/vocoder", vocoder(predicted).cpu(), step, sample_rate=mel.config.sample_rate)
        else:
            wave = griffin_lim(predicted, mel.cpu())
            writer.add_audio("val/griffin_lim", wave.unsqueeze(0), step, sample_rate=mel.config.sample_rate)


def log_vocoder_media(writer: Any, tag: str, recorded_mel: torch.Tensor, generated_mel: torch.Tensor,
                      wave: torch.Tensor, step: int, sample_rate: int) -> None:
    """Recorded vs generated log-mel as one figure, and the generated audio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 1, figsize=(8, 5), dpi=90, sharex=True)
    for axis, image, title in ((axes[0], recorded_mel, "recorded"), (axes[1], generated_mel, "vocoder")):
        axis.imshow(image.float().cpu().numpy(), origin="lower", aspect="auto", interpolation="none")
        axis.set_title(title)
    axes[1].set_xlabel("frame")
    figure.tight_layout()
    writer.add_figure(f"{tag}/mel", figure, step)
    plt.close(figure)
    writer.add_audio(f"{tag}/audio", wave.float().cpu().clamp(-1, 1).unsqueeze(0), step, sample_rate=sample_rate)


def _mels(axes: Any, predicted: torch.Tensor, recorded: torch.Tensor) -> None:
    """The teacher-forced mel above the recorded one, (T, M) each."""
    for axis, image, title in ((axes[0], predicted, "predicted (teacher-forced)"), (axes[1], recorded, "recorded")):
        axis.imshow(image.float().cpu().numpy().T, origin="lower", aspect="auto", interpolation="none")
        axis.set_title(title)


def _tacotron2_media(writer: Any, model: Tacotron2, batch: Any, mel: Any, step: int, vocoder: Any) -> None:
    """The teacher-forced alignment (a diagonal once it has learnt to attend), the mel, and the
    free-running synthesis (bounded at 3x the recording's length) made audible."""
    import matplotlib.pyplot as plt

    forced, _ = teacher_forced(model, model, batch)
    steps = -(-int(batch.frame_lengths[0]) // model.config.reduction)
    figure, axes = plt.subplots(3, 1, figsize=(8, 8), dpi=90)
    axes[0].imshow(forced.alignments[0, :steps, :int(batch.phoneme_lengths[0])].float().cpu().numpy().T,
                   origin="lower", aspect="auto", interpolation="none")
    axes[0].set_xlabel("decoder step")
    axes[0].set_ylabel("symbol")
    axes[0].set_title("alignment (teacher-forced)")
    _mels(axes[1:], forced.mel_postnet[0], batch.mels[0])
    figure.tight_layout()
    writer.add_figure("val/alignment_and_mel", figure, step)
    plt.close(figure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an unaligned model runs to the bound: expected early on
        free = model.infer(batch.phonemes, batch.phoneme_lengths, batch.speakers, max_decoder_steps=3 * steps + 10)
    frames = int(free.frame_lengths[0])
    predicted = free.mel_postnet[0, :frames].float().cpu().T
    if vocoder is not None:
        writer.add_audio("val/vocoder", vocoder(predicted).cpu(), step, sample_rate=mel.config.sample_rate)
    else:
        writer.add_audio("val/griffin_lim", griffin_lim(predicted, mel.cpu()).unsqueeze(0), step,
                         sample_rate=mel.config.sample_rate)
