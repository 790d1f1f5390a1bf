"""The corpus-level aligner interface: how an utterance gets its durations during preprocessing.

A per-utterance aligner (pocketsphinx forced alignment, MFA TextGrids) places the phonemes of
one utterance inside the worker that processes it. The learned aligner cannot: it is trained on
the whole corpus, so each worker only stages the utterance, and `finish` aligns everything staged
once every utterance is in (`ttskit.align.learned.corpus`). The pipeline sees only this class
(`ttskit.data.processor.build_corpus_aligner` picks one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ttskit.align.base import Aligner, AlignmentRejected, to_frames
from ttskit.align.features import Skip, frame_features, write_utterance
from ttskit.audio import MelSpectrogram
from ttskit.config import Config
from ttskit.text.frontend import TextAnalysis, build_frontend

AlignerEvent = Callable[[dict[str, Any]], None]


class CorpusAligner(ABC):
    @abstractmethod
    def place(self, work: Path, utterance_id: str, wave: np.ndarray, analysis: TextAnalysis, mel: MelSpectrogram,
              config: Config) -> dict[str, Any]:
        """One trimmed utterance (inside a worker): write what this aligner writes for it and
        return its meta fields; raise Skip to exclude it."""

    def finish(self, work: Path, config: Config, device: str | torch.device | None = None,
               on_event: AlignerEvent | None = None) -> int:
        """After every utterance was placed (merge): align what waits; returns how many."""
        return 0


class PerUtteranceAligner(CorpusAligner):
    """Aligns each utterance on its own, cuts the leading/trailing silence the alignment found,
    and writes the utterance's features. The aligner is built on first use, in the worker."""

    def __init__(self, config: Config, textgrid_dir: Path | None) -> None:
        self.config, self.textgrid_dir = config, textgrid_dir
        self._aligner: Aligner | None = None

    def _build(self) -> Aligner:
        p = self.config.preprocess
        limits = dict(max_phone_s=p.max_phone_s, min_rate=p.min_phones_per_s, max_rate=p.max_phones_per_s,
                      max_trailing_pause_s=p.max_trailing_pause_s)
        if p.aligner == "pocketsphinx":
            from ttskit.align.pocketsphinx_aligner import PocketsphinxAligner

            return PocketsphinxAligner(self.config.audio, **limits)
        from ttskit.align.textgrid import TextGridAligner

        if self.textgrid_dir is None:
            raise ValueError("the textgrid aligner needs --textgrids DIR")
        frontend = build_frontend(self.config.text)
        inventory = set(frontend.base_symbols()) if frontend.fixed_inventory else None
        return TextGridAligner(self.textgrid_dir, inventory, **limits)

    def place(self, work: Path, utterance_id: str, wave: np.ndarray, analysis: TextAnalysis, mel: MelSpectrogram,
              config: Config) -> dict[str, Any]:
        if self._aligner is None:
            self._aligner = self._build()
        try:
            alignment = to_frames(self._aligner.align(utterance_id, wave, analysis), config.audio, len(wave))
        except AlignmentRejected as err:
            raise Skip(f"alignment rejected: {err}") from None
        wave = wave[alignment.start_sample:alignment.end_sample]
        features = frame_features(wave, mel, config)
        written = write_utterance(work, utterance_id, config, wave, features, alignment.symbols,
                                  alignment.durations, alignment.start_sample)
        return {"normalized": analysis.normalized, **written, "warnings": analysis.warnings}



class UnalignedCorpusAligner(CorpusAligner):
    """`--aligner none`: the trimmed utterance's features and its front end's symbols, no
    durations (Tacotron 2 learns its alignment; `--aligner tacotron2` can then give durations)."""

    def place(self, work: Path, utterance_id: str, wave: np.ndarray, analysis: TextAnalysis, mel: MelSpectrogram,
              config: Config) -> dict[str, Any]:
        features = frame_features(wave, mel, config)
        written = write_utterance(work, utterance_id, config, wave, features, analysis.symbols, None, 0)
        return {"normalized": analysis.normalized, **written, "warnings": analysis.warnings, "aligner": "none"}
