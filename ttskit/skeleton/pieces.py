"""The pieces of the training skeleton (`ttskit.skeleton.loop`): stop signals, the GradScaler and
the step verdict, run-folder checks, metrics files, the distributed bookkeeping that keeps ranks
in step, and the run summary."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ttskit.audio.io import atomic_write, remove_temp_files
from ttskit.checkpoints.store import CheckpointError, load_checkpoint, rng_state, step_checkpoints
from ttskit.config import config_from_dict, config_to_dict, differences, dump_config, load_config
from ttskit.errors import TtskitError
from ttskit.skeleton.distributed import Rank


class TrainingError(TtskitError, RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""


class StopFlag:
    """Set by SIGTERM/SIGINT: the loop saves a checkpoint and exits at the end of the current step."""

    def __init__(self) -> None:
        self.stop = False
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.stop = True

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader worker init: leave SIGTERM/SIGINT to the main process. A scheduler (Slurm's
    scancel, Ctrl-C in a terminal) signals the whole process group; a worker killed by it makes
    the main process raise instead of saving a checkpoint and shutting the workers down."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def grad_scaler(device: torch.device, enabled: bool, initial_scale: float) -> torch.amp.GradScaler:
    return torch.amp.GradScaler(device.type, init_scale=initial_scale, enabled=enabled)


# Below this loss scale an infinite gradient is not float16's range being exceeded: the
# gradient itself is broken, and the step counts against train.nan_patience.
SMALLEST_OVERFLOW_SCALE = 1.0


def step_verdict(loss: torch.Tensor, grad_norm: torch.Tensor, scaler: torch.amp.GradScaler, rank: Rank) -> str:
    """"ok", "overflow" (fp16: the GradScaler skips the step and halves its scale; nothing is
    wrong) or "bad" (a non-finite loss, or a non-finite gradient with no float16 range to blame),
    agreed by every rank so that all of them take the same path."""
    loss_ok = torch.isfinite(loss.detach())
    grads_ok = torch.isfinite(grad_norm.detach()).to(loss_ok.device)
    if all_ranks_agree(loss_ok & grads_ok, rank):
        return "ok"
    if all_ranks_agree(loss_ok, rank) and scaler.is_enabled() and scaler.get_scale() >= SMALLEST_OVERFLOW_SCALE:
        return "overflow"
    return "bad"


def overflow_event(step: int, scaler: torch.amp.GradScaler) -> dict[str, Any]:
    """The metrics.jsonl line for a skipped fp16 step; call after scaler.update()."""
    return {"step": step, "event": "fp16 gradient overflow, step skipped", "loss_scale": scaler.get_scale()}


def first_difference(a: Any, b: Any) -> str:
    path, old, new = differences(a, b)[0]
    return f"{path}: {old!r} vs {new!r}"


def resume_point(run: Path, resume: bool) -> tuple[Path | None, dict[str, Any], list[str]]:
    """(checkpoint a run continues from, its content, what was passed over). Refuses to overwrite
    a run or resume from nothing; a damaged newest checkpoint falls back to the newest intact one."""
    found = step_checkpoints(run / "checkpoints") if (run / "checkpoints").is_dir() else []
    if found and not resume:
        raise TrainingError(f"{run} already holds checkpoints (latest {found[-1][1].name}); pass --resume to "
                            "continue it or choose a new output folder")
    if not resume:
        return None, {}, []
    if not found:
        raise TrainingError(f"--resume: {run} has no checkpoint to resume from")
    passed_over: list[str] = []
    for _, path in reversed(found):
        try:
            return path, load_checkpoint(path), passed_over
        except CheckpointError as err:
            passed_over.append(str(err))
    raise TrainingError(f"--resume: no checkpoint in {run / 'checkpoints'} is intact ({passed_over[0]})")


def follow_learning_rate(optimizer: torch.optim.Optimizer, scheduler: Any, rate: float,
                         factor: Callable[[int], float]) -> None:
    """After loading a schedule's state: when the config's learning rate is not the one it was saved
    with (a resume with a new `train.learning_rate`), restart it from `rate` at the step it had
    reached, `factor(step)` being the schedule's multiplier. Nothing changes otherwise."""
    rates = [rate] * len(optimizer.param_groups)
    if scheduler.base_lrs == rates:
        return
    scheduler.base_lrs = rates
    for group in optimizer.param_groups:
        group["initial_lr"] = rate
        group["lr"] = rate * factor(scheduler.last_epoch)


def tensorboard_writer(run: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run / "tensorboard"))


def parameters_checksum(*models: torch.nn.Module) -> str:
    parameters = [p for model in models for p in model.parameters()]
    total = sum(float(p.detach().double().sum()) * (i + 1) for i, p in enumerate(parameters))
    return f"{total:.10e}"


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def log_record(metrics_path: Path, writer: Any, record: dict[str, Any],
               on_log: Callable[[dict[str, Any]], None] | None) -> None:
    """One logged training step: a metrics.jsonl line, TensorBoard scalars, the caller's callback."""
    append_jsonl(metrics_path, record)
    if writer is not None:
        for key, value in record.items():
            if key not in ("step", "epoch"):
                writer.add_scalar(f"train/{key}", value, record["step"])
    if on_log:
        on_log(record)


def restore_last_good(run: Path, last: Path | None, patience: int, advice: str,
                      load_state: Callable[[dict[str, Any]], None], rank: Rank) -> None:
    """After `patience` non-finite steps in a row: back to the latest checkpoint `last`, or stop."""
    if last is None:
        raise TrainingError(f"{patience} non-finite steps in a row and no checkpoint to go back to; {advice}")
    load_state(load_checkpoint(last))
    if rank.is_main:
        append_jsonl(run / "metrics.jsonl", {"event": f"restored {last.name} after repeated non-finite steps"})


def forget_unsaved_metrics(path: Path, step: int) -> None:
    """On resume from `step`: drop metrics lines of later steps, which an interrupted run logged
    but never saved, so metrics.jsonl reads as one run."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write(path, lambda tmp: tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8"))


def gather_rng_states(rank: Rank) -> list[dict[str, Any]]:
    """Every rank's RNG states (collective: all ranks must call it)."""
    states = [rng_state()]
    if rank.distributed:
        gathered: list[Any] = [None] * rank.world_size
        dist.all_gather_object(gathered, states[0])
        states = gathered
    return states


def all_ranks_agree(flag: torch.Tensor, rank: Rank) -> bool:
    """True when the flag is true on every rank, so all skip a step or none does and the
    replicas never diverge."""
    if rank.distributed:
        value = flag.to(torch.float32)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value)
    return bool(flag)


def broadcast_from_main(value: Any, rank: Rank) -> Any:
    if not rank.distributed:
        return value
    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def finish(run: Path, summary: dict[str, Any], rank: Rank, models: Iterable[torch.nn.Module],
           seen_indices: Iterable[int]) -> None:
    """Write RUN/summary.json; under DDP it also says whether the ranks ended with the same
    parameters and saw disjoint data (collective)."""
    summary = {**summary, "world_size": rank.world_size, "parameters_checksum": parameters_checksum(*models)}
    if rank.distributed:
        sums: list[Any] = [None] * rank.world_size
        dist.all_gather_object(sums, summary["parameters_checksum"])
        summary["ranks_in_sync"] = len(set(sums)) == 1
        seen: list[Any] = [None] * rank.world_size
        dist.all_gather_object(seen, sorted(seen_indices))
        summary["ranks_data_disjoint"] = not set(seen[0]).intersection(*map(set, seen[1:]))
    if rank.is_main:
        atomic_write(run / "summary.json",
                     lambda tmp: tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8"))


def read_summary(run: Path) -> dict[str, Any]:
    path = run / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def resolve_run_config(run: Path, resume: bool, cls: type[Any], preset: Any, config_path: Path | None,
                       overrides: tuple[str, ...] | list[str],
                       check_state: Callable[[dict[str, Any], Path], None],
                       preset_given: bool = False) -> tuple[Any, Path | None, dict[str, Any]]:
    """(run config, checkpoint resumed from or None, its content or {}). A fresh run: the preset,
    then --config, then --set. A resumed one: the stored config (checked by `check_state` against
    WORK first) with the same overrides on top; they must leave the model as it was, and may change
    only what the saved state does not pin (`BaseTrainConfig.pinned_on_resume`; a new learning
    rate is applied to the restored schedule). A preset named on resume must be the run's model."""
    previous, state, passed_over = resume_point(run, resume)
    for problem in passed_over:
        print(f"warning: {problem}; resuming from an earlier checkpoint", file=sys.stderr, flush=True)
    if previous is None:
        return load_config(config_path, overrides, cls=cls, base=preset), None, {}
    check_state(state, previous)
    stored = config_from_dict(cls, state["run_config"], source=str(previous))
    if preset_given:  # what the named preset (with the same --config/--set) would build must be this run's
        asked = load_config(config_path, overrides, cls=cls, base=preset).model
        if asked != stored.model:
            raise TrainingError(f"--resume: {previous.name} was trained with another model than the one asked for "
                                f"(model.{first_difference(config_to_dict(stored.model), config_to_dict(asked))}); "
                                "leave the preset or model choice out to resume")
    run_config = load_config(config_path, overrides, cls=cls, base=stored)
    if run_config.model != stored.model:
        raise TrainingError(f"--resume: the model config differs from {previous.name}'s "
                            f"({first_difference(config_to_dict(stored.model), config_to_dict(run_config.model))})")
    for key in run_config.train.pinned_on_resume:
        old, new = getattr(stored.train, key), getattr(run_config.train, key)
        if old != new:
            raise TrainingError(f"--resume: train.{key} cannot change when resuming ({old!r} in {previous.name}, "
                                f"{new!r} asked): the saved optimizer state and data order depend on it; start a "
                                "new run for it")
    return run_config, previous, state


def stored_model_section(run: Path) -> dict[str, Any] | None:
    """The model section of RUN/config.yaml (None: no readable one), for telling which model
    family a run being resumed trains before its config is parsed with that family's class."""
    import yaml

    try:
        stored = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    section = stored.get("model") if isinstance(stored, dict) else None
    return section if isinstance(section, dict) else None


def write_run_config(run: Path, run_config: Any, fresh: bool) -> None:
    """The last step of preparing a run (after every check passed): temp files of a write that was
    killed are removed; a fresh start forgets the metrics of an earlier attempt that never saved a
    checkpoint (so no step is logged twice); RUN/config.yaml says what this run trains with."""
    run.mkdir(parents=True, exist_ok=True)
    remove_temp_files([run, run / "checkpoints"])
    if fresh:
        for leftover in ("metrics.jsonl", "summary.json"):
            (run / leftover).unlink(missing_ok=True)
    atomic_write(run / "config.yaml", lambda tmp: tmp.write_text(dump_config(run_config), encoding="utf-8"))
