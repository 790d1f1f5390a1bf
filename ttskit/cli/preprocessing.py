"""What the preprocessing commands share (`preprocess`, `demo`): the progress bars over the corpus
and over the learned aligner, and the closing line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ttskit.cli.common import err_console

if TYPE_CHECKING:  # the pipeline imports torch: only when a command runs, not for --help
    from ttskit.config import Config
    from ttskit.data.corpora import CorpusKind
    from ttskit.data.preprocess import PreprocessSummary, Shard


def progress_columns() -> tuple:
    return (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[skipped]} skipped"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())


def aligner_events(progress: Progress) -> Callable[[dict[str, Any]], None]:
    """Progress of the learned aligner (training steps with the loss, then durations) as two bars;
    of a Tacotron 2 teacher's durations as one."""
    tasks: dict[str, Any] = {}

    def on_event(event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "train":
            progress.start()
            progress.console.print(f"learned aligner: {event['utterances']} utterances on {event['device']}")
            tasks["train"] = progress.add_task("align: train", total=None, skipped=0)
        elif kind == "step":
            progress.update(tasks["train"], total=event["max_steps"], completed=event["step"],
                            description=f"align: train, loss {event['loss']:.3f}")
        elif kind == "trained":
            progress.update(tasks["train"], total=event["step"], completed=event["step"])
            progress.console.print(f"aligner trained to step {event['step']}: {event['reason']}")
            tasks["durations"] = progress.add_task("align: durations", total=event["utterances"], skipped=0)
            tasks["skipped"] = 0
        elif kind == "teacher":
            progress.start()
            progress.console.print(f"durations from the teacher {event['source']}: {event['utterances']} utterances "
                                   f"on {event['device']}")
            tasks["durations"] = progress.add_task("align: teacher", total=event["utterances"], skipped=0)
            tasks["skipped"] = 0
        elif kind == "aligned":
            meta = event["meta"]
            if meta["status"] != "ok":
                tasks["skipped"] += 1
                progress.console.print(f"[yellow]skip[/] {meta['id']}: {meta['reason']}", highlight=False)
            progress.update(tasks["durations"], advance=1, skipped=tasks["skipped"])

    return on_event


def preprocess_with_progress(kind: CorpusKind, source: Path, output: Path, config: Config, *,
                             jobs: int | None = None, shard: Shard | None = None,
                             textgrids: Path | None = None) -> PreprocessSummary:
    """`run_preprocess` under a progress bar, with each skipped clip named above it and the closing line."""
    from ttskit.data.preprocess import run_preprocess

    progress = Progress(*progress_columns(), console=err_console)
    task = progress.add_task("preprocess", total=None, skipped=0)
    skipped = 0

    def on_start(total: int, done: int) -> None:  # called once the corpus and WORK have been checked
        progress.start()
        progress.update(task, total=total, completed=done)
        if done:
            progress.console.print(f"resuming: {done} of {total} utterances already done")

    def on_done(meta: dict[str, Any]) -> None:
        nonlocal skipped
        if meta["status"] == "skipped":  # not "unaligned": staged for the learned aligner
            skipped += 1
            progress.console.print(f"[yellow]skip[/] {meta['id']}: {meta['reason']}", highlight=False)
        progress.update(task, advance=1, skipped=skipped)

    try:
        summary = run_preprocess(kind, source, output, config, jobs=jobs, shard=shard, textgrid_dir=textgrids,
                                 on_start=on_start, on_done=on_done, on_aligner=aligner_events(progress))
    finally:
        progress.stop()
    if summary.remade:
        err_console.print(f"[yellow]re-made {summary.remade} utterance(s)[/] whose files were missing or damaged")
    if summary.merged:
        err_console.print(f"[green]done:[/] {summary.ok} utterances usable, {summary.skipped} skipped; "
                          f"see {output / 'report.md'}")
    else:
        err_console.print(f"[green]shard {shard} done:[/] {summary.ok} usable, {summary.skipped} skipped; "
                          f"run `ttskit preprocess merge {output}` when every shard has finished")
    return summary
