"""The character front end of NVIDIA's Tacotron 2 checkpoints (keithito's symbol set and
`english_cleaners`), so a published checkpoint reads text as it was trained to.

The symbol table is the checkpoint's embedding order: padding, "-", the punctuation `!'(),.:;?`
and space, the letters A-Z and a-z, then the ARPAbet symbols with an "@" in front (CMUdict's 84,
sorted), 148 in all. Cleaning: Unicode folded to ASCII, ttskit's English normalisation (numbers,
currency, times, abbreviations; it covers what `english_cleaners` expands), the abbreviations of
NVIDIA's list that it lacks, lower case, whitespace collapsed. Characters outside the table are
dropped with a warning.
"""

from __future__ import annotations

import re
import unicodedata

from ttskit.config import TextConfig
from ttskit.text.arpabet import CONSONANTS, VOWELS
from ttskit.text.frontend import FRONTENDS, TextFrontend
from ttskit.text.normalize import normalize_english
from ttskit.text.vocab import PAD, Vocab

PUNCTUATION = "!'(),.:;? "
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ARPABET = tuple(sorted({*VOWELS, *(f"{v}{s}" for v in VOWELS for s in "012"), *CONSONANTS}))
# Embedding row 0 is padding (NVIDIA's "_"; ttskit's PAD here).
SYMBOLS = (PAD, "-", *PUNCTUATION, *LETTERS, *(f"@{p}" for p in ARPABET))
# english_cleaners' abbreviations (each followed by a period), spoken.
ABBREVIATIONS = {"mrs": "misess", "mr": "mister", "dr": "doctor", "st": "saint", "co": "company", "jr": "junior",
                 "maj": "major", "gen": "general", "drs": "doctors", "rev": "reverend", "lt": "lieutenant",
                 "hon": "honorable", "sgt": "sergeant", "capt": "captain", "esq": "esquire", "ltd": "limited",
                 "col": "colonel", "ft": "fort"}
_ABBREVIATION_RE = re.compile(r"\b(" + "|".join(sorted(ABBREVIATIONS, key=len, reverse=True)) + r")\.", re.IGNORECASE)
_KNOWN = set(SYMBOLS[1:])


def nvidia_vocab() -> Vocab:
    return Vocab(SYMBOLS)


class NvidiaCharsFrontend(TextFrontend):
    name = "nvidia-chars"
    fixed_inventory = True

    def __init__(self, config: TextConfig | None = None) -> None:
        """No options: NVIDIA's cleaners are fixed (the config is taken for the registry's sake)."""

    def base_symbols(self) -> tuple[str, ...]:
        return SYMBOLS[1:]

    def normalize(self, text: str) -> str:
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
        spoken = _ABBREVIATION_RE.sub(lambda m: ABBREVIATIONS[m.group(1).lower()], normalize_english(ascii_text))
        return re.sub(r"\s+", " ", spoken.lower()).strip()

    def _units(self, normalized: str, warnings_out: list[str]) -> list[list[str]]:
        unknown = sorted({ch for ch in normalized if ch not in _KNOWN})
        if unknown:
            warnings_out.append(f"characters NVIDIA's symbol set lacks, dropped: {unknown}")
        return [[ch for ch in normalized if ch in _KNOWN]]


FRONTENDS["nvidia-chars"] = NvidiaCharsFrontend
