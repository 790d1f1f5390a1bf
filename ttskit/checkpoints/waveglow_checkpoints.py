"""NVIDIA's published WaveGlow checkpoints as ttskit vocoders, without running their code.

- NVIDIA/waveglow's `waveglow_256channels*.pt`: `{"model": <a pickled WaveGlow module>, ...}`. A
  pickled module names the classes it was made of (`glow.WaveGlow`, `torch.nn...Conv1d`,
  weight norm's hook). It is read with torch's weights-only unpickler, which refuses every global
  it is not told about; it is told only those names, each bound to an inert stand-in
  (`_Captured`) that keeps the object's saved attributes and nothing else: nothing from the file
  is imported or executed, and a file naming anything else (`os.system`, ...) is refused. The
  tensors are then collected from the captured module tree by their attribute paths.
- NVIDIA DeepLearningExamples' WaveGlow checkpoints: `{"state_dict": {"module.…": ...}, "config": ...}`
  (and bare state dicts), read with plain `weights_only=True`.

Older layouts (NVIDIA/waveglow before its `convert_model.py`, and DeepLearningExamples) have one
conditioning convolution per WaveNet layer (`cond_layers.i`) where the current one has a single
`cond_layer` with all their outputs stacked: their weight-norm directions, gains and biases are
concatenated along the output channels, which is exact. Sizes are read off the tensors; the mels
are NVIDIA's (ttskit's defaults). Half-precision tensors are widened to float32.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ttskit.checkpoints.jik876 import from_jik876_keys
from ttskit.checkpoints.nvidia_tacotron2 import NVIDIA_AUDIO
from ttskit.config import AudioConfig
from ttskit.models.vocoder import VocoderError
from ttskit.models.waveglow import WaveGlow, WaveGlowConfig

# What a pickled NVIDIA/waveglow model is made of (the globals its pickle names).
PICKLED_CLASSES = ("glow.WaveGlow", "glow.WN", "glow.Invertible1x1Conv", "glow_old.WaveGlow", "glow_old.WN",
                   "glow_old.Invertible1x1Conv", "torch.nn.modules.container.ModuleList",
                   "torch.nn.modules.conv.Conv1d", "torch.nn.modules.conv.ConvTranspose1d",
                   "torch.nn.utils.weight_norm.WeightNorm")
_MARKERS = ("upsample.weight", "WN.0.start.weight_v", "convinv.0.conv.weight")


class _Captured:
    """An inert stand-in for a class a pickle names: it keeps the saved attributes, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        self.saved = state


_STAND_INS = [(type(name.rsplit(".", 1)[1], (_Captured,), {}), name) for name in PICKLED_CLASSES]


def _tensors(node: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    """Parameters and buffers of a captured module tree, by their dotted paths."""
    saved = getattr(node, "saved", None)
    if not isinstance(saved, dict):
        return
    for group in ("_parameters", "_buffers"):
        for name, tensor in (saved.get(group) or {}).items():
            if isinstance(tensor, torch.Tensor):
                out[prefix + name] = tensor.detach()
    for name, child in (saved.get("_modules") or {}).items():
        _tensors(child, f"{prefix}{name}.", out)


def read_pickled_model(path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside NVIDIA/waveglow's pickled-module checkpoint, read without its code."""
    try:
        with torch.serialization.safe_globals(_STAND_INS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler's refusal names the global it would not load
        raise VocoderError(f"{path}: cannot be read safely ({type(err).__name__}: {str(err).splitlines()[0]}); "
                           "it names code outside NVIDIA/waveglow's model classes") from None
    model = state.get("model") if isinstance(state, dict) else None
    weights: dict[str, torch.Tensor] = {}
    _tensors(model, "", weights)
    if not weights:
        raise VocoderError(f"{path}: no WaveGlow model inside (expected {{'model': WaveGlow}})")
    return weights


def is_pickled_module(path: Path) -> bool:
    """Whether a file is a pickle that names NVIDIA/waveglow's classes (peeked, not executed)."""
    import pickletools
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            data = archive.read(name)
        return any(op.name in ("GLOBAL", "STACK_GLOBAL") and str(arg).startswith(("glow ", "glow_old "))
                   for op, arg, _ in pickletools.genops(data))
    except (OSError, zipfile.BadZipFile, StopIteration, ValueError):
        return False


def waveglow_weights(state: Any) -> dict[str, torch.Tensor] | None:
    """A DeepLearningExamples (or bare) WaveGlow state dict, "module." prefixes removed; else None."""
    if not isinstance(state, dict) or "format" in state:
        return None
    weights = state.get("state_dict", state)
    if not isinstance(weights, dict):
        return None
    weights = {key.removeprefix("module."): value for key, value in weights.items() if isinstance(value, torch.Tensor)}
    return weights if all(marker in weights for marker in _MARKERS) else None


def _merged_cond_layers(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-layer `cond_layers.i` -> one `cond_layer` (their outputs stacked in layer order)."""
    out = {k: v for k, v in weights.items() if ".cond_layers." not in k}
    flows = sorted({int(m.group(1)) for k in weights if (m := re.match(r"WN\.(\d+)\.cond_layers\.", k))})
    for k in flows:
        layers = sorted({int(m.group(1)) for key in weights if (m := re.match(rf"WN\.{k}\.cond_layers\.(\d+)\.", key))})
        for part in ("weight_g", "weight_v", "bias"):
            out[f"WN.{k}.cond_layer.{part}"] = torch.cat([weights[f"WN.{k}.cond_layers.{i}.{part}"] for i in layers])
    return out


def load_waveglow(weights: dict[str, torch.Tensor], source: Path) -> tuple[WaveGlow, AudioConfig, list[str]]:
    weights = _merged_cond_layers({k: v.float() for k, v in weights.items()})
    try:
        flows = 1 + max(int(m.group(1)) for k in weights if (m := re.match(r"convinv\.(\d+)\.", k)))
        group = weights["convinv.0.conv.weight"].shape[0]
        last = weights[f"convinv.{flows - 1}.conv.weight"].shape[0]
        early = [k for k in range(1, flows) if weights[f"convinv.{k}.conv.weight"].shape[0]
                 < weights[f"convinv.{k - 1}.conv.weight"].shape[0]]
        layers = 1 + max(int(m.group(1)) for k in weights if (m := re.match(r"WN\.0\.in_layers\.(\d+)\.", k)))
        start = weights["WN.0.start.weight_v"]
        kernel = weights["WN.0.in_layers.0.weight_v"].shape[2]
        n_mels, hop = weights["upsample.weight"].shape[0], weights["upsample.weight"].shape[2] // 4
        config = WaveGlowConfig(flows=flows, group=group, early_every=early[0] if early else flows,
                                early_size=(group - last) // max(len(early), 1) if early else 2, layers=layers,
                                channels=start.shape[0], kernel=kernel)
    except (KeyError, ValueError, IndexError) as err:
        raise VocoderError(f"{source}: not a WaveGlow this reader knows ({type(err).__name__}: {err})") from None
    model = WaveGlow(config, n_mels, hop)
    missing, unexpected = model.load_state_dict(from_jik876_keys(weights), strict=False)
    if missing or unexpected:
        raise VocoderError(f"{source}: does not fit WaveGlow (missing {missing[:3]}, unexpected {unexpected[:3]})")
    audio = NVIDIA_AUDIO if (n_mels, hop) == (80, 256) else None
    if audio is None:
        raise VocoderError(f"{source}: {n_mels} mel bands at hop {hop}; NVIDIA's WaveGlows take 80 at 256")
    return model, audio, [f"{source.name}: NVIDIA WaveGlow, sigma {config.inference_sigma} at inference"]
