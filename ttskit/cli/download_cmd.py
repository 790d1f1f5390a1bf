"""`ttskit download ljspeech|vctk`: fetch a public corpus, resumable and checksummed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from ttskit.cli.common import err_console, user_errors


def download(
    corpus: Annotated[str, typer.Argument(help="ljspeech or vctk.")],
    output: Annotated[Path, typer.Option("--output", "-o", file_okay=False, help="Where the corpus folder goes.")]
    = Path("data"),
    url: Annotated[Optional[str], typer.Option(help="Another address for the same archive (a mirror).")] = None,
    sha256: Annotated[Optional[str], typer.Option(help="Expected SHA-256 when --url serves another file.")] = None,
    keep_archive: Annotated[bool, typer.Option("--keep-archive", help="Keep the archive after extracting.")] = False,
) -> None:
    """Download and extract LJSpeech or VCTK; rerun the same command to continue a broken download.

    Example: ttskit download ljspeech -o data && ttskit preprocess ljspeech data/LJSpeech-1.1 -o work/lj
    """
    from ttskit.data.download import CORPORA, download_corpus

    with user_errors():
        progress = Progress(TextColumn(f"[bold]{corpus}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            TimeRemainingColumn(), console=err_console, transient=True)
        task = progress.add_task("download", total=None)
        with progress:
            folder = download_corpus(corpus, output, url=url, sha256=sha256, keep_archive=keep_archive,
                                     on_progress=lambda done, total: progress.update(task, completed=done,
                                                                                     total=total))
        layout = CORPORA[corpus].layout
        err_console.print(f"[green]{folder}[/] is ready ({CORPORA[corpus].licence}); next: "
                          f"ttskit preprocess {layout} {folder} -o work/{corpus}", highlight=False, soft_wrap=True)
