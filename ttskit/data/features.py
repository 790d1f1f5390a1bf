"""One utterance -> processed wave, mel, energy, pitch and durations (runs inside a worker)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ttskit.align.base import AlignmentRejected, Aligner, to_frames
from ttskit.audio import AudioError, MelSpectrogram, load_audio, peak_normalize, save_wav, trim_silence
from ttskit.audio.pitch import PitchTrack, extract_pitch
from ttskit.config import Config
from ttskit.data.corpora import Utterance
from ttskit.data.work import array_path, meta_path, save_array, save_json, wav_path
from ttskit.text.frontend import PAUSE_SYMBOLS, WORD_BOUNDARY, build_frontend

SILENT_PEAK = 1e-4  # below this (-80 dBFS) a file holds no usable speech


class Skip(Exception):
    """This utterance is excluded; the message is the reason shown in the report."""


def build_aligner(config: Config, textgrid_dir: Path | None) -> Aligner | None:
    """The per-utterance aligner; None for the learned aligner, which aligns the whole corpus at once
    after every utterance has been staged (ttskit.data.learned_alignment)."""
    p = config.preprocess
    if p.aligner == "learned":
        return None
    limits = dict(max_phone_s=p.max_phone_s, min_rate=p.min_phones_per_s, max_rate=p.max_phones_per_s,
                  max_trailing_pause_s=p.max_trailing_pause_s)
    if p.aligner == "pocketsphinx":
        from ttskit.align.pocketsphinx_aligner import PocketsphinxAligner

        return PocketsphinxAligner(config.audio, **limits)
    from ttskit.align.textgrid import TextGridAligner

    if textgrid_dir is None:
        raise ValueError("the textgrid aligner needs --textgrids DIR")
    frontend = build_frontend(config.text)
    inventory = set(frontend.base_symbols()) if frontend.fixed_inventory else None
    return TextGridAligner(textgrid_dir, inventory, **limits)


def symbol_average(values: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Mean of frame values over each symbol's frames; a zero-length symbol takes the value at
    its boundary (not 0, which normalisation would turn into a large outlier)."""
    ends = np.cumsum(durations)
    starts = ends - durations
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    out = np.empty(len(durations), dtype=np.float32)
    positive = durations > 0
    out[positive] = (sums[ends[positive]] - sums[starts[positive]]) / durations[positive]
    boundary = np.clip(starts[~positive], 0, len(values) - 1)
    out[~positive] = values[boundary]
    return out


@dataclass(frozen=True)
class FrameFeatures:
    """Per mel frame of one wave: log-mel (n_mels, T), energy (T,) and pitch with its voicing."""

    mel: np.ndarray
    energy: np.ndarray
    pitch: PitchTrack

    def frames(self, start: int, end: int) -> "FrameFeatures":
        return FrameFeatures(self.mel[:, start:end], self.energy[start:end],
                             PitchTrack(self.pitch.f0[start:end], self.pitch.voiced[start:end]))


def frame_features(wave: np.ndarray, mel: MelSpectrogram, config: Config) -> FrameFeatures:
    """Log-mel, energy and pitch of every mel frame of `wave`; Skip when no frame is voiced."""
    prep = config.preprocess
    with torch.inference_mode():
        spectrogram, energy = mel.mel_and_energy(torch.from_numpy(np.ascontiguousarray(wave))[None])
    pitch = extract_pitch(wave, config.audio, prep.pitch_method, prep.pitch_fmin, prep.pitch_fmax)
    if not pitch.voiced.any():
        raise Skip("no voiced frames found (pitch)")
    return FrameFeatures(spectrogram[0].numpy().astype(np.float32), energy[0].numpy().astype(np.float32), pitch)


def write_utterance(work: Path, uid: str, config: Config, wave: np.ndarray, features: FrameFeatures,
                    symbols: list[str], durations: np.ndarray, cut_start_sample: int) -> dict[str, Any]:
    """Write an aligned utterance's wav, mel, pitch, energy and durations into WORK (pitch and energy
    averaged per symbol at phoneme level) and return its meta fields. Every aligner ends here."""
    audio, prep = config.audio, config.preprocess
    durations = durations.astype(np.int64)
    if features.mel.shape[1] != durations.sum():  # guaranteed by the aligners; training relies on it
        raise AssertionError(f"{uid}: {features.mel.shape[1]} mel frames but durations sum to {durations.sum()}")
    f0, energy = features.pitch.f0, features.energy
    if prep.feature_level == "phoneme":
        f0, energy = symbol_average(f0, durations), symbol_average(energy, durations)
    save_wav(wav_path(work, uid), wave, audio.sample_rate)
    save_array(array_path(work, "mel", uid), np.ascontiguousarray(features.mel, dtype=np.float32))
    save_array(array_path(work, "pitch", uid), f0.astype(np.float32))
    save_array(array_path(work, "energy", uid), energy.astype(np.float32))
    save_array(array_path(work, "duration", uid), durations)
    speech = [d for s, d in zip(symbols, durations) if s not in PAUSE_SYMBOLS and s != WORD_BOUNDARY]
    return {"phonemes": symbols, "n_frames": int(durations.sum()), "cut_start_sample": cut_start_sample,
            "duration_s": round(len(wave) / audio.sample_rate, 4),
            "voiced_fraction": round(features.pitch.voiced_fraction, 4),
            "phones_per_s": round(len(speech) / max(sum(speech) * audio.frame_shift_s, 1e-6), 3)}


class UtteranceProcessor:
    """Holds what a worker builds once (front end, mel module, aligner) and processes utterances."""

    def __init__(self, config: Config, work: Path, textgrid_dir: Path | None = None) -> None:
        torch.set_num_threads(1)  # parallelism comes from worker processes, one core each
        self.config = config
        self.work = work
        self.frontend = build_frontend(config.text)
        self.mel = MelSpectrogram(config.audio)
        self.aligner = build_aligner(config, textgrid_dir)

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
        if self.aligner is None:
            from ttskit.data.learned_alignment import stage

            return stage(self.work, utterance.id, wave, analysis, self.mel, self.config)
        try:
            alignment = to_frames(self.aligner.align(utterance.id, wave, analysis), audio, len(wave))
        except AlignmentRejected as err:
            raise Skip(f"alignment rejected: {err}") from None
        wave = wave[alignment.start_sample:alignment.end_sample]
        features = frame_features(wave, self.mel, self.config)
        written = write_utterance(self.work, utterance.id, self.config, wave, features, alignment.symbols,
                                  alignment.durations, alignment.start_sample)
        return {"normalized": analysis.normalized, **written, "warnings": analysis.warnings}
