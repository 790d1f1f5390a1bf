"""Monotonic alignment search (MAS): the most probable monotonic, surjective path through a
(mel frames x text symbols) matrix of log-probabilities, as integer durations per symbol.

Every frame belongs to exactly one symbol, every symbol gets at least one frame, and the symbol
index never decreases (Glow-TTS; "One TTS Alignment To Rule Them All"). The dynamic program:

    Q[0, 0] = logp[0, 0]
    Q[t, j] = logp[t, j] + max(Q[t-1, j], Q[t-1, j-1])

then back from (T-1, N-1). The numba kernel runs the utterances of a batch in parallel (prange),
compiled on first use (cached on disk), with no build step; `maximum_path_reference` is the same
algorithm in plain Python, used by the tests and as the benchmark's baseline.
"""

from __future__ import annotations

import numba
import numpy as np

# Unreachable cells. Finite, so that adding a log-probability to it stays comparable.
_UNREACHABLE = -1e30


@numba.njit(cache=True, nogil=True)
def _path_one(logp: np.ndarray, n_frames: int, n_symbols: int, scores: np.ndarray, durations: np.ndarray) -> None:
    """One utterance: logp (T, N) float32, scores a (T, N) float64 scratch buffer (float64 so that the
    sums over thousands of frames decide ties exactly as the reference does), durations (N,) out."""
    for t in range(n_frames):
        # Cells reachable at frame t: at most t symbols advanced, and enough frames left to reach the last.
        low = max(0, n_symbols - (n_frames - t))
        high = min(n_symbols - 1, t)
        if low > 0:
            scores[t, low - 1] = _UNREACHABLE
        if high + 1 < n_symbols:
            scores[t, high + 1] = _UNREACHABLE
        for j in range(low, high + 1):
            if t == 0:
                scores[t, j] = logp[t, j]
                continue
            stay = scores[t - 1, j] if j <= t - 1 else _UNREACHABLE
            move = scores[t - 1, j - 1] if j > 0 else _UNREACHABLE
            scores[t, j] = logp[t, j] + (stay if stay >= move else move)
    for j in range(n_symbols):
        durations[j] = 0
    j = n_symbols - 1
    for t in range(n_frames - 1, -1, -1):
        durations[j] += 1
        if t == 0:
            break
        # Step back to the previous symbol when that is the better (or the only) way here.
        if j > 0 and (j == t or scores[t - 1, j - 1] > scores[t - 1, j]):
            j -= 1


@numba.njit(cache=True, parallel=True)
def _paths(logp: np.ndarray, frame_lengths: np.ndarray, symbol_lengths: np.ndarray, durations: np.ndarray) -> None:
    for b in numba.prange(logp.shape[0]):
        scores = np.empty((frame_lengths[b], symbol_lengths[b]), dtype=np.float64)
        _path_one(logp[b], frame_lengths[b], symbol_lengths[b], scores, durations[b])


def _check(frame_lengths: np.ndarray, symbol_lengths: np.ndarray, shape: tuple[int, ...]) -> None:
    if len(shape) != 3 or len(frame_lengths) != shape[0] or len(symbol_lengths) != shape[0]:
        raise ValueError(f"expected logp (B, frames, symbols) and B lengths each; got {shape}, "
                         f"{len(frame_lengths)} and {len(symbol_lengths)}")
    if np.any(symbol_lengths < 1) or np.any(frame_lengths < symbol_lengths):
        bad = int(np.argmax((symbol_lengths < 1) | (frame_lengths < symbol_lengths)))
        raise ValueError(f"utterance {bad} of the batch: {frame_lengths[bad]} frames cannot give each of its "
                         f"{symbol_lengths[bad]} symbols a frame")
    if np.any(frame_lengths > shape[1]) or np.any(symbol_lengths > shape[2]):
        raise ValueError(f"lengths exceed the matrix {shape}")


def maximum_path(logp: np.ndarray, frame_lengths: np.ndarray, symbol_lengths: np.ndarray) -> np.ndarray:
    """Durations (B, N) int64 of the best monotonic path through each logp[b, :T_b, :N_b]
    (float32, (B, T, N)); zero past each utterance's symbols. Sum over symbols == T_b."""
    logp = np.ascontiguousarray(logp, dtype=np.float32)
    frame_lengths = np.asarray(frame_lengths, dtype=np.int64)
    symbol_lengths = np.asarray(symbol_lengths, dtype=np.int64)
    _check(frame_lengths, symbol_lengths, logp.shape)
    durations = np.zeros((logp.shape[0], logp.shape[2]), dtype=np.int64)
    _paths(logp, frame_lengths, symbol_lengths, durations)
    return durations


def maximum_path_reference(logp: np.ndarray) -> np.ndarray:
    """The same dynamic program for one (T, N) matrix in plain Python (tests, benchmark baseline)."""
    n_frames, n_symbols = logp.shape
    scores = [[_UNREACHABLE] * n_symbols for _ in range(n_frames)]
    for t in range(n_frames):
        for j in range(max(0, n_symbols - (n_frames - t)), min(n_symbols - 1, t) + 1):
            if t == 0:
                scores[t][j] = float(logp[t, j])
            else:
                best = max(scores[t - 1][j] if j <= t - 1 else _UNREACHABLE, scores[t - 1][j - 1] if j else _UNREACHABLE)
                scores[t][j] = float(logp[t, j]) + best
    durations = [0] * n_symbols
    j = n_symbols - 1
    for t in range(n_frames - 1, -1, -1):
        durations[j] += 1
        if t > 0 and j > 0 and (j == t or scores[t - 1][j - 1] > scores[t - 1][j]):
            j -= 1
    return np.array(durations, dtype=np.int64)
