"""`ttskit preprocess --aligner tacotron2 --teacher RUN`: phoneme durations from a trained Tacotron 2's
attention, as FastSpeech (Ren et al., 2019) took them from its autoregressive teacher.

Workers stage each trimmed utterance with the front end's symbols (exactly what the teacher reads
at synthesis, so what it was trained on with `--aligner none`). At merge, the teacher runs
teacher-forced over the staged mels in length-sorted batches; each decoder step's attention row is
repeated for the frames it produced (the reduction factor) and the monotonic alignment search
(`ttskit.align.mas`) takes the most probable monotonic path through its log: every frame to one
symbol, every symbol at least one frame, durations summing to the frame count. The leading and
trailing silence the trimming kept belong to the first and last symbols, as they did in the
teacher's attention.

A teacher that has not learned to align (attention spread over the text instead of on one symbol a
step) would give meaningless durations: the first batch is checked before anything is written, and
single utterances whose attention is unfocused are skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ttskit.align.corpus import AlignerEvent, CorpusAligner
from ttskit.align.features import write_utterance
from ttskit.align.mas import maximum_path
from ttskit.align.staging import (
    finished_outcome,
    implausible,
    load_staged,
    record_finished,
    remove_empty_staging,
    stage_utterance,
    staged_mel,
    staged_metas,
)
from ttskit.audio import MelSpectrogram
from ttskit.checkpoints.acoustic import AcousticModel, load_acoustic
from ttskit.checkpoints.store import CheckpointError
from ttskit.config import Config, mel_mismatches
from ttskit.errors import TtskitError
from ttskit.models.tacotron2 import Tacotron2
from ttskit.runtime import default_device
from ttskit.text.frontend import TextAnalysis, build_frontend
from ttskit.work import STAGED

# The mean over decoder steps of the largest attention weight: 1 when every step attends to one
# symbol, 1/N when attention is spread evenly. A teacher whose attention is this focused on at
# least half the first batch has aligned (tools/tacotron2_alignment.py follows it during training);
# an utterance below it on its own is skipped.
MIN_FOCUS = 0.4
BATCH_FRAMES = 6000  # teacher-forced frames per batch: bounded memory on a CPU


class TeacherError(TtskitError, RuntimeError):
    """The teacher cannot align this WORK folder (not a Tacotron 2, other mels or symbols, not trained)."""


def stage_for_teacher(work: Path, utterance_id: str, wave: np.ndarray, analysis: TextAnalysis,
                      mel: MelSpectrogram, config: Config) -> dict[str, Any]:
    symbols = analysis.symbols
    n_frames = stage_utterance(work, utterance_id, wave, mel, config, symbols)
    return {"status": STAGED, "normalized": analysis.normalized, "aligner_symbols": symbols,
            "n_frames_staged": n_frames, "warnings": analysis.warnings}


def load_teacher(teacher: Path, config: Config, device: torch.device) -> AcousticModel:
    """The Tacotron 2 behind --teacher, checked against the WORK folder's mel and text settings."""
    try:
        acoustic = load_acoustic(teacher, device)
    except CheckpointError as err:
        raise TeacherError(f"--teacher: {err}") from None
    if not isinstance(acoustic.model, Tacotron2):
        raise TeacherError(f"--teacher: {acoustic.source} is a {type(acoustic.model).__name__}, not a Tacotron 2; "
                           "train one with `ttskit train-acoustic WORK -o RUN --model tacotron2` (on a WORK "
                           "preprocessed with --aligner none, or any other)")
    if mismatches := mel_mismatches(config.audio, acoustic.audio):
        key, ours, theirs = mismatches[0]
        raise TeacherError(f"--teacher: {acoustic.source} was trained on other mels ({key}: {theirs!r} there, "
                           f"{ours!r} here); preprocess with its audio settings")
    ours = build_frontend(config.text).name
    if acoustic.frontend.name != ours:
        raise TeacherError(f"--teacher: {acoustic.source} reads the {acoustic.frontend.name} front end's symbols, "
                           f"this folder the {ours} front end's; preprocess with its text settings")
    return acoustic


def attention_focus(attention: torch.Tensor) -> float:
    return float(attention.max(-1).values.mean())


@torch.no_grad()
def teacher_durations(acoustic: AcousticModel, metas: list[dict[str, Any]], work: Path,
                      device: torch.device) -> dict[str, tuple[np.ndarray, float]]:
    """uid -> (durations per symbol, the attention's focus) for one batch of staged utterances."""
    model: Tacotron2 = acoustic.model  # type: ignore[assignment]
    model.eval()
    r = model.config.reduction
    mels = [torch.from_numpy(staged_mel(work, m["id"]).T.copy()) for m in metas]
    ids = [acoustic.vocab.encode(m["aligner_symbols"]) for m in metas]
    speakers = torch.tensor([acoustic.speakers.get(m["speaker"], 0) for m in metas], device=device)
    frames = torch.tensor([len(m) for m in mels])
    lengths = torch.tensor([len(i) for i in ids])
    padded = torch.nn.utils.rnn.pad_sequence(mels, batch_first=True)
    padded = torch.nn.functional.pad(padded, (0, 0, 0, (-padded.shape[1]) % r))
    symbols = torch.nn.utils.rnn.pad_sequence([torch.tensor(i) for i in ids], batch_first=True)
    torch.manual_seed(0)  # the prenet's dropout stays on at inference: the same draws every run
    out = model(symbols.to(device), lengths.to(device), padded.to(device), frames.to(device), speakers)
    alignments = out.alignments.float().cpu()  # (B, decoder steps, N)
    attention = alignments.repeat_interleave(r, dim=1)[:, :padded.shape[1]]
    logp = torch.log(attention.clamp_min(1e-8)).numpy()
    durations = maximum_path(logp, frames.numpy(), lengths.numpy())
    result = {}
    for b, meta in enumerate(metas):
        steps = -(-int(frames[b]) // r)
        focus = attention_focus(alignments[b, :steps, :int(lengths[b])])
        result[meta["id"]] = (durations[b, :int(lengths[b])], focus)
    return result


def _finish(work: Path, config: Config, meta: dict[str, Any], durations: np.ndarray, focus: float) -> dict[str, Any]:
    outcome = finished_outcome(meta)
    if focus < MIN_FOCUS:
        return {**outcome, "status": "skipped",
                "reason": f"alignment rejected: the teacher's attention is unfocused here (focus {focus:.2f} < "
                          f"{MIN_FOCUS})"}
    symbols = meta["aligner_symbols"]
    if (reason := implausible(symbols, durations, config)) is not None:
        return {**outcome, "status": "skipped", "reason": reason}
    wave, features = load_staged(work, meta["id"])
    written = write_utterance(work, meta["id"], config, wave, features, symbols, durations, 0)
    return {**outcome, "status": "ok", **written, "aligner": "tacotron2", "teacher_focus": round(focus, 3)}


def _batches(metas: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Length-sorted batches of at most BATCH_FRAMES padded frames."""
    batches: list[list[dict[str, Any]]] = [[]]
    for meta in sorted(metas, key=lambda m: m["n_frames_staged"]):
        if batches[-1] and meta["n_frames_staged"] * (len(batches[-1]) + 1) > BATCH_FRAMES:
            batches.append([])
        batches[-1].append(meta)
    return [b for b in batches if b]


def align_with_teacher(work: Path, config: Config, device: str | torch.device | None = None,
                       on_event: AlignerEvent | None = None) -> int:
    """Durations for every staged utterance of WORK from the teacher's attention; returns how many."""
    staged = staged_metas(work)
    if not staged:
        return 0
    device = default_device(device)
    acoustic = load_teacher(Path(config.preprocess.teacher), config, device)
    unknown = sorted({s for m in staged for s in m["aligner_symbols"] if s not in acoustic.vocab})
    if unknown:
        raise TeacherError(f"--teacher: {acoustic.source} has no embedding for {unknown[:8]} (used in this corpus); "
                           "train the teacher on this corpus, or one with its symbols")
    if on_event:
        on_event({"event": "teacher", "utterances": len(staged), "device": str(device), "source": acoustic.source})
    for index, batch in enumerate(_batches(staged)):
        found = teacher_durations(acoustic, batch, work, device)
        focuses = [focus for _, focus in found.values()]
        if index == 0 and float(np.median(focuses)) < MIN_FOCUS:
            raise TeacherError(f"--teacher: {acoustic.source} has not learned to align (median attention focus "
                               f"{float(np.median(focuses)):.2f} over {len(batch)} utterances, aligned >= {MIN_FOCUS}); "
                               "train it longer (tools/tacotron2_alignment.py tells when it aligns); nothing was "
                               "written")
        for meta in batch:
            durations, focus = found[meta["id"]]
            record_finished(work, _finish(work, config, meta, durations, focus), on_event)
    remove_empty_staging(work)
    return len(staged)


class TeacherCorpusAligner(CorpusAligner):
    """`preprocess.aligner: tacotron2`: workers stage, merge asks the teacher."""

    def place(self, work: Path, utterance_id: str, wave: np.ndarray, analysis: TextAnalysis, mel: MelSpectrogram,
              config: Config) -> dict[str, Any]:
        return stage_for_teacher(work, utterance_id, wave, analysis, mel, config)

    def finish(self, work: Path, config: Config, device: str | torch.device | None = None,
               on_event: AlignerEvent | None = None) -> int:
        return align_with_teacher(work, config, device, on_event)
