"""Acoustic engines: what runs the acoustic model for `Synthesizer`.

An engine takes a padded batch as numpy arrays (phoneme ids (B, N) int64, lengths (B,), speaker
ids (B,), and per-utterance speed, pitch shift in semitones and energy scale (B,) float32) and
returns `AcousticFrames`. `TorchAcoustic` runs the model's `AcousticGraph` in PyTorch;
`ttskit.synthesis.onnx_backend.OnnxAcoustic` runs the same graph exported to ONNX;
`Tacotron2Acoustic` runs Tacotron2's autoregressive decoder.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch.nn import functional as F

from ttskit.checkpoints.acoustic import AcousticModel
from ttskit.models.inference_graph import AcousticGraph
from ttskit.models.tacotron2 import Tacotron2


@dataclass
class AcousticFrames:
    mel: torch.Tensor  # (B, n_mels, T) natural-log mel, silence past each length
    frames: list[int]  # frames of each utterance
    f0: torch.Tensor  # (B, T) Hz, the model's pitch with the controls applied


class AcousticEngine(Protocol):
    def __call__(self, phonemes: np.ndarray, lengths: np.ndarray, speakers: np.ndarray, speed: np.ndarray,
                 pitch: np.ndarray, energy: np.ndarray) -> AcousticFrames: ...


def engine_notes(engine: object) -> list[str]:
    """What the engine had to say about its last calls (emptied)."""
    notes = getattr(engine, "notes", None)
    if not notes:
        return []
    taken = list(notes)
    notes.clear()
    return taken


def unsupported_controls(engine: object, pitch: float, energy: float) -> str | None:
    """Why `engine` cannot honour these controls (None: it can)."""
    check = getattr(engine, "unsupported", None)
    return check(pitch, energy) if check is not None else None


def acoustic_engine(acoustic: AcousticModel, device: torch.device) -> AcousticEngine:
    """The torch engine for a loaded acoustic model: its graph (FastSpeech2, FastSpeech), or the
    autoregressive decoder (Tacotron2)."""
    return Tacotron2Acoustic(acoustic, device) if isinstance(acoustic.model, Tacotron2) \
        else TorchAcoustic(acoustic, device)


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


class Tacotron2Acoustic:
    """Tacotron2's batched free-running decoder (stop token, max-steps bound) behind the engine
    interface. `speed` stretches the mel in time (linear interpolation between frames: the
    duration changes, the spectrum does not); it predicts no pitch or energy, so those controls
    are refused (`unsupported`), and its F0 output is 0 (a vocoder that uses F0 estimates it)."""

    def __init__(self, acoustic: AcousticModel, device: torch.device) -> None:
        self.model, self.device = acoustic.model.to(device).eval(), device
        self.silence = math.log(acoustic.audio.mel_floor)
        self.notes: list[str] = []  # the decoder's warnings (max steps reached), for the synthesiser to report

    @staticmethod
    def unsupported(pitch: float, energy: float) -> str | None:
        if pitch != 0.0 or energy != 1.0:
            return ("--pitch and --energy are not supported by tacotron2 (it predicts no pitch or energy); "
                    "--speed is, or use a FastSpeech2 model")
        return None

    @torch.inference_mode()
    def __call__(self, phonemes: np.ndarray, lengths: np.ndarray, speakers: np.ndarray, speed: np.ndarray,
                 pitch: np.ndarray, energy: np.ndarray) -> AcousticFrames:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            out = self.model.infer(torch.from_numpy(phonemes).to(self.device),
                                   torch.from_numpy(lengths).to(self.device), torch.from_numpy(speakers).to(self.device))
        self.notes += [str(w.message) for w in caught]
        mels, frames = [], []
        for row, n in enumerate(out.frame_lengths.tolist()):
            mel = out.mel_postnet[row, :n].float().T.unsqueeze(0)  # (1, M, n)
            wanted = max(1, round(n / float(speed[row])))
            if wanted != n and n > 1:
                mel = F.interpolate(mel, size=wanted, mode="linear", align_corners=True)
            mels.append(mel[0])
            frames.append(mel.shape[-1])
        width = max(frames)
        padded = torch.full((len(mels), mels[0].shape[0], width), self.silence, device=self.device)
        for row, mel in enumerate(mels):
            padded[row, :, :mel.shape[-1]] = mel
        return AcousticFrames(padded, frames, torch.zeros(len(mels), width, device=self.device))
