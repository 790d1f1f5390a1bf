"""`ttskit eval --ref REF --hyp HYP`: objective scores of synthetic speech against recordings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ttskit.cli.common import err_console, user_errors


def _number(value: float | None, digits: int = 2, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f} %" if percent else f"{value:.{digits}f}"


def evaluate(
    reference: Annotated[Path, typer.Option("--ref", help="Reference recordings: a folder of audio, or an "
                                                          "LJSpeech-style metadata file (id|text) with wavs/ beside it.")],
    hypothesis: Annotated[Path, typer.Option("--hyp", help="Audio to score, the same way; paired with --ref by id.")],
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the summary and per-utterance rows.")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Worker processes (default: CPU cores).")]
    = None,
    no_asr: Annotated[bool, typer.Option("--no-asr", help="Skip the speech recogniser (word/character error).")]
    = False,
    per_utterance: Annotated[bool, typer.Option("--per-utterance", help="Print a row per utterance too.")] = False,
) -> None:
    """Score HYP against REF: MCD (DTW), log-F0 RMSE, voicing error, duration ratio, and word and
    character error rate of pocketsphinx's offline recogniser against the transcript.

    Example: ttskit eval --ref data/LJSpeech-1.1/metadata.csv --hyp synth_out/ --json scores.json
    """
    from ttskit.audio.io import AudioError
    from ttskit.evaluation.evaluate import EvaluationError, pair, read_side, summarise, write_json
    from ttskit.evaluation.evaluate import evaluate as run

    with user_errors(EvaluationError, AudioError, ValueError):
        pairs = pair(read_side(reference), read_side(hypothesis))
        progress = Progress(TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=err_console, transient=True)
        task = progress.add_task("eval", total=len(pairs))
        with progress:
            rows = run(pairs, jobs=jobs, recognise=not no_asr, on_done=lambda row: progress.advance(task))
    summary = summarise(rows)
    table = Table(title=f"{len(rows)} utterances: {hypothesis} vs {reference}")
    for column in ("id", "MCD dB", "log-F0 RMSE cents", "voicing error", "duration ratio", "WER", "CER"):
        table.add_column(column, justify="left" if column == "id" else "right")
    if per_utterance:
        for r in rows:
            table.add_row(r.id, _number(r.mcd_db), _number(r.log_f0_rmse_cents, 0), _number(r.voicing_error, percent=True),
                          _number(r.duration_ratio), _number(r.word_errors / r.words if r.words else None, percent=True),
                          _number(r.character_errors / r.characters if r.characters else None, percent=True))
    table.add_row("[bold]mean", _number(summary["mcd_db"]), _number(summary["log_f0_rmse_cents"], 0),
                  _number(summary["voicing_error"], percent=True), _number(summary["duration_ratio"]),
                  _number(summary["wer"], percent=True), _number(summary["cer"], percent=True))
    err_console.print(table)
    if json_path:
        write_json(json_path, rows)
        err_console.print(f"wrote {json_path}", highlight=False, soft_wrap=True)
