"""`ttskit vocode IN -o OUT --vocoder CKPT`: copy-synthesis through a vocoder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ttskit.cli.common import DeviceOption, PrecisionOption, UserError, err_console, user_errors, warn_about_precision


def vocode(
    source: Annotated[Path, typer.Argument(exists=True, help="An audio file or a .npy log-mel (n_mels, frames), "
                                                            "or a folder of them.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .wav (a folder when IN is a folder).")],
    vocoder_path: Annotated[Path, typer.Option(
        "--vocoder", "-v", exists=True, help="A vocoder run folder or generator checkpoint from `ttskit train-vocoder`, "
                                             "or a jik876/hifi-gan g_XXXXXXXX with its config.json.")],
    mel_config: Annotated[Optional[Path], typer.Option(
        "--mel-config", exists=True, dir_okay=False,
        help="The WORK config.yaml a .npy mel was made with (found automatically for WORK/mel and WORK/gta).")] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "fp32",
) -> None:
    """Turn audio (analysed to a mel) or a stored mel back into audio with a vocoder.

    Example: ttskit vocode recording.wav -o copy.wav --vocoder runs/lj-vocoder
    """
    from ttskit.audio.io import check_output, check_output_folder
    from ttskit.checkpoints.vocoder import load_vocoder
    from ttskit.errors import TtskitError
    from ttskit.synthesis.copy_synthesis import inputs_in, vocode_file

    with user_errors():
        # Outputs are checked before the vocoder is loaded: a bad -o costs nothing and replaces nothing.
        if source.is_dir():
            if output.suffix:
                raise UserError(f"{source} is a folder, so -o must be a folder too (got {output})")
            check_output_folder(output)
            jobs = [(path, output / f"{path.stem}.wav") for path in inputs_in(source)]
        else:
            jobs = [(source, output if output.suffix else output / f"{source.stem}.wav")]
        for _, target in jobs:
            if target.suffix.lower() != ".wav":
                raise UserError(f"-o {target}: vocode writes WAV files; give a name ending in .wav or a folder")
            check_output(target)
        vocoder = load_vocoder(vocoder_path, device, precision)
        err_console.print(f"vocoder: {vocoder.source} ({vocoder.sample_rate} Hz, {vocoder.audio.n_mels} mels, "
                          f"hop {vocoder.hop_length}) on {vocoder.device}, {precision}",
                          highlight=False, soft_wrap=True)
        warn_about_precision(precision, vocoder.device)
        for note in vocoder.notes:
            err_console.print(f"[dim]note:[/] {note}", highlight=False, soft_wrap=True)
        audio_s = compute_s = 0.0
        unchecked, failed = [], []
        for path, target in jobs:
            try:
                done, checked = vocode_file(path, target, vocoder, mel_config)
            except TtskitError as err:
                if len(jobs) == 1:
                    raise
                failed.append(path.name)  # the rest of the folder is still written
                err_console.print(f"[red]failed:[/] {err}", highlight=False, soft_wrap=True)
                continue
            audio_s, compute_s = audio_s + done.seconds, compute_s + done.compute_s
            if not checked:
                unchecked.append(path.name)
            err_console.print(f"{path} -> [bold]{target}[/] ({done.seconds:.2f} s)", highlight=False, soft_wrap=True)
        if unchecked:
            err_console.print(f"[yellow]warning:[/] the mel settings of {len(unchecked)} .npy file(s) could not be "
                              f"checked against the vocoder's (e.g. {unchecked[0]}); pass --mel-config WORK/config.yaml")
        written = len(jobs) - len(failed)
        err_console.print(f"[green]{written} file(s), {audio_s:.2f} s of audio[/] in {compute_s:.2f} s of vocoder "
                          f"time: {audio_s / max(compute_s, 1e-9):.1f}x real time (RTF {compute_s / max(audio_s, 1e-9):.3f})",
                          highlight=False, soft_wrap=True)
    if failed:
        err_console.print(f"[bold red]error:[/] {len(failed)} of {len(jobs)} input(s) could not be vocoded "
                          f"(first: {failed[0]}); the others were written", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)
