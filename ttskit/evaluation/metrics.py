"""Objective distances between a reference recording and a synthetic (or vocoded) version of it.

Definitions (the numbers are only comparable between tools when these agree):

- Mel-cepstrum: the cosine-series coefficients of ttskit's log-mel of the wave (natural log of the
  mel magnitude, the audio config's analysis: by default 22050 Hz, 1024-point frames every 256
  samples, 80 bands 0-8000 Hz), i.e. c_d with log|X(w)| = c_0 + 2 sum_d c_d cos(d w) over the mel
  axis: the orthonormal DCT-II divided by sqrt(2 * n_mels). Coefficients c1..c24; c0 (overall
  level) is excluded. This is not SPTK's all-pass mel-cepstrum (no alpha warping of a full-band
  spectrum), so values are comparable between ttskit runs, not with papers using SPTK.
- Alignment: dynamic time warping of the two mel-cepstrum sequences (Euclidean cost, steps
  (1,1), (1,0), (0,1)), so different speaking rates do not count as spectral error.
- MCD (dB) = (10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2), averaged over the aligned frame pairs.
- F0: ttskit's YIN with its voicing decision, per mel frame. log-F0 RMSE: root mean square of
  ln(f0_hyp / f0_ref) over aligned pairs voiced in both, reported in cents (1200 / ln 2 per unit).
  Voicing decision error: the fraction of aligned pairs whose voicing differs.
- Duration ratio: hypothesis length over reference length, after trimming leading and trailing
  silence the same way for both (speaking rate: > 1 is slower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import librosa
import numpy as np
import scipy.fft
import torch

from ttskit.audio import MelSpectrogram
from ttskit.audio.io import trim_silence
from ttskit.audio.pitch import extract_pitch
from ttskit.config import AudioConfig

CEPSTRAL_COEFFICIENTS = 24  # c1..c24
MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)
CENTS_PER_LOG_UNIT = 1200.0 / math.log(2.0)


@dataclass(frozen=True)
class Distances:
    mcd_db: float
    log_f0_rmse_cents: float | None  # None when no aligned pair is voiced in both
    voicing_error: float
    duration_ratio: float
    frames_ref: int
    frames_hyp: int


def mel_cepstrum(wave: np.ndarray, analysis: MelSpectrogram) -> np.ndarray:
    """(frames, 24) mel-cepstral coefficients c1..c24."""
    log_mel = analysis(torch.from_numpy(np.asarray(wave, dtype=np.float32)))[0].numpy().astype(np.float64)
    coefficients = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=0) / math.sqrt(2 * log_mel.shape[0])
    return coefficients[1:CEPSTRAL_COEFFICIENTS + 1].T


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(pairs, 2) frame indices aligning a and b, in time order."""
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    return path[::-1]


def distances(reference: np.ndarray, hypothesis: np.ndarray, config: AudioConfig | None = None) -> Distances:
    """All distances between two waves at `config.sample_rate`."""
    config = config or AudioConfig()
    analysis = MelSpectrogram(config)
    ref, hyp = trim_silence(reference, config), trim_silence(hypothesis, config)
    for name, wave in (("reference", ref), ("hypothesis", hyp)):
        if len(wave) <= config.n_fft:
            raise ValueError(f"the {name} has no speech long enough to measure ({len(wave)} samples)")
    cep_ref, cep_hyp = mel_cepstrum(ref, analysis), mel_cepstrum(hyp, analysis)
    path = dtw_path(cep_ref, cep_hyp)
    differences = cep_ref[path[:, 0]] - cep_hyp[path[:, 1]]
    mcd = float(np.mean(MCD_CONSTANT * np.sqrt(np.sum(differences ** 2, axis=1))))
    pitch_ref, pitch_hyp = extract_pitch(ref, config), extract_pitch(hyp, config)
    i = np.minimum(path[:, 0], len(pitch_ref.f0) - 1)
    j = np.minimum(path[:, 1], len(pitch_hyp.f0) - 1)
    voiced_ref, voiced_hyp = pitch_ref.voiced[i], pitch_hyp.voiced[j]
    both = voiced_ref & voiced_hyp
    rmse = None
    if both.any():
        ratio = np.log(pitch_hyp.f0[j][both] / pitch_ref.f0[i][both])
        rmse = float(np.sqrt(np.mean(ratio ** 2)) * CENTS_PER_LOG_UNIT)
    return Distances(mcd, rmse, float(np.mean(voiced_ref != voiced_hyp)), len(hyp) / len(ref),
                     len(cep_ref), len(cep_hyp))


def character_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(character edits, reference characters) between two normalised transcripts, spaces included."""
    from ttskit.text.distance import edit_distance

    return edit_distance(list(reference), list(hypothesis)), len(reference)
