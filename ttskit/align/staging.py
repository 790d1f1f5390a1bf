"""Utterances staged for a corpus-level aligner (the learned aligner, a Tacotron 2 teacher): their
trimmed wave and frame features wait in WORK/unaligned/ until merge aligns them, then go.

A staged utterance's meta says `"status": "unaligned"` and holds `aligner_symbols` (what to align);
`finish_staged` turns it into an aligned one (files first, then the meta saying "ok"), so an
utterance killed half-way is simply finished again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ttskit.align.features import FrameFeatures
from ttskit.audio import save_wav
from ttskit.audio.pitch import PitchTrack
from ttskit.config import Config
from ttskit.work import STAGED, meta_path, read_metas, save_array, save_json, staged_path

STAGED_ARRAYS = ("mel", "pitch", "energy", "voiced")


def stage_features(work: Path, utterance_id: str, wave: np.ndarray, features: FrameFeatures, config: Config) -> None:
    arrays = {"mel": features.mel, "pitch": features.pitch.f0.astype(np.float32), "energy": features.energy,
              "voiced": features.pitch.voiced}
    for kind, array in arrays.items():
        save_array(staged_path(work, kind, utterance_id), array)
    save_wav(staged_path(work, "wav", utterance_id), wave, config.audio.sample_rate)


def staged_metas(work: Path) -> list[dict[str, Any]]:
    return [m for m in read_metas(work) if m["status"] == STAGED]


def load_staged(work: Path, utterance_id: str) -> tuple[np.ndarray, FrameFeatures]:
    """(trimmed wave, its frame features) of a staged utterance."""
    staged = {kind: np.load(staged_path(work, kind, utterance_id)) for kind in STAGED_ARRAYS}
    features = FrameFeatures(staged["mel"], staged["energy"], PitchTrack(staged["pitch"], staged["voiced"]))
    wave, _ = sf.read(str(staged_path(work, "wav", utterance_id)), dtype="float32")
    return wave, features


def save_finished(work: Path, meta: dict[str, Any]) -> None:
    """The aligned (or skipped) utterance's meta, after its files: "ok" means they are complete;
    then its staged files go."""
    save_json(meta_path(work, meta["id"]), meta)
    for kind in (*STAGED_ARRAYS, "wav"):
        staged_path(work, kind, meta["id"]).unlink(missing_ok=True)


def record_finished(work: Path, meta: dict[str, Any], on_event: Any = None) -> None:
    """`save_finished`, then the "aligned" event the progress bar counts."""
    save_finished(work, meta)
    if on_event:
        on_event({"event": "aligned", "meta": meta})


def remove_empty_staging(work: Path) -> None:
    for kind in (*STAGED_ARRAYS, "wav"):  # empty now, unless a later run stages more
        folder = work / STAGED / kind
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if (work / STAGED).is_dir() and not any((work / STAGED).iterdir()):
        (work / STAGED).rmdir()
