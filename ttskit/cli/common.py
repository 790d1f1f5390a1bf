"""What every command shares: config options and turning library errors into clean exits."""

from __future__ import annotations

import contextlib
import enum
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer
from rich.console import Console

from ttskit.config import ConfigError

# Human-facing messages go to stderr so stdout stays clean for data (JSON, audio, ids).
err_console = Console(stderr=True)

ConfigOption = Annotated[Optional[Path], typer.Option(
    "--config", "-c", exists=True, dir_okay=False, readable=True,
    help="YAML config; its sections override the defaults (see docs/configuration.md).")]
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", "-s", metavar="SECTION.KEY=VALUE",
    help="Override one config value, e.g. --set audio.hop_length=200. Repeatable; applied after --config.")]

class Precision(str, enum.Enum):
    """--precision's choices (typer lists them in --help and refuses others)."""

    fp32 = "fp32"
    bf16 = "bf16"


PrecisionOption = Annotated[Precision, typer.Option(
    "--precision",
    help="The neural vocoder's arithmetic: fp32 (reference output) or bf16 (about 2x faster on GPUs and on CPUs "
         "with AVX-512 BF16/AMX; the audio changes ~40 dB below the signal).")]


def warn_about_precision(precision: Precision, device: Any) -> None:
    """Say so when bf16 was asked for where it would only be emulated (slower than fp32).
    `device`: the one the vocoder runs on, or the --device given (None: cuda when present)."""
    import torch

    from ttskit.models.vocoder import check_precision

    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    warning = check_precision(precision.value, chosen)
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


@contextlib.contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Print library errors of the given kinds (and config errors) as one red line, exit 2."""
    try:
        yield
    except (ConfigError, UserError, *kinds) as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(code=2) from None
