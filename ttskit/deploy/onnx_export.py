"""`ttskit export`: a voice (or an acoustic run + a vocoder run) as a self-describing ONNX folder.

    DIR/acoustic.onnx     phonemes (B, N) int64, phoneme_lengths (B,), speakers (B,), speed (B,),
                          pitch (B,) semitones, energy (B,) -> mel (B, M, T), frame_lengths (B,),
                          f0 (B, T) Hz, durations (B, N)
    DIR/vocoder.onnx      mel (B, M, T) [, f0 (B, T), noise (B, T * hop)] -> wave (B, T * hop)
    DIR/voice.onnx.json   vocabulary, front end, speakers, statistics, audio settings, model
                          names, opset, ttskit version, and the graphs' inputs and outputs

Every length is dynamic and every control an input, so any ONNX runtime can say anything the
torch model can (in the spirit of Piper's `.onnx` + `.onnx.json`). The graphs are traced from
`ttskit.models.inference_graph`, the code the torch backend runs, their 1-D convolutions rewritten
as 2-D ones (`graph_passes.convolutions_as_2d`: ONNX Runtime's faster kernels), checked with
`onnx.checker`, and run once on ONNX Runtime against torch before the folder is kept: same durations, and the
mel and the wave within float tolerance. `--quantize` turns the acoustic graph's frame-level
convolutions (decoder, post-net: most of its work) into int8 ones, calibrated on a few sentences,
with the durations exactly the float graph's (`_quantize`; `benchmarks/bench_onnx.py` measures
its speed and its quality cost).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ttskit import __version__
from ttskit.audio.io import check_output_folder
from ttskit.checkpoints.acoustic import load_acoustic
from ttskit.checkpoints.vocoder import load_generator_and_state
from ttskit.config import config_to_dict
from ttskit.deploy.graph_passes import convolutions_as_2d
from ttskit.errors import TtskitError
from ttskit.models.harmonic_noise import HarmonicNoiseGenerator
from ttskit.models.hifigan import Generator
from ttskit.models.inference_graph import HarmonicNoiseGraph
from ttskit.models.melgan import MelGANGenerator
from ttskit.models.tacotron2 import Tacotron2
from ttskit.models.vocoder import GRIFFIN_LIM
from ttskit.models.waveglow import WaveGlow
from ttskit.models.weight_norm import folded_copy
from ttskit.synthesis.engines import acoustic_graph
from ttskit.synthesis.onnx_backend import ACOUSTIC_INPUTS, ACOUSTIC_OUTPUTS, INSTALL_HINT, session
from ttskit.synthesis.voices import ONNX_VOICE_FILE, ONNX_VOICE_FORMAT, Voice

OPSET = 17  # LayerNorm as one op; onnxruntime >= 1.12 runs it
ACOUSTIC_ONNX = "acoustic.onnx"
VOCODER_ONNX = "vocoder.onnx"
PROBE_TEXT = "Hello there. This sentence checks the exported graphs against torch."


class ExportError(TtskitError, ValueError):
    """A model that cannot be exported, or an export that does not agree with torch; the message says which."""


class WaveGraph(nn.Module):
    """A mel-only generator (HiFi-GAN, MelGAN, weight norm folded away) as (B, M, T) -> (B, S)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator.eval()
        self.eval()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator(mel).squeeze(1)


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError(f"ttskit export needs onnx and onnxruntime: {INSTALL_HINT}") from None
    return onnx


def _trace(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, input_names: tuple[str, ...],
           output_names: tuple[str, ...], dynamic: dict[str, dict[int, str]]) -> None:
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The tracer warns about every shape it reads; each one is dynamic in the graph (tested).
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, str(path), input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    onnx = _onnx()
    model = onnx.load(str(path))
    if convolutions_as_2d(model):
        onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)


def _vocoder_graph(vocoder: Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(graph, audio settings, what voice.onnx.json says of it) for the vocoder behind `vocoder`."""
    if str(vocoder) == GRIFFIN_LIM:
        raise ExportError("Griffin-Lim is an algorithm, not a graph to export: give a trained vocoder "
                          "(a train-vocoder run or a jik876 g_ file)")
    generator, audio, resolved, state = load_generator_and_state(vocoder)
    if isinstance(generator, HarmonicNoiseGenerator):
        fmin, fmax = state.get("pitch_range", (60.0, 800.0))
        described = {"architecture": "harmonic-noise", "uses_f0": True, "pitch_range": [float(fmin), float(fmax)],
                     "config": config_to_dict(generator.config), "step": state.get("step")}
        return HarmonicNoiseGraph(generator.eval()), audio, described
    if isinstance(generator, Generator):
        described = {"architecture": "hifigan", "uses_f0": False, "config": config_to_dict(generator.config),
                     "step": state.get("step")}
        return WaveGraph(folded_copy(generator)), audio, described
    if isinstance(generator, MelGANGenerator):  # multi-band: the PQMF synthesis is part of the graph
        described = {"architecture": "melgan", "uses_f0": False, "config": config_to_dict(generator.config),
                     "step": state.get("step")}
        return WaveGraph(folded_copy(generator)), audio, described
    why = " (WaveGlow draws its noise inside the flow)" if isinstance(generator, WaveGlow) else ""
    raise ExportError(f"{resolved}: no ONNX export for a {type(generator).__name__} vocoder yet{why}")


def _probe_inputs(acoustic: Any) -> tuple[torch.Tensor, ...]:
    """Two sentences of different lengths and controls: the tracer sees a real batch."""
    ids = [acoustic.frontend.encode(text, acoustic.vocab)[0] for text in PROBE_TEXT.split(". ")]
    lengths = torch.tensor([len(i) for i in ids])
    phonemes = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for row, sentence in enumerate(ids):
        phonemes[row, :len(sentence)] = torch.tensor(sentence)
    speakers = torch.tensor([0, len(acoustic.speakers) - 1])
    return (phonemes, lengths, speakers, torch.tensor([1.0, 1.2]), torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.9]))


def _agreement(name: str, torch_out: np.ndarray, onnx_out: np.ndarray, tolerance_db: float) -> float:
    """SNR (dB) of the ONNX output against torch's; an export below `tolerance_db` is refused."""
    if torch_out.shape != onnx_out.shape:
        raise ExportError(f"{name}: ONNX Runtime gives shape {onnx_out.shape}, torch {torch_out.shape}")
    error = float(np.sum((torch_out.astype(np.float64) - onnx_out) ** 2))
    snr = 10 * np.log10(float(np.sum(torch_out.astype(np.float64) ** 2)) / max(error, 1e-30))
    if snr < tolerance_db:
        raise ExportError(f"{name}: ONNX Runtime's output is {snr:.1f} dB from torch's (at least {tolerance_db} "
                          "needed); this graph does not export faithfully")
    return snr


def export_voice(acoustic: Path, vocoder: Path, out: Path, *, name: str | None = None,
                 voice: Voice | None = None, quantize: bool = False) -> Path:
    """Export the acoustic model and vocoder into the new folder `out` (written whole, or not at
    all: into a temporary folder beside it, renamed at the end; never over a non-empty folder)."""
    onnx = _onnx()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not empty; export writes a new folder and replaces nothing")
    check_output_folder(out.parent if out.parent != Path("") else Path("."))
    model = load_acoustic(acoustic, torch.device("cpu"))
    if isinstance(model.model, Tacotron2):
        raise ExportError(f"{model.source}: ONNX export of Tacotron2 is not supported yet (its decoder is a loop of "
                          "data-dependent length); FastSpeech2 and FastSpeech export")
    vocoder_graph, vocoder_audio, vocoder_described = _vocoder_graph(vocoder)
    staging = out.parent / f".{out.name}.exporting-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        graph = acoustic_graph(model)
        probe = _probe_inputs(model)
        batch = {0: "batch"}
        _trace(graph, probe, staging / ACOUSTIC_ONNX, ACOUSTIC_INPUTS, ACOUSTIC_OUTPUTS,
               {**dict.fromkeys(ACOUSTIC_INPUTS[1:], batch), "phonemes": {0: "batch", 1: "phonemes"},
                "mel": {0: "batch", 2: "frames"}, "frame_lengths": batch, "f0": {0: "batch", 1: "frames"},
                "durations": {0: "batch", 1: "phonemes"}})
        with torch.inference_mode():
            mel, frame_lengths, f0, durations = graph(*probe)
        vocoder_inputs: tuple[torch.Tensor, ...] = (mel,)
        names: tuple[str, ...] = ("mel",)
        dynamic = {"mel": {0: "batch", 2: "frames"}, "wave": {0: "batch", 1: "samples"}}
        if vocoder_described["uses_f0"]:
            context = vocoder_described["config"]["noise_fft"]  # half an STFT of noise at each end
            noise = torch.rand(mel.shape[0], mel.shape[-1] * vocoder_audio.hop_length + context) * 2 - 1
            vocoder_inputs, names = (mel, f0, noise), ("mel", "f0", "noise")
            dynamic |= {"f0": {0: "batch", 1: "frames"}, "noise": {0: "batch", 1: "samples"}}
        _trace(vocoder_graph, vocoder_inputs, staging / VOCODER_ONNX, names, ("wave",), dynamic)
        checks = _check_against_torch(graph, vocoder_graph, probe, vocoder_inputs, names, staging)
        if quantize:
            _quantize(staging / ACOUSTIC_ONNX, _calibration_batches(model))
            onnx.checker.check_model(str(staging / ACOUSTIC_ONNX))  # the rewritten graph is still valid
            checks["int8 mel SNR dB"] = _check_quantized(graph, probe, staging / ACOUSTIC_ONNX)
        card = _card(model, vocoder_audio, vocoder_described, name or (voice.name if voice else out.name), voice,
                     quantize, checks, names)
        (staging / ONNX_VOICE_FILE).write_text(json.dumps(card, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        if voice is not None and (voice.folder / "MODEL_CARD.md").is_file():
            shutil.copyfile(voice.folder / "MODEL_CARD.md", staging / "MODEL_CARD.md")
        if out.is_dir():
            out.rmdir()  # empty, checked above
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _check_against_torch(graph: nn.Module, vocoder_graph: nn.Module, probe: tuple[torch.Tensor, ...],
                         vocoder_inputs: tuple[torch.Tensor, ...], vocoder_names: tuple[str, ...],
                         folder: Path) -> dict[str, float]:
    """Run both graphs on ONNX Runtime and torch: the same durations, mel and wave SNRs >= 40 dB."""
    with torch.inference_mode():
        expected = [t.numpy() for t in graph(*probe)]
        wave = vocoder_graph(*vocoder_inputs).numpy()
    got = session(folder / ACOUSTIC_ONNX).run(list(ACOUSTIC_OUTPUTS),
                                              {k: v.numpy() for k, v in zip(ACOUSTIC_INPUTS, probe)})
    if not np.array_equal(got[3], expected[3]):
        raise ExportError("the exported acoustic graph predicts other durations than torch on the probe sentences")
    onnx_wave = session(folder / VOCODER_ONNX).run(["wave"], {k: v.numpy() for k, v in zip(vocoder_names,
                                                                                          vocoder_inputs)})[0]
    return {"mel SNR dB": round(_agreement("acoustic.onnx mel", expected[0], got[0], 40.0), 1),
            "wave SNR dB": round(_agreement("vocoder.onnx wave", wave, onnx_wave, 40.0), 1)}


QUANTIZED_NOTE = "acoustic decoder and post-net convolutions int8 (static, per-channel weights)"
INT8_MEL_SNR_DB = 20.0  # an int8 acoustic graph further from torch's mel than this is refused
# The acoustic graph's frame-level parts: most of its work, and downstream of the durations.
QUANTIZED_PARTS = ("/decoder/", "/postnet/")
CALIBRATION_TEXT = ("Hello there. This sentence checks the exported graphs against torch. The quick brown fox "
                    "jumps over the lazy dog. How much wood would a woodchuck chuck? Please call Stella and ask "
                    "her to bring these things with her from the store. We will meet at nine o'clock on Monday.")


class _Feeds:
    """The calibration batches ONNX Runtime's quantiser reads (its `CalibrationDataReader` protocol)."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self.batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def _calibration_batches(acoustic: Any) -> list[dict[str, np.ndarray]]:
    """One batch per calibration sentence, plus the probe batch (two speakers, changed controls)."""
    batches = [{k: v.numpy() for k, v in zip(ACOUSTIC_INPUTS, _probe_inputs(acoustic))}]
    for text in CALIBRATION_TEXT.split(". "):
        ids = acoustic.frontend.encode(text, acoustic.vocab)[0]
        batches.append({"phonemes": np.array([ids], np.int64), "phoneme_lengths": np.array([len(ids)], np.int64),
                        "speakers": np.zeros(1, np.int64), "speed": np.ones(1, np.float32),
                        "pitch": np.zeros(1, np.float32), "energy": np.ones(1, np.float32)})
    return batches


def _check_quantized(graph: nn.Module, probe: tuple[torch.Tensor, ...], path: Path) -> float:
    """The int8 acoustic graph against torch float32 on the probe sentences: the same durations
    (refused otherwise), and the mel's SNR (dB), which the voice card reports."""
    with torch.inference_mode():
        expected = [t.numpy() for t in graph(*probe)]
    got = session(path).run(list(ACOUSTIC_OUTPUTS), {k: v.numpy() for k, v in zip(ACOUSTIC_INPUTS, probe)})
    if not np.array_equal(got[3], expected[3]):
        raise ExportError("the int8 acoustic graph predicts other durations than torch on the probe sentences")
    return round(_agreement("acoustic.onnx int8 mel", expected[0], got[0], INT8_MEL_SNR_DB), 1)


def _quantize(path: Path, calibration: list[dict[str, np.ndarray]]) -> None:
    """Static int8 quantisation (QDQ: int8 weights per output channel, uint8 activations scaled
    by their ranges on the calibration batches) of the acoustic graph's frame-level convolutions
    (decoder and post-net), in place. ONNX Runtime runs them as int8 convolutions (VNNI/AMX where
    the CPU has them: ~4x a float32 one, measured). The encoder and the variance predictors stay
    float32, so the durations are exactly the float graph's (checked after). The vocoder keeps
    float32: the harmonic-plus-noise graph's matrix products include its DFT stages, and int8
    there is audible."""
    import logging

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    onnx = _onnx()
    nodes = [node.name for node in onnx.load(str(path)).graph.node
             if node.op_type == "Conv" and node.name.startswith(QUANTIZED_PARTS)]
    if not nodes:
        raise ExportError(f"{path.name}: no decoder or post-net convolutions to quantise in this acoustic graph")
    quantized = path.with_suffix(".int8.onnx")
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process applies to image models
    quantize_static(str(path), str(quantized), _Feeds(calibration), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_quantize=nodes, calibrate_method=CalibrationMethod.MinMax)
    quantized.replace(path)


def _card(model: Any, vocoder_audio: Any, vocoder_described: dict[str, Any], name: str, voice: Voice | None,
          quantize: bool, checks: dict[str, float], vocoder_inputs: tuple[str, ...]) -> dict[str, Any]:
    speakers = sorted(model.speakers, key=model.speakers.__getitem__)
    source_card = voice.card if voice is not None else {}
    return {
        "format": ONNX_VOICE_FORMAT, "name": name, "ttskit_version": __version__, "opset": OPSET,
        "description": source_card.get("description", ""), "language": source_card.get("language", ""),
        "licence": source_card.get("licence", ""), "sample_rate": model.audio.sample_rate,
        "acoustic": ACOUSTIC_ONNX, "vocoder": VOCODER_ONNX, "quantized": QUANTIZED_NOTE if quantize else "none",
        "speakers": speakers, "vocab": list(model.vocab.symbols), "text": config_to_dict(model.frontend.config),
        "audio": config_to_dict(model.audio), "stats": model.stats,
        "acoustic_model": {"name": "fastspeech2", "source": model.source,
                           "inputs": list(ACOUSTIC_INPUTS), "outputs": list(ACOUSTIC_OUTPUTS)},
        "vocoder_model": {**vocoder_described, "inputs": list(vocoder_inputs), "outputs": ["wave"]},
        "controls": {"speed": "x faster (2: half the frames)", "pitch": "semitones", "energy": "x the frame energy"},
        "synthesis": source_card.get("synthesis", {}),  # the voice's mel sharpening, applied outside the graphs
        "export_check": checks,
    }
