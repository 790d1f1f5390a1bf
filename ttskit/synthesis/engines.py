"""Acoustic engines: what runs the acoustic model for `Synthesizer`.

An engine takes a padded batch as numpy arrays (phoneme ids (B, N) int64, lengths (B,), speaker
ids (B,), and per-utterance speed, pitch shift in semitones and energy scale (B,) float32) and
returns `AcousticFrames`. `TorchAcoustic` runs the model's `AcousticGraph` in PyTorch;
`ttskit.synthesis.onnx_backend.OnnxAcoustic` runs the same graph exported to ONNX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ttskit.checkpoints.acoustic import AcousticModel
from ttskit.models.inference_graph import AcousticGraph


@dataclass
class AcousticFrames:
    mel: torch.Tensor  # (B, n_mels, T) natural-log mel, silence past each length
    frames: list[int]  # frames of each utterance
    f0: torch.Tensor  # (B, T) Hz, the model's pitch with the controls applied


class AcousticEngine(Protocol):
    def __call__(self, phonemes: np.ndarray, lengths: np.ndarray, speakers: np.ndarray, speed: np.ndarray,
                 pitch: np.ndarray, energy: np.ndarray) -> AcousticFrames: ...


def acoustic_graph(acoustic: AcousticModel) -> AcousticGraph:
    """The inference graph of a loaded acoustic model, with its speakers' pitch statistics (in
    speaker-id order) and the mel floor as the silence its padding gets."""
    names = sorted(acoustic.speakers, key=acoustic.speakers.__getitem__)
    pitch = acoustic.stats["pitch"]["per_speaker"]
    return AcousticGraph(acoustic.model, [(pitch[n]["mean"], pitch[n]["std"]) for n in names],
                         acoustic.stats["energy"]["mean"], acoustic.stats["energy"]["std"],
                         math.log(acoustic.audio.mel_floor))


class TorchAcoustic:
    """The acoustic graph in PyTorch, on the model's device, float32."""

    def __init__(self, acoustic: AcousticModel, device: torch.device) -> None:
        self.graph = acoustic_graph(acoustic).to(device)
        self.device = device

    @torch.inference_mode()
    def __call__(self, phonemes: np.ndarray, lengths: np.ndarray, speakers: np.ndarray, speed: np.ndarray,
                 pitch: np.ndarray, energy: np.ndarray) -> AcousticFrames:
        inputs = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
                  for a in (phonemes, lengths, speakers, speed, pitch, energy)]
        mel, frame_lengths, f0, _ = self.graph(*inputs)
        return AcousticFrames(mel.float(), frame_lengths.tolist(), f0.float())
