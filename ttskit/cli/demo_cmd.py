"""`ttskit demo`: the shipped voice speaks, then the whole pipeline runs on the embedded mini
corpus, in one command.

shipped voice -> preprocess -> train-acoustic (small preset) -> synth, into one folder; rerunning
it reuses what is done (preprocessing resumes, training resumes or is skipped when it has its steps).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ttskit.cli.common import DeviceOption, err_console, user_errors

SHIPPED_TEXT = "Hello! I am the voice that comes with ttskit. I was trained on two CPU cores, by ttskit itself."
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
    device: DeviceOption = None,
) -> None:
    """Speak with the shipped voice, then preprocess the embedded mini corpus, train a small
    acoustic model on it, and speak with that.

    Example: ttskit demo -o demo && aplay demo/shipped_voice.wav demo/demo.wav
    """
    from ttskit.checkpoints.store import checkpoint_step, latest_checkpoint
    from ttskit.cli.preprocessing import preprocess_with_progress
    from ttskit.cli.training import describe_acoustic, ending, train_with_progress
    from ttskit.config import load_config
    from ttskit.synthesis import Synthesizer
    from ttskit.train.acoustic import prepare_run, train_acoustic

    output.mkdir(parents=True, exist_ok=True)
    work, run = output / "work", output / "run"
    with user_errors():
        err_console.rule("1/4 the shipped voice")
        shipped = Synthesizer.default(device)
        _speak(shipped, SHIPPED_TEXT, output / "shipped_voice.wav", "the shipped voice")
        err_console.rule("2/4 preprocess")
        preprocess_with_progress("ljspeech", _corpus(output, clips), work, load_config())
        err_console.rule("3/4 train-acoustic")
        done = checkpoint_step(latest_checkpoint(run / "checkpoints")) if (run / "checkpoints").is_dir() else 0
        if done >= steps:
            err_console.print(f"{run} already has {done} steps; training skipped")
        else:
            job = prepare_run(work, run, preset="small", max_steps=steps, resume=done > 0)
            summary = train_with_progress(train_acoustic, job, describe_acoustic, gpus=1, device=device)
            err_console.print(f"{ending(summary)}; checkpoints in {run / 'checkpoints'}", highlight=False)
        err_console.rule("4/4 synth")
        voices = [("griffin-lim", output / "demo.wav")]
        if vocoder:
            voices.append((vocoder, output / "demo_vocoder.wav"))
        for voice, target in voices:
            _speak(Synthesizer.from_checkpoints(run, voice, device), text, target, voice)


def _speak(synth: Any, text: str, target: Path, what: str) -> None:
    from ttskit.audio.io import save_wav

    wave = synth.tts(text)
    for warning in synth.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    save_wav(target, wave, synth.sample_rate)
    err_console.print(f"[bold green]wrote {target}[/] ({len(wave) / synth.sample_rate:.1f} s, {what}); "
                      f"play it with `aplay {target}`", highlight=False, soft_wrap=True)
