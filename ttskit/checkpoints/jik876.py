"""Interoperability with the HiFi-GAN reference implementation (github.com/jik876/hifi-gan).

Its generator checkpoints are `g_XXXXXXXX` files holding {"generator": state_dict} beside a
`config.json` with the architecture and the mel settings; discriminator checkpoints are
`do_XXXXXXXX` with {"mpd", "msd", ...}. Its layers use the old weight-norm parameters
(`weight_g`, `weight_v`); ttskit's use torch's parametrisation (`parametrizations.weight.original0`
and `original1`), which hold the same tensors. Nothing here imports the reference code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from ttskit.audio.io import atomic_write
from ttskit.config import AudioConfig, ConfigError
from ttskit.models.hifigan import Generator, HiFiGANConfig
from ttskit.models.vocoder import VocoderError

GENERATOR_RE = re.compile(r"^g_(\d+)$")
_OLD = (".weight_g", ".weight_v")
_NEW = (".parametrizations.weight.original0", ".parametrizations.weight.original1")


class Jik876Error(VocoderError):
    """A file that should be a jik876/hifi-gan checkpoint or config is not one, or does not fit."""


def is_jik876_checkpoint(state: dict[str, Any]) -> bool:
    return "generator" in state and "format" not in state


def from_jik876_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename weight-norm parameters to torch's parametrisation names. Spectral-norm layers also
    have a `weight_v` (their power-iteration vector): only prefixes with a `weight_g` are renamed."""
    normed = {key[:-len(_OLD[0])] for key in state if key.endswith(_OLD[0])}
    renamed = {}
    for key, value in state.items():
        for old, new in zip(_OLD, _NEW):
            if key.endswith(old) and key[:-len(old)] in normed:
                key = key[:-len(old)] + new
                break
        renamed[key] = value
    return renamed


def to_jik876_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for old, new in zip(_OLD, _NEW):
            if key.endswith(new):
                key = key[:-len(new)] + old
                break
        renamed[key] = value
    return renamed


def read_config(path: Path) -> tuple[HiFiGANConfig, AudioConfig]:
    """The generator architecture and mel settings from a jik876 `config.json`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise Jik876Error(f"{path}: cannot read the HiFi-GAN config ({err})") from None
    try:
        model = HiFiGANConfig(resblock=str(raw["resblock"]), upsample_rates=tuple(raw["upsample_rates"]),
                              upsample_kernel_sizes=tuple(raw["upsample_kernel_sizes"]),
                              upsample_initial_channel=int(raw["upsample_initial_channel"]),
                              resblock_kernel_sizes=tuple(raw["resblock_kernel_sizes"]),
                              resblock_dilation_sizes=tuple(tuple(d) for d in raw["resblock_dilation_sizes"]))
        audio = AudioConfig(sample_rate=int(raw["sampling_rate"]), n_fft=int(raw["n_fft"]),
                            hop_length=int(raw["hop_size"]), win_length=int(raw["win_size"]),
                            n_mels=int(raw["num_mels"]), fmin=float(raw["fmin"]),
                            fmax=None if raw["fmax"] is None else float(raw["fmax"]))
    except KeyError as err:
        raise Jik876Error(f"{path}: not a HiFi-GAN config (no {err.args[0]!r})") from None
    except ConfigError as err:
        raise Jik876Error(f"{path}: {err}") from None
    if model.hop_length != audio.hop_length:
        raise Jik876Error(f"{path}: upsample rates multiply to {model.hop_length}, but hop_size is {audio.hop_length}")
    return model, audio


def write_config(path: Path, model: HiFiGANConfig, audio: AudioConfig, extra: dict[str, Any] | None = None) -> None:
    raw = {"resblock": model.resblock, "upsample_rates": list(model.upsample_rates),
           "upsample_kernel_sizes": list(model.upsample_kernel_sizes),
           "upsample_initial_channel": model.upsample_initial_channel,
           "resblock_kernel_sizes": list(model.resblock_kernel_sizes),
           "resblock_dilation_sizes": [list(d) for d in model.resblock_dilation_sizes],
           "num_mels": audio.n_mels, "num_freq": audio.n_freqs, "n_fft": audio.n_fft, "hop_size": audio.hop_length,
           "win_size": audio.win_length, "sampling_rate": audio.sample_rate, "fmin": audio.fmin, "fmax": audio.fmax,
           **(extra or {})}
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(raw, indent=4) + "\n", encoding="utf-8"))


def config_path_for(checkpoint: Path) -> Path:
    return checkpoint.parent / "config.json"


def load_generator(checkpoint: Path, config: Path | None = None,
                   state: dict[str, Any] | None = None) -> tuple[Generator, AudioConfig]:
    """A jik876 `g_XXXXXXXX` file (with its config.json) as a ttskit Generator (weight norm kept);
    `state` is the file's content when the caller has loaded it already."""
    config = config or config_path_for(checkpoint)
    if not config.is_file():
        raise Jik876Error(f"{checkpoint}: a HiFi-GAN checkpoint needs its config.json; none at {config}")
    model_config, audio = read_config(config)
    if state is None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    generator = Generator(model_config, n_mels=audio.n_mels)
    load_state(generator, from_jik876_keys(state["generator"]), checkpoint)
    return generator, audio


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """load_state_dict with a message that names the file and the first mismatching keys or shapes."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).split("\n\t")[1:3]
        raise Jik876Error(f"{source}: its weights do not fit the model its config describes "
                          f"({'; '.join(first) or err})") from None


def save_generator(generator: Generator, checkpoint: Path, audio: AudioConfig) -> None:
    """Write `generator` as a jik876 `g_XXXXXXXX` file plus config.json beside it."""
    if not generator.has_weight_norm():
        raise Jik876Error("the generator's weight norm was removed; jik876 checkpoints keep it (save before removal)")
    state = to_jik876_keys({k: v.detach().cpu() for k, v in generator.state_dict().items()})
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(checkpoint, lambda tmp: torch.save({"generator": state}, tmp))
    write_config(config_path_for(checkpoint), generator.config, audio)


def discriminator_file(generator_checkpoint: Path) -> Path | None:
    """The `do_XXXXXXXX` beside a `g_XXXXXXXX`, when there is one."""
    match = GENERATOR_RE.match(generator_checkpoint.name)
    if not match:
        return None
    path = generator_checkpoint.parent / f"do_{match.group(1)}"
    return path if path.is_file() else None


def latest_generator(folder: Path) -> Path | None:
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := GENERATOR_RE.match(p.name)))
    return found[-1][1] if found else None
