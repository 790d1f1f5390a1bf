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


class OnnxAcoustic:
    """The exported acoustic graph behind the `AcousticEngine` interface."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.session, self.source = session(path, threads), str(path)

    def __call__(self, phonemes: np.ndarray, lengths: np.ndarray, speakers: np.ndarray, speed: np.ndarray,
                 pitch: np.ndarray, energy: np.ndarray) -> AcousticFrames:
        feeds = dict(zip(ACOUSTIC_INPUTS, (phonemes.astype(np.int64), lengths.astype(np.int64),
                                           speakers.astype(np.int64), speed.astype(np.float32),
                                           pitch.astype(np.float32), energy.astype(np.float32))))
        mel, frame_lengths, f0, _ = self.session.run(list(ACOUSTIC_OUTPUTS), feeds)
        return AcousticFrames(torch.from_numpy(mel), frame_lengths.tolist(), torch.from_numpy(f0))


class OnnxVocoder(Vocoder):
    """The exported vocoder graph: mel (+ F0 and white noise for a source-filter vocoder) -> wave."""

    device = torch.device("cpu")

    def __init__(self, path: Path, audio: AudioConfig, uses_f0: bool, noise_context: int = 0,
                 threads: int | None = None, seed: int | None = None) -> None:
        self.session, self.audio, self.source, self.uses_f0 = session(path, threads), audio, str(path), uses_f0
        self.path, self.workers = path, threads or torch.get_num_threads()
        self.noise, self.noise_context = np.random.default_rng(seed), noise_context

    def __call__(self, mel: torch.Tensor, f0: torch.Tensor | None = None,
                 voiced: torch.Tensor | None = None) -> torch.Tensor:
        return torch.from_numpy(self.session.run(["wave"], self._feeds(mel, f0, voiced))[0])

    def each(self, mels: list[torch.Tensor], f0s: list[torch.Tensor | None]) -> list[torch.Tensor]:
        """Utterances side by side, one single-threaded run of the graph per thread: ONNX Runtime
        runs a graph without Python's lock, and its kernels on one thread waste less than on two
        on this vocoder's many small operations (measured, 2 cores: 300x real time against 216-240x
        one utterance at a time on two threads). The noise is drawn here, in order, so the waves
        are those of one-at-a-time calls."""
        if self.workers < 2 or len(mels) < 2:
            return super().each(mels, f0s)
        feeds = [self._feeds(mel, f0) for mel, f0 in zip(mels, f0s)]
        runs = self._pool.map(lambda feed: self._single_threaded.run(["wave"], feed)[0][0], feeds)
        return [torch.from_numpy(wave) for wave in runs]

    @cached_property
    def _single_threaded(self) -> Any:
        return session(self.path, threads=1)

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.workers, thread_name_prefix="ttskit-onnx-vocoder")

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
    return acoustic, OnnxAcoustic(voice.acoustic, threads), OnnxVocoder(voice.vocoder, audio, uses_f0, noise_context, threads)
