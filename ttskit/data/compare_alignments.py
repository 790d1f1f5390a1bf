"""How far apart two aligners put the same phoneme boundaries: two WORK folders preprocessed from
the same corpus with the same audio and text settings, differing in the aligner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttskit.text.frontend import PAUSE_SYMBOLS, WORD_BOUNDARY
from ttskit.work import array_path, read_metas


@dataclass(frozen=True)
class BoundaryComparison:
    differences: np.ndarray  # frames, hypothesis minus reference, one per phoneme end compared
    utterances: int
    unmatched: list[str]  # ids in both whose phoneme sequences differ (not compared)

    @property
    def mean_absolute(self) -> float:
        return float(np.abs(self.differences).mean())

    def summary(self) -> str:
        d = self.differences
        within = 100 * float((np.abs(d) <= 2).mean())
        return (f"{self.utterances} utterances, {len(d)} phoneme ends: mean |difference| {self.mean_absolute:.2f} "
                f"frames, median {float(np.median(np.abs(d))):.1f}, signed mean {float(d.mean()):+.2f}, "
                f"{within:.0f} % within 2 frames")


def _phoneme_ends(work: Path, meta: dict, hop: int) -> tuple[list[str], np.ndarray]:
    """Speech symbols and their end times in frames from the start of the trimmed recording."""
    durations = np.load(array_path(work, "duration", meta["id"]))
    ends = meta["cut_start_sample"] / hop + np.cumsum(durations)
    keep = [i for i, s in enumerate(meta["phonemes"]) if s not in PAUSE_SYMBOLS and s != WORD_BOUNDARY]
    return [meta["phonemes"][i] for i in keep], ends[keep]


def compare_alignments(reference: Path, hypothesis: Path, hop: int,
                       only: set[str] | None = None) -> BoundaryComparison:
    """Phoneme ends of the utterances both folders aligned (of `only`, when given) compared."""
    refs = {m["id"]: m for m in read_metas(reference) if m["status"] == "ok"}
    hyps = {m["id"]: m for m in read_metas(hypothesis) if m["status"] == "ok"}
    common = sorted(set(refs) & set(hyps) & (only if only is not None else set(refs)))
    for work, metas in ((reference, refs), (hypothesis, hyps)):
        if common and "cut_start_sample" not in metas[common[0]]:
            raise ValueError(f"{work}: its metas lack cut_start_sample (made by an older ttskit); preprocess again")
    differences, unmatched = [], []
    for uid in common:
        ref_symbols, ref_ends = _phoneme_ends(reference, refs[uid], hop)
        hyp_symbols, hyp_ends = _phoneme_ends(hypothesis, hyps[uid], hop)
        if ref_symbols != hyp_symbols:
            unmatched.append(uid)
            continue
        differences.append(hyp_ends - ref_ends)
    if not differences:
        raise ValueError(f"no utterance is usable in both {reference} and {hypothesis} with the same phonemes")
    return BoundaryComparison(np.concatenate(differences), len(differences), unmatched)
