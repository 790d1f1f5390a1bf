"""`ttskit eval`: objective scores of synthetic or vocoded speech against recordings (`--ref/--hyp`,
`--synth`, `--vocoder-only`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ttskit.cli.common import PrecisionOption, UserError, err_console, user_errors, warn_about_precision


def _number(value: float | None, digits: int = 2, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f} %" if percent else f"{value:.{digits}f}"


def _score_table(rows: list, summary: dict, title: str, per_utterance: bool) -> Table:
    table = Table(title=title)
    rated = summary.get("mos") is not None
    columns = ["id", "MCD dB", "log-F0 RMSE cents", "voicing error", "duration ratio", "WER", "CER"]
    for column in columns + (["MOS (pred.)"] if rated else []):
        table.add_column(column, justify="left" if column == "id" else "right")

    def cells(name: str, mcd: Any, cents: Any, voicing: Any, ratio: Any, wer: Any, cer: Any, mos: Any) -> list[str]:
        values = [name, _number(mcd), _number(cents, 0), _number(voicing, percent=True), _number(ratio),
                  _number(wer, percent=True), _number(cer, percent=True)]
        return values + ([_number(mos)] if rated else [])

    if per_utterance:
        for r in rows:
            table.add_row(*cells(r.id, r.mcd_db, r.log_f0_rmse_cents, r.voicing_error, r.duration_ratio,
                                 r.word_errors / r.words if r.words else None,
                                 r.character_errors / r.characters if r.characters else None, r.mos))
    table.add_row(*cells("[bold]mean", summary["mcd_db"], summary["log_f0_rmse_cents"], summary["voicing_error"],
                         summary["duration_ratio"], summary["wer"], summary["cer"], summary.get("mos")))
    return table


def _progress(label: str) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err_console, transient=True)


def evaluate(
    metadata: Annotated[Path | None, typer.Argument(
        help="With --synth or --vocoder-only: the recordings to score against, an LJSpeech-style metadata "
             "file (id|text) with wavs/ beside it, a WORK folder's val.jsonl (each in its own speaker's voice), "
             "or for --vocoder-only a folder of audio.")] = None,
    reference: Annotated[Path | None, typer.Option("--ref", help="Reference recordings: a folder of audio, an "
                                                      "LJSpeech-style metadata file (id|text) with wavs/ beside it, "
                                                      "or a WORK folder's val.jsonl.")]
    = None,
    hypothesis: Annotated[Path | None, typer.Option("--hyp", help="Audio to score, the same way; paired with --ref "
                                                                     "by id.")] = None,
    synth: Annotated[bool, typer.Option("--synth", help="Synthesise METADATA's sentences with --acoustic and "
                                                        "--vocoder, then score them.")] = False,
    vocoder_only: Annotated[bool, typer.Option("--vocoder-only", help="Copy-synthesis: each recording -> mel -> "
                                                                      "--vocoder, then score (the vocoder alone).")]
    = False,
    acoustic: Annotated[Path | None, typer.Option("--acoustic", "-a", help="train-acoustic run or checkpoint "
                                                                               "(--synth).")] = None,
    vocoder: Annotated[str | None, typer.Option("--vocoder", "-v", help="train-vocoder run or checkpoint, a "
                                                   "jik876 g_ file, or griffin-lim (--synth's default).")] = None,
    speaker: Annotated[str | None, typer.Option(help="--synth: speaker name or id (default: each utterance's own "
                                                     "speaker when METADATA names it, else the first).")] = None,
    sharpen: Annotated[float, typer.Option(help="--synth: mel sharpening before the vocoder, as `ttskit synth "
                                                "--sharpen` (1: the mel as predicted).")] = 1.0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="--synth/--vocoder-only: keep the audio made "
                                                                    "here (default: a temporary folder).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Score only the first N utterances.")] = None,
    device: Annotated[str | None, typer.Option(help="--synth/--vocoder-only: cuda or cpu (default: cuda when "
                                                       "present).")] = None,
    precision: PrecisionOption = "fp32",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the summary and per-utterance rows.")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes (default: CPU cores).")]
    = None,
    no_asr: Annotated[bool, typer.Option("--no-asr", help="Skip the speech recogniser (word/character error).")]
    = False,
    no_mos: Annotated[bool, typer.Option("--no-mos", help="Skip the predicted MOS (DistillMOS, where installed).")]
    = False,
    per_utterance: Annotated[bool, typer.Option("--per-utterance", help="Print a row per utterance too.")] = False,
) -> None:
    """Score speech against recordings: MCD (DTW), log-F0 RMSE, voicing error, duration ratio, and
    word and character error rate of pocketsphinx's offline recogniser against the transcript.

    Examples:
      ttskit eval --ref data/LJSpeech-1.1/metadata.csv --hyp synth_out/ --json scores.json
      ttskit eval --synth --acoustic runs/lj --vocoder runs/lj-vocoder work/lj/val.jsonl
      ttskit eval --vocoder-only --vocoder runs/lj-vocoder data/LJSpeech-1.1/metadata.csv --limit 100
    """
    import tempfile

    from ttskit.evaluation.evaluate import evaluate as run
    from ttskit.evaluation.evaluate import (
        pair,
        read_side,
        summarise,
        write_json,
    )
    from ttskit.synthesis.postfilter import check_sharpening

    with user_errors(ValueError), tempfile.TemporaryDirectory(prefix="ttskit-eval-") as tmp:
        if synth and vocoder_only:
            raise UserError("--synth and --vocoder-only are two different evaluations: give one")
        if sharpen != 1.0 and not synth:
            raise UserError("--sharpen acts on the acoustic model's mels: it goes with --synth")
        check_sharpening(sharpen)
        if synth or vocoder_only:
            if metadata is None:
                raise UserError(f"{'--synth' if synth else '--vocoder-only'} needs the METADATA file to score against")
            if reference is not None or hypothesis is not None:
                raise UserError("--ref/--hyp score existing audio; with --synth or --vocoder-only give METADATA only")
            if synth and acoustic is None:
                raise UserError("--synth needs --acoustic RUN (and --vocoder, or Griffin-Lim is used)")
            if vocoder_only and vocoder is None:
                raise UserError("--vocoder-only needs --vocoder RUN")
            warn_about_precision(precision, device)
        elif metadata is not None or reference is None or hypothesis is None:
            raise UserError("give --ref REF --hyp HYP, or --synth/--vocoder-only with METADATA")
        elif precision != "fp32":
            raise UserError("--precision is for the audio --synth/--vocoder-only make; "
                            "--ref/--hyp score existing audio")
        scored = reference if reference is not None else metadata
        assert scored is not None  # the checks above leave one of the two
        refs = read_side(scored)
        if limit:
            refs = dict(list(refs.items())[:limit])
        made_in = out if out is not None else Path(tmp)
        if synth or vocoder_only:
            progress = _progress("synth" if synth else "vocode")
            task = progress.add_task("make", total=len(refs))
            with progress:
                if synth:
                    from ttskit.evaluation.produce import synthesize_items

                    hyps, warnings = synthesize_items(list(refs.values()), made_in, acoustic, vocoder or "griffin-lim",
                                                      speaker, device, lambda n: progress.advance(task, n),
                                                      precision, sharpen)
                    for warning in warnings:
                        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
                else:
                    from ttskit.evaluation.produce import vocode_items

                    assert vocoder is not None  # checked above
                    hyps = vocode_items(list(refs.values()), made_in, Path(vocoder), device,
                                        lambda n: progress.advance(task, n), precision)
            what = f"{'synthesised' if synth else 'vocoded'} by {acoustic or vocoder}" + \
                (f" with {vocoder}" if synth and vocoder else "")
        else:
            assert hypothesis is not None  # checked above
            hyps = read_side(hypothesis)
            what = str(hypothesis)
        pairs = pair(refs, hyps)
        progress = _progress("eval")
        task = progress.add_task("eval", total=len(pairs))
        with progress:
            rows = run(pairs, jobs=jobs, recognise=not no_asr, on_done=lambda row: progress.advance(task),
                       rate_naturalness=not no_mos)
    summary = summarise(rows)
    err_console.print(_score_table(rows, summary, f"{len(rows)} utterances: {what} vs {reference or metadata}",
                                   per_utterance))
    if not no_mos and summary.get("mos") is None:
        from ttskit.evaluation.naturalness import INSTALL_HINT

        err_console.print(f"predicted MOS: skipped (DistillMOS is not installed; `{INSTALL_HINT}` adds it)",
                          highlight=False, soft_wrap=True)
    for row in rows:
        if row.problem:
            err_console.print(f"[yellow]warning:[/] not measured, {row.problem}", highlight=False, soft_wrap=True)
    if out is not None and (synth or vocoder_only):
        err_console.print(f"audio in {out}", highlight=False, soft_wrap=True)
    if json_path:
        write_json(json_path, rows)
        err_console.print(f"wrote {json_path}", highlight=False, soft_wrap=True)
