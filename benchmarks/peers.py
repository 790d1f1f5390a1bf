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
