"""`ttskit eval`: score hypothesis audio against reference recordings, paired by utterance id."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ttskit.audio.io import AUDIO_SUFFIXES, atomic_write, load_audio
from ttskit.config import AudioConfig
from ttskit.errors import TtskitError
from ttskit.evaluation.intelligibility import spoken_words
from ttskit.evaluation.metrics import character_errors, distances
from ttskit.text.distance import edit_distance


class EvaluationError(TtskitError, ValueError):
    """Inputs that cannot be paired or read; the message names the file and the problem."""


@dataclass(frozen=True)
class Item:
    id: str
    audio: Path
    text: str | None
    speaker: str | None = None


@dataclass
class Row:
    id: str
    mcd_db: float | None  # None (and `problem` says why) when the audio could not be measured
    log_f0_rmse_cents: float | None
    voicing_error: float | None
    duration_ratio: float | None
    words: int = 0
    word_errors: int = 0
    characters: int = 0
    character_errors: int = 0
    transcript: str = ""
    recognised: str = ""
    problem: str = ""
    mos: float | None = None  # predicted by DistillMOS, where it is installed (`naturalness`)


def _read_manifest(path: Path) -> dict[str, Item]:
    """A WORK folder's train.jsonl / val.jsonl: its processed recordings, transcripts and speakers."""
    items = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items[row["id"]] = Item(row["id"], path.parent / row["wav"], row["text"], row.get("speaker"))
        except (ValueError, KeyError, TypeError) as err:
            raise EvaluationError(f"{path}:{number}: not a WORK manifest line ({err})") from None
    if not items:
        raise EvaluationError(f"{path}: no utterances in it")
    return items


def read_side(path: Path) -> dict[str, Item]:
    """A folder of audio files, an LJSpeech-style metadata file (id|text[|normalized]) whose audio
    lies in `wavs/` beside it (or beside the file itself), or a WORK folder's val.jsonl/train.jsonl."""
    if path.suffix == ".jsonl" and path.is_file():
        return _read_manifest(path)
    if path.is_dir():
        items = {p.stem: Item(p.stem, p, None) for p in sorted(path.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES}
        if not items:
            raise EvaluationError(f"{path}: no audio files in it")
        return items
    if not path.is_file():
        raise EvaluationError(f"{path}: no such folder or metadata file")
    folder = path.parent / "wavs" if (path.parent / "wavs").is_dir() else path.parent
    items = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2:
            raise EvaluationError(f"{path}:{number}: expected id|text, got {line[:60]!r}")
        uid = fields[0].strip()
        audio = next((folder / f"{uid}{s}" for s in AUDIO_SUFFIXES if (folder / f"{uid}{s}").is_file()), None)
        if audio is None:
            raise EvaluationError(f"{path}:{number}: no audio for {uid!r} in {folder}")
        items[uid] = Item(uid, audio, (fields[2] if len(fields) > 2 and fields[2].strip() else fields[1]).strip())
    return items


def pair(reference: dict[str, Item], hypothesis: dict[str, Item]) -> list[tuple[Item, Item]]:
    common = sorted(set(reference) & set(hypothesis))
    if not common:
        raise EvaluationError("no utterance id is in both the reference and the hypothesis")
    return [(reference[uid], hypothesis[uid]) for uid in common]


_recognizer = None
_mos_model: object | None = None


def _score(job: tuple[Item, Item, AudioConfig, bool, bool]) -> Row:
    global _recognizer, _mos_model
    ref, hyp, config, recognise, rate_naturalness = job
    reference, hypothesis = load_audio(ref.audio, config.sample_rate), load_audio(hyp.audio, config.sample_rate)
    try:
        d = distances(reference, hypothesis, config)
        row = Row(ref.id, d.mcd_db, d.log_f0_rmse_cents, d.voicing_error, d.duration_ratio)
    except ValueError as err:
        # Too little speech to measure (a model that says almost nothing): one bad utterance must not
        # cost the scores of the rest. Its word errors still count below: nothing heard, all deleted.
        row = Row(ref.id, None, None, None, None, problem=f"{hyp.audio}: {err}")
    transcript = ref.text or hyp.text
    if recognise and transcript:
        if _recognizer is None:
            from ttskit.evaluation.intelligibility import Recognizer

            _recognizer = Recognizer()
        truth = spoken_words(transcript)
        heard = spoken_words(_recognizer.transcribe(hypothesis, config.sample_rate))
        row.words, row.word_errors = len(truth), edit_distance(truth, heard)
        row.character_errors, row.characters = character_errors(" ".join(truth), " ".join(heard))
        row.transcript, row.recognised = " ".join(truth), " ".join(heard)
    if rate_naturalness:
        from ttskit.evaluation.naturalness import load_mos_model, predict_mos

        _mos_model = _mos_model or load_mos_model()
        if _mos_model is not None:
            row.mos = predict_mos(_mos_model, hypothesis, config.sample_rate)
    return row


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def evaluate(pairs: list[tuple[Item, Item]], config: AudioConfig | None = None, jobs: int | None = None,
             recognise: bool = True, on_done: Callable[[Row], None] | None = None,
             rate_naturalness: bool = True) -> list[Row]:
    """Scores of each pair. `rate_naturalness`: predicted MOS too, where DistillMOS is installed."""
    config = config or AudioConfig()
    work = [(ref, hyp, config, recognise, rate_naturalness) for ref, hyp in pairs]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(work)))

    def results() -> Iterator[Row]:
        if jobs == 1:
            yield from map(_score, work)
            return
        with ProcessPoolExecutor(jobs, initializer=_one_thread) as pool:
            yield from pool.map(_score, work)

    rows = []
    for row in results():
        rows.append(row)
        if on_done:
            on_done(row)
    return rows


def summarise(rows: list[Row]) -> dict[str, float | None]:
    def mean(name: str) -> float | None:
        values = [getattr(r, name) for r in rows if getattr(r, name) is not None]
        return float(np.mean(values)) if values else None

    words = sum(r.words for r in rows)
    characters = sum(r.characters for r in rows)
    return {"utterances": len(rows), "unmeasured": sum(bool(r.problem) for r in rows), "mcd_db": mean("mcd_db"),
            "log_f0_rmse_cents": mean("log_f0_rmse_cents"), "voicing_error": mean("voicing_error"),
            "duration_ratio": mean("duration_ratio"), "mos": mean("mos"),
            "wer": sum(r.word_errors for r in rows) / words if words else None,
            "cer": sum(r.character_errors for r in rows) / characters if characters else None}


def write_json(path: Path, rows: list[Row]) -> None:
    data = {"summary": summarise(rows), "utterances": [asdict(r) for r in rows]}
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8"))
