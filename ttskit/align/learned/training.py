"""Training the learned aligner on a corpus, resumably, and reading durations out of it.

The checkpoint (`<folder>/aligner.pt`, written atomically every `checkpoint_every` steps and at the
end) holds the model, optimizer, step, the stopping rule's state, the symbol table and the mel
statistics, so a killed run continues where its last checkpoint was, and a finished aligner is
reused for utterances added to the corpus later.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
from ttskit.checkpoints.store import CheckpointError, load_checkpoint
from ttskit.config import LearnedAlignerConfig, config_from_dict, differences
from ttskit.errors import TtskitError
from ttskit.skeleton.config import BaseTrainConfig
from ttskit.skeleton.distributed import Rank
from ttskit.skeleton.loop import RunPrecision, StepResult, Trainer, TrainingLoop
from ttskit.skeleton.pieces import step_verdict

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


class _GroupSampler:
    """Length-sorted groups in a new order every epoch (seeded by seed + epoch); resumable mid-epoch."""

    def __init__(self, groups: list[list[int]], seed: int) -> None:
        self.groups, self.seed = groups, seed
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng(self.seed + self.epoch).permutation(len(self.groups))
        return (self.groups[index] for index in order[self.skip:])

    def __len__(self) -> int:
        return len(self.groups) - self.skip


class AlignerTrainer(Trainer):
    """The learned aligner as a `Trainer`: forward-sum loss (+ binarization from its start step),
    one rolling checkpoint (`aligner.pt`), stopped by the step budget or a loss plateau."""

    nan_advice = "try a lower preprocess.learned_aligner.learning_rate"

    def __init__(self, aligner: LearnedAligner, items: list[AlignerItem], folder: Path, n_mels: int,
                 resume_from: Path | None, on_step: StepCallback | None) -> None:
        config = aligner.config
        super().__init__(folder, config, config.max_steps, resume_from)
        self.aligner, self.items, self.n_mels = aligner, items, n_mels
        self.on_step = on_step
        self._cfg = BaseTrainConfig(learning_rate=config.learning_rate, checkpoint_every=config.checkpoint_every,
                                    seed=config.seed, precision="fp32", log_every=1, val_every=config.max_steps + 1,
                                    num_workers=0, grad_clip=1.0)
        self.started = time.perf_counter()

    @property
    def cfg(self) -> BaseTrainConfig:
        return self._cfg

    def build(self, rank: Rank, precision: RunPrecision) -> None:
        self.rank, self.precision = rank, precision
        index = {item.id: i for i, item in enumerate(self.items)}
        groups = [[index[item.id] for item in group] for group in batches(self.items, self.aligner.config.batch_frames)]
        self.train_set = self.items  # a list is a map-style dataset
        self.sampler = _GroupSampler(groups, self.aligner.config.seed)
        mels: dict[str, np.ndarray] = {}  # normalised mels, read once (collate runs in this process)
        self.collate = lambda group: self.aligner.batch(group, mels)
        self.model = self.aligner.model.to(rank.device).train()
        # A resumed run's optimizer state is loaded by the skeleton, with the rest of the checkpoint.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.aligner.config.learning_rate,
                                          weight_decay=1e-6)

    def wrap(self, rank: Rank) -> None:
        """Single-process: preprocessing trains the aligner on one device."""

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def state(self) -> dict[str, Any]:
        progress = self.aligner.progress
        progress.seconds += time.perf_counter() - self.started
        self.started = time.perf_counter()
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "progress": asdict(progress)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.aligner.progress = Progress(**state["progress"])

    def resume_place(self, state: dict[str, Any]) -> tuple[int, int, int, float]:
        progress = state["progress"]  # also in checkpoints written before the skeleton
        return progress["step"], progress["epoch"], progress["position"], math.inf

    def metadata(self) -> dict[str, Any]:
        aligner = self.aligner
        return {"format": FORMAT, "symbols": aligner.symbols, "mel_mean": torch.from_numpy(aligner.mel_mean),
                "mel_std": torch.from_numpy(aligner.mel_std), "n_mels": self.n_mels, "config": asdict(aligner.config)}

    def step(self, batch: Batch, step: int) -> StepResult:
        config, scaler = self.aligner.config, self.precision.scaler
        batch = batch.to(self.rank.device)
        log_attention = self.model(batch.symbols, batch.symbol_mask, batch.mels, batch.log_prior)
        loss = forward_sum_loss(log_attention, batch.frame_lengths, batch.symbol_lengths)
        if step >= config.binarization_start_step:
            path_cells = durations_to_path(hard_durations(log_attention, batch.frame_lengths, batch.symbol_lengths),
                                           log_attention.shape[1]).to(self.rank.device)
            loss = loss + config.binarization_weight * binarization_loss(log_attention, path_cells)
        self.optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.loss = loss.detach()
        return StepResult(step_verdict(loss, grad_norm, scaler, self.rank), {"loss": loss}, {"grad_norm": grad_norm},
                          float(batch.frame_lengths.sum()), {"ids": batch.ids})

    def apply(self) -> None:
        self.precision.scaler.step(self.optimizer)
        progress, config = self.aligner.progress, self.aligner.config
        progress.step += 1
        progress.position += 1
        value = float(self.loss)
        _stop_rule(progress, config, value)
        if progress.step >= config.max_steps and not progress.finished:
            progress.finished, progress.stop_reason = True, f"step budget of {config.max_steps} reached"
        if self.on_step:
            self.on_step(progress.step, config.max_steps, value)

    def end_epoch(self) -> None:
        progress = self.aligner.progress
        progress.epoch, progress.position = progress.epoch + 1, 0

    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def throughput(self, amount: float, seconds: float) -> dict[str, float]:
        return {"frames_per_s": round(amount / seconds, 1)}

    def validate(self, step: int, writer: Any) -> float | None:
        return None  # the stopping rule watches the training loss; the corpus has no held-out part here

    def seen_indices(self, sampler: Any) -> Iterable[int]:
        return (i for group in sampler.groups for i in group)

    def checkpoint_file(self, step: int) -> Path:
        return self.run / CHECKPOINT

    def last_checkpoint(self) -> Path | None:
        return self.run / CHECKPOINT if (self.run / CHECKPOINT).is_file() else None

    def finished(self) -> bool:
        return self.aligner.progress.finished


def train_aligner(items: list[AlignerItem], n_mels: int, config: LearnedAlignerConfig, folder: Path,
                  device: torch.device, on_step: StepCallback | None = None,
                  inventory: tuple[str, ...] = ()) -> LearnedAligner:
    """Train (or resume, or reuse when finished) the aligner in `folder` on `items`. Its symbol
    table is `inventory` (a front end's known symbols, so later utterances fit) plus the items'."""
    if not items:
        raise AlignerTrainingError("no utterances to train the aligner on")
    path = folder / CHECKPOINT
    resume_from = None
    if path.is_file():
        try:
            aligner, _ = _load(path, config)
        except CheckpointError as err:
            raise AlignerTrainingError(f"{err}; delete it to train a new aligner") from None
        for item in items:
            aligner.encode(item)  # every symbol must be in its table
        if aligner.progress.finished:
            return aligner
        resume_from = path
    else:
        torch.manual_seed(config.seed)
        table = {s: i for i, s in enumerate(sorted({*inventory, *(s for item in items for s in item.symbols)}))}
        mean, std = _mel_statistics(items)
        aligner = LearnedAligner(AlignmentModel(len(table), n_mels, config), table, mean, std, config, Progress())
    folder.mkdir(parents=True, exist_ok=True)
    trainer = AlignerTrainer(aligner, items, folder, n_mels, resume_from, on_step)
    TrainingLoop(trainer, Rank(0, 1, 0, torch.device(device))).run()
    aligner.model.eval()
    return aligner
