"""Reading, resampling, trimming and atomically writing audio."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from ttskit.config import AudioConfig
from ttskit.errors import TtskitError

# What ttskit reads as audio (corpora, evaluation folders, `ttskit vocode` folders).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class AudioError(TtskitError, ValueError):
    """An audio file cannot be used; the message names the file and the problem."""


def load_audio(path: Path | str, sample_rate: int) -> np.ndarray:
    """Any file soundfile reads -> mono float32 in [-1, 1] at `sample_rate`.

    Channels are averaged; a different rate is converted with soxr's high-quality resampler.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        data, source_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: cannot be read as audio ({err})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no samples")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if source_rate != sample_rate:
        wave = librosa.resample(wave, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(wave, dtype=np.float32)


def trim_bounds(wave: np.ndarray, config: AudioConfig) -> tuple[int, int]:
    """[start, end) of the samples `trim_silence` keeps."""
    if config.trim_top_db is None:
        return 0, len(wave)
    _, (start, end) = librosa.effects.trim(wave, top_db=config.trim_top_db,
                                           frame_length=config.win_length, hop_length=config.hop_length)
    margin = int(round(config.trim_margin_s * config.sample_rate))
    return max(0, start - margin), min(len(wave), end + margin)


def trim_silence(wave: np.ndarray, config: AudioConfig) -> np.ndarray:
    """Cut leading and trailing audio quieter than `trim_top_db` below the peak, keeping a margin."""
    start, end = trim_bounds(wave, config)
    return wave[start:end]


def peak_normalize(wave: np.ndarray, peak: float | None) -> np.ndarray:
    if peak is None:
        return wave
    top = float(np.max(np.abs(wave))) if wave.size else 0.0
    return wave if top == 0.0 else (wave * (peak / top)).astype(np.float32)


def atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)` and rename the result onto `path`, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_wav(path: Path | str, wave: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV atomically; values outside [-1, 1] are clipped."""
    clipped = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    atomic_write(Path(path), lambda tmp: sf.write(str(tmp), clipped, sample_rate, subtype="PCM_16", format="WAV"))
