"""`ttskit voices` (the shipped voices) and `ttskit pack-voice` (make a voice folder from two runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ttskit.cli.common import UserError, err_console, user_errors

SCORE_KEYS = {"wer": "WER", "cer": "CER", "mcd_db": "MCD dB", "log_f0_rmse_cents": "log-F0 RMSE cents",
              "voicing_error": "voicing error", "mos": "MOS (pred.)", "utterances": "utterances"}


def voices() -> None:
    """List the voices shipped inside ttskit (`ttskit synth --voice NAME`; the default needs no option)."""
    from rich.table import Table

    from ttskit.synthesis.voices import DEFAULT_VOICE, SHIPPED, shipped_voices

    with user_errors():
        found = shipped_voices()
        if not found:
            raise UserError(f"no voices in {SHIPPED} (an installation without its package data?)")
        table = Table()
        for title in ("name", "speakers", "sample rate", "size"):
            table.add_column(title, no_wrap=True)  # a name or a figure broken over lines reads wrong
        table.add_column("licence")
        table.add_column("description")
        for voice in found:
            mark = " (default)" if voice.name == DEFAULT_VOICE else ""
            speakers = voice.card.get("speakers", [])
            table.add_row(voice.name + mark, f"{len(speakers)}: {', '.join(speakers[:3])}",
                          f"{voice.card.get('sample_rate')} Hz", f"{voice.size_bytes / 1e6:.1f} MB",
                          str(voice.card.get("licence", "")), str(voice.card.get("description", "")))
        Console().print(table)  # the listing is the output: stdout


def _read_scores(items: list[str]) -> dict[str, dict[str, object]]:
    """LABEL=FILE pairs of `ttskit eval --json` files -> {label: {figure: value}}."""
    scores: dict[str, dict[str, object]] = {}
    for item in items:
        label, equals, name = item.partition("=")
        if not equals or not label or not name:
            raise UserError(f"--scores {item!r}: give LABEL=FILE, FILE written by `ttskit eval --json`")
        try:
            summary = json.loads(Path(name).read_text(encoding="utf-8"))["summary"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"--scores {name}: not an `ttskit eval --json` file ({err})") from None
        scores[label] = {title: (round(summary[key], 4) if isinstance(summary.get(key), float) else summary.get(key))
                         for key, title in SCORE_KEYS.items()}
    return scores


def pack_voice(
    acoustic: Annotated[Path, typer.Argument(exists=True, help="train-acoustic run folder or checkpoint.")],
    vocoder: Annotated[Path, typer.Argument(exists=True, help="train-vocoder run folder or generator checkpoint.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The voice folder to write (new, or empty).")],
    name: Annotated[str, typer.Option(help="What `--voice NAME` calls it.")],
    description: Annotated[str, typer.Option(help="One line about the voice.")] = "",
    licence: Annotated[str, typer.Option(help="The licence of the weights (and of the data they were trained on).")] = "",
    data: Annotated[str, typer.Option(help="What it was trained on.")] = "",
    training: Annotated[str, typer.Option(help="The command(s) that trained it, for the model card.")] = "",
    scores: Annotated[Optional[list[str]], typer.Option(
        "--scores", help="LABEL=FILE: the summary of a `ttskit eval --json` file for the model card; repeatable.")
    ] = None,
    scores_note: Annotated[str, typer.Option(help="What the scores were measured on.")] = "",
    half: Annotated[bool, typer.Option(
        "--half", help="Store the weights as float16: half the size, run in float32 as trained (score it after: "
                       "`ttskit eval --synth --acoustic OUT/acoustic.pt --vocoder OUT/vocoder.pt`).")] = False,
    sharpen: Annotated[float, typer.Option(
        help="The mel sharpening factor synthesis applies with this voice, as `ttskit synth "
             "--sharpen` (measure it with `ttskit eval --synth --sharpen`).")] = 1.0,
) -> None:
    """Pack an acoustic model and a vocoder into a voice folder with a model card (voice.json,
    MODEL_CARD.md): what `ttskit synth --voice FOLDER` and the shipped voices are.

    Example: ttskit pack-voice runs/acoustic runs/vocoder -o voices/joe --name joe --licence CC0-1.0
    """
    from ttskit.synthesis.voices import pack_voice as pack

    with user_errors():
        voice = pack(acoustic, vocoder, output, name, description=description, licence=licence, data=data,
                     training=training, scores=_read_scores(scores or []), scores_note=scores_note,
                     half=half, sharpen=sharpen)
        err_console.print(f"[green]voice {voice.name!r}[/] -> {voice.folder} ({voice.size_bytes / 1e6:.1f} MB)",
                          highlight=False, soft_wrap=True)
