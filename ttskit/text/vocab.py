"""Symbol <-> id table. It is saved as vocab.json by preprocess and travels inside every
checkpoint, so a model never depends on a module-level symbol list that may change later."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ttskit.errors import TtskitError

PAD = "<pad>"


class VocabError(TtskitError, ValueError):
    """A symbol is not in the vocabulary, or a vocab file is malformed."""


@dataclass(frozen=True)
class Vocab:
    """Ordered symbols; id 0 is always padding."""

    symbols: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.symbols or self.symbols[0] != PAD:
            raise VocabError(f"the first symbol must be {PAD!r}")
        if len(set(self.symbols)) != len(self.symbols):
            duplicates = sorted({s for s in self.symbols if self.symbols.count(s) > 1})
            raise VocabError(f"duplicate symbols: {duplicates}")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.symbols)})

    @classmethod
    def build(cls, symbols: Iterable[str]) -> Vocab:
        """Padding first, then `symbols` in first-seen order without repeats."""
        ordered = dict.fromkeys(s for s in symbols if s != PAD)
        return cls((PAD, *ordered))

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._index

    def encode(self, symbols: Sequence[str]) -> list[int]:
        unknown = [s for s in symbols if s not in self._index]
        if unknown:
            raise VocabError(f"symbols not in the vocabulary: {sorted(set(unknown))}")
        return [self._index[s] for s in symbols]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.symbols[i] for i in ids]

    def to_json(self) -> str:
        return json.dumps({"symbols": list(self.symbols)}, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "<json>") -> Vocab:
        try:
            data = json.loads(text)
            return cls(tuple(data["symbols"]))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise VocabError(f"{source}: not a ttskit vocab file ({err})") from None

    def save(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocab:
        return cls.from_json(Path(path).read_text(encoding="utf-8"), source=str(path))
