"""The WORK folder that preprocess writes and training, evaluation and copy-synthesis read: the one
place its file names are spelled (documented in docs/work-folder.md). A leaf beside `config`:
every layer may import it.

    WORK/config.yaml  vocab.json  speakers.json  stats.json  train.jsonl  val.jsonl
         wav/ mel/ pitch/ energy/ duration/ meta/ <id>.*   gta/<id>.npy   report/   shards/
         unaligned/ (staged for the learned aligner)   aligner/aligner.pt
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import yaml

from ttskit.audio.io import atomic_write, remove_temp_files
from ttskit.config import Config, config_from_dict, config_to_dict, read_config_text
from ttskit.errors import TtskitError

CONFIG = "config.yaml"
VOCAB = "vocab.json"
SPEAKERS = "speakers.json"
STATS = "stats.json"
Split = Literal["train", "val"]
MANIFESTS: dict[str, str] = {"train": "train.jsonl", "val": "val.jsonl"}
ARRAY_KINDS = ("mel", "pitch", "energy", "duration")
META = "meta"
GTA = "gta"  # teacher-forced mels from train-acoustic --export-gta
FRAME_PITCH = "f0"  # per-frame YIN tracks for F0-driven vocoders, made by train-vocoder when first needed
REPORT = "report"
SHARDS = "shards"
STAGED = "unaligned"  # utterances waiting for the learned aligner (meta status and folder)
ALIGNER = "aligner"
# What an acoustic model is trained on; train-acoustic needs all of them, train-vocoder the first three.
ACOUSTIC_FILES = (CONFIG, MANIFESTS["train"], MANIFESTS["val"], VOCAB, SPEAKERS, STATS)
VOCODER_FILES = ACOUSTIC_FILES[:3]


class WorkError(TtskitError, ValueError):
    """A WORK folder is missing a file or holds one that does not read; the message names it."""


def require_work_files(work: Path, names: Iterable[str]) -> None:
    for name in names:
        if not (work / name).is_file():
            raise WorkError(f"{work}: no {name}; run `ttskit preprocess` into this folder first")


def load_work_config(work: Path) -> Config:
    path = work / CONFIG
    if not path.is_file():
        raise WorkError(f"{work}: no {CONFIG}; is this a folder made by `ttskit preprocess`?")
    return config_from_dict(Config, yaml.safe_load(read_config_text(path)) or {}, source=str(path))


def manifest_path(work: Path, split: Split) -> Path:
    return work / MANIFESTS[split]


def read_manifest(work: Path, split: Split) -> list[dict[str, Any]]:
    return read_jsonl(manifest_path(work, split))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def work_identity(work: Path) -> dict[str, Any]:
    """What a checkpoint must agree with to train on (or synthesise for) a WORK folder: audio and
    text settings, vocabulary symbols, speakers and feature statistics."""
    config = load_work_config(work)
    return {"audio": config_to_dict(config.audio), "text": config_to_dict(config.text),
            "vocab": read_json(work / VOCAB)["symbols"], "speakers": read_json(work / SPEAKERS),
            "stats": read_json(work / STATS)}


def array_path(work: Path, kind: str, utterance_id: str) -> Path:
    return work / kind / f"{utterance_id}.npy"


def mel_path(work: Path, utterance_id: str, gta: bool = False) -> Path:
    """The recorded mel of an utterance, or with `gta` its teacher-forced twin."""
    return array_path(work, GTA if gta else "mel", utterance_id)


def staged_path(work: Path, kind: str, utterance_id: str) -> Path:
    """A feature of an utterance staged for the learned aligner (kind: mel, pitch, energy, voiced, wav)."""
    suffix = ".wav" if kind == "wav" else ".npy"
    return work / STAGED / kind / f"{utterance_id}{suffix}"


def wav_path(work: Path, utterance_id: str) -> Path:
    return work / "wav" / f"{utterance_id}.wav"


def frame_pitch_path(work: Path, utterance_id: str) -> Path:
    """(2, frames) float32: F0 in Hz (interpolated through unvoiced frames) and voicing (0/1)."""
    return work / FRAME_PITCH / f"{utterance_id}.npy"


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


def _loads(path: Path, kind: str) -> bool:
    """Whether a WORK file is there and whole: a .npy's header and length, a wav's header."""
    try:
        if kind == "wav":
            return sf.info(str(path)).frames > 0
        np.load(path, mmap_mode="r")  # maps the data: a truncated file fails here
        return True
    except (OSError, ValueError, EOFError, RuntimeError, sf.LibsndfileError):
        return False


def has_durations(config: Config) -> bool:
    """Whether a WORK folder made with `config` holds phoneme durations (not with `--aligner none`)."""
    return config.preprocess.aligner != "none"


def damaged_files(work: Path, utterance_id: str, gta: bool = False, durations: bool = True) -> list[Path]:
    """The files of a finished utterance that are missing or do not load (with `gta`, its
    teacher-forced mel too; without `durations`, a folder made with `--aligner none`)."""
    kinds = ARRAY_KINDS if durations else tuple(k for k in ARRAY_KINDS if k != "duration")
    paths = [(wav_path(work, utterance_id), "wav"), *((array_path(work, k, utterance_id), k) for k in kinds)]
    if gta:
        paths.append((mel_path(work, utterance_id, gta=True), "gta"))
    return [path for path, kind in paths if not _loads(path, kind)]


def check_manifest_files(work: Path, rows: list[dict[str, Any]], gta: bool = False) -> None:
    """Before training: every utterance of a manifest has its files whole, else a WorkError naming
    the first that is not (and how many are affected)."""
    durations = has_durations(load_work_config(work))
    broken = [(row["id"], paths) for row in rows if (paths := damaged_files(work, row["id"], gta, durations))]
    if broken:
        uid, paths = broken[0]
        raise WorkError(f"{paths[0]}: missing or damaged ({len(broken)} utterance(s) affected, first {uid}); "
                        "rerun the same `ttskit preprocess` command to re-make them")


def remove_stale_temp_files(work: Path) -> int:
    """Delete temp files a killed run left behind (finished files are never temp files)."""
    staged = [work / STAGED / kind for kind in ("mel", "pitch", "energy", "voiced", "wav")]
    return remove_temp_files([work, *(work / kind for kind in (*ARRAY_KINDS, "wav", META, REPORT, SHARDS, ALIGNER)),
                              *staged])
