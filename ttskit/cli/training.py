"""What the training commands share: printing on the main rank only, a rich progress bar over the
step budget with each logged step printed above it, and the closing line."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ttskit.cli.common import err_console


@contextlib.contextmanager
def training_progress(total: int, start: int, describe: Callable[[dict[str, Any]], str],
                      enabled: bool = True) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Yields the `on_log` callback a training loop calls with each logged record."""
    if not enabled:
        yield lambda record: None
        return
    progress = Progress(TextColumn("[bold]step"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=True)
    task = progress.add_task("train", total=total, completed=start)

    def on_log(record: dict[str, Any]) -> None:
        progress.console.print(describe(record), highlight=False)
        progress.update(task, completed=record["step"])

    with progress:
        yield on_log


def on_main_rank() -> bool:
    """Under torchrun every rank runs the command; only the first one talks."""
    return os.environ.get("RANK", "0") == "0"


def say(*args: Any, **kwargs: Any) -> None:
    if on_main_rank():
        err_console.print(*args, **kwargs)


def train_with_progress(run_training: Callable[..., dict[str, Any]], job: Any, describe: Callable[[dict[str, Any]], str],
                        gpus: int, device: str | None) -> dict[str, Any]:
    """Run a trainer (`train_acoustic`, `train_vocoder`) under the progress bar; returns its summary."""
    from ttskit.checkpoints.store import checkpoint_step

    with training_progress(job.max_steps, checkpoint_step(job.resume_from), describe,
                           enabled=on_main_rank()) as on_log:
        return run_training(job, gpus=gpus, device=device, on_log=on_log)


def ending(summary: dict[str, Any]) -> str:
    how = "stopped by signal at" if summary.get("stopped_by_signal") else "finished at"
    return f"[green]{how} step {summary.get('step')}[/]"


def describe_acoustic(record: dict[str, Any]) -> str:
    mel = record["mel_l1"] if "mel_l1" in record else record["mel_mse"]  # Tacotron2's mel term is an MSE
    return (f"step {record['step']:>7}  loss {record['loss']:.4f}  mel {mel:.4f}  "
            f"lr {record['lr']:.2e}  {record['frames_per_s']:.0f} frames/s")


def describe_vocoder(record: dict[str, Any]) -> str:
    if "f0_l1" in record:  # the harmonic-plus-noise vocoder: no discriminator
        losses = f"loss {record['loss']:.3f}  stft {record['stft']:.3f}  f0 {record['f0_l1']:.3f}"
    elif "nll" in record:  # WaveGlow: the likelihood alone
        losses = f"nll {record['nll']:.4f}"
    elif "subband_stft" in record:  # MelGAN, multi-band MelGAN
        losses = (f"loss_g {record['loss_g']:.3f}  loss_d {record['loss_d']:.3f}  stft {record['stft']:.3f}  "
                  f"sub-band {record['subband_stft']:.3f}")
    else:
        losses = (f"loss_g {record['loss_g']:.3f}  loss_d {record['loss_d']:.3f}  "
                  f"mel {record['mel_l1']:.4f}")
    return f"step {record['step']:>7}  {losses}  {record['audio_s_per_s']:.2f} s audio/s"
