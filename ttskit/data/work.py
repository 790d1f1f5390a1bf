"""The WORK folder that preprocess writes and training reads (documented in docs/work-folder.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ttskit.audio.io import atomic_write

ARRAY_KINDS = ("mel", "pitch", "energy", "duration")
META = "meta"


def array_path(work: Path, kind: str, utterance_id: str) -> Path:
    return work / kind / f"{utterance_id}.npy"


def wav_path(work: Path, utterance_id: str) -> Path:
    return work / "wav" / f"{utterance_id}.wav"


def meta_path(work: Path, utterance_id: str) -> Path:
    return work / META / f"{utterance_id}.json"


def save_array(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array)

    atomic_write(path, write)


def save_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n",
                                                  encoding="utf-8"))


def save_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_metas(work: Path) -> list[dict[str, Any]]:
    """Every finished utterance's record (ok or skipped), sorted by id."""
    folder = work / META
    if not folder.is_dir():
        return []
    return sorted((json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")
                   if not p.name.startswith(".")), key=lambda m: m["id"])


def remove_stale_temp_files(work: Path) -> int:
    """Delete temp files a killed run left behind (finished files are never temp files)."""
    removed = 0
    staged = [work / "unaligned" / kind for kind in ("mel", "pitch", "energy", "voiced", "wav")]
    for folder in (work, *(work / kind for kind in (*ARRAY_KINDS, "wav", META, "report", "shards", "aligner")), *staged):
        if folder.is_dir():
            for path in folder.glob(".*.tmp*"):
                path.unlink(missing_ok=True)
                removed += 1
    return removed
