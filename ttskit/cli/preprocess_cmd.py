"""`ttskit preprocess {ljspeech,vctk,list,merge}`: corpus -> WORK folder of features and durations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.progress import Progress

from ttskit.cli.common import ConfigOption, SetOption, UserError, err_console, user_errors
from ttskit.cli.preprocessing import aligner_events, preprocess_with_progress, progress_columns
from ttskit.config import load_config

if TYPE_CHECKING:  # the corpus readers import the audio stack (torch): not for --help
    from ttskit.data.corpora import CorpusKind

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
    "--aligner", help="pocketsphinx (built-in English forced aligner, default), textgrid (MFA TextGrids), learned "
                      "(trained on the corpus itself: any language or front end; kept in WORK/aligner), none (no "
                      "durations: for Tacotron 2), or tacotron2 (durations from a trained Tacotron 2's attention: "
                      "--teacher RUN).")]
TeacherOption = Annotated[Optional[Path], typer.Option(
    "--teacher", exists=True, help="The Tacotron 2 run (or checkpoint) whose attention gives --aligner tacotron2 "
                                   "its durations.")]
TextGridOption = Annotated[Optional[Path], typer.Option(
    "--textgrids", exists=True, file_okay=False, help="Folder of Montreal Forced Aligner TextGrids for --aligner textgrid.")]
PitchOption = Annotated[Optional[str], typer.Option(
    "--pitch", help="yin (fast, default) or pyin (librosa's probabilistic YIN: smoother, ~100x slower).")]
LevelOption = Annotated[Optional[str], typer.Option(
    "--level", help="phoneme (pitch/energy averaged per phoneme, default) or frame.")]


def _run(kind: CorpusKind, source: Path, output: Path, jobs: int | None, shard: str | None, aligner: str | None,
         textgrids: Path | None, pitch: str | None, level: str | None, config: Path | None,
         overrides: list[str] | None, teacher: Path | None = None) -> None:
    from ttskit.data.preprocess import Shard

    if aligner == "none" and level is None:
        level = "frame"  # no durations to average over
    extra = [f"preprocess.{key}={value}" for key, value in
             (("aligner", aligner), ("pitch_method", pitch), ("feature_level", level),
              ("teacher", teacher.resolve() if teacher else None)) if value]
    with user_errors():
        cfg = load_config(config, [*(overrides or []), *extra])
        preprocess_with_progress(kind, source, output, cfg, jobs=jobs, shard=Shard.parse(shard) if shard else None,
                                 textgrids=textgrids)


@app.command("ljspeech")
def ljspeech(
    data: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="LJSpeech folder (metadata.csv, wavs/).")],
    output: OutputOption, jobs: JobsOption = None, shard: ShardOption = None, aligner: AlignerOption = None,
    textgrids: TextGridOption = None, pitch: PitchOption = None, level: LevelOption = None,
    teacher: TeacherOption = None, config: ConfigOption = None, overrides: SetOption = None,
) -> None:
    """An LJSpeech-layout corpus: metadata.csv with `id|text|normalized text` and wavs/<id>.wav."""
    _run("ljspeech", data, output, jobs, shard, aligner, textgrids, pitch, level, config, overrides, teacher)


@app.command("vctk")
def vctk(
    data: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                         help="VCTK folder (txt/SPK/*.txt and wav48/SPK/*.wav|flac).")],
    output: OutputOption, jobs: JobsOption = None, shard: ShardOption = None, aligner: AlignerOption = None,
    textgrids: TextGridOption = None, pitch: PitchOption = None, level: LevelOption = None,
    teacher: TeacherOption = None, config: ConfigOption = None, overrides: SetOption = None,
) -> None:
    """A VCTK-layout corpus: one folder of audio and one of transcripts per speaker."""
    _run("vctk", data, output, jobs, shard, aligner, textgrids, pitch, level, config, overrides, teacher)


@app.command("list")
def list_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="Text file of `audio_path|text` or `audio_path|speaker|text` lines.")],
    output: OutputOption, jobs: JobsOption = None, shard: ShardOption = None, aligner: AlignerOption = None,
    textgrids: TextGridOption = None, pitch: PitchOption = None, level: LevelOption = None,
    teacher: TeacherOption = None, config: ConfigOption = None, overrides: SetOption = None,
) -> None:
    """A plain list of audio files and transcripts (paths relative to the list file)."""
    _run("list", file, output, jobs, shard, aligner, textgrids, pitch, level, config, overrides, teacher)


@app.command("merge")
def merge(work: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="WORK folder the shards wrote.")]
          ) -> None:
    """Join finished shards: speakers, vocabulary, statistics, train/val manifests and the report
    (with --aligner learned, the aligner is trained and the utterances aligned here first)."""
    from ttskit.data.preprocess import merge as merge_work

    with user_errors():
        progress = Progress(*progress_columns(), console=err_console)
        try:
            report = merge_work(work, aligner_events(progress))
        finally:
            progress.stop()
        if not report["counts"]["ok"]:
            raise UserError("nothing usable")
    err_console.print(f"[green]merged:[/] {report['counts']['ok']} utterances usable, "
                      f"{report['counts']['skipped']} skipped; see {work / 'report.md'}")
