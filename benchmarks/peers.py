"""Peers' code for side-by-side benchmarks, loaded at run time from a checkout the user names
(never copied into ttskit)."""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import torch


def module_from_file(path: Path, name: str, register: bool = False) -> ModuleType:
    """Import the file at `path` as module `name` (registered in sys.modules when its own imports need that)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def checkout_module(checkout: Path, relative: str, name: str, register: bool = False) -> ModuleType:
    """A module of a checkout, with the checkout first on sys.path for the module's own imports."""
    sys.path.insert(0, str(checkout))
    return module_from_file(checkout / relative, name, register)


def jik876_config(checkout: Path, model: str) -> SimpleNamespace:
    """jik876/hifi-gan's config_v1/v2/v3.json for "hifigan-v1/v2/v3"."""
    return SimpleNamespace(**json.loads((checkout / f"config_{model.split('-')[1]}.json").read_text()))


def ming024_fastspeech2(checkout: Path, pitch: list[float], energy: list[float],
                        device: torch.device = torch.device("cpu")) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
    """ming024/FastSpeech2's model from its LJSpeech configs (the size of ttskit's `base`), with
    `pitch` and `energy` as its stats.json rows ([min, max, mean, std]), and the two configs."""
    import yaml

    sys.path.insert(0, str(checkout))
    from model.fastspeech2 import FastSpeech2 as Theirs  # the checkout's module

    preprocess = yaml.safe_load((checkout / "config/LJSpeech/preprocess.yaml").read_text())
    model_config = yaml.safe_load((checkout / "config/LJSpeech/model.yaml").read_text())
    with tempfile.TemporaryDirectory() as folder:  # it reads its pitch/energy ranges from there
        (Path(folder) / "stats.json").write_text(json.dumps({"pitch": pitch, "energy": energy}))
        preprocess["path"]["preprocessed_path"] = folder
        model = Theirs(preprocess, model_config).to(device)
    return model, preprocess, model_config


def forget_checkout(checkout: Path) -> None:
    """Drop a checkout from sys.path and its modules from sys.modules, so the next checkout's
    `model`, `utils` or `layers` are its own (NVIDIA/tacotron2 and xcmyz/FastSpeech both have them)."""
    root = str(checkout.resolve())
    sys.path[:] = [p for p in sys.path if str(Path(p).resolve()) != root]
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(root):
            del sys.modules[name]


def nvidia_tacotron2(checkout: Path, sizes: dict[str, Any], n_symbols: int) -> tuple[torch.nn.Module, Any]:
    """NVIDIA/tacotron2's model (its hparams' names, `sizes` giving the values) and loss. Its masks
    are made on CUDA: on a machine without one they are made where the lengths are."""
    model_module = checkout_module(checkout, "model.py", "model", register=True)
    loss_module = module_from_file(checkout / "loss_function.py", "nvidia_loss_function")
    if not torch.cuda.is_available():
        model_module.get_mask_from_lengths = lambda lengths: (
            torch.arange(int(lengths.max()), device=lengths.device)[None] < lengths[:, None])
    hparams = SimpleNamespace(mask_padding=True, fp16_run=False, n_mel_channels=80, n_frames_per_step=1,
                              n_symbols=n_symbols, max_decoder_steps=1000, gate_threshold=0.5, **sizes)
    return model_module.Tacotron2(hparams), loss_module.Tacotron2Loss()


def xcmyz_fastspeech(checkout: Path) -> tuple[torch.nn.Module, Any]:
    """xcmyz/FastSpeech's model (its hparams.py sizes: 256 wide, 4+4 FFT blocks, CBHG postnet) and
    loss. Its text package needs `pip install unidecode inflect`."""
    model_module = checkout_module(checkout, "model.py", "model", register=True)
    loss_module = module_from_file(checkout / "loss.py", "xcmyz_loss")
    if not torch.cuda.is_available():  # its masks are made in a torch.cuda.LongTensor
        def mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
            return torch.arange(max_len or int(lengths.max()), device=lengths.device)[None] < lengths[:, None]

        model_module.utils.get_mask_from_lengths = mask
    return model_module.FastSpeech(), loss_module.DNNLoss()
