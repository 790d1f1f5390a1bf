"""`ttskit preprocess`: corpus -> WORK folder, in parallel, resumable and shardable.

Each utterance is written by one worker, its meta/<id>.json last, so a rerun after a kill
skips exactly the finished ones. With --shard i/N a machine processes every N-th utterance;
`merge` then computes speakers, vocabulary, statistics, the split and the report from all of
them, the same way a single run does at its end.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ttskit.audio.io import atomic_write
from ttskit.config import Config, config_from_dict, config_to_dict, differences, dump_config
from ttskit.data.corpora import BadEntry, CorpusKind, Utterance, read_corpus
from ttskit.data.processor import UtteranceProcessor, build_corpus_aligner
from ttskit.data.report import write_report
from ttskit.errors import TtskitError
from ttskit.text.frontend import build_frontend
from ttskit.work import (
    CONFIG,
    MANIFESTS,
    SHARDS,
    SPEAKERS,
    STATS,
    VOCAB,
    array_path,
    damaged_files,
    has_durations,
    load_work_config,
    meta_path,
    read_metas,
    remove_stale_temp_files,
    save_json,
    save_jsonl,
)


class PreprocessError(TtskitError, RuntimeError):
    """Preprocessing cannot go on (mismatched WORK folder, missing shards, nothing usable)."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(x) for x in text.split("/"))
        except ValueError:
            raise PreprocessError(f"--shard {text!r}: expected i/N, e.g. 0/4") from None
        if not 0 <= index < count:
            raise PreprocessError(f"--shard {text!r}: i must be in 0..N-1")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}-of-{self.count}"


@dataclass
class PreprocessSummary:
    processed: int  # in this run
    resumed: int  # already done before this run
    ok: int  # usable utterances in WORK (after merge; this shard's otherwise)
    skipped: int
    merged: bool
    remade: int = 0  # finished utterances whose files were missing or damaged, made again


ProgressCallback = Callable[[dict[str, Any]], None]


def check_work_config(work: Path, config: Config) -> None:
    """Write WORK/config.yaml, or refuse when WORK was made with different settings."""
    path = work / CONFIG
    if path.is_file():
        # Read through the dataclasses, so a setting added since (absent there, default here) is no change.
        existing = config_to_dict(config_from_dict(Config, yaml.safe_load(path.read_text(encoding="utf-8")) or {},
                                                   source=str(path)))
        wanted = config_to_dict(config)
        changed = [f"{path}: {old!r} there, {new!r} now" for path, old, new in differences(existing, wanted)]
        if changed:
            raise PreprocessError(f"{work} was preprocessed with other settings ({'; '.join(changed[:5])}); "
                                  "use a new output folder, or the same settings to resume")
        return
    work.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(dump_config(config), encoding="utf-8"))


# The worker process's processor (a process pool passes only picklable functions to its workers).
_worker_processor: UtteranceProcessor | None = None


def _worker_init(config: Config, work: Path, textgrid_dir: Path | None, parent: int) -> None:
    global _worker_processor
    _exit_with(parent)
    torch.set_num_threads(1)  # parallelism comes from worker processes, one core each
    _worker_processor = UtteranceProcessor(config, work, textgrid_dir)


def _exit_with(parent: int) -> None:
    """End this worker once the process `parent` is gone, even killed with SIGKILL (it cannot tell
    its workers): an orphaned worker would go on writing into WORK while a rerun starts."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_run(utterance: Utterance) -> dict[str, Any]:
    assert _worker_processor is not None, "_worker_init runs first in every worker"
    return _worker_processor(utterance)


def run_preprocess(kind: CorpusKind, source: Path, work: Path, config: Config, *, jobs: int | None = None,
                   shard: Shard | None = None, textgrid_dir: Path | None = None,
                   on_start: Callable[[int, int], None] | None = None,
                   on_done: ProgressCallback | None = None,
                   on_aligner: ProgressCallback | None = None) -> PreprocessSummary:
    """Process every (or this shard's) utterance not done yet; merge unless sharded."""
    entries = read_corpus(kind, source)
    check_work_config(work, config)
    remove_stale_temp_files(work)
    if config.preprocess.aligner == "textgrid" and (textgrid_dir is None or not textgrid_dir.is_dir()):
        raise PreprocessError(f"the textgrid aligner needs --textgrids DIR (got {textgrid_dir})")
    if shard is not None:
        entries = entries[shard.index::shard.count]
    remade = _forget_damaged(work, {e.id for e in entries}, has_durations(config))
    todo = [e for e in entries if not meta_path(work, e.id).is_file()]
    resumed = len(entries) - len(todo)
    if on_start:
        on_start(len(entries), resumed)
    for bad in (e for e in todo if isinstance(e, BadEntry)):
        meta = {"id": bad.id, "speaker": None, "text": None, "source": bad.source, "status": "skipped",
                "reason": bad.reason}
        save_json(meta_path(work, bad.id), meta)
        if on_done:
            on_done(meta)
    utterances = [e for e in todo if isinstance(e, Utterance)]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(utterances) or 1))
    for meta in _map(utterances, config, work, textgrid_dir, jobs):
        if on_done:
            on_done(meta)
    if shard is not None:
        save_json(work / SHARDS / f"{shard}.json", {"ids": [e.id for e in entries]})
        metas = [m for m in read_metas(work) if m["id"] in {e.id for e in entries}]
        ok = sum(m["status"] != "skipped" for m in metas)  # "unaligned" ones are usable once merge aligns them
        return PreprocessSummary(len(todo), resumed, ok, len(metas) - ok, merged=False, remade=remade)
    report = merge(work, on_aligner)
    return PreprocessSummary(len(todo), resumed, report["counts"]["ok"], report["counts"]["skipped"], merged=True,
                             remade=remade)


def _forget_damaged(work: Path, ids: set[str], durations: bool) -> int:
    """Finished utterances whose files are missing or do not load lose their meta, so this run makes
    them again; returns how many."""
    damaged = [m["id"] for m in read_metas(work) if m["id"] in ids and m["status"] == "ok"
               and damaged_files(work, m["id"], durations=durations)]
    for uid in damaged:
        meta_path(work, uid).unlink()
    return len(damaged)


def _map(utterances: list[Utterance], config: Config, work: Path, textgrid_dir: Path | None,
         jobs: int) -> Iterable[dict[str, Any]]:
    if not utterances:
        return
    if jobs == 1:  # in this process, with its thread settings left as they are
        processor = UtteranceProcessor(config, work, textgrid_dir)
        for utterance in utterances:
            yield processor(utterance)
        return
    # spawn, not fork: forking a process that already runs torch/OpenMP threads can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init,
                             initargs=(config, work, textgrid_dir, os.getpid())) as pool:
        # Longest first keeps all workers busy to the end; results arrive as they finish.
        ordered = sorted(utterances, key=lambda u: -u.audio.stat().st_size if u.audio.is_file() else 0)
        futures = [pool.submit(_worker_run, u) for u in ordered]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _validation_ids(ids: list[str], fraction: float, most: int) -> set[str]:
    """A stable split: hash order, so adding utterances later never moves old ones across."""
    if len(ids) < 2 or fraction == 0:
        return set()
    count = min(most, max(1, round(fraction * len(ids))))
    return set(sorted(ids, key=lambda i: zlib.crc32(i.encode()))[:count])


def _mean_std(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "std": float(max(values.std(), 1e-6))}


def merge(work: Path, on_aligner: ProgressCallback | None = None) -> dict[str, Any]:
    """Speakers, vocabulary, statistics, train/val manifests and the report from every finished
    utterance; utterances staged for the learned aligner are aligned first."""
    config = load_work_config(work)
    shard_files = sorted((work / SHARDS).glob("*-of-*.json")) if (work / SHARDS).is_dir() else []
    if shard_files:
        count = int(shard_files[0].stem.split("-of-")[1])
        missing = [i for i in range(count) if not (work / SHARDS / f"{i}-of-{count}.json").is_file()]
        if missing:
            raise PreprocessError(f"{work}: shards {missing} of {count} have not finished; run them, then merge")
    build_corpus_aligner(config).finish(work, config, on_event=on_aligner)
    metas = read_metas(work)
    ok = [m for m in metas if m["status"] == "ok"]
    if not ok:
        reasons = sorted({m.get("reason", "?") for m in metas})[:5]
        raise PreprocessError(f"{work}: no usable utterances ({len(metas)} skipped; e.g. {reasons})")
    speakers = {name: index for index, name in enumerate(sorted({m["speaker"] for m in ok}))}
    save_json(work / SPEAKERS, speakers)
    frontend = build_frontend(config.text)
    vocab = frontend.build_vocab(m["phonemes"] for m in ok)
    atomic_write(work / VOCAB, lambda tmp: tmp.write_text(vocab.to_json() + "\n", encoding="utf-8"))
    stats = _statistics(work, ok, speakers, config)
    save_json(work / STATS, stats)
    val = _validation_ids([m["id"] for m in ok], config.preprocess.val_fraction, config.preprocess.val_max)
    rows = [{"id": m["id"], "speaker": m["speaker"], "speaker_id": speakers[m["speaker"]], "text": m["text"],
             "normalized": m["normalized"], "phonemes": m["phonemes"], "n_frames": m["n_frames"],
             "duration_s": m["duration_s"], "wav": f"wav/{m['id']}.wav"} for m in ok]
    save_jsonl(work / MANIFESTS["train"], [r for r in rows if r["id"] not in val])
    save_jsonl(work / MANIFESTS["val"], [r for r in rows if r["id"] in val])
    return write_report(work, metas, config)


def _statistics(work: Path, ok: list[dict[str, Any]], speakers: dict[str, int], config: Config) -> dict[str, Any]:
    """Pitch mean/std per speaker (voices differ by an octave), energy mean/std for the corpus,
    and the normalised ranges the models' value embeddings are binned over."""
    pitch_by_speaker: dict[str, list[np.ndarray]] = {name: [] for name in speakers}
    energies = []
    for m in ok:
        pitch = np.load(array_path(work, "pitch", m["id"]))
        energy = np.load(array_path(work, "energy", m["id"]))
        if config.preprocess.feature_level == "phoneme":  # statistics over symbols that were spoken
            durations = np.load(array_path(work, "duration", m["id"]))
            pitch, energy = pitch[durations > 0], energy[durations > 0]
        pitch_by_speaker[m["speaker"]].append(pitch[pitch > 0])
        energies.append(energy)
    per_speaker = {name: _mean_std(np.concatenate(values)) for name, values in pitch_by_speaker.items()}
    normalised = np.concatenate([(np.concatenate(pitch_by_speaker[name]) - s["mean"]) / s["std"]
                                 for name, s in per_speaker.items()])
    energy_all = np.concatenate(energies)
    energy_stats = _mean_std(energy_all)
    energy_normalised = (energy_all - energy_stats["mean"]) / energy_stats["std"]
    return {"feature_level": config.preprocess.feature_level,
            "pitch": {"per_speaker": per_speaker, "normalized_min": float(normalised.min()),
                      "normalized_max": float(normalised.max())},
            "energy": {**energy_stats, "normalized_min": float(energy_normalised.min()),
                       "normalized_max": float(energy_normalised.max())}}
