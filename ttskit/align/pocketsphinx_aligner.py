"""Forced alignment with the English acoustic model inside the pocketsphinx wheel (no download)."""

from __future__ import annotations

import librosa
import numpy as np

from ttskit.align.base import Aligner, AlignmentRejected, TimedSymbol, attach_pauses, check_plausible
from ttskit.config import AudioConfig
from ttskit.text.arpabet import WITHOUT_STRESS
from ttskit.text.frontend import PAUSE_SYMBOLS, TextAnalysis

ALIGNER_RATE = 16000  # the model's sample rate
ALIGNER_FRAME_S = 0.01  # pocketsphinx reports 10 ms frames
# Silence added at both ends: without it pocketsphinx fails outright ("Failed to stop utterance
# processing") on some clips whose speech reaches the edges; 3 of the 100 mini-corpus clips.
EDGE_PAD_S = 0.1
_PHONES = set(WITHOUT_STRESS)


class PocketsphinxAligner(Aligner):
    """Two-pass pocketsphinx alignment (words, then phones) of ttskit's own pronunciations.

    Each word is added to the decoder's dictionary under a name made from the front end's
    phonemes, so the aligned phones map one to one onto ours (stress restored afterwards),
    whatever CMUdict variant or G2P guess the front end chose.
    """

    name = "pocketsphinx"

    def __init__(self, config: AudioConfig, max_phone_s: float = 0.5, min_rate: float = 4.0,
                 max_rate: float = 30.0, max_trailing_pause_s: float = 0.15) -> None:
        from pocketsphinx import Decoder

        self.config = config
        self.max_phone_s, self.min_rate, self.max_rate = max_phone_s, min_rate, max_rate
        self.max_trailing_pause_s = max_trailing_pause_s
        self.decoder = Decoder(lm=None, loglevel="FATAL")

    def _word_key(self, phones: list[str]) -> str:
        plain = [p.rstrip("012") for p in phones]
        unknown = [p for p in plain if p not in _PHONES]
        if unknown:
            raise AlignmentRejected(f"the pocketsphinx aligner needs ARPAbet symbols (english front end); "
                                    f"got {unknown}")
        key = "ttskit_" + "_".join(plain).lower()
        if self.decoder.lookup_word(key) is None:
            self.decoder.add_word(key, " ".join(plain), True)
        return key

    def _decode(self, pcm: bytes) -> None:
        # The feature front end adapts across utterances (cepstral mean, noise floor), which made
        # an alignment depend on the clips decoded before it, so shards, resumed runs and --jobs
        # disagreed. Rebuilding it (28 us) makes every utterance start from the same state.
        self.decoder.reinit_feat()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()

    def align(self, utterance_id: str, wave: np.ndarray, analysis: TextAnalysis) -> list[TimedSymbol]:
        word_units = [u for u in analysis.units if u and u != [" "] and not (len(u) == 1 and u[0] in PAUSE_SYMBOLS)]
        if not word_units:
            raise AlignmentRejected("the transcript has no words")
        groups = _merge_single_phone_words(word_units)
        keys = [self._word_key([p for index in group for p in word_units[index]]) for group in groups]
        audio = librosa.resample(wave, orig_sr=self.config.sample_rate, target_sr=ALIGNER_RATE, res_type="soxr_hq")
        pad = int(EDGE_PAD_S * ALIGNER_RATE)
        audio = np.pad(audio, (pad, pad))
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        length_s = len(wave) / self.config.sample_rate

        def seconds(frame: int) -> float:
            return min(max(frame * ALIGNER_FRAME_S - EDGE_PAD_S, 0.0), length_s)

        try:
            self.decoder.set_align_text(" ".join(keys))
            self._decode(pcm)
            self.decoder.set_alignment()
            self._decode(pcm)
            alignment = self.decoder.get_alignment()
        except RuntimeError as err:
            raise AlignmentRejected(f"pocketsphinx could not align the transcript ({err})") from None
        if alignment is None:
            raise AlignmentRejected("pocketsphinx found no alignment")
        words: list[list[TimedSymbol]] = []
        silences: dict[int, tuple[float, float]] = {}
        trailing = 0.0
        aligned_groups = 0
        for segment in alignment:
            start, end = seconds(segment.start), seconds(segment.start + segment.duration)
            if not segment.name.startswith("ttskit_"):  # <sil>, <s>, </s> and noise fillers
                if words:
                    silences[len(words)] = (silences.get(len(words), (start, start))[0], end)
                    trailing = end - silences[len(words)][0]
                continue
            if aligned_groups == len(groups):
                raise AlignmentRejected("pocketsphinx returned more words than the transcript has")
            group = groups[aligned_groups]
            aligned_groups += 1
            phones = list(segment)
            expected = sum(len(word_units[index]) for index in group)
            if len(phones) != expected:
                raise AlignmentRejected(f"pocketsphinx returned {len(phones)} phones for a word of {expected}")
            for index in group:  # split a merged entry back into its words
                unit, phones = word_units[index], phones
                words.append([TimedSymbol(symbol, seconds(p.start), seconds(p.start + p.duration))
                              for symbol, p in zip(unit, phones[:len(unit)])])
                phones = phones[len(unit):]
            trailing = 0.0
        if len(words) != len(word_units):
            raise AlignmentRejected(f"pocketsphinx aligned {len(words)} of {len(word_units)} words")
        silences.pop(len(words), None)  # the trailing one is handled by attach_pauses
        timed = attach_pauses(words, analysis.units, silences, trailing, self.max_trailing_pause_s)
        check_plausible(timed, self.max_phone_s, self.min_rate, self.max_rate)
        return timed


def _merge_single_phone_words(word_units: list[list[str]]) -> list[list[int]]:
    """Group word indices so that no group has a single phone.

    pocketsphinx refuses to add one-phone words to its dictionary and fails to align its own
    ("I", "a", "oh") at the start of an utterance; a one-phone word is therefore aligned as part
    of the next word (the previous one at the end) and split off again afterwards.
    """
    groups: list[list[int]] = []
    pending: list[int] = []
    for index, _unit in enumerate(word_units):
        pending.append(index)
        if sum(len(word_units[i]) for i in pending) >= 2:
            groups.append(pending)
            pending = []
    if pending:
        if groups:
            groups[-1].extend(pending)
        else:
            groups.append(pending)  # a lone one-phone utterance: pocketsphinx will say whether it can
    return groups
