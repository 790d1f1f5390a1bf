"""What every command shares: config options and turning library errors into clean exits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from ttskit.errors import TtskitError
from ttskit.runtime import InferencePrecision

# Human-facing messages go to stderr so stdout stays clean for data (JSON, audio, ids).
err_console = Console(stderr=True)

ConfigOption = Annotated[Optional[Path], typer.Option(
    "--config", "-c", exists=True, dir_okay=False, readable=True,
    help="YAML config; its sections override the defaults (see docs/configuration.md).")]
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", "-s", metavar="SECTION.KEY=VALUE",
    help="Override one config value, e.g. --set audio.hop_length=200. Repeatable; applied after --config.")]

PrecisionOption = Annotated[InferencePrecision, typer.Option(
    "--precision",
    help="The neural vocoder's arithmetic: fp32 (reference output) or bf16 (about 2x faster on GPUs and on CPUs "
         "with AVX-512 BF16/AMX; the audio changes ~40 dB below the signal).")]
DeviceOption = Annotated[Optional[str], typer.Option(help="cuda, cuda:N or cpu (default: cuda when present).")]


def warn_about_precision(precision: InferencePrecision, device: Any) -> None:
    """Say so when bf16 was asked for where it would only be emulated (slower than fp32).
    `device`: the one the vocoder runs on."""
    from ttskit.models.vocoder import check_precision
    from ttskit.runtime import default_device

    warning = check_precision(precision, default_device(device))
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


class UserError(TtskitError):
    """A problem with the command line itself; printed without a traceback."""


@contextlib.contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Print every TtskitError (and errors of the other given kinds) as one red line, exit 2."""
    try:
        yield
    except (TtskitError, *kinds) as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(code=2) from None
