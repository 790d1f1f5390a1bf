"""`ttskit text`: show what the text front end makes of a sentence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ttskit.cli.common import ConfigOption, SetOption, UserError, err_console, user_errors
from ttskit.config import load_config
from ttskit.text import Vocab
from ttskit.text.frontend import analyze_texts


def text(
    sentence: Annotated[Optional[str], typer.Argument(help="Text to analyse. Omit it when using --file.")] = None,
    file: Annotated[Optional[Path], typer.Option(
        "--file", "-f", exists=True, dir_okay=False, readable=True,
        help="Analyse every line of this UTF-8 file instead (an `id|text` line analyses its text).")] = None,
    frontend: Annotated[Optional[str], typer.Option(
        "--frontend", help="english (ARPAbet), chars (graphemes), espeak (IPA) or nvidia-chars (NVIDIA Tacotron 2's "
                           "characters); default: the config's.")] = None,
    vocab: Annotated[Optional[Path], typer.Option(
        "--vocab", exists=True, dir_okay=False, readable=True,
        help="vocab.json of a corpus or model, to print the ids that model would see.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per line instead of text.")] = False,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Print the normalized text, the symbols (phonemes) and their ids.

    Example: ttskit text "Dr. Smith paid $3.50 on Jan. 5th, 1999."
    """
    with user_errors(UnicodeDecodeError):
        if (sentence is None) == (file is None):
            raise UserError("give either a TEXT argument or --file FILE (one of them)")
        extra = [f"text.frontend={frontend}"] if frontend else []
        cfg = load_config(config, [*(overrides or []), *extra])
        lines = [sentence] if sentence is not None else _read_lines(file)  # type: ignore[arg-type]
        loaded_vocab = Vocab.load(vocab) if vocab else None
        results, used_vocab, from_text = analyze_texts(lines, cfg.text, loaded_vocab)
    if from_text:
        err_console.print(f"[dim]note: the {cfg.text.frontend} front end learns its vocabulary from a corpus; "
                          "these ids come from one built from this text (pass --vocab for a model's)[/]")
    for result in results:
        for message in result.analysis.warnings:
            err_console.print(f"[yellow]warning:[/] {message}", highlight=False)
        if as_json:
            typer.echo(json.dumps({"text": result.text, "normalized": result.analysis.normalized,
                                   "symbols": result.analysis.symbols, "ids": result.ids}, ensure_ascii=False))
        else:
            typer.echo(f"normalized: {result.analysis.normalized}")
            typer.echo(f"symbols:    {' '.join(s if s != ' ' else '|' for s in result.analysis.symbols)}")
            typer.echo(f"ids:        {' '.join(map(str, result.ids))}")
    if not results:
        raise typer.Exit(code=1)


def _read_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            lines.append(line.split("|")[-1] if "|" in line else line)
    return lines
