"""Which checkpoint a user means: a file as given, or the right one inside a run folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ttskit.checkpoints import jik876
from ttskit.checkpoints.store import CheckpointError, latest_checkpoint
from ttskit.errors import TtskitError
from ttskit.models.vocoder import VocoderError

CheckpointKind = Literal["acoustic", "vocoder"]


@dataclass(frozen=True)
class _RunLayout:
    best: str  # preferred: the lowest validation loss
    prefix: str  # else the latest <prefix>_<step>.pt
    error: type[TtskitError]
    looked_for: str


_LAYOUTS: dict[str, _RunLayout] = {
    "acoustic": _RunLayout("best.pt", "step", CheckpointError, "a .pt file, or a train-acoustic run folder"),
    "vocoder": _RunLayout("generator_best.pt", "generator", VocoderError, "generator_*.pt and jik876 g_* files"),
}


def resolve_checkpoint(path: Path | str, kind: CheckpointKind) -> Path:
    """A checkpoint file as given; for a run folder (or its checkpoints/) the best checkpoint,
    else the latest; for a vocoder folder also jik876/hifi-gan's latest `g_*`."""
    path, layout = Path(path), _LAYOUTS[kind]
    if path.is_file():
        return path
    if not path.is_dir():
        raise layout.error(f"{path}: no such {kind} checkpoint or run folder")
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if (folder / layout.best).is_file():
        return folder / layout.best
    latest = latest_checkpoint(folder, prefix=layout.prefix)
    if latest is None and kind == "vocoder":
        latest = jik876.latest_generator(folder)
    if latest is None:
        raise layout.error(f"{path}: no {kind} checkpoint in it (looked for {layout.looked_for})")
    return latest
