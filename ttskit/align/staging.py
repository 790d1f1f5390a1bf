"""Utterances staged for a corpus-level aligner (the learned aligner, a Tacotron 2 teacher): their
trimmed wave and frame features wait in WORK/unaligned/ until merge aligns them, then go.

A staged utterance's meta says `"status": "unaligned"` and holds `aligner_symbols` (what to align);
`record_finished` turns it into an aligned (or skipped) one: its files are written first, then the
meta saying "ok", so an utterance killed half-way is simply finished again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ttskit.align.base import AlignmentRejected, TimedSymbol, check_plausible
from ttskit.align.features import FrameFeatures, Skip, frame_features
from ttskit.audio import MelSpectrogram, save_wav
from ttskit.audio.pitch import PitchTrack
from ttskit.config import Config
from ttskit.work import STAGED, meta_path, read_metas, save_array, save_json, staged_path

STAGED_ARRAYS = ("mel", "pitch", "energy", "voiced")


def stage_utterance(work: Path, utterance_id: str, wave: np.ndarray, mel: MelSpectrogram, config: Config,
                    symbols: list[str]) -> int:
    """Stage a trimmed wave's frame features for aligning `symbols` later; returns its frames.
    Skip when the frames cannot give each symbol one."""
    features = frame_features(wave, mel, config)
    n_frames = features.mel.shape[1]
    if n_frames < len(symbols):
        raise Skip(f"{n_frames} mel frames cannot give each of its {len(symbols)} symbols a frame")
    _save_features(work, utterance_id, wave, features, config)
    return n_frames


def _save_features(work: Path, utterance_id: str, wave: np.ndarray, features: FrameFeatures, config: Config) -> None:
    arrays = {"mel": features.mel, "pitch": features.pitch.f0.astype(np.float32), "energy": features.energy,
              "voiced": features.pitch.voiced}
    for kind, array in arrays.items():
        save_array(staged_path(work, kind, utterance_id), array)
    save_wav(staged_path(work, "wav", utterance_id), wave, config.audio.sample_rate)


def staged_metas(work: Path) -> list[dict[str, Any]]:
    return [m for m in read_metas(work) if m["status"] == STAGED]


def staged_mel(work: Path, utterance_id: str) -> np.ndarray:
    return np.load(staged_path(work, "mel", utterance_id))


def load_staged(work: Path, utterance_id: str) -> tuple[np.ndarray, FrameFeatures]:
    """(trimmed wave, its frame features) of a staged utterance."""
    staged = {kind: np.load(staged_path(work, kind, utterance_id)) for kind in STAGED_ARRAYS}
    features = FrameFeatures(staged["mel"], staged["energy"], PitchTrack(staged["pitch"], staged["voiced"]))
    wave, _ = sf.read(str(staged_path(work, "wav", utterance_id)), dtype="float32")
    return wave, features


def finished_outcome(meta: dict[str, Any]) -> dict[str, Any]:
    """What a staged utterance's meta keeps once it is finished, either way."""
    return {key: meta[key] for key in ("id", "speaker", "text", "source", "normalized", "warnings")}


def implausible(symbols: list[str], durations: np.ndarray, config: Config) -> str | None:
    """The forced aligner's plausibility checks on frame durations: the skip reason, or None."""
    prep = config.preprocess
    bounds = np.concatenate([[0], np.cumsum(durations)]) * config.audio.frame_shift_s
    timed = [TimedSymbol(s, float(a), float(b)) for s, a, b in zip(symbols, bounds[:-1], bounds[1:])]
    try:
        check_plausible(timed, prep.max_phone_s, prep.min_phones_per_s, prep.max_phones_per_s)
    except AlignmentRejected as err:
        return f"alignment rejected: {err}"
    return None


def record_finished(work: Path, meta: dict[str, Any], on_event: Any = None) -> None:
    """The aligned (or skipped) utterance's meta, after its files: "ok" means they are complete;
    then its staged files go, and the "aligned" event the progress bar counts."""
    save_json(meta_path(work, meta["id"]), meta)
    for kind in (*STAGED_ARRAYS, "wav"):
        staged_path(work, kind, meta["id"]).unlink(missing_ok=True)
    if on_event:
        on_event({"event": "aligned", "meta": meta})


def remove_empty_staging(work: Path) -> None:
    for kind in (*STAGED_ARRAYS, "wav"):  # empty now, unless a later run stages more
        folder = work / STAGED / kind
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if (work / STAGED).is_dir() and not any((work / STAGED).iterdir()):
        (work / STAGED).rmdir()
