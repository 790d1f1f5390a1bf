"""Per-frame F0 and voicing of a WORK folder's recordings, for F0-driven vocoders.

Preprocessing keeps pitch at the acoustic model's feature level (usually one value per phoneme);
a harmonic-plus-noise vocoder needs it per mel frame. `ensure_frame_pitch` runs ttskit's YIN
(with the WORK folder's pitch range) once over the utterances that have no track yet and stores
WORK/f0/<id>.npy, so later runs and resumes read it back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ttskit.audio.pitch import PitchTrack, extract_pitch
from ttskit.config import Config
from ttskit.work import frame_pitch_path, mel_path, save_array, wav_path


def frame_pitch(wave: np.ndarray, config: Config, frames: int) -> PitchTrack:
    """YIN over `wave` on the mel frame grid, padded (held flat) or cut to `frames`."""
    track = extract_pitch(wave, config.audio, "yin", config.preprocess.pitch_fmin, config.preprocess.pitch_fmax)
    f0, voiced = track.f0[:frames], track.voiced[:frames]
    if len(f0) < frames:
        fill = f0[-1] if len(f0) else 0.0
        f0 = np.concatenate([f0, np.full(frames - len(f0), fill, np.float32)])
        voiced = np.concatenate([voiced, np.zeros(frames - len(voiced), bool)])
    return PitchTrack(f0.astype(np.float32), voiced)


def _readable(path: Path, frames: int) -> bool:
    try:
        return np.load(path, mmap_mode="r").shape == (2, frames)
    except (OSError, ValueError):
        return False


def ensure_frame_pitch(work: Path, rows: list[dict[str, Any]], config: Config,
                       on_done: Callable[[int, int], None] | None = None) -> int:
    """Make WORK/f0/<id>.npy for every row without a readable one; returns how many were made."""
    made = 0
    for index, row in enumerate(rows):
        uid = row["id"]
        frames = int(np.load(mel_path(work, uid), mmap_mode="r").shape[1])
        target = frame_pitch_path(work, uid)
        if not _readable(target, frames):
            wave, _ = sf.read(str(wav_path(work, uid)), dtype="float32", always_2d=False)
            track = frame_pitch(wave, config, frames)
            save_array(target, np.stack([track.f0, track.voiced.astype(np.float32)]))
            made += 1
        if on_done is not None:
            on_done(index + 1, len(rows))
    return made
