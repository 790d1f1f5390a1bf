"""`Synthesizer`: text -> waveform with an acoustic checkpoint and a vocoder (or Griffin-Lim).

    synth = Synthesizer.default()                      # the voice shipped inside ttskit
    synth = Synthesizer.from_voice("joe")              # a shipped voice by name, or a voice folder
    synth = Synthesizer.from_checkpoints("runs/lj", "runs/lj-vocoder", device="cpu")
    wave = synth.tts("Hello there. How are you?", speed=1.1, pitch=2.0)   # float32, synth.sample_rate

Text of any length is split into sentences, analysed by the front end the acoustic model was
trained with, synthesised in length-sorted batches, vocoded, and joined with pauses, fades and
level matching (`joining.Joiner`). `stream()` yields the same audio sentence by sentence.

A vocoder that uses F0 (the harmonic-plus-noise one) gets the acoustic model's predicted pitch,
controls included, as a per-frame contour in Hz (an output of the acoustic graph); its voicing
comes from the vocoder's own estimate on the mel.

The acoustic model runs through an `AcousticEngine`: `TorchAcoustic` (the model's
`ttskit.models.inference_graph.AcousticGraph`) or, for a voice exported by `ttskit export`, the
same graph on ONNX Runtime (`ttskit.synthesis.onnx_backend`). Each sentence carries its own
speaker and controls, so one model call can serve sentences of different requests (`render`,
which the server's batcher uses).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ttskit.checkpoints.acoustic import AcousticModel, load_acoustic
from ttskit.checkpoints.vocoder import load_vocoder
from ttskit.errors import TtskitError
from ttskit.models.vocoder import GRIFFIN_LIM, GriffinLimVocoder, Vocoder, VocoderError
from ttskit.runtime import InferencePrecision, default_device
from ttskit.synthesis.engines import AcousticEngine, acoustic_engine, engine_notes, unsupported_controls
from ttskit.synthesis.joining import Joiner
from ttskit.synthesis.postfilter import check_sharpening, sharpen_mel
from ttskit.synthesis.sentences import split_sentences
from ttskit.synthesis.voices import Backend, Voice, find_voice
from ttskit.text.frontend import PAUSE_SYMBOLS, WORD_BOUNDARY

BATCH_SENTENCES = 16
# What speed (x faster), pitch (semitones) and energy (x) may be, everywhere they are taken.
CONTROL_RANGES: dict[str, tuple[float, float]] = {"speed": (0.1, 10.0), "pitch": (-24.0, 24.0), "energy": (0.1, 10.0)}


class SynthesisError(TtskitError, ValueError):
    """Text, speaker, controls or checkpoints that cannot be synthesised; the message says why."""


@dataclass
class Timing:
    """Seconds spent per stage, and of audio made, over the last call."""

    text_s: float = 0.0
    acoustic_s: float = 0.0
    vocoder_s: float = 0.0
    audio_s: float = 0.0
    first_audio_s: float | None = None  # from the call to the first audio ready (stream)

    @property
    def compute_s(self) -> float:
        return self.text_s + self.acoustic_s + self.vocoder_s

    @property
    def real_time_factor(self) -> float:
        return self.compute_s / self.audio_s if self.audio_s else math.inf


@dataclass
class Sentence:
    """One sentence to render, with the speaker and controls it is said with."""

    text: str
    ids: list[int]
    owner: int  # which input text it belongs to
    speaker: int = 0
    speed: float = 1.0
    pitch: float = 0.0  # semitones
    energy: float = 1.0
    audio: np.ndarray | None = None


@dataclass
class Synthesizer:
    acoustic: AcousticModel
    vocoder: Vocoder
    device: torch.device
    warnings: list[str] = field(default_factory=list)
    timing: Timing = field(default_factory=Timing)
    voice: Voice | None = None  # the packed voice it was loaded from, if any
    engine: AcousticEngine | None = None  # None: the acoustic model in torch
    backend: str = "torch"
    # Mel sharpening before the vocoder (`postfilter`); a packed voice brings the factor it was
    # scored with (`from_voice`), 1 leaves the mel as predicted.
    sharpen: float = 1.0

    def __post_init__(self) -> None:
        if self.engine is None:
            self.engine = acoustic_engine(self.acoustic, self.device)
        self.sharpen = check_sharpening(self.sharpen)

    @classmethod
    def default(cls, device: str | torch.device | None = None, precision: InferencePrecision = "fp32") -> Synthesizer:
        """The default voice shipped inside ttskit (`ttskit voices` lists them)."""
        return cls.from_voice(None, device, precision)

    @classmethod
    def from_voice(cls, name: str | Path | None = None, device: str | torch.device | None = None,
                   precision: InferencePrecision = "fp32", backend: Backend = "auto",
                   sharpen: float | None = None) -> Synthesizer:
        """A shipped voice by name (None: the default), a voice folder made by `ttskit pack-voice`, or
        one made by `ttskit export` (run on ONNX Runtime). `backend`: torch, onnx, or auto (what
        the voice has; torch where it has both). `sharpen`: the mel sharpening (None: the voice's own)."""
        voice = find_voice(name, backend)
        sharpen = voice.sharpen if sharpen is None else sharpen
        if voice.backend == "onnx":
            from ttskit.synthesis.onnx_backend import load_onnx_voice

            if precision != "fp32":
                raise SynthesisError(f"--precision {precision} applies to the torch backend; an exported voice "
                                     "runs in the arithmetic it was exported in")
            acoustic, engine, vocoder = load_onnx_voice(voice)
            return cls(acoustic, vocoder, torch.device("cpu"), voice=voice, engine=engine, backend="onnx",
                       sharpen=sharpen)
        synth = cls.from_checkpoints(voice.acoustic, voice.vocoder, device, precision, sharpen)
        synth.voice = voice
        return synth

    @classmethod
    def from_checkpoints(cls, acoustic: str | Path, vocoder: str | Path = GRIFFIN_LIM,
                         device: str | torch.device | None = None,
                         precision: InferencePrecision = "fp32", sharpen: float = 1.0) -> Synthesizer:
        """`acoustic`: a train-acoustic checkpoint or run folder. `vocoder`: a train-vocoder run or
        checkpoint, a jik876/hifi-gan g_ file, or "griffin-lim". `precision`: the neural vocoder's
        ("bf16": about twice as fast on hardware with bfloat16 arithmetic). The acoustic model
        stays in float32: it is a tenth of the time, and its durations are rounded to whole frames,
        where bfloat16's 8-bit mantissa would move phoneme boundaries. `sharpen`: the mel
        sharpening (`postfilter`; 1: none)."""
        device = default_device(device)
        model = load_acoustic(Path(acoustic), device)
        if str(vocoder) == GRIFFIN_LIM and precision != "fp32":
            raise VocoderError(f"--precision {precision} applies to a neural vocoder; Griffin-Lim runs in float32")
        voice = GriffinLimVocoder(model.audio, device) if str(vocoder) == GRIFFIN_LIM \
            else load_vocoder(Path(vocoder), device, precision)
        voice.check_mel_config(model.audio, f"the acoustic model {model.source}")
        return cls(model, voice, device, sharpen=sharpen)

    @property
    def sample_rate(self) -> int:
        return self.acoustic.audio.sample_rate

    @property
    def speakers(self) -> list[str]:
        return sorted(self.acoustic.speakers, key=self.acoustic.speakers.__getitem__)

    def speaker_id(self, speaker: str | int | None) -> tuple[str, int]:
        names = self.speakers
        if speaker is None:
            return names[0], 0
        if isinstance(speaker, str) and speaker in self.acoustic.speakers:
            return speaker, self.acoustic.speakers[speaker]
        if str(speaker).isdigit() and int(speaker) < len(names):
            return names[int(speaker)], int(speaker)
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise SynthesisError(f"unknown speaker {speaker!r}; this model has {len(names)}: {shown}")

    @staticmethod
    def check_controls(speed: float = 1.0, pitch: float = 0.0, energy: float = 1.0) -> None:
        """--speed (x faster), --pitch (semitones), --energy (x of the frame energy): refused outside
        their ranges. The acoustic graph turns them into the model's normalised domains."""
        (speed_low, speed_high), (pitch_low, pitch_high), (energy_low, energy_high) = CONTROL_RANGES.values()
        if not speed_low <= speed <= speed_high:
            raise SynthesisError(f"speed {speed} is outside {speed_low:g}-{speed_high:g}")
        if not pitch_low <= pitch <= pitch_high:
            raise SynthesisError(f"pitch shift {pitch} semitones is outside {pitch_low:g}..{pitch_high:g}")
        if not energy_low <= energy <= energy_high:
            raise SynthesisError(f"energy {energy} is outside {energy_low:g}-{energy_high:g}")

    # -- text -------------------------------------------------------------------------------------

    def sentences(self, texts: Sequence[str], skip_unspeakable: bool = False, speaker: int = 0, speed: float = 1.0,
                  pitch: float = 0.0, energy: float = 1.0) -> list[Sentence]:
        """The sentences of `texts` through the front end, each with its owner (index in `texts`)
        and the (already checked) speaker id and controls."""
        found: list[Sentence] = []
        for owner, text in enumerate(texts):
            found += self._encoded(text, owner, skip_unspeakable, speaker, speed, pitch, energy)
        return found

    def _encoded(self, text: str, owner: int, skip_unspeakable: bool, speaker: int, speed: float, pitch: float,
                 energy: float) -> Iterator[Sentence]:
        """The speakable sentences of one text through the front end, one at a time (so a stream
        starts after the first, not after the whole text); SynthesisError (or, skipping, a
        warning) at the end when there was none."""
        spoken = False
        for piece in split_sentences(text or ""):
            started = time.perf_counter()
            ids, analysis = self.acoustic.frontend.encode(piece, self.acoustic.vocab)
            self.warnings += [f"{piece!r}: {w}" for w in analysis.warnings]
            self.timing.text_s += time.perf_counter() - started
            if any(s not in PAUSE_SYMBOLS and s != WORD_BOUNDARY for s in analysis.symbols):
                spoken = True
                yield Sentence(piece, ids, owner, speaker, speed, pitch, energy)
        if not spoken:
            problem = ("empty text: nothing to say" if not (text or "").strip() else
                       f"{text!r} has nothing to pronounce (only punctuation or unknown characters?)")
            if not skip_unspeakable:
                raise SynthesisError(problem)
            self.warnings.append(f"skipped: {problem}")

    # -- models -----------------------------------------------------------------------------------

    def render(self, batch: list[Sentence]) -> None:
        """Audio for each sentence of `batch` (sets `.audio`): one acoustic model call for all of
        them, whatever their speakers and controls, then the vocoder."""
        started = time.perf_counter()
        lengths = np.array([len(s.ids) for s in batch], dtype=np.int64)
        phonemes = np.zeros((len(batch), int(lengths.max())), dtype=np.int64)
        for row, sentence in enumerate(batch):
            phonemes[row, :len(sentence.ids)] = sentence.ids
        out = self.engine(phonemes, lengths, np.array([s.speaker for s in batch], dtype=np.int64),
                          *(np.array([getattr(s, key) for s in batch], dtype=np.float32)
                            for key in ("speed", "pitch", "energy")))
        frames = out.frames
        self.warnings += engine_notes(self.engine)
        self.warnings += [f"{sentence.text!r}: the acoustic model predicts no frames for it (is it trained?)"
                          for sentence, count in zip(batch, frames) if count == 0]
        vocoding = time.perf_counter()
        self.timing.acoustic_s += vocoding - started
        mels = out.mel
        if self.sharpen != 1.0:
            mels = mels.clone()  # the engine's output may be an inference-mode tensor
            for row, count in enumerate(frames):
                mels[row, :, :count] = sharpen_mel(mels[row, :, :count], self.sharpen)
        if max(frames) == 0:
            waves = torch.zeros(len(batch), 0)
        elif self.vocoder.uses_f0 or isinstance(self.vocoder, GriffinLimVocoder) or self.device.type == "cpu":
            # One call per utterance (`Vocoder.each`: side by side where the backend can): no
            # compute on padding, and nothing of the padding reaches an utterance's last samples. A
            # CPU gains nothing from batching the vocoder (measured: batched V3 ran at half the speed
            # of V3 alone); a GPU does, below.
            spoken = [row for row, n in enumerate(frames) if n]
            made = dict(zip(spoken, self.vocoder.each(
                [mels[row, :, :frames[row]] for row in spoken],
                [out.f0[row, :frames[row]] if self.vocoder.uses_f0 else None for row in spoken])))
            waves = [made.get(row, torch.zeros(0)) for row in range(len(batch))]
        else:
            waves = self.vocoder(mels)
        hop = self.acoustic.audio.hop_length
        for row, sentence in enumerate(batch):
            sentence.audio = waves[row][:frames[row] * hop].cpu().numpy().astype(np.float32)
        self.timing.vocoder_s += time.perf_counter() - vocoding

    def _render_all(self, sentences: list[Sentence]) -> None:
        order = sorted(sentences, key=lambda s: len(s.ids))
        for start in range(0, len(order), BATCH_SENTENCES):
            self.render(order[start:start + BATCH_SENTENCES])

    # -- public -----------------------------------------------------------------------------------

    def _begin(self, speaker: str | int | None, speed: float, pitch: float, energy: float) -> dict[str, float | int]:
        """The checked speaker id and controls, as `sentences` takes them; resets warnings and timing."""
        self.warnings, self.timing = [], Timing()
        _, index = self.speaker_id(speaker)
        self.check_controls(speed, pitch, energy)
        if (problem := unsupported_controls(self.engine, pitch, energy)) is not None:
            raise SynthesisError(problem)
        return dict(speaker=index, speed=float(speed), pitch=float(pitch), energy=float(energy))

    def tts_many(self, texts: Sequence[str], speaker: str | int | None = None, speed: float = 1.0,
                 pitch: float = 0.0, energy: float = 1.0, skip_unspeakable: bool = False) -> list[np.ndarray | None]:
        """One waveform per text; every sentence of every text goes through length-sorted batches.
        With `skip_unspeakable`, a text with nothing to say gets None and a warning instead of an error."""
        said = self._begin(speaker, speed, pitch, energy)
        sentences = self.sentences(texts, skip_unspeakable, **said)
        self._render_all(sentences)
        results: list[np.ndarray | None] = []
        for owner in range(len(texts)):
            mine = [s for s in sentences if s.owner == owner]
            joiner = Joiner(self.sample_rate)
            results.append(np.concatenate([joiner.piece(s.audio, s.text, i == len(mine) - 1)
                                           for i, s in enumerate(mine)]) if mine else None)
        self.timing.audio_s = sum(len(w) for w in results if w is not None) / self.sample_rate
        return results

    def tts(self, text: str, speaker: str | int | None = None, speed: float = 1.0, pitch: float = 0.0,
            energy: float = 1.0) -> np.ndarray:
        """Float32 audio at `self.sample_rate` for text of any length."""
        wave = self.tts_many([text], speaker, speed, pitch, energy)[0]
        assert wave is not None  # an unspeakable text raised instead
        return wave

    def stream(self, text: str, speaker: str | int | None = None, speed: float = 1.0, pitch: float = 0.0,
               energy: float = 1.0) -> Iterator[np.ndarray]:
        """The audio of `tts` (to float rounding: tts batches sentences), yielded sentence by sentence as
        each is ready."""
        called = time.perf_counter()
        said = self._begin(speaker, speed, pitch, energy)
        joiner = Joiner(self.sample_rate)
        # One sentence of look-ahead through the front end: whether a sentence is the last (no
        # pause after it) is known before it leaves, and the rest of the text waits its turn.
        upcoming = self._encoded(text, 0, False, **said)
        following = next(upcoming, None)
        while following is not None:
            sentence, following = following, next(upcoming, None)
            self.render([sentence])
            piece = joiner.piece(sentence.audio, sentence.text, following is None)
            if self.timing.first_audio_s is None:
                self.timing.first_audio_s = time.perf_counter() - called
            self.timing.audio_s += len(piece) / self.sample_rate
            yield piece
