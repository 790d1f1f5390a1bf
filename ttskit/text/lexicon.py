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


@functools.lru_cache(maxsize=1)
def cmudict() -> dict[str, list[list[str]]]:
    return read_cmudict()
