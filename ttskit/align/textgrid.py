"""Montreal Forced Aligner TextGrids as an aligner: ming024/FastSpeech2 users already have them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttskit.align.base import Aligner, AlignmentRejected, TimedSymbol, attach_pauses, check_plausible
from ttskit.text.frontend import SENTENCE_ENDS, TextAnalysis

SILENCE_LABELS = {"", "sil", "sp", "<eps>", "silence"}
UNKNOWN_LABELS = {"spn", "<unk>"}
_TOKEN_RE = re.compile(r'"((?:[^"]|"")*)"|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)')


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    label: str


def read_textgrid(path: Path) -> dict[str, list[Interval]]:
    """Interval tiers by name, from a Praat TextGrid in the long or the short text format.

    Both formats are the same sequence of numbers and quoted strings; the long one only adds
    labels (`xmin =`) and item indices (`[3]`), which are dropped before tokenising.
    """
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise AlignmentRejected(f"{path}: cannot be read ({err})") from None
    text = re.sub(r"\[\d*\]", " ", text)
    tokens: list[str | float] = [m.group(1).replace('""', '"') if m.group(1) is not None else float(m.group(2))
                                 for m in _TOKEN_RE.finditer(text)]
    try:
        if tokens[:2] != ["ooTextFile", "TextGrid"]:
            raise ValueError("missing the `ooTextFile` / `TextGrid` header")
        position = 4  # after the header and the grid's xmin, xmax
        n_tiers = int(tokens[position])
        position += 1
        tiers: dict[str, list[Interval]] = {}
        for _ in range(n_tiers):
            kind, name = tokens[position], tokens[position + 1]
            count = int(tokens[position + 4])
            position += 5
            width = 3 if kind == "IntervalTier" else 2
            items = tokens[position:position + count * width]
            position += count * width
            if kind == "IntervalTier":
                tiers[str(name)] = [Interval(float(items[i]), float(items[i + 1]), str(items[i + 2]).strip())
                                    for i in range(0, len(items), 3)]
        return tiers
    except (IndexError, ValueError, TypeError) as err:
        raise AlignmentRejected(f"{path}: not a readable TextGrid ({err})") from None


class TextGridAligner(Aligner):
    """Reads `<dir>/<id>.TextGrid` or `<dir>/<speaker>/<id>.TextGrid` (MFA's output layout).

    The phones tier gives the symbols and times; silences inside the utterance become "sp",
    leading and trailing silence is cut, and the transcript's sentence-end punctuation keeps a
    short trailing pause, exactly as the pocketsphinx aligner does. "spn" (MFA's unknown word)
    excludes the utterance.
    """

    name = "textgrid"

    def __init__(self, folder: Path, inventory: set[str] | None, max_phone_s: float = 0.5, min_rate: float = 4.0,
                 max_rate: float = 30.0, max_trailing_pause_s: float = 0.15, tier: str = "phones") -> None:
        self.folder = folder
        self.inventory = inventory
        self.max_phone_s, self.min_rate, self.max_rate = max_phone_s, min_rate, max_rate
        self.max_trailing_pause_s = max_trailing_pause_s
        self.tier = tier

    def find(self, utterance_id: str) -> Path:
        direct = self.folder / f"{utterance_id}.TextGrid"
        if direct.is_file():
            return direct
        nested = sorted(self.folder.glob(f"*/{utterance_id}.TextGrid"))
        if nested:
            return nested[0]
        raise AlignmentRejected(f"no TextGrid for {utterance_id} in {self.folder}")

    def align(self, utterance_id: str, wave: np.ndarray, analysis: TextAnalysis) -> list[TimedSymbol]:
        path = self.find(utterance_id)
        tiers = read_textgrid(path)
        if self.tier not in tiers:
            raise AlignmentRejected(f"{path}: no `{self.tier}` tier (tiers: {', '.join(tiers) or 'none'})")
        phones = tiers[self.tier]
        for interval in phones:
            if interval.label.lower() in UNKNOWN_LABELS:
                raise AlignmentRejected(f"{path}: `{interval.label}` (unknown word) at {interval.start:.2f} s")
        # Words of phones split by silences, with the silences between them.
        words: list[list[TimedSymbol]] = [[]]
        silences: dict[int, tuple[float, float]] = {}
        trailing = 0.0
        for interval in phones:
            if interval.label.lower() in SILENCE_LABELS:
                if words[-1]:
                    words.append([])
                if len(words) > 1:
                    silences[len(words) - 1] = (interval.start, interval.end)
                    trailing = interval.end - interval.start
                continue
            if self.inventory is not None and interval.label not in self.inventory:
                raise AlignmentRejected(f"{path}: phone `{interval.label}` at {interval.start:.2f} s is not in the "
                                        "front end's symbol set")
            words[-1].append(TimedSymbol(interval.label, interval.start, interval.end))
            trailing = 0.0
        words = [w for w in words if w]
        if not words:
            raise AlignmentRejected(f"{path}: the `{self.tier}` tier holds only silence")
        silences = {i: gap for i, gap in silences.items() if i < len(words)}
        # Pauses come from the TextGrid's silences; the text decides only the sentence-end symbol.
        ending = [analysis.units[-1]] if analysis.units and analysis.units[-1][0] in SENTENCE_ENDS else []
        timed = attach_pauses(words, _word_units(len(words), silences) + ending, silences, trailing,
                              self.max_trailing_pause_s)
        check_plausible(timed, self.max_phone_s, self.min_rate, self.max_rate)
        return timed


def _word_units(n_words: int, silences: dict[int, tuple[float, float]]) -> list[list[str]]:
    """Placeholder units: n words with an "sp" wherever the TextGrid has a silence between them."""
    units: list[list[str]] = []
    for i in range(n_words):
        if i in silences:
            units.append(["sp"])
        units.append(["word"])
    return units
