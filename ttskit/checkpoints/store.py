"""Reading and writing checkpoint files: atomic saves, `weights_only` loads, RNG states, and the
`<prefix>_<step>.pt` files of a run folder (which is the latest, which to prune)."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ttskit.audio.io import atomic_write
from ttskit.errors import TtskitError


class CheckpointError(TtskitError, ValueError):
    """A checkpoint is missing, unreadable or does not fit; the message names the file and the mismatch."""


def rng_state() -> dict[str, Any]:
    """Every RNG's state as plain types and tensors, which `weights_only` loading accepts."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position,
                                                   has_gauss, gauss],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, error: type[TtskitError] = CheckpointError) -> dict[str, Any]:
    """`torch.load(weights_only=True)`: a checkpoint holds data only, never code to run. A missing
    or unreadable file raises `error` (the caller's kind, e.g. VocoderError) naming it."""
    if not path.is_file():
        raise error(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean the same thing to a user
        raise error(f"{path}: not a readable ttskit checkpoint ({type(err).__name__}: {err})") from None


def step_checkpoints(folder: Path, prefix: str = "step") -> list[tuple[int, Path]]:
    """(step, path) of every `<prefix>_<step>.pt` in `folder`, oldest first."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)\.pt$")
    found = [(int(m.group(1)), p) for p in folder.glob(f"{prefix}_*.pt") if (m := pattern.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: Path, prefix: str = "step") -> Path | None:
    found = step_checkpoints(folder, prefix)
    return found[-1][1] if found else None


def prune_checkpoints(folder: Path, keep: int, prefix: str = "step") -> None:
    for _, path in step_checkpoints(folder, prefix)[:-keep]:
        path.unlink(missing_ok=True)


def checkpoint_step(path: Path | None) -> int:
    """The step in a `<prefix>_<step>.pt` name (0 for None), without loading the file."""
    return int(path.stem.rsplit("_", 1)[1]) if path is not None else 0
