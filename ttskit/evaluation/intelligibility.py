"""Intelligibility: transcribe audio with pocketsphinx's offline English recogniser (its acoustic
model, language model and dictionary ship inside the wheel) and count word errors against the
transcript, both sides normalised the same way."""

from __future__ import annotations

import re
from typing import Any

import librosa
import numpy as np

from ttskit.text.distance import edit_distance
from ttskit.text.normalize import normalize_english

RECOGNISER_RATE = 16000


def spoken_words(text: str) -> list[str]:
    """Lower-case words as they are spoken: numbers, abbreviations and symbols expanded by the
    English normaliser, punctuation dropped, hyphens split."""
    return re.sub(r"[^a-z' ]+", " ", normalize_english(text).lower().replace("-", " ")).split()


class Recognizer:
    """pocketsphinx's default English model; one decoder, reused for every utterance."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder: Any = Decoder(loglevel="FATAL")

    def transcribe(self, wave: np.ndarray, sample_rate: int) -> str:
        audio = librosa.resample(np.asarray(wave, dtype=np.float32), orig_sr=sample_rate, target_sr=RECOGNISER_RATE,
                                 res_type="soxr_hq") if sample_rate != RECOGNISER_RATE else wave
        self.decoder.start_utt()
        self.decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis else ""

    def word_errors(self, wave: np.ndarray, sample_rate: int, transcript: str) -> tuple[int, int]:
        """(word errors, words in the transcript)."""
        truth = spoken_words(transcript)
        return edit_distance(truth, spoken_words(self.transcribe(wave, sample_rate))), len(truth)
