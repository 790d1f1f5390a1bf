"""Reading, resampling, trimming and atomically writing audio."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
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


class OutputError(TtskitError, OSError):
    """An output cannot be written where asked (not a regular file, no permission, disk full, ...);
    the message names the path and the reason. Nothing was replaced."""


def _what_it_is(path: Path) -> str | None:
    """Why ttskit will not replace `path` (None: it is a regular file, or nothing is there)."""
    if path.is_symlink():
        return "a symbolic link"
    if not path.exists():
        return None
    if path.is_dir():
        return "a folder"
    if not path.is_file():
        return "not a regular file (a device, a pipe or a socket)"
    return None


def _refuse_to_replace(path: Path) -> None:
    problem = _what_it_is(path)
    if problem:
        raise OutputError(f"{path}: is {problem}; ttskit only writes regular files (`-o -` writes to stdout)")


def _check_writable(path: Path) -> None:
    """`path` (a file or folder to be made) can be created: its nearest existing parent is a
    folder this process may write into."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{path}: cannot be created, {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write into {folder} (permission denied)")


def check_output(path: Path) -> None:
    """Before the work starts: refuse an output path that is not a regular file (ttskit never
    replaces a link, a device or a folder) or whose folder cannot be written."""
    path = Path(path)
    _refuse_to_replace(path)
    _check_writable(path)


def check_output_folder(folder: Path) -> None:
    """Before the work starts: `folder` (made if missing) can hold the outputs."""
    folder = Path(folder)
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{folder}: cannot write into it (permission denied)")
        return
    if folder.exists():
        raise OutputError(f"{folder}: is a file; the outputs go into a folder")
    _check_writable(folder)


def _creation_mode() -> int:
    """What a new file's mode is under this process's umask (mkstemp would make it 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)` and rename the result onto `path`, so readers never see half a file.

    A symlink, device, pipe or folder at `path` is never replaced; the file gets the user's umask
    (an existing file keeps its mode); every OSError becomes an OutputError naming `path`."""
    _refuse_to_replace(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise OutputError(f"{path}: cannot be written ({err.strerror or err})") from None
    try:
        write(Path(tmp))
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.is_file() else _creation_mode())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot be written ({err.strerror or err})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_temp_files(folders: Iterable[Path]) -> int:
    """Delete the temp files `atomic_write` leaves in `folders` when a run is killed mid-write
    (finished files never look like them); returns how many."""
    removed = 0
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(".*.tmp*"):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def save_wav(path: Path | str, wave: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV atomically; values outside [-1, 1] are clipped."""
    clipped = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    atomic_write(Path(path), lambda tmp: sf.write(str(tmp), clipped, sample_rate, subtype="PCM_16", format="WAV"))
