"""The one training skeleton: everything a training run does that is not the model's own.

It owns seeding, the data loader, resume (weights, optimisers, scaler, RNG states and the place
in the epoch), stop signals, precision and the GradScaler, the overflow/NaN verdict and the NaN
guard, the log/validate/checkpoint cadence, metrics.jsonl and TensorBoard, and the summary. A
`Trainer` supplies only what is its own: building its networks and data, one step, validation,
its state and its checkpoint files. train-acoustic and train-vocoder are two `Trainer`s; a new
model (Tacotron2, MelGAN, WaveGlow, ...) is one more (docs/architecture.md has the checklist).

One `TrainingLoop` runs on every rank (one process on a CPU or one GPU, N spawned ranks with
--gpus N, or the ranks torchrun started). Rank 0 alone logs, validates and writes files; every
collective call (RNG gathering before a save, the verdict, the validation broadcast) is made by
all ranks on the same path, so replicas never diverge.
"""

from __future__ import annotations

import math
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from ttskit.checkpoints.store import (
    latest_checkpoint,
    load_checkpoint,
    non_finite_tensor,
    prune_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from ttskit.config import config_to_dict
from ttskit.runtime import training_precision
from ttskit.skeleton.config import BaseTrainConfig
from ttskit.skeleton.distributed import Rank
from ttskit.skeleton.pieces import (
    StopFlag,
    TrainingError,
    append_jsonl,
    broadcast_from_main,
    finish,
    forget_unsaved_metrics,
    gather_rng_states,
    grad_scaler,
    ignore_stop_signals,
    log_record,
    overflow_event,
    restore_last_good,
    tensorboard_writer,
)

LogCallback = Callable[[dict[str, Any]], None]


def _warn(message: str) -> None:
    """On the console (stderr, which the CLI's progress bar redirects above itself) and not only in metrics.jsonl."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


@dataclass
class StepResult:
    """What one training step reports to the skeleton."""

    verdict: str  # "ok", "overflow" or "bad" (ttskit.skeleton.pieces.step_verdict)
    terms: dict[str, torch.Tensor]  # loss terms, logged rounded to 5 digits
    norms: dict[str, torch.Tensor]  # gradient norms, logged rounded to 4 digits
    amount: float  # this rank's work, for the throughput (frames, samples)
    problem: dict[str, Any] = field(default_factory=dict)  # extra fields of a bad-step event


@dataclass
class RunPrecision:
    """The arithmetic of a run: autocast dtype (None: float32) and the GradScaler (fp16 only)."""

    autocast_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler


class Trainer(ABC):
    """One model's part of a training run. `build` sets `train_set`, `sampler` and `collate`."""

    summary_best_key: ClassVar[str] = "best_val"  # the summary.json key of the best validation figure
    val_key: ClassVar[str] = "val_loss"  # its metrics.jsonl key; TensorBoard gets val/<rest>
    nan_advice: ClassVar[str] = "lower train.learning_rate"  # said when the NaN guard gives up

    train_set: Dataset | Sequence[Any]  # map-style: indexed by the sampler's batches
    sampler: Any  # a batch sampler with set_epoch(epoch, skip=batches) (resumes mid-epoch)
    collate: Callable[[list[Any]], Any]

    def __init__(self, run: Path, run_config: Any, max_steps: int, resume_from: Path | None) -> None:
        self.run, self.run_config, self.max_steps, self.resume_from = run, run_config, max_steps, resume_from

    @property
    def cfg(self) -> BaseTrainConfig:
        return self.run_config.train

    @abstractmethod
    def build(self, rank: Rank, precision: RunPrecision) -> None:
        """Datasets, sampler, networks, optimisers and schedulers, on `rank.device`."""

    def initialise(self) -> None:
        """A fresh (not resumed) run's start, e.g. weights from --init."""

    @abstractmethod
    def wrap(self, rank: Rank) -> None:
        """Wrap the trained networks for DDP (called after any resume, only when distributed)."""

    @abstractmethod
    def modules(self) -> list[torch.nn.Module]:
        """Every trained network (their parameters make the summary's checksum)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Networks, optimisers and schedulers as a checkpoint holds them (the scaler is the skeleton's)."""

    @abstractmethod
    def load_state(self, state: dict[str, Any]) -> None: ...

    @abstractmethod
    def metadata(self) -> dict[str, Any]:
        """What the checkpoint holds besides the training state: format, configs, vocabulary, ..."""

    @abstractmethod
    def step(self, batch: Any, step: int) -> StepResult:
        """Forward, backward (through `precision.scaler`) and the verdict; no optimiser step yet."""

    @abstractmethod
    def apply(self) -> None:
        """A step whose verdict is "ok": `scaler.step` the optimisers, step per-step schedulers."""

    def end_epoch(self) -> None:
        """Per-epoch schedules."""

    @abstractmethod
    def learning_rate(self) -> float: ...

    @abstractmethod
    def throughput(self, amount: float, seconds: float) -> dict[str, float]:
        """The logged speed for `amount` (summed over ranks) in `seconds`."""

    @abstractmethod
    def validate(self, step: int, writer: Any) -> float | None:
        """The validation figure (lower is better), None without a validation set; media to `writer`."""

    @abstractmethod
    def seen_indices(self, sampler: Any) -> Iterable[int]:
        """The dataset indices this rank's sampler gave (the summary checks DDP shards are disjoint)."""

    def finished(self) -> bool:
        """True when the trainer's own stopping rule (e.g. a loss plateau) ends the run before
        max_steps; checked after every step, and a finished run is checkpointed."""
        return False

    def checkpoint_file(self, step: int) -> Path:
        """Where the checkpoint of `step` goes: RUN/checkpoints/step_<step>.pt, the last
        `train.keep_last` kept. A trainer with one rolling checkpoint file returns that file."""
        return self.run / "checkpoints" / f"step_{step:08d}.pt"

    def last_checkpoint(self) -> Path | None:
        """The checkpoint the NaN guard goes back to."""
        folder = self.run / "checkpoints"
        return latest_checkpoint(folder) if folder.is_dir() else None

    def resume_place(self, state: dict[str, Any]) -> tuple[int, int, int, float]:
        """(step, epoch, batches done in that epoch, best validation figure) of a loaded checkpoint."""
        return state["step"], state["epoch"], state["batch_in_epoch"], state.get("best_val", math.inf)

    def save_best(self, checkpoints: Path, state: dict[str, Any], step: int) -> None:
        save_checkpoint(checkpoints / "best.pt", state)

    def after_save(self, checkpoints: Path, step: int) -> None:
        """Files written beside each step checkpoint (and pruned like it)."""


def ddp(module: torch.nn.Module, rank: Rank) -> torch.nn.Module:
    return DistributedDataParallel(module, device_ids=[rank.local_rank] if rank.device.type == "cuda" else None)


@dataclass
class _Place:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float = math.inf


class TrainingLoop:
    """One rank's run of a `Trainer` until `max_steps` steps in total, or a stop signal."""

    def __init__(self, trainer: Trainer, rank: Rank, on_log: LogCallback | None = None) -> None:
        self.trainer, self.rank, self.on_log = trainer, rank, on_log
        self.cfg = trainer.cfg
        self.checkpoints, self.metrics = trainer.run / "checkpoints", trainer.run / "metrics.jsonl"
        self.place = _Place()
        self.bad_in_a_row, self.restored_without_progress = 0, False
        self.amount, self.window_start = 0.0, time.perf_counter()

    def run(self) -> None:
        trainer, rank, cfg = self.trainer, self.rank, self.cfg
        torch.manual_seed(cfg.seed + rank.rank)
        np.random.seed(cfg.seed + rank.rank)
        dtype, use_scaler = training_precision(cfg.precision, rank.device)
        self.precision = RunPrecision(dtype, grad_scaler(rank.device, use_scaler, cfg.fp16_initial_scale))
        trainer.build(rank, self.precision)
        # Its own generator: a DataLoader draws a seed from the global RNG for every new iterator,
        # which would shift the random draws of a resumed run away from the uninterrupted one.
        loader = DataLoader(trainer.train_set, batch_sampler=trainer.sampler, collate_fn=trainer.collate,
                            num_workers=cfg.num_workers, pin_memory=rank.device.type == "cuda",
                            persistent_workers=cfg.num_workers > 0, worker_init_fn=ignore_stop_signals,
                            generator=torch.Generator().manual_seed(cfg.seed))
        if trainer.resume_from is not None:
            self._resume(trainer.resume_from)
        else:
            trainer.initialise()
        if rank.distributed:
            trainer.wrap(rank)
        self.stop = StopFlag()
        self.writer = tensorboard_writer(trainer.run) if rank.is_main else None
        try:
            self._epochs(loader)
            if self.stop.stop:
                self._save()
            place = self.place
            finish(trainer.run, {"step": place.step, "epoch": place.epoch, "stopped_by_signal": self.stop.stop,
                                 trainer.summary_best_key: place.best},
                   rank, trainer.modules(), trainer.seen_indices(trainer.sampler))
        finally:
            self.stop.restore()
            if self.writer is not None:
                self.writer.close()

    def _epochs(self, loader: DataLoader) -> None:
        place, trainer = self.place, self.trainer
        while place.step < trainer.max_steps and not self.stop.stop and not trainer.finished():
            trainer.sampler.set_epoch(place.epoch, skip=place.batch_in_epoch)  # resumes mid-epoch, exactly
            for batch in loader:
                place.batch_in_epoch += 1
                if not self._settle(trainer.step(batch, place.step)):
                    continue
                place.step += 1
                self._cadence()
                if place.step >= trainer.max_steps or self.stop.stop or trainer.finished():
                    break
            else:
                place.epoch, place.batch_in_epoch = place.epoch + 1, 0
                trainer.end_epoch()

    def _load(self, state: dict[str, Any]) -> None:
        self.trainer.load_state(state)
        if "scaler" in state:  # absent from checkpoints written before the skeleton (the learned aligner's)
            self.precision.scaler.load_state_dict(state["scaler"])

    def _resume(self, path: Path) -> None:
        state = load_checkpoint(path)
        self._load(state)
        self.place = _Place(*self.trainer.resume_place(state))
        if state.get("rng"):
            set_rng_state(state["rng"][min(self.rank.rank, len(state["rng"]) - 1)])
        if self.rank.is_main:
            forget_unsaved_metrics(self.metrics, self.place.step)
            before = state.get("run_config", {}).get("train", {}).get("learning_rate", self.cfg.learning_rate)
            if before != self.cfg.learning_rate:
                change = f"learning rate {before:g} -> {self.cfg.learning_rate:g} from step {self.place.step}"
                append_jsonl(self.metrics, {"step": self.place.step, "event": change})
                _warn(f"resuming with {change}: the schedule continues from the new rate")

    def _settle(self, result: StepResult) -> bool:
        """Apply an ok step; skip an overflowing or bad one (the NaN guard). True when it counted."""
        scaler, is_main, step = self.precision.scaler, self.rank.is_main, self.place.step
        if result.verdict == "ok":
            self.bad_in_a_row, self.restored_without_progress = 0, False
            self.trainer.apply()
            scaler.update()
            self.amount += result.amount * self.rank.world_size
            self._last = result
            return True
        scaler.update()  # an overflow halves the scale; after a bad step it is a no-op without fp16
        if result.verdict == "overflow":
            if is_main:
                append_jsonl(self.metrics, overflow_event(step, scaler))
            return False
        self.bad_in_a_row += 1
        if is_main:
            event = {"step": step, "event": "non-finite loss or gradient, step skipped", **result.problem}
            append_jsonl(self.metrics, event)
            _warn(f"step {step + 1}: non-finite loss or gradient, step skipped "
                  f"({self.bad_in_a_row} of {self.cfg.nan_patience} in a row before going back to the last checkpoint)")
        if self.bad_in_a_row >= self.cfg.nan_patience:
            last = self.trainer.last_checkpoint()
            if self.restored_without_progress:
                raise TrainingError(f"{self.cfg.nan_patience} non-finite steps in a row again right after going back "
                                    f"to {last.name if last else 'the last checkpoint'}: training cannot go on; "
                                    f"{self.trainer.nan_advice} (metrics.jsonl names the batches)")
            restore_last_good(self.trainer.run, last, self.cfg.nan_patience, self.trainer.nan_advice, self._load,
                              self.rank)
            if is_main:
                _warn(f"went back to {last.name if last else '?'} after {self.cfg.nan_patience} non-finite steps")
            self.bad_in_a_row, self.restored_without_progress = 0, True
        return False

    def _cadence(self) -> None:
        step, finished = self.place.step, self.place.step == self.trainer.max_steps or self.trainer.finished()
        if self.rank.is_main and (step % self.cfg.log_every == 0 or finished):
            self._log()
        if step % self.cfg.val_every == 0 or finished:
            self._validate()
        if step % self.cfg.checkpoint_every == 0 or finished:
            self._save()

    def _log(self) -> None:
        result, seconds = self._last, max(time.perf_counter() - self.window_start, 1e-9)
        record = {"step": self.place.step, "epoch": self.place.epoch,
                  **{key: round(value.item(), 5) for key, value in result.terms.items()},
                  "lr": self.trainer.learning_rate(),
                  **{key: round(float(value), 4) for key, value in result.norms.items()},
                  **self.trainer.throughput(self.amount, seconds)}
        log_record(self.metrics, self.writer, record, self.on_log)
        self.amount, self.window_start = 0.0, time.perf_counter()

    def _validate(self) -> None:
        step = self.place.step
        value = self.trainer.validate(step, self.writer) if self.rank.is_main else None
        value = broadcast_from_main(value, self.rank)  # _save is collective: every rank takes one path
        if value is None:
            return
        if self.rank.is_main:
            append_jsonl(self.metrics, {"step": step, self.trainer.val_key: round(value, 5)})
        if self.writer is not None:
            self.writer.add_scalar(f"val/{self.trainer.val_key.removeprefix('val_')}", value, step)
        if value < self.place.best:
            self.place.best = value
            self._save(best=True)

    def _save(self, best: bool = False) -> None:
        place, trainer = self.place, self.trainer
        # Every rank holds the same weights, so every rank stops here together.
        broken = next(filter(None, (non_finite_tensor(module.state_dict()) for module in trainer.modules())), None)
        if broken is not None:
            raise TrainingError(f"step {place.step}: the weights hold NaN or infinite values ({broken}, ...); "
                                f"nothing was saved; {trainer.nan_advice}")
        rngs = gather_rng_states(self.rank)  # collective
        if not self.rank.is_main:
            return
        state = {**trainer.metadata(), **trainer.state(), "scaler": self.precision.scaler.state_dict(),
                 "step": place.step, "epoch": place.epoch, "batch_in_epoch": place.batch_in_epoch,
                 "best_val": place.best, "rng": rngs, "run_config": config_to_dict(trainer.run_config)}
        if best:
            trainer.save_best(self.checkpoints, state, place.step)
            return
        path = trainer.checkpoint_file(place.step)
        save_checkpoint(path, state)
        trainer.after_save(self.checkpoints, place.step)
        if path.parent == self.checkpoints:
            prune_checkpoints(self.checkpoints, self.cfg.keep_last)
