"""An utterance's frame features (mel, energy, pitch) and its aligned files in WORK: what every
aligner ends with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ttskit.audio import MelSpectrogram, save_wav
from ttskit.audio.pitch import PitchTrack, extract_pitch
from ttskit.config import Config
from ttskit.text.frontend import PAUSE_SYMBOLS, WORD_BOUNDARY
from ttskit.work import array_path, save_array, wav_path


class Skip(Exception):
    """This utterance is excluded; the message is the reason shown in the report."""


def symbol_average(values: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Mean of frame values over each symbol's frames; a zero-length symbol takes the value at
    its boundary (not 0, which normalisation would turn into a large outlier)."""
    ends = np.cumsum(durations)
    starts = ends - durations
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    out = np.empty(len(durations), dtype=np.float32)
    positive = durations > 0
    out[positive] = (sums[ends[positive]] - sums[starts[positive]]) / durations[positive]
    boundary = np.clip(starts[~positive], 0, len(values) - 1)
    out[~positive] = values[boundary]
    return out


@dataclass(frozen=True)
class FrameFeatures:
    """Per mel frame of one wave: log-mel (n_mels, T), energy (T,) and pitch with its voicing."""

    mel: np.ndarray
    energy: np.ndarray
    pitch: PitchTrack

    def frames(self, start: int, end: int) -> FrameFeatures:
        return FrameFeatures(self.mel[:, start:end], self.energy[start:end],
                             PitchTrack(self.pitch.f0[start:end], self.pitch.voiced[start:end]))


def frame_features(wave: np.ndarray, mel: MelSpectrogram, config: Config) -> FrameFeatures:
    """Log-mel, energy and pitch of every mel frame of `wave`; Skip when no frame is voiced."""
    prep = config.preprocess
    with torch.inference_mode():
        spectrogram, energy = mel.mel_and_energy(torch.from_numpy(np.ascontiguousarray(wave))[None])
    pitch = extract_pitch(wave, config.audio, prep.pitch_method, prep.pitch_fmin, prep.pitch_fmax)
    if not pitch.voiced.any():
        raise Skip("no voiced frames found (pitch)")
    return FrameFeatures(spectrogram[0].numpy().astype(np.float32), energy[0].numpy().astype(np.float32), pitch)


def write_utterance(work: Path, uid: str, config: Config, wave: np.ndarray, features: FrameFeatures,
                    symbols: list[str], durations: np.ndarray | None, cut_start_sample: int) -> dict[str, Any]:
    """Write an aligned utterance's wav, mel, pitch, energy and durations into WORK (pitch and energy
    averaged per symbol at phoneme level) and return its meta fields. Every aligner ends here;
    `durations` None (`--aligner none`): no duration file, pitch and energy per frame."""
    audio, prep = config.audio, config.preprocess
    n_frames = features.mel.shape[1]
    f0, energy = features.pitch.f0, features.energy
    if durations is not None:
        durations = durations.astype(np.int64)
        if n_frames != durations.sum():  # guaranteed by the aligners; training relies on it
            raise AssertionError(f"{uid}: {n_frames} mel frames but durations sum to {durations.sum()}")
        if prep.feature_level == "phoneme":
            f0, energy = symbol_average(f0, durations), symbol_average(energy, durations)
    save_wav(wav_path(work, uid), wave, audio.sample_rate)
    save_array(array_path(work, "mel", uid), np.ascontiguousarray(features.mel, dtype=np.float32))
    save_array(array_path(work, "pitch", uid), f0.astype(np.float32))
    save_array(array_path(work, "energy", uid), energy.astype(np.float32))
    fields: dict[str, Any] = {"phonemes": symbols, "n_frames": int(n_frames), "cut_start_sample": cut_start_sample,
                              "duration_s": round(len(wave) / audio.sample_rate, 4),
                              "voiced_fraction": round(features.pitch.voiced_fraction, 4)}
    if durations is not None:
        save_array(array_path(work, "duration", uid), durations)
        speech = [d for s, d in zip(symbols, durations) if s not in PAUSE_SYMBOLS and s != WORD_BOUNDARY]
        fields["phones_per_s"] = round(len(speech) / max(sum(speech) * audio.frame_shift_s, 1e-6), 3)
    else:  # no boundaries: the rate over the whole clip
        speech = [s for s in symbols if s not in PAUSE_SYMBOLS and s != WORD_BOUNDARY]
        fields["phones_per_s"] = round(len(speech) / max(len(wave) / audio.sample_rate, 1e-6), 3)
    return fields
