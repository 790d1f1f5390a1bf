"""Training the learned aligner on a corpus, resumably, and reading durations out of it.

The checkpoint (`<folder>/aligner.pt`, written atomically every `checkpoint_every` steps and at the
end) holds the model, optimizer, step, the stopping rule's state, the symbol table and the mel
statistics, so a killed run continues where its last checkpoint was, and a finished aligner is
reused for utterances added to the corpus later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ttskit.align.learned.model import (
    AlignmentModel,
    Batch,
    binarization_loss,
    collate,
    durations_to_path,
    forward_sum_loss,
    hard_durations,
)
from ttskit.checkpoints.formats import LEARNED_ALIGNER_FORMAT as FORMAT
from ttskit.checkpoints.store import CheckpointError, load_checkpoint, save_checkpoint
from ttskit.config import LearnedAlignerConfig, config_from_dict, differences
from ttskit.errors import TtskitError

CHECKPOINT = "aligner.pt"


class AlignerTrainingError(TtskitError, RuntimeError):
    """The aligner cannot be trained or reused as asked; the message says why and what to do."""


@dataclass(frozen=True)
class AlignerItem:
    id: str
    symbols: list[str]
    mel_path: Path  # (n_mels, T) log-mel .npy


@dataclass
class Progress:
    """What the stopping rule and a resumed run need to know."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # batches of the current epoch already trained
    window: list[float] = field(default_factory=list)  # losses of the current window
    best: float = float("inf")
    windows_without_gain: int = 0
    history: list[float] = field(default_factory=list)  # mean loss of each finished window
    finished: bool = False
    stop_reason: str = ""
    seconds: float = 0.0


StepCallback = Callable[[int, int, float], None]  # (step, max_steps, loss)


@dataclass
class LearnedAligner:
    model: AlignmentModel
    symbols: dict[str, int]
    mel_mean: np.ndarray  # (n_mels, 1)
    mel_std: np.ndarray
    config: LearnedAlignerConfig
    progress: Progress

    def encode(self, item: AlignerItem) -> np.ndarray:
        unknown = sorted({s for s in item.symbols if s not in self.symbols})
        if unknown:
            raise AlignerTrainingError(f"{item.id}: symbols {unknown} are not in the trained aligner's table; "
                                       "delete WORK/aligner to train it again on the whole corpus")
        return np.array([self.symbols[s] for s in item.symbols], dtype=np.int64)

    def normalised_mel(self, item: AlignerItem) -> np.ndarray:
        return ((np.load(item.mel_path) - self.mel_mean) / self.mel_std).astype(np.float32)

    def batch(self, items: list[AlignerItem], cache: dict[str, np.ndarray] | None = None) -> Batch:
        """Padded batch of `items`; with `cache`, each normalised mel is read from disk only once."""
        mels = []
        for item in items:
            mel = cache.get(item.id) if cache is not None else None
            if mel is None:
                mel = self.normalised_mel(item)
                if cache is not None:
                    cache[item.id] = mel
            mels.append(mel)
        return collate([i.id for i in items], [self.encode(i) for i in items], mels, self.config.prior_scaling)

    @torch.inference_mode()
    def durations(self, items: list[AlignerItem], device: torch.device) -> dict[str, np.ndarray]:
        """Frames per symbol for each item (summing to its mel frames), by MAS over the attention."""
        self.model.eval().to(device)
        found: dict[str, np.ndarray] = {}
        for group in batches(items, self.config.batch_frames):
            batch = self.batch(group).to(device)
            log_attention = self.model(batch.symbols, batch.symbol_mask, batch.mels, batch.log_prior)
            durations = hard_durations(log_attention, batch.frame_lengths, batch.symbol_lengths)
            for row, item in enumerate(group):
                found[item.id] = durations[row, :len(item.symbols)]
        return found


def frames_of(item: AlignerItem) -> int:
    # np.load with mmap reads the header only.
    return int(np.load(item.mel_path, mmap_mode="r").shape[1])


def batches(items: list[AlignerItem], batch_frames: int) -> list[list[AlignerItem]]:
    """Length-sorted groups whose padded size stays within `batch_frames` frames."""
    sized = sorted(((frames_of(item), item) for item in items), key=lambda pair: pair[0])
    groups: list[list[AlignerItem]] = []
    for frames, item in sized:
        if groups and frames * (len(groups[-1]) + 1) <= batch_frames:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def _mel_statistics(items: list[AlignerItem]) -> tuple[np.ndarray, np.ndarray]:
    total, squares, count = 0.0, 0.0, 0
    for item in items:
        mel = np.load(item.mel_path).astype(np.float64)
        total, squares, count = total + mel.sum(1), squares + (mel ** 2).sum(1), count + mel.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 1e-8))
    return mean[:, None].astype(np.float32), std[:, None].astype(np.float32)


def _save(path: Path, aligner: LearnedAligner, optimizer: torch.optim.Optimizer, n_mels: int) -> None:
    save_checkpoint(path, {"format": FORMAT, "model": aligner.model.state_dict(), "optimizer": optimizer.state_dict(),
                           "symbols": aligner.symbols, "mel_mean": torch.from_numpy(aligner.mel_mean),
                           "mel_std": torch.from_numpy(aligner.mel_std), "n_mels": n_mels,
                           "config": asdict(aligner.config), "progress": asdict(aligner.progress)})


def _load(path: Path, config: LearnedAlignerConfig) -> tuple[LearnedAligner, dict]:
    state = load_checkpoint(path)
    if state.get("format") != FORMAT:
        raise AlignerTrainingError(f"{path}: not a ttskit learned-aligner checkpoint")
    changed = differences(state["config"], asdict(config))
    if changed:
        name, old, new = changed[0]
        raise AlignerTrainingError(f"{path} was trained with preprocess.learned_aligner.{name}={old!r}, the config "
                                   f"now says {new!r}; delete {path.parent} to train a new aligner")
    aligner_config = config_from_dict(LearnedAlignerConfig, state["config"], source=str(path))
    model = AlignmentModel(len(state["symbols"]), state["n_mels"], aligner_config)
    model.load_state_dict(state["model"])
    aligner = LearnedAligner(model, dict(state["symbols"]), state["mel_mean"].numpy(), state["mel_std"].numpy(),
                             aligner_config, Progress(**state["progress"]))
    return aligner, state


def load_aligner(folder: Path, config: LearnedAlignerConfig) -> LearnedAligner | None:
    path = folder / CHECKPOINT
    if not path.is_file():
        return None
    try:
        return _load(path, config)[0]
    except CheckpointError as err:
        raise AlignerTrainingError(str(err)) from None


def _stop_rule(progress: Progress, config: LearnedAlignerConfig, loss: float) -> None:
    progress.window.append(loss)
    if len(progress.window) < config.window_steps:
        return
    mean = float(np.mean(progress.window))
    progress.history.append(mean)
    progress.window = []
    if mean < progress.best * (1 - config.plateau_tolerance):
        progress.best, progress.windows_without_gain = mean, 0
    else:
        progress.best = min(progress.best, mean)
        progress.windows_without_gain += 1
    if progress.step >= config.min_steps and progress.windows_without_gain >= config.patience:
        progress.finished = True
        progress.stop_reason = (f"loss plateau: no gain over {config.plateau_tolerance:.1%} in the last "
                                f"{config.patience * config.window_steps} steps")


def train_aligner(items: list[AlignerItem], n_mels: int, config: LearnedAlignerConfig, folder: Path,
                  device: torch.device, on_step: StepCallback | None = None,
                  inventory: tuple[str, ...] = ()) -> LearnedAligner:
    """Train (or resume, or reuse when finished) the aligner in `folder` on `items`. Its symbol
    table is `inventory` (a front end's known symbols, so later utterances fit) plus the items'."""
    if not items:
        raise AlignerTrainingError("no utterances to train the aligner on")
    path = folder / CHECKPOINT
    optimizer_state = None
    if path.is_file():
        try:
            aligner, state = _load(path, config)
        except CheckpointError as err:
            raise AlignerTrainingError(f"{err}; delete it to train a new aligner") from None
        optimizer_state = state["optimizer"]
        for item in items:
            aligner.encode(item)  # every symbol must be in its table
        if aligner.progress.finished:
            return aligner
    else:
        torch.manual_seed(config.seed)
        table = {s: i for i, s in enumerate(sorted({*inventory, *(s for item in items for s in item.symbols)}))}
        mean, std = _mel_statistics(items)
        aligner = LearnedAligner(AlignmentModel(len(table), n_mels, config), table, mean, std, config, Progress())
    model = aligner.model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=1e-6)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    groups = batches(items, config.batch_frames)
    progress = aligner.progress
    mels: dict[str, np.ndarray] = {}  # normalised mels, read once
    started = time.perf_counter()
    while not progress.finished:
        order = np.random.default_rng(config.seed + progress.epoch).permutation(len(groups))
        for index in order[progress.position:]:
            batch = aligner.batch(groups[index], mels).to(device)
            log_attention = model(batch.symbols, batch.symbol_mask, batch.mels, batch.log_prior)
            loss = forward_sum_loss(log_attention, batch.frame_lengths, batch.symbol_lengths)
            if progress.step >= config.binarization_start_step:
                path_cells = durations_to_path(hard_durations(log_attention, batch.frame_lengths, batch.symbol_lengths),
                                               log_attention.shape[1]).to(device)
                loss = loss + config.binarization_weight * binarization_loss(log_attention, path_cells)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            progress.step += 1
            progress.position += 1
            value = float(loss.detach())
            if not np.isfinite(value):
                raise AlignerTrainingError(f"the aligner's loss became {value} at step {progress.step}; "
                                           "try a lower preprocess.learned_aligner.learning_rate")
            _stop_rule(progress, config, value)
            if progress.step >= config.max_steps and not progress.finished:
                progress.finished, progress.stop_reason = True, f"step budget of {config.max_steps} reached"
            if on_step:
                on_step(progress.step, config.max_steps, value)
            if progress.finished or progress.step % config.checkpoint_every == 0:
                progress.seconds += time.perf_counter() - started
                started = time.perf_counter()
                _save(path, aligner, optimizer, n_mels)
            if progress.finished:
                break
        else:
            progress.epoch, progress.position = progress.epoch + 1, 0
    model.eval()
    return aligner
