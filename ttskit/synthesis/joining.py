"""Joining sentence audio into one stream without clicks or loudness jumps.

Each sentence gets short raised-cosine fades at both ends (the vocoder's first and last samples
need not start or end at zero), a pause after it that depends on how it ends, and a gain that
moves its speech level towards the level of the sentences before it (at most +-6 dB), so a
sentence the model renders louder or softer does not jump out; a sentence that would still pass
full scale is scaled down to a peak of 0.99 instead of being clipped. `Joiner` works sentence by
sentence, so streaming output is exactly what the whole-file output would be.
"""

from __future__ import annotations

import numpy as np

FADE_S = 0.005
PAUSE_S = {".": 0.30, "!": 0.30, "?": 0.35, ";": 0.25, ":": 0.25, ",": 0.15}
DEFAULT_PAUSE_S = 0.25
MAX_GAIN_DB = 6.0
PEAK_LIMIT = 0.99  # a sentence that would pass full scale is scaled down to this rather than clipped


def speech_level(wave: np.ndarray, rate: int) -> float:
    """RMS of the loudest half of 20 ms frames: the level of the speech, not of its pauses."""
    frame = max(1, int(0.02 * rate))
    usable = len(wave) // frame * frame
    if usable == 0:
        return float(np.sqrt(np.mean(wave ** 2))) if len(wave) else 0.0
    energies = np.mean(wave[:usable].reshape(-1, frame) ** 2, axis=1)
    loud = np.sort(energies)[len(energies) // 2:]
    return float(np.sqrt(np.mean(loud)))


def pause_after(sentence: str) -> float:
    stripped = sentence.rstrip("\"')] ")
    return PAUSE_S.get(stripped[-1:], DEFAULT_PAUSE_S)


class Joiner:
    def __init__(self, sample_rate: int) -> None:
        self.rate = sample_rate
        self.reference: float | None = None  # speech level of the first sentence with speech

    def piece(self, wave: np.ndarray, sentence: str, last: bool) -> np.ndarray:
        """The sentence's audio, levelled and faded, followed by its pause (none after the last)."""
        wave = np.asarray(wave, dtype=np.float32).copy()
        level = speech_level(wave, self.rate)
        if level > 1e-4:
            if self.reference is None:
                self.reference = level
            else:
                gain_db = np.clip(20 * np.log10(self.reference / level), -MAX_GAIN_DB, MAX_GAIN_DB)
                wave *= np.float32(10 ** (gain_db / 20))
        peak = float(np.abs(wave).max()) if len(wave) else 0.0
        if peak > PEAK_LIMIT:  # clipping crackles; a sentence a little softer does not
            wave *= np.float32(PEAK_LIMIT / peak)
        fade = min(int(FADE_S * self.rate), len(wave) // 2)
        if fade > 0:
            ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade, dtype=np.float32)))
            wave[:fade] *= ramp
            wave[-fade:] *= ramp[::-1]
        if last:
            return wave
        return np.concatenate([wave, np.zeros(int(pause_after(sentence) * self.rate), dtype=np.float32)])
