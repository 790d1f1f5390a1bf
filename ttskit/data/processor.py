"""One utterance -> its processed wave, mel, energy, pitch and durations in WORK (runs inside a
preprocess worker, which builds one `UtteranceProcessor` and feeds it utterances)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ttskit.align.corpus import CorpusAligner, PerUtteranceAligner, UnalignedCorpusAligner
from ttskit.align.features import Skip
from ttskit.align.learned.corpus import LearnedCorpusAligner
from ttskit.audio import AudioError, MelSpectrogram, load_audio, peak_normalize, trim_silence
from ttskit.config import Config
from ttskit.data.corpora import Utterance
from ttskit.text.frontend import PAUSE_SYMBOLS, build_frontend
from ttskit.work import meta_path, save_json

SILENT_PEAK = 1e-4  # below this (-80 dBFS) a file holds no usable speech


def build_corpus_aligner(config: Config, textgrid_dir: Path | None = None) -> CorpusAligner:
    """The aligner `preprocess.aligner` names."""
    if config.preprocess.aligner == "learned":
        return LearnedCorpusAligner()
    if config.preprocess.aligner == "none":
        return UnalignedCorpusAligner()
    if config.preprocess.aligner == "tacotron2":
        from ttskit.align.tacotron2_teacher import TeacherCorpusAligner  # loads the checkpoint layer: only then

        return TeacherCorpusAligner()
    return PerUtteranceAligner(config, textgrid_dir)


class UtteranceProcessor:
    """Holds what a worker builds once (front end, mel module, aligner) and processes utterances."""

    def __init__(self, config: Config, work: Path, textgrid_dir: Path | None = None) -> None:
        self.config = config
        self.work = work
        self.frontend = build_frontend(config.text)
        self.mel = MelSpectrogram(config.audio)
        self.aligner = build_corpus_aligner(config, textgrid_dir)

    def __call__(self, utterance: Utterance) -> dict[str, Any]:
        started = time.perf_counter()
        meta: dict[str, Any] = {"id": utterance.id, "speaker": utterance.speaker, "text": utterance.text,
                                "source": str(utterance.audio)}
        try:
            meta["status"] = "ok"
            meta.update(self._process(utterance))  # may say "unaligned" (staged for the learned aligner)
        except Skip as skip:
            meta.update(status="skipped", reason=str(skip))
        meta["seconds"] = round(time.perf_counter() - started, 4)
        save_json(meta_path(self.work, utterance.id), meta)  # last: its presence means "done"
        return meta

    def _process(self, utterance: Utterance) -> dict[str, Any]:
        audio, prep = self.config.audio, self.config.preprocess
        if not utterance.text.strip():
            raise Skip("empty transcript")
        analysis = self.frontend.analyze(utterance.text)
        if not [s for s in analysis.symbols if s not in PAUSE_SYMBOLS and s != " "]:
            raise Skip(f"nothing to say in the transcript {utterance.text!r}")
        try:
            wave = load_audio(utterance.audio, audio.sample_rate)
        except AudioError as err:
            raise Skip(str(err)) from None
        if float(np.max(np.abs(wave))) < SILENT_PEAK:
            raise Skip("audio is silent")
        wave = trim_silence(peak_normalize(wave, audio.peak_normalize), audio)
        seconds = len(wave) / audio.sample_rate
        if not prep.min_duration_s <= seconds <= prep.max_duration_s:
            raise Skip(f"{seconds:.2f} s of speech is outside [{prep.min_duration_s}, {prep.max_duration_s}] s")
        return self.aligner.place(self.work, utterance.id, wave, analysis, self.mel, self.config)
