"""CMUdict (bundled, BSD-licensed data) as a word -> ARPAbet lookup."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

from ttskit.text.g2p import DATA_DIR

CMUDICT_PATH = DATA_DIR / "cmudict.dict.gz"


def read_cmudict(path: Path = CMUDICT_PATH) -> dict[str, list[list[str]]]:
    """word -> pronunciations in dictionary order ("word(2)" variants follow the first)."""
    entries: dict[str, list[list[str]]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            head, *phones = line.split()
            word = head.split("(", 1)[0]
            entries.setdefault(word, []).append(phones)
    return entries


@functools.lru_cache(maxsize=1)
def cmudict() -> dict[str, list[list[str]]]:
    return read_cmudict()
