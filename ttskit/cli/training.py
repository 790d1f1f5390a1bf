"""What the training commands share: a rich progress bar over the step budget, with each logged
step printed above it."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

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
