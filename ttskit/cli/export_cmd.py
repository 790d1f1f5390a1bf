"""`ttskit export`: a voice as ONNX graphs plus the JSON a runtime needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ttskit.cli.common import UserError, err_console, user_errors


def export(
    voice: Annotated[Optional[str], typer.Argument(help="A shipped voice's name or a voice folder (default: the "
                                                        "default voice); or give --acoustic and --vocoder.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The new folder to write (must not exist, or be "
                                                                "empty).")] = Path("voice-onnx"),
    acoustic: Annotated[Optional[Path], typer.Option("--acoustic", "-a", exists=True,
                                                     help="train-acoustic run folder or checkpoint.")] = None,
    vocoder: Annotated[Optional[Path], typer.Option("--vocoder", "-v", exists=True,
                                                    help="train-vocoder run folder or generator checkpoint, or a "
                                                         "jik876 g_ file.")] = None,
    name: Annotated[Optional[str], typer.Option(help="The exported voice's name (default: the voice's, or the "
                                                     "folder's).")] = None,
    quantize: Annotated[bool, typer.Option("--quantize", help="Run the acoustic model's frame-level convolutions in int8 "
                                                              "(smaller, faster; its cost is in docs/deploy.md).")] = False,
) -> None:
    """Export a voice to ONNX (opset 17): acoustic.onnx (every control an input), vocoder.onnx and
    voice.onnx.json, checked against torch before the folder is kept. Run it with
    `ttskit synth --voice DIR` or any ONNX runtime.

    Examples:
      ttskit export -o joe-onnx
      ttskit export --acoustic runs/lj --vocoder runs/lj-vocoder -o lj-onnx --quantize
    """
    from ttskit.deploy.onnx_export import export_voice
    from ttskit.synthesis.voices import find_voice

    with user_errors():
        if (acoustic is None) != (vocoder is None):
            raise UserError("give both --acoustic and --vocoder, or a voice")
        if acoustic is not None and voice is not None:
            raise UserError("give a voice, or --acoustic and --vocoder, not both")
        found = None
        if acoustic is None:
            found = find_voice(voice, "torch")
            acoustic, vocoder = found.acoustic, found.vocoder
        assert vocoder is not None
        with err_console.status(f"exporting to {output} ..."):
            export_voice(acoustic, vocoder, output, name=name, voice=found, quantize=quantize)
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(output.glob("*.onnx")))
        err_console.print(f"[green]exported[/] {output}: {sizes}; try `ttskit synth \"Hello.\" -o hello.wav --voice "
                          f"{output}`", highlight=False, soft_wrap=True)
