"""MelGAN checkpoints users already have, as ttskit vocoders (nothing of their code is imported or run):

- descript's melgan-neurips generator (`linda_johnson.pt`, `multi_speaker.pt`, or a trained
  `netG.pt`): a bare state dict (`model.N.*`, weight norm as `weight_g`/`weight_v`); its mels are
  log10 of the magnitude mel clamped at 1e-5, 0 Hz to Nyquist, otherwise ttskit's framing.
- kan-bayashi's ParallelWaveGAN MelGAN and multi-band MelGAN (`checkpoint-NNNsteps.pkl` with
  `config.yml` and `stats.h5` or `stats.npy` beside it): {"model": {"generator": ...}, ...}
  (`melgan.N.*`); its mels are log10 (floor 1e-10) of the magnitude mel of its `fmin`/`fmax`,
  normalised by the stats' mean and scale; multi-band ones end in a PQMF whose settings its
  version fixes.

Both are read with `weights_only=True`; the sizes come off the tensors (and, for kan-bayashi, its
config). Mel conventions: what is an exact transform of ttskit's natural-log mel (the log base, a
stored per-band normalisation: together `a * ln_mel + b` per band) is folded into the generator's
first convolution, so the loaded generator takes ttskit's mels as they are (for synthesis, copy-
synthesis, `--init` fine-tuning and ONNX export alike), and its notes say so. What is not (another
filterbank: fmin, fmax, FFT, hop, the floor) stays in the vocoder's `audio`, which synthesis checks
against the acoustic model's and refuses when they differ, naming the settings to train with.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from ttskit.checkpoints.jik876 import from_jik876_keys, to_jik876_keys
from ttskit.config import AudioConfig
from ttskit.models.melgan import MelGANConfig, MelGANGenerator
from ttskit.models.vocoder import VocoderError

DESCRIPT_AUDIO = AudioConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0,
                             fmax=11025.0, mel_floor=1e-5)
_LAYER = re.compile(r"^layers\.(\d+)\.")
LN10 = float(np.log(10.0))


def fold_input_affine(generator: MelGANGenerator, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Make `generator` take x where it took `scale * x + shift` (per mel band): exact, since the
    first convolution is linear and reflection padding commutes with a per-band affine map."""
    conv = generator.layers[1]
    with torch.no_grad():
        weight = conv.weight.detach().clone()  # (out, bands, kernel), weight norm applied
        parametrize.remove_parametrizations(conv, "weight")
        conv.bias += (weight * shift[None, :, None]).sum((1, 2))
        conv.weight.copy_(weight * scale[None, :, None])
    weight_norm(conv)


def is_descript_generator(state: Any) -> bool:
    return isinstance(state, dict) and "format" not in state and "model.1.weight_g" in state


def is_kan_bayashi_checkpoint(state: Any) -> bool:
    return (isinstance(state, dict) and isinstance(state.get("model"), dict)
            and isinstance(state["model"].get("generator"), dict))


_LAYOUTS = {"descript": ("model.", "block", "shortcut"), "kan-bayashi": ("melgan.", "stack", "skip_layer")}


def reference_names(generator: MelGANGenerator, layout: str) -> dict[str, torch.Tensor]:
    """A ttskit generator's state dict under the names of `layout` (descript or kan-bayashi), with
    old-style weight norm: what their code loads (tests and benchmarks build theirs from it)."""
    prefix, block, shortcut = _LAYOUTS[layout]
    out = {}
    for key, value in to_jik876_keys(generator.state_dict()).items():
        key = prefix + key.removeprefix("layers.")
        out[key.replace(".stack.", f".{block}.").replace(".shortcut.", f".{shortcut}.")] = value
    return out


def _renamed(weights: dict[str, torch.Tensor], prefix: str, block: str, shortcut: str) -> dict[str, torch.Tensor]:
    """Their names -> ttskit's (`layers.N`, residual `stack`/`shortcut`, weight-norm parametrisations)."""
    out = {}
    for key, value in weights.items():
        key = "layers." + key.removeprefix(prefix)
        key = key.replace(f".{block}.", ".stack.").replace(f".{shortcut}.", ".shortcut.")
        out[key] = value
    return from_jik876_keys(out)


def _config_from_weights(weights: dict[str, torch.Tensor], source: Path, **pqmf: Any) -> tuple[MelGANConfig, int]:
    """(generator config, mel bands) read off a renamed state dict."""
    def weight(index: int) -> torch.Tensor:
        return weights[f"layers.{index}.parametrizations.weight.original1"]

    try:
        indices = sorted({int(m.group(1)) for key in weights if (m := _LAYER.match(key))})
        stacks = [i for i in indices if f"layers.{i}.stack.2.parametrizations.weight.original1" in weights]
        convs = [i for i in indices if i not in stacks]  # the first, the transposed ones, the last
        first, last, transposed = weight(convs[0]), weight(convs[-1]), [weight(i) for i in convs[1:-1]]
        per_stage = len(stacks) // max(len(transposed), 1)
        stack_kernel = weights[f"layers.{stacks[0]}.stack.2.parametrizations.weight.original1"].shape[2]
        config = MelGANConfig(channels=first.shape[0], upsample_rates=tuple(w.shape[2] // 2 for w in transposed),
                              stacks=per_stage, stack_kernel=stack_kernel, kernel=first.shape[2],
                              subbands=last.shape[0], **pqmf)
    except (KeyError, IndexError, ValueError) as err:
        raise VocoderError(f"{source}: not a MelGAN generator this reader knows ({type(err).__name__}: {err})") from None
    return config, first.shape[1]


def _build(weights: dict[str, torch.Tensor], config: MelGANConfig, n_mels: int, source: Path) -> MelGANGenerator:
    generator = MelGANGenerator(config, n_mels)
    missing, unexpected = generator.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise VocoderError(f"{source}: does not fit MelGAN (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return generator


ForeignMelGAN = tuple[MelGANGenerator, AudioConfig, list[str]]  # generator, its filterbank, notes


def load_descript(state: dict[str, torch.Tensor], source: Path) -> ForeignMelGAN:
    weights = _renamed(state, *_LAYOUTS["descript"])
    config, n_mels = _config_from_weights(weights, source)
    generator = _build(weights, config, n_mels, source)
    fold_input_affine(generator, torch.full((n_mels,), 1 / LN10), torch.zeros(n_mels))
    return generator, DESCRIPT_AUDIO, [f"{source.name} (descript melgan-neurips) takes log10 mels: converted from "
                                       "ttskit's natural-log ones exactly (folded into its first layer)"]


def _stats(folder: Path, source: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, scale) per mel band from stats.npy or stats.h5 beside the checkpoint."""
    if (path := folder / "stats.npy").is_file():
        stats = np.load(path, allow_pickle=False)
        return stats[0].reshape(-1), stats[1].reshape(-1)
    if (path := folder / "stats.h5").is_file():
        try:
            import h5py
        except ImportError:
            raise VocoderError(f"{path}: reading stats.h5 needs `pip install h5py` (or save its mean and scale "
                               "as stats.npy, a (2, n_mels) array, beside the checkpoint)") from None
        with h5py.File(path, "r") as handle:
            return np.asarray(handle["mean"]).reshape(-1), np.asarray(handle["scale"]).reshape(-1)
    return None


def _pqmf_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The PQMF kan-bayashi's loader builds: its config's pqmf_params, else by version (cut-off
    0.15 up to 0.4.2, 0.142 after)."""
    if "pqmf_params" in config:
        given = config["pqmf_params"]
        return {"pqmf_taps": given.get("taps", 62), "pqmf_cutoff": given.get("cutoff_ratio", 0.142),
                "pqmf_beta": given.get("beta", 9.0)}
    version = tuple(int(p) for p in re.findall(r"\d+", str(config.get("version", "0.1.0")))[:3])
    return {"pqmf_taps": 62, "pqmf_cutoff": 0.15 if version <= (0, 4, 2) else 0.142, "pqmf_beta": 9.0}


def load_kan_bayashi(state: dict[str, Any], source: Path) -> ForeignMelGAN:
    config_path = source.parent / "config.yml"
    if not config_path.is_file():
        raise VocoderError(f"{source}: a ParallelWaveGAN checkpoint needs its config.yml beside it ({config_path})")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    kind = config.get("generator_type", "ParallelWaveGANGenerator")
    if kind != "MelGANGenerator":
        raise VocoderError(f"{source}: a {kind} (config.yml's generator_type); ttskit reads its MelGAN and "
                           "multi-band MelGAN generators")
    params = config.get("generator_params", {})
    if params.get("use_causal_conv") or not params.get("use_weight_norm", True) or not params.get("bias", True):
        raise VocoderError(f"{source}: causal convolutions, no weight norm or no biases are not supported")
    weights = _renamed(state["model"]["generator"], *_LAYOUTS["kan-bayashi"])
    generator_config, n_mels = _config_from_weights(weights, source, **_pqmf_settings(config))
    if config.get("window", "hann") != "hann":
        raise VocoderError(f"{source}: trained on {config['window']}-window mels; ttskit's are Hann-window")
    rate = int(config["sampling_rate"])
    audio = AudioConfig(sample_rate=rate, n_fft=int(config["fft_size"]), hop_length=int(config["hop_size"]),
                        win_length=int(config.get("win_length") or config["fft_size"]), n_mels=n_mels,
                        fmin=float(config.get("fmin") or 0.0), fmax=float(config.get("fmax") or rate / 2),
                        mel_floor=1e-10)
    generator = _build(weights, generator_config, n_mels, source)
    stats = _stats(source.parent, source)
    mean, std = (np.zeros(n_mels), np.ones(n_mels)) if stats is None else stats
    if len(mean) != n_mels or len(std) != n_mels:
        raise VocoderError(f"{source}: its stats hold {len(mean)} bands, the generator takes {n_mels}")
    # (ln_mel / ln 10 - mean) / std
    fold_input_affine(generator, torch.from_numpy(1 / (LN10 * std)).float(), torch.from_numpy(-mean / std).float())
    normalised = "normalised by its stats" if stats is not None else "not normalised (no stats file beside it)"
    notes = [f"{source.name} (ParallelWaveGAN {generator_config.subbands}-band MelGAN) takes log10 mels "
             f"{normalised}: converted from ttskit's natural-log ones exactly (folded into its first layer)",
             f"{source.name} was trained on frames centred on their hop (librosa center=True); ttskit's are "
             f"{audio.hop_length // 2} samples later, so the wave starts that much early"]
    return generator, audio, notes
