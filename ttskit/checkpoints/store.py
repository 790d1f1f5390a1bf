"""Reading and writing checkpoint files: atomic saves, `weights_only` loads, RNG states, and the
`<prefix>_<step>.pt` files of a run folder (which is the latest, which to prune)."""

from __future__ import annotations

import random
import re
import zlib
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


# CRC-32 of every tensor's bytes, stored in the checkpoint: torch's zip format does not notice a
# few kilobytes overwritten inside a tensor, and such a file would load and train on garbage.
CHECKSUM_KEY = "tensor_crc32"


def tensor_checksum(value: Any) -> int:
    """CRC-32 over the bytes of every tensor in `value` (nested dicts, lists, tuples), in a fixed order."""
    crc = 0

    def walk(item: Any) -> None:
        nonlocal crc
        if isinstance(item, torch.Tensor):
            crc = zlib.crc32(item.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy(), crc)
        elif isinstance(item, dict):
            for key in sorted(item, key=str):
                if key != CHECKSUM_KEY:
                    walk(item[key])
        elif isinstance(item, (list, tuple)):
            for element in item:
                walk(element)

    walk(value)
    return crc


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically, with the checksum of its tensors inside."""
    checked = {**state, CHECKSUM_KEY: tensor_checksum(state)}
    atomic_write(path, lambda tmp: torch.save(checked, tmp))


def load_checkpoint(path: Path, error: type[TtskitError] = CheckpointError) -> dict[str, Any]:
    """`torch.load(weights_only=True)`: a checkpoint holds data only, never code to run. A missing,
    unreadable or damaged file (its tensors' checksum differs from the one saved with them) raises
    `error` (the caller's kind, e.g. VocoderError) naming it. Files without a checksum (older
    ttskit, jik876/hifi-gan) load unchecked."""
    if not path.is_file():
        raise error(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean the same thing to a user
        raise error(f"{path}: not a readable ttskit checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(state, dict) and CHECKSUM_KEY in state:
        stored = state.pop(CHECKSUM_KEY)
        if tensor_checksum(state) != stored:
            raise error(f"{path}: damaged: its tensors no longer match the checksum written with them "
                        "(the file changed after ttskit wrote it); use another checkpoint")
    return state


def non_finite_tensor(weights: dict[str, torch.Tensor]) -> str | None:
    """The first floating-point tensor of a state dict holding NaN or infinity (None: all finite)."""
    return next((name for name, tensor in weights.items()
                 if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())), None)


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
