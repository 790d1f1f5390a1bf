"""F0 per mel frame: a vectorised YIN with a voicing decision, octave-jump cleanup and
interpolation through unvoiced frames; pYIN (librosa) as the slower high-quality option.

Frame j of the pitch track is centred where mel frame j is centred (sample j * hop + hop / 2,
see `MelSpectrogram`), so pitch, energy and mel always have the same length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ttskit.config import AudioConfig

PitchMethod = Literal["yin", "pyin"]


@dataclass(frozen=True)
class PitchTrack:
    f0: np.ndarray  # (frames,) Hz, unvoiced frames filled by interpolation (all zero if nothing is voiced)
    voiced: np.ndarray  # (frames,) bool, the voicing decision before interpolation

    @property
    def voiced_fraction(self) -> float:
        return float(self.voiced.mean()) if self.voiced.size else 0.0


def _centred_frames(wave: np.ndarray, n_frames: int, frame_length: int, hop: int) -> np.ndarray:
    """(n_frames, frame_length) view whose row j is centred on sample j * hop + hop / 2."""
    half = frame_length // 2
    # float32 halves the FFT cost; pitch needs nowhere near float64 precision.
    padded = np.pad(wave.astype(np.float32), (half, half + hop + frame_length), mode="constant")
    start = padded[hop // 2:]
    stride = start.strides[0]
    return as_strided(start, shape=(n_frames, frame_length), strides=(hop * stride, stride), writeable=False)


def _cmndf(frames: np.ndarray, window: int, max_lag: int) -> np.ndarray:
    """YIN's cumulative mean normalised difference d'(tau), tau = 0..max_lag, for every frame.

    d(tau) = sum_j (x_j - x_{j+tau})^2 over j < window = E(0) + E(tau) - 2 r(tau), with the
    cross-correlation r from one FFT per frame and the energies E from a cumulative sum.
    """
    n_fft = 1 << int(np.ceil(np.log2(window + max_lag + 1)))
    spectrum = np.fft.rfft(frames, n_fft, axis=1)
    head = np.fft.rfft(frames[:, :window], n_fft, axis=1)
    correlation = np.fft.irfft(spectrum * np.conj(head), n_fft, axis=1)[:, :max_lag + 1]
    squares = np.cumsum(np.pad(frames ** 2, ((0, 0), (1, 0))), axis=1)
    energy = squares[:, window:window + max_lag + 1] - squares[:, :max_lag + 1]
    difference = np.maximum(energy[:, :1] + energy - 2 * correlation, 0.0)
    cumulative = np.cumsum(difference[:, 1:], axis=1)
    lags = np.arange(1, max_lag + 1)
    normalised = np.ones_like(difference)
    normalised[:, 1:] = difference[:, 1:] * lags / np.maximum(cumulative, 1e-12)
    return normalised


def yin(wave: np.ndarray, config: AudioConfig, n_frames: int, fmin: float = 60.0, fmax: float = 800.0,
        threshold: float = 0.15, voicing_threshold: float = 0.3, silence_db: float = -45.0) -> PitchTrack:
    """Raw YIN estimate and voicing for `n_frames` mel frames (no cleanup; see `extract_pitch`)."""
    sr, hop = config.sample_rate, config.hop_length
    min_lag = max(2, int(np.floor(sr / fmax)))
    max_lag = int(np.ceil(sr / fmin))
    window = max_lag  # integrate over at least one period of the lowest pitch
    frames = _centred_frames(wave, n_frames, window + max_lag + 1, hop)
    d = _cmndf(frames, window, max_lag)
    search = d[:, min_lag:max_lag]
    # First dip under the threshold that is a local minimum (YIN step 4), else the global minimum.
    below = search < threshold
    falling_next = np.zeros_like(below)
    falling_next[:, :-1] = search[:, 1:] >= search[:, :-1]
    candidates = below & falling_next
    has_dip = candidates.any(axis=1)
    lag_index = np.where(has_dip, candidates.argmax(axis=1), search.argmin(axis=1))
    rows = np.arange(n_frames)
    best = search[rows, lag_index]
    # Parabolic interpolation around the chosen lag for sub-sample precision.
    left = search[rows, np.clip(lag_index - 1, 0, search.shape[1] - 1)]
    right = search[rows, np.clip(lag_index + 1, 0, search.shape[1] - 1)]
    curvature = left - 2 * best + right
    shift = np.where(np.abs(curvature) > 1e-12, 0.5 * (left - right) / np.where(curvature == 0, 1, curvature), 0.0)
    lag = lag_index + min_lag + np.clip(shift, -1, 1)
    f0 = sr / lag
    rms = np.sqrt(np.mean(frames[:, :window] ** 2, axis=1))
    loud_enough = 20 * np.log10(np.maximum(rms, 1e-10) / max(float(rms.max()), 1e-10)) > silence_db
    voiced = (best < voicing_threshold) & loud_enough & (f0 >= fmin) & (f0 <= fmax)
    return PitchTrack(f0=np.where(voiced, f0, 0.0), voiced=voiced)


def clean_pitch(track: PitchTrack, max_jump_octaves: float = 0.6, min_run: int = 3,
                context: int = 25) -> PitchTrack:
    """Fix octave jumps against the local median, drop voiced runs shorter than `min_run`
    frames, then fill unvoiced frames by linear interpolation (held flat at the edges)."""
    f0, voiced = track.f0.copy(), track.voiced.copy()
    if voiced.sum() >= 3:
        log_f0 = np.log2(np.where(voiced, f0, 1.0))
        index = np.flatnonzero(voiced)
        for i in index:
            nearby = index[np.abs(index - i) <= context]
            reference = np.median(log_f0[nearby])
            jump = log_f0[i] - reference
            if abs(jump) > max_jump_octaves:
                octaves = np.round(jump)
                corrected = jump - octaves
                if octaves != 0 and abs(corrected) <= max_jump_octaves / 2:
                    f0[i] = 2 ** (log_f0[i] - octaves)
                else:
                    voiced[i] = False
    # Short voiced islands are usually noise or a misfire at a consonant.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start < min_run:
            voiced[start:end] = False
    f0 = np.where(voiced, f0, 0.0)
    if not voiced.any():
        return PitchTrack(np.zeros_like(f0, dtype=np.float32), voiced)
    positions = np.flatnonzero(voiced)
    filled = np.interp(np.arange(len(f0)), positions, f0[positions])
    return PitchTrack(filled.astype(np.float32), voiced)


def pyin(wave: np.ndarray, config: AudioConfig, n_frames: int, fmin: float = 60.0,
         fmax: float = 800.0) -> PitchTrack:
    """librosa's probabilistic YIN (HMM-smoothed; slow but robust), on the mel frame grid."""
    import librosa

    frame_length = 1 << int(np.ceil(np.log2(2 * config.sample_rate / fmin)))
    # librosa centres frame i on sample i * hop; ours sit half a hop later, so shift the wave.
    shifted = np.pad(wave, (0, config.hop_length))[config.hop_length // 2:]
    f0, voiced, _ = librosa.pyin(shifted, fmin=fmin, fmax=fmax, sr=config.sample_rate, frame_length=frame_length,
                                 hop_length=config.hop_length, center=True)
    f0 = np.nan_to_num(f0[:n_frames], nan=0.0)
    voiced = voiced[:n_frames].astype(bool)
    if len(f0) < n_frames:
        f0 = np.pad(f0, (0, n_frames - len(f0)))
        voiced = np.pad(voiced, (0, n_frames - len(voiced)))
    return PitchTrack(f0, voiced)


def extract_pitch(wave: np.ndarray, config: AudioConfig, method: PitchMethod = "yin", fmin: float = 60.0,
                  fmax: float = 800.0) -> PitchTrack:
    """Cleaned, interpolated F0 for each mel frame of `wave` (len(wave) // hop frames)."""
    n_frames = config.num_frames(len(wave))
    raw = (yin if method == "yin" else pyin)(wave, config, n_frames, fmin=fmin, fmax=fmax)
    return clean_pitch(raw)
