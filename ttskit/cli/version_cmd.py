"""`ttskit version`: versions that matter in a bug report."""

from __future__ import annotations

import platform

import typer


def version() -> None:
    """Print ttskit's version and those of Python, torch (and its CUDA), librosa and numba."""
    import librosa
    import numba
    import torch

    import ttskit

    cuda = (f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available()
            else "no CUDA device")
    typer.echo(f"ttskit {ttskit.__version__}")
    typer.echo(f"python {platform.python_version()} ({platform.system()} {platform.machine()})")
    typer.echo(f"torch {torch.__version__} ({cuda})")
    typer.echo(f"librosa {librosa.__version__}, numba {numba.__version__}")
