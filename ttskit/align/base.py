"""The aligner interface and the one conversion from timed symbols to integer mel-frame durations."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ttskit.config import AudioConfig
from ttskit.text.frontend import PAUSE_SYMBOLS, SENTENCE_ENDS, TextAnalysis


class AlignmentRejected(ValueError):
    """The aligner failed or its result looks wrong; the utterance is excluded with this reason."""


@dataclass(frozen=True)
class TimedSymbol:
    symbol: str
    start: float  # seconds from the start of the wave given to the aligner
    end: float


@dataclass(frozen=True)
class FrameAlignment:
    """Symbols with integer mel-frame durations over wave[start_sample:end_sample].

    `durations.sum() == (end_sample - start_sample) // hop`, always.
    """

    symbols: list[str]
    durations: np.ndarray  # int64, one per symbol
    start_sample: int
    end_sample: int

    @property
    def n_frames(self) -> int:
        return int(self.durations.sum())


class Aligner(ABC):
    """Finds where each symbol of an utterance is spoken."""

    name: str

    @abstractmethod
    def align(self, utterance_id: str, wave: np.ndarray, analysis: TextAnalysis) -> list[TimedSymbol]:
        """Timed symbols covering the speech (contiguous, in order), leading silence excluded.

        Raises AlignmentRejected when the result cannot be trusted.
        """


def to_frames(timed: list[TimedSymbol], config: AudioConfig, n_samples: int) -> FrameAlignment:
    """Timed symbols -> mel-frame durations of the span they cover.

    Boundaries are rounded from cumulative times, never per-symbol lengths, so rounding errors
    cannot accumulate (10 ms aligner frames do not divide the 11.6 ms mel hop).
    """
    if not timed:
        raise AlignmentRejected("the aligner returned nothing")
    sr, hop = config.sample_rate, config.hop_length
    start_sample = int(round(timed[0].start * sr))
    n_frames = min(int(round((timed[-1].end - timed[0].start) * sr / hop)), (n_samples - start_sample) // hop)
    if n_frames <= 0:
        raise AlignmentRejected("the aligned speech is shorter than one frame")
    ends = np.array([t.end for t in timed], dtype=np.float64)
    boundaries = np.clip(np.round((ends - timed[0].start) * sr / hop).astype(np.int64), 0, n_frames)
    boundaries = np.maximum.accumulate(boundaries)
    boundaries[-1] = n_frames
    durations = np.diff(np.concatenate([[0], boundaries]))
    return FrameAlignment([t.symbol for t in timed], durations, start_sample, start_sample + n_frames * hop)


def check_plausible(timed: list[TimedSymbol], max_phone_s: float, min_rate: float, max_rate: float) -> None:
    """Reject alignments that usually mean a transcript/audio mismatch."""
    speech = [t for t in timed if t.symbol not in PAUSE_SYMBOLS]
    if not speech:
        raise AlignmentRejected("no speech symbols were aligned")
    longest = max(speech, key=lambda t: t.end - t.start)
    if longest.end - longest.start > max_phone_s:
        raise AlignmentRejected(f"phoneme {longest.symbol} lasts {longest.end - longest.start:.2f} s at "
                                f"{longest.start:.2f} s (limit {max_phone_s} s): transcript and audio may not match")
    speaking_time = sum(t.end - t.start for t in speech)
    rate = len(speech) / max(speaking_time, 1e-6)
    if not min_rate <= rate <= max_rate:
        raise AlignmentRejected(f"{rate:.1f} phonemes per second of speech is outside [{min_rate}, {max_rate}]: "
                                "transcript and audio may not match")


def attach_pauses(words: list[list[TimedSymbol]], units: list[list[str]], silences: dict[int, tuple[float, float]],
                  trailing_silence: float, max_trailing_pause_s: float) -> list[TimedSymbol]:
    """Join aligned words with the text's pauses and the silences the aligner found.

    `silences[i]` is a silence found before word i (i >= 1). A text pause takes the silence at
    its place (or none: zero length); a silence where the text has no pause becomes "sp". The
    sentence-end pause keeps up to `max_trailing_pause_s` of the trailing silence.
    """
    pauses_before: list[list[str]] = [[] for _ in range(len(words) + 1)]
    word_index = 0
    for unit in units:
        if len(unit) == 1 and unit[0] in PAUSE_SYMBOLS:
            pauses_before[word_index].append(unit[0])
        elif unit and unit != [" "]:
            word_index += 1
    out: list[TimedSymbol] = []
    for i, word in enumerate(words):
        if i > 0:
            boundary = word[0].start
            gap = silences.get(i)
            pauses = pauses_before[i] or (["sp"] if gap else [])
            for n, pause in enumerate(pauses):
                if n == 0 and gap:
                    out.append(TimedSymbol(pause, gap[0], gap[1]))
                else:
                    out.append(TimedSymbol(pause, boundary, boundary))
        out.extend(word)
    end = words[-1][-1].end
    for n, pause in enumerate(pauses_before[len(words)]):
        keep = min(trailing_silence, max_trailing_pause_s) if n == 0 and pause in SENTENCE_ENDS else 0.0
        out.append(TimedSymbol(pause, end, end + keep))
        end += keep
    return out
