"""`ttskit preprocess --aligner learned`: the corpus aligns itself.

A learned aligner needs the whole corpus before it can place a single boundary, so preprocessing
runs in three steps instead of one:

1. stage (parallel, per utterance, in the workers): the trimmed wave, its mel, energy, pitch and
   voicing go to WORK/unaligned/, and meta/<id>.json says `"status": "unaligned"` with the symbols
   to align: the front end's, framed by a leading (and, when the text does not end in a pause, a
   trailing) silence symbol that absorbs the silence the trimming kept.
2. train (WORK/aligner/aligner.pt; resumable, reused later): ttskit.align.learned.training.
3. finish (per utterance): MAS durations; the framing silences are cut off the wave and the
   features (as the forced aligner cuts leading silence); the same plausibility checks as the
   forced aligner's; WORK/{wav,mel,pitch,energy,duration}/<id> written, then meta says "ok", then
   the staged files are removed. An utterance killed half-way is simply finished again.

Sharded runs stage on every machine; `ttskit preprocess merge WORK` then trains and finishes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ttskit.align.corpus import AlignerEvent, CorpusAligner
from ttskit.align.features import write_utterance
from ttskit.align.learned.training import AlignerItem, train_aligner
from ttskit.align.staging import (
    finished_outcome,
    implausible,
    load_staged,
    record_finished,
    remove_empty_staging,
    stage_utterance,
    staged_metas,
)
from ttskit.audio import MelSpectrogram
from ttskit.config import Config
from ttskit.runtime import default_device
from ttskit.text.frontend import (
    PAUSE_SYMBOLS,
    SENTENCE_ENDS,
    SHORT_PAUSE,
    SILENCE,
    WORD_BOUNDARY,
    TextAnalysis,
    build_frontend,
)
from ttskit.work import ALIGNER, STAGED, staged_path


def aligner_symbols(analysis: TextAnalysis) -> tuple[list[str], list[int], bool]:
    """(symbols to align, indices of the optional pauses among them, whether a trailing silence
    symbol was added). Front ends without word boundaries (ARPAbet) get an optional pause between
    every two words with none in the text: the aligner gives it at least a frame, and `_finish`
    keeps it as a pause only when it lasts min_pause_s (as the forced aligner inserts sp where it
    hears a silence)."""
    symbols, gaps = [SILENCE], []
    previous_was_word = False
    for unit in analysis.units:
        is_word = bool(unit) and unit != [WORD_BOUNDARY] and not (len(unit) == 1 and unit[0] in PAUSE_SYMBOLS)
        if is_word and previous_was_word:
            gaps.append(len(symbols))
            symbols.append(SHORT_PAUSE)
        symbols.extend(unit)
        previous_was_word = is_word
    trailing = symbols[-1] not in PAUSE_SYMBOLS
    return symbols + [SILENCE] * trailing, gaps, trailing


def stage(work: Path, utterance_id: str, wave: np.ndarray, analysis: TextAnalysis, mel: MelSpectrogram,
          config: Config) -> dict[str, Any]:
    """Step 1 for one utterance (a worker calls it with the trimmed wave)."""
    symbols, gaps, trailing = aligner_symbols(analysis)
    n_frames = stage_utterance(work, utterance_id, wave, mel, config, symbols)
    return {"status": STAGED, "normalized": analysis.normalized, "aligner_symbols": symbols, "aligner_gaps": gaps,
            "trailing_silence": trailing, "n_frames_staged": n_frames, "warnings": analysis.warnings}


def _finish(work: Path, config: Config, meta: dict[str, Any], durations: np.ndarray) -> dict[str, Any]:
    """Step 3 for one utterance: cut the framing silences, check, write, mark ok."""
    audio, prep = config.audio, config.preprocess
    uid, symbols, gaps = meta["id"], meta["aligner_symbols"], set(meta["aligner_gaps"])
    n_trailing = 1 if meta["trailing_silence"] else 0
    min_pause = max(1, int(round(prep.learned_aligner.min_pause_s / audio.frame_shift_s)))
    spoken: list[str] = []
    kept: list[int] = []
    for index in range(1, len(symbols) - n_trailing):
        if index in gaps and durations[index] < min_pause:
            kept[-1] += int(durations[index])  # no pause heard: its frame(s) stay with the word before
        else:
            spoken.append(symbols[index])
            kept.append(int(durations[index]))
    core = np.array(kept, dtype=np.int64)
    start = int(durations[0])
    # Keep at most max_trailing_pause_s after a sentence end, as the forced aligner does.
    if spoken[-1] in SENTENCE_ENDS:
        keep = max(1, int(round(prep.max_trailing_pause_s / audio.frame_shift_s)))
        core[-1] = min(core[-1], keep)
    end = start + int(core.sum())
    outcome = finished_outcome(meta)
    if (reason := implausible(spoken, core, config)) is not None:
        return {**outcome, "status": "skipped", "reason": reason}
    wave, features = load_staged(work, uid)
    hop = audio.hop_length
    written = write_utterance(work, uid, config, wave[start * hop:end * hop], features.frames(start, end), spoken,
                              core, start * hop)
    return {**outcome, "status": "ok", **written, "aligner": "learned"}


def align_staged(work: Path, config: Config, device: str | torch.device | None = None,
                 on_event: AlignerEvent | None = None) -> int:
    """Steps 2 and 3 for every staged utterance of WORK; returns how many were finished."""
    staged = staged_metas(work)
    if not staged:
        return 0
    device = default_device(device)
    items = [AlignerItem(m["id"], m["aligner_symbols"], staged_path(work, "mel", m["id"])) for m in staged]
    if on_event:
        on_event({"event": "train", "utterances": len(items), "device": str(device)})

    def on_step(step: int, max_steps: int, loss: float) -> None:
        if on_event:
            on_event({"event": "step", "step": step, "max_steps": max_steps, "loss": loss})

    frontend = build_frontend(config.text)
    # A fixed inventory (ARPAbet) in the table means utterances added later always fit the aligner.
    inventory = (SILENCE, *frontend.base_symbols()) if frontend.fixed_inventory else ()
    aligner = train_aligner(items, config.audio.n_mels, config.preprocess.learned_aligner, work / ALIGNER,
                            device, on_step, inventory)
    if on_event:
        on_event({"event": "trained", "step": aligner.progress.step, "reason": aligner.progress.stop_reason,
                  "utterances": len(items)})
    by_id = {m["id"]: m for m in staged}
    chunk = 64  # durations a group at a time: bounded memory, moving progress
    for begin in range(0, len(items), chunk):
        group = items[begin:begin + chunk]
        for uid, durations in aligner.durations(group, device).items():
            record_finished(work, _finish(work, config, by_id[uid], durations), on_event)
    remove_empty_staging(work)
    return len(items)


class LearnedCorpusAligner(CorpusAligner):
    """`preprocess.aligner: learned`: workers stage, merge trains the aligner and finishes."""

    def place(self, work: Path, utterance_id: str, wave: np.ndarray, analysis: TextAnalysis, mel: MelSpectrogram,
              config: Config) -> dict[str, Any]:
        return stage(work, utterance_id, wave, analysis, mel, config)

    def finish(self, work: Path, config: Config, device: str | torch.device | None = None,
               on_event: AlignerEvent | None = None) -> int:
        return align_staged(work, config, device, on_event)
