"""CMUdict (bundled, BSD-licensed data) as a word -> ARPAbet lookup."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

from ttskit.text.arpabet import DATA_DIR

CMUDICT_PATH = DATA_DIR / "cmudict.dict.gz"


def read_cmudict(path: Path = CMUDICT_PATH) -> dict[str, list[list[str]]]:
    """word -> pronunciations in dictionary order ("word(2)" variants follow the first)."""
    entries: dict[str, list[list[str]]] = {}
    # One read and splitlines: line-by-line iteration of a gzip text stream is ~10x slower.
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for line in lines:
        head, _, phones = line.partition(" ")
        if not phones:
            continue
        word = head.split("(", 1)[0]
        entries.setdefault(word, []).append(phones.split("#", 1)[0].split())
    return entries


class LazyLexicon:
    """CMUdict's lookup without parsing all 135k entries up front (a second of a cold start):
    one pass keeps each word's raw lines; a word's pronunciations are split when first asked for."""

    def __init__(self, path: Path = CMUDICT_PATH) -> None:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            text = handle.read()
        self._raw: dict[str, str] = {}
        variants: list[str] = []
        for line in text.splitlines():
            head, _, phones = line.partition(" ")
            if "(" in head:
                variants.append(line)  # "word(2) ...": a few thousand, appended after the first below
            elif phones:
                self._raw[head] = phones
        for line in variants:
            head, _, phones = line.partition(" ")
            word = head.split("(", 1)[0]
            if phones:
                self._raw[word] = f"{self._raw[word]}\n{phones}" if word in self._raw else phones
        self._parsed: dict[str, list[list[str]]] = {}

    def get(self, word: str) -> list[list[str]] | None:
        if word not in self._parsed:
            raw = self._raw.get(word)
            if raw is None:
                return None
            self._parsed[word] = [line.split("#", 1)[0].split() for line in raw.split("\n")]
        return self._parsed[word]


@functools.lru_cache(maxsize=1)
def cmudict() -> LazyLexicon:
    return LazyLexicon()
