"""`ttskit preprocess {ljspeech,vctk,list,merge}`: corpus -> WORK folder of features and durations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ttskit.cli.common import ConfigOption, SetOption, UserError, err_console, user_errors
from ttskit.config import load_config
from ttskit.data.corpora import CorpusError, CorpusKind

app = typer.Typer(help="Extract mel, pitch, energy and phoneme durations from a corpus into a WORK folder.",
                  no_args_is_help=True)

OutputOption = Annotated[Path, typer.Option("--output", "-o", file_okay=False,
                                            help="WORK folder to write (created; rerun the same command to resume).")]
JobsOption = Annotated[Optional[int], typer.Option("--jobs", "-j", min=1,
                                                   help="Worker processes (default: all cores).")]
ShardOption = Annotated[Optional[str], typer.Option(
    "--shard", metavar="i/N",
    help="Process only every N-th utterance starting at i (0-based), e.g. 0/4 on the first of four machines; "
         "then run `ttskit preprocess merge WORK` once all shards are done.")]
AlignerOption = Annotated[Optional[str], typer.Option(
    "--aligner", help="pocketsphinx (built-in English forced aligner, default), textgrid (MFA TextGrids), or learned "
                      "(trained on the corpus itself: any language or front end; kept in WORK/aligner).")]
TextGridOption = Annotated[Optional[Path], typer.Option(
    "--textgrids", exists=True, file_okay=False, help="Folder of Montreal Forced Aligner TextGrids for --aligner textgrid.")]
PitchOption = Annotated[Optional[str], typer.Option(
    "--pitch", help="yin (fast, default) or pyin (librosa's probabilistic YIN: smoother, ~100x slower).")]
LevelOption = Annotated[Optional[str], typer.Option(
    "--level", help="phoneme (pitch/energy averaged per phoneme, default) or frame.")]


def _columns() -> tuple:
    return (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[skipped]} skipped"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())


def aligner_events(progress: Progress) -> Callable[[dict[str, Any]], None]:
    """Progress of the learned aligner (training steps with the loss, then durations) as two bars."""
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
        elif kind == "aligned":
            meta = event["meta"]
            if meta["status"] != "ok":
                tasks["skipped"] += 1
                progress.console.print(f"[yellow]skip[/] {meta['id']}: {meta['reason']}", highlight=False)
            progress.update(tasks["durations"], advance=1, skipped=tasks["skipped"])

    return on_event


def _run(kind: CorpusKind, source: Path, output: Path, jobs: int | None, shard: str | None, aligner: str | None,
         textgrids: Path | None, pitch: str | None, level: str | None, config: Path | None,
         overrides: list[str] | None) -> None:
    from ttskit.data.preprocess import PreprocessError, Shard, run_preprocess

    extra = [f"preprocess.{key}={value}" for key, value in
             (("aligner", aligner), ("pitch_method", pitch), ("feature_level", level)) if value]
    with user_errors(CorpusError, PreprocessError):
        cfg = load_config(config, [*(overrides or []), *extra])
        parsed_shard = Shard.parse(shard) if shard else None
        progress = Progress(*_columns(), console=err_console)
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
            summary = run_preprocess(kind, source, output, cfg, jobs=jobs, shard=parsed_shard,
                                     textgrid_dir=textgrids, on_start=on_start, on_done=on_done,
                                     on_aligner=aligner_events(progress))
        finally:
            progress.stop()
    if summary.merged:
        err_console.print(f"[green]done:[/] {summary.ok} utterances usable, {summary.skipped} skipped; "
                          f"see {output / 'report.md'}")
    else:
        err_console.print(f"[green]shard {shard} done:[/] {summary.ok} usable, {summary.skipped} skipped; "
                          f"run `ttskit preprocess merge {output}` when every shard has finished")


@app.command("ljspeech")
def ljspeech(
    data: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="LJSpeech folder (metadata.csv, wavs/).")],
    output: OutputOption, jobs: JobsOption = None, shard: ShardOption = None, aligner: AlignerOption = None,
    textgrids: TextGridOption = None, pitch: PitchOption = None, level: LevelOption = None,
    config: ConfigOption = None, overrides: SetOption = None,
) -> None:
    """An LJSpeech-layout corpus: metadata.csv with `id|text|normalized text` and wavs/<id>.wav."""
    _run("ljspeech", data, output, jobs, shard, aligner, textgrids, pitch, level, config, overrides)


@app.command("vctk")
def vctk(
    data: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                         help="VCTK folder (txt/SPK/*.txt and wav48/SPK/*.wav|flac).")],
    output: OutputOption, jobs: JobsOption = None, shard: ShardOption = None, aligner: AlignerOption = None,
    textgrids: TextGridOption = None, pitch: PitchOption = None, level: LevelOption = None,
    config: ConfigOption = None, overrides: SetOption = None,
) -> None:
    """A VCTK-layout corpus: one folder of audio and one of transcripts per speaker."""
    _run("vctk", data, output, jobs, shard, aligner, textgrids, pitch, level, config, overrides)


@app.command("list")
def list_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="Text file of `audio_path|text` or `audio_path|speaker|text` lines.")],
    output: OutputOption, jobs: JobsOption = None, shard: ShardOption = None, aligner: AlignerOption = None,
    textgrids: TextGridOption = None, pitch: PitchOption = None, level: LevelOption = None,
    config: ConfigOption = None, overrides: SetOption = None,
) -> None:
    """A plain list of audio files and transcripts (paths relative to the list file)."""
    _run("list", file, output, jobs, shard, aligner, textgrids, pitch, level, config, overrides)


@app.command("merge")
def merge(work: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="WORK folder the shards wrote.")]
          ) -> None:
    """Join finished shards: speakers, vocabulary, statistics, train/val manifests and the report
    (with --aligner learned, the aligner is trained and the utterances aligned here first)."""
    from ttskit.data.preprocess import PreprocessError, merge as merge_work

    with user_errors(PreprocessError):
        progress = Progress(*_columns(), console=err_console)
        try:
            report = merge_work(work, aligner_events(progress))
        finally:
            progress.stop()
        if not report["counts"]["ok"]:
            raise UserError("nothing usable")
    err_console.print(f"[green]merged:[/] {report['counts']['ok']} utterances usable, "
                      f"{report['counts']['skipped']} skipped; see {work / 'report.md'}")
