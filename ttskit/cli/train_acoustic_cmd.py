"""`ttskit train-acoustic WORK -o RUN`: train the acoustic model (FastSpeech2 or FastSpeech)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ttskit.cli.common import ConfigOption, DeviceOption, SetOption, user_errors
from ttskit.cli.training import describe_acoustic, ending, on_main_rank, say, train_with_progress


def train_acoustic(
    work: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="WORK folder made by `ttskit preprocess`.")],
    output: Annotated[Path, typer.Option("--output", "-o", file_okay=False,
                                         help="RUN folder for checkpoints, metrics.jsonl and config.yaml.")],
    model: Annotated[Optional[str], typer.Option(
        "--model", help="fastspeech2 (the default: duration, pitch and energy predictors), fastspeech (FFT blocks "
                        "and a duration predictor only) or tacotron2 (attention, autoregressive).")] = None,
    preset: Annotated[Optional[str], typer.Option(
        help="small (minutes on a CPU; the default for a new run) or base (ming024's LJSpeech size for "
             "fastspeech2, the paper's for fastspeech).")] = None,
    max_steps: Annotated[Optional[int], typer.Option(
        "--max-steps", min=1, help="Stop after this many steps in total; --resume with a larger value continues.")] = None,
    gpus: Annotated[int, typer.Option(
        min=1, help="Local DistributedDataParallel ranks (GPUs, or gloo processes on a CPU-only machine). "
                    "Under torchrun the ranks come from torchrun instead.")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue RUN from its latest checkpoint.")] = False,
    init: Annotated[Optional[Path], typer.Option(
        "--init", help="Fine-tune from this model: `default` (the shipped voice's), a shipped voice's name, or a "
                       "train-acoustic run or checkpoint. Same text front end and mel settings; the vocabulary and "
                       "speakers may differ.")] = None,
    device: DeviceOption = None,
    export_gta: Annotated[bool, typer.Option(
        "--export-gta", help="After training, write teacher-forced mels of every utterance to WORK/gta/ "
                             "(same frames as the recorded mels) for vocoder fine-tuning.")] = False,
    vocoder: Annotated[Optional[Path], typer.Option(
        "--vocoder", exists=True, help="A vocoder run or checkpoint (ttskit or jik876/hifi-gan) for the validation "
                                       "audio in TensorBoard; Griffin-Lim without one.")] = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Train the acoustic model (FastSpeech2, or FastSpeech with --model fastspeech) on a WORK folder.

    Examples:
      ttskit train-acoustic work/mini -o runs/mini --preset small --max-steps 2000
      ttskit train-acoustic work/mini -o runs/mini-fs --model fastspeech --max-steps 2000
      ttskit train-acoustic work/mini -o runs/mini-t2 --model tacotron2 --max-steps 2000
      ttskit train-acoustic work/myvoice -o runs/myvoice --init default --max-steps 1000
    """
    from ttskit.checkpoints.store import latest_checkpoint
    from ttskit.runtime import default_device
    from ttskit.synthesis.voices import init_source
    from ttskit.train.acoustic import prepare_run
    from ttskit.train.acoustic import train_acoustic as run_training
    from ttskit.train.gta import export_gta as write_gta

    with user_errors():
        default_device(device)  # a wrong --device is refused before RUN is touched
        job = prepare_run(work, output, preset=preset, model=model, config_path=config, overrides=overrides or [],
                          max_steps=max_steps, resume=resume, vocoder=vocoder,
                          init=init_source(init, "acoustic") if init is not None else None)
        start = (f"resuming from {job.resume_from.name}" if job.resume_from
                 else f"fine-tuning {job.init_from}" if job.init_from else "starting")
        say(f"{start}: training to step {job.max_steps} on {work} -> {output}")
        summary = train_with_progress(run_training, job, describe_acoustic, gpus, device)
        say(f"{ending(summary)}; checkpoints in {output / 'checkpoints'}")
        if export_gta and not summary.get("stopped_by_signal") and on_main_rank():
            last = latest_checkpoint(output / "checkpoints")
            count = write_gta(work, last, device=device)
            say(f"[green]wrote {count} teacher-forced mels[/] from {last.name} to {work / 'gta'}")
