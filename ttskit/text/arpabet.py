"""The ARPAbet phoneme set of CMUdict (vowels carry lexical stress: 0 none, 1 primary, 2 secondary)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
              "T", "TH", "V", "W", "Y", "Z", "ZH")
WITH_STRESS = tuple(f"{v}{s}" for v in VOWELS for s in "012") + CONSONANTS
WITHOUT_STRESS = VOWELS + CONSONANTS
