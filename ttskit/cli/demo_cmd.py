"""`ttskit demo`: the whole pipeline on the embedded mini corpus, in one command.

preprocess -> train-acoustic (small preset) -> synth, into one folder; rerunning it reuses what
is done (preprocessing resumes, training resumes or is skipped when it has its steps).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer

from ttskit.cli.common import err_console, user_errors

DEMO_TEXT = ("Hello! This voice was trained a few minutes ago, on one hundred sentences. "
             "It is rough, but every part of it is real.")


def _corpus(output: Path, clips: int) -> Path:
    """The embedded corpus, or its first `clips` clips copied beside the demo's outputs."""
    from ttskit.assets import MINI_LJSPEECH

    lines = (MINI_LJSPEECH / "metadata.csv").read_text(encoding="utf-8").splitlines()
    if clips >= len(lines):
        return MINI_LJSPEECH
    subset = output / "corpus"
    (subset / "wavs").mkdir(parents=True, exist_ok=True)
    for line in lines[:clips]:
        name = f"{line.split('|')[0]}.flac"
        shutil.copy(MINI_LJSPEECH / "wavs" / name, subset / "wavs" / name)
    (subset / "metadata.csv").write_text("".join(f"{line}\n" for line in lines[:clips]), encoding="utf-8")
    return subset


def demo(
    output: Annotated[Path, typer.Option("--output", "-o", file_okay=False,
                                         help="Folder for work/, run/ and demo.wav.")] = Path("demo"),
    steps: Annotated[int, typer.Option(min=1, help="Acoustic-model training steps (300: 2 min on 2 quiet CPU cores).")] = 300,
    clips: Annotated[int, typer.Option(min=2, help="How many of the 100 embedded clips to use.")] = 100,
    text: Annotated[str, typer.Option(help="What the new voice says.")] = DEMO_TEXT,
    vocoder: Annotated[Optional[str], typer.Option(
        "--vocoder", "-v", help="Also speak through this vocoder (run, checkpoint or jik876 g_ file).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cuda or cpu (default: cuda when present).")] = None,
) -> None:
    """Preprocess the embedded mini corpus, train a small acoustic model on it, and speak with it.

    Example: ttskit demo -o demo && aplay demo/demo.wav
    """
    from ttskit.audio.io import save_wav
    from ttskit.cli.preprocess_cmd import _run as preprocess
    from ttskit.cli.train_acoustic_cmd import train_acoustic
    from ttskit.synthesis import SynthesisError, Synthesizer
    from ttskit.train.checkpoint import checkpoint_step, latest_checkpoint

    output.mkdir(parents=True, exist_ok=True)
    work, run = output / "work", output / "run"
    err_console.rule("1/3 preprocess")
    preprocess("ljspeech", _corpus(output, clips), work, None, None, None, None, None, None, None, None)
    err_console.rule("2/3 train-acoustic")
    done = checkpoint_step(latest_checkpoint(run / "checkpoints")) if (run / "checkpoints").is_dir() else 0
    if done >= steps:
        err_console.print(f"{run} already has {done} steps; training skipped")
    else:
        train_acoustic(work, run, preset="small", max_steps=steps, gpus=1, resume=done > 0, device=device,
                       export_gta=False, vocoder=None, config=None, overrides=None)
    err_console.rule("3/3 synth")
    with user_errors(SynthesisError):
        voices = [("griffin-lim", output / "demo.wav")]
        if vocoder:
            voices.append((vocoder, output / "demo_vocoder.wav"))
        for voice, target in voices:
            synth = Synthesizer.from_checkpoints(run, voice, device)
            wave = synth.tts(text)
            for warning in synth.warnings:
                err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
            save_wav(target, wave, synth.sample_rate)
            err_console.print(f"[bold green]wrote {target}[/] ({len(wave) / synth.sample_rate:.1f} s, {voice}); "
                              f"play it with `aplay {target}`", highlight=False, soft_wrap=True)
