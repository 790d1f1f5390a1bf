"""The ONNX Runtime backend: a voice exported by `ttskit export`, run without PyTorch models.

The folder's `voice.onnx.json` brings what the graphs do not: the front end's settings and the
vocabulary, speakers, statistics and audio settings. The acoustic graph (`AcousticGraph`
exported) takes the controls as inputs; the vocoder graph takes the mel (and, for the
harmonic-plus-noise vocoder, F0 and its white noise, drawn here). `Synthesizer.from_voice`
puts these behind the same `AcousticEngine` and `Vocoder` interfaces the torch backend has, so
the text front end, long-form splitting, streaming and batching are the torch path's own code.

onnxruntime is an optional extra: `pip install "ttskit[onnx]"`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ttskit.checkpoints.acoustic import AcousticModel
from ttskit.config import AudioConfig, TextConfig, config_from_dict
from ttskit.models.vocoder import Vocoder, VocoderError
from ttskit.synthesis.engines import AcousticFrames
from ttskit.synthesis.voices import Voice, VoiceError
from ttskit.text.frontend import build_frontend
from ttskit.text.vocab import Vocab

# Utterances per acoustic graph run. Small parts pad less and keep each attention layer's (B,
# heads, T, T) scores within the CPU's cache: the shipped voice, 60 held-out sentences in batches
# of 16 on 2 threads, took 395 ms in parts of 8, 401 in parts of 4 and 329-332 in parts of 2 or 1
# (torch's own batches do best at 16: 581 ms, and 961 ms in batches of 2).
PART_SENTENCES = 2
ACOUSTIC_INPUTS = ("phonemes", "phoneme_lengths", "speakers", "speed", "pitch", "energy")
ACOUSTIC_OUTPUTS = ("mel", "frame_lengths", "f0", "durations")
INSTALL_HINT = 'pip install "ttskit[onnx]"'


def onnxruntime_module() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise VoiceError(f"the ONNX backend needs onnxruntime: {INSTALL_HINT}") from None
    return onnxruntime


def session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session on `path`, with as many threads as torch uses (the two
    backends are compared at the same count)."""
    ort = onnxruntime_module()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped errors for unreadable graphs
        raise VoiceError(f"{path}: ONNX Runtime cannot load it ({str(err).splitlines()[0]})") from None


class SideBySide:
    """Runs of one graph side by side on single-threaded sessions, one per thread: ONNX Runtime runs
    a graph without Python's lock, and on two cores its one-threaded kernels waste less than its
    two-threaded ones (measured: the shipped voice's vocoder 300x real time against 216-240x one
    utterance at a time on two threads, its acoustic model 1.18x faster on two halves of a batch)."""

    def __init__(self, path: Path, workers: int) -> None:
        self.path, self.workers = path, workers

    def run(self, outputs: list[str], feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
        """Each feed's outputs, in the feeds' order. The largest feeds start first, so the last
        runs, which one thread may be left to do alone, are the shortest."""
        largest_first = sorted(range(len(feeds)), key=lambda i: -sum(v.size for v in feeds[i].values()))
        done = dict(zip(largest_first, self._pool.map(lambda i: self._session.run(outputs, feeds[i]), largest_first)))
        return [done[i] for i in range(len(feeds))]

    @cached_property
    def _session(self) -> Any:
        return session(self.path, threads=1)

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.workers, thread_name_prefix="ttskit-onnx")


class OnnxAcoustic:
    """The exported acoustic graph behind the `AcousticEngine` interface. A batch of at least two
    utterances per thread runs in parts of at most `PART_SENTENCES` side by side (`SideBySide`),
    each part padded to its own longest utterance."""

    def __init__(self, path: Path, threads: int | None = None, silence: float = math.log(1e-5)) -> None:
        self.session, self.source, self.silence = session(path, threads), str(path), silence
        self.side_by_side = SideBySide(path, threads or torch.get_num_threads())

    def __call__(self, phonemes: np.ndarray, lengths: np.ndarray, speakers: np.ndarray, speed: np.ndarray,
                 pitch: np.ndarray, energy: np.ndarray) -> AcousticFrames:
        inputs = (phonemes.astype(np.int64), lengths.astype(np.int64), speakers.astype(np.int64),
                  speed.astype(np.float32), pitch.astype(np.float32), energy.astype(np.float32))
        workers = self.side_by_side.workers
        if workers < 2 or len(lengths) < 2 * workers:
            mel, frame_lengths, f0, _ = self.session.run(list(ACOUSTIC_OUTPUTS), dict(zip(ACOUSTIC_INPUTS, inputs)))
            return AcousticFrames(torch.from_numpy(mel), frame_lengths.tolist(), torch.from_numpy(f0))
        parts = np.array_split(np.arange(len(lengths)), max(workers, -(-len(lengths) // PART_SENTENCES)))
        feeds = [dict(zip(ACOUSTIC_INPUTS, (inputs[0][rows, :int(lengths[rows].max())],
                                            *(values[rows] for values in inputs[1:])))) for rows in parts]
        outs = self.side_by_side.run(list(ACOUSTIC_OUTPUTS), feeds)
        longest = max(mel.shape[-1] for mel, *_ in outs)
        mel = np.full((len(lengths), outs[0][0].shape[1], longest), self.silence, np.float32)
        f0 = np.zeros((len(lengths), longest), np.float32)
        for rows, (part_mel, _, part_f0, _) in zip(parts, outs):
            mel[rows, :, :part_mel.shape[-1]], f0[rows, :part_f0.shape[-1]] = part_mel, part_f0
        frame_lengths = np.concatenate([frame_lengths for _, frame_lengths, _, _ in outs])
        return AcousticFrames(torch.from_numpy(mel), frame_lengths.tolist(), torch.from_numpy(f0))


class OnnxVocoder(Vocoder):
    """The exported vocoder graph: mel (+ F0 and white noise for a source-filter vocoder) -> wave."""

    device = torch.device("cpu")

    def __init__(self, path: Path, audio: AudioConfig, uses_f0: bool, noise_context: int = 0,
                 threads: int | None = None, seed: int | None = None) -> None:
        self.session, self.audio, self.source, self.uses_f0 = session(path, threads), audio, str(path), uses_f0
        self.side_by_side = SideBySide(path, threads or torch.get_num_threads())
        self.noise, self.noise_context = np.random.default_rng(seed), noise_context

    def __call__(self, mel: torch.Tensor, f0: torch.Tensor | None = None,
                 voiced: torch.Tensor | None = None) -> torch.Tensor:
        return torch.from_numpy(self.session.run(["wave"], self._feeds(mel, f0, voiced))[0])

    def each(self, mels: list[torch.Tensor], f0s: list[torch.Tensor | None]) -> list[torch.Tensor]:
        """Utterances side by side (`SideBySide`). The noise is drawn here, in order, so the waves
        are those of one-at-a-time calls."""
        if self.side_by_side.workers < 2 or len(mels) < 2:
            return super().each(mels, f0s)
        runs = self.side_by_side.run(["wave"], [self._feeds(mel, f0) for mel, f0 in zip(mels, f0s)])
        return [torch.from_numpy(wave[0]) for wave, in runs]

    def _feeds(self, mel: torch.Tensor, f0: torch.Tensor | None = None,
               voiced: torch.Tensor | None = None) -> dict[str, np.ndarray]:
        mel = mel.unsqueeze(0) if mel.dim() == 2 else mel
        if mel.shape[1] != self.audio.n_mels:
            raise VocoderError(f"mel has {mel.shape[1]} bands; the vocoder {self.source} takes {self.audio.n_mels}")
        feeds = {"mel": mel.detach().cpu().float().numpy()}
        if self.uses_f0:
            if f0 is None or voiced is not None:
                raise VocoderError(f"the exported vocoder {self.source} takes the acoustic model's F0 and finds voicing "
                                   "itself; for copy-synthesis of recordings use the torch vocoder (ttskit vocode)")
            f0 = f0.reshape(mel.shape[0], -1)
            feeds["f0"] = f0.detach().cpu().float().numpy()
            # The graph takes its noise with half an STFT of context at each end (HarmonicNoiseGraph).
            samples = mel.shape[0], mel.shape[-1] * self.audio.hop_length + self.noise_context
            feeds["noise"] = self.noise.uniform(-1.0, 1.0, samples).astype(np.float32)
        return feeds


def load_onnx_voice(voice: Voice, threads: int | None = None) -> tuple[AcousticModel, OnnxAcoustic, OnnxVocoder]:
    """(what synthesis needs to know of the acoustic model, its engine, the vocoder) of an
    exported voice folder."""
    card, source = voice.card, str(voice.folder / "voice.onnx.json")
    try:
        audio = config_from_dict(AudioConfig, card["audio"], source=source)
        text = config_from_dict(TextConfig, card["text"], source=source)
        speakers = {name: index for index, name in enumerate(card["speakers"])}
        acoustic = AcousticModel(None, build_frontend(text), Vocab(tuple(card["vocab"])),  # type: ignore[arg-type]
                                 speakers, card["stats"], audio, str(voice.acoustic))
        uses_f0 = bool(card["vocoder_model"]["uses_f0"])
        noise_context = int(card["vocoder_model"].get("config", {}).get("noise_fft", 0)) if uses_f0 else 0
    except KeyError as missing:
        raise VoiceError(f"{source}: lacks {missing}; export the voice again with this ttskit") from None
    for part in (voice.acoustic, voice.vocoder):
        if not part.is_file():
            raise VoiceError(f"{voice.folder}: the voice names {part.name}, which is missing")
    engine = OnnxAcoustic(voice.acoustic, threads, silence=math.log(audio.mel_floor))
    return acoustic, engine, OnnxVocoder(voice.vocoder, audio, uses_f0, noise_context, threads)
