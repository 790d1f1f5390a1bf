"""`ttskit train-vocoder WORK -o RUN`: train a HiFi-GAN vocoder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ttskit.cli.common import ConfigOption, DeviceOption, SetOption, user_errors
from ttskit.cli.training import describe_vocoder, ending, say, train_with_progress


def train_vocoder(
    work: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="WORK folder made by `ttskit preprocess`.")],
    output: Annotated[Path, typer.Option("--output", "-o", file_okay=False,
                                         help="RUN folder for checkpoints, metrics.jsonl and config.yaml.")],
    model: Annotated[Optional[str], typer.Option(
        help="hifigan-v1 (best quality on a GPU; the default for a new run), hifigan-v2 (small, fast), hifigan-v3 "
             "(fastest), harmonic-noise (F0-driven source-filter, no discriminator: trains on a CPU), melgan, mb-melgan "
             "(multi-band MelGAN: the fastest GAN on a CPU), waveglow or waveglow-512 (a flow, NVIDIA's). With "
             "--init or --resume, the family of the generator it starts from.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(
        "--max-steps", min=1, help="Stop after this many steps in total; --resume with a larger value continues.")] = None,
    gpus: Annotated[int, typer.Option(
        min=1, help="Local DistributedDataParallel ranks (GPUs, or gloo processes on a CPU-only machine). "
                    "train.batch_size is the global batch: each rank takes batch_size / gpus segments. "
                    "Under torchrun the ranks come from torchrun instead.")] = 1,
    gta: Annotated[bool, typer.Option(
        "--gta", help="Train on the acoustic model's teacher-forced mels in WORK/gta/ (from train-acoustic "
                      "--export-gta) instead of the recorded ones: fine-tuning that removes the metallic sound.")] = False,
    init: Annotated[Optional[Path], typer.Option(
        "--init", help="Start from this generator: `default` (the shipped voice's vocoder) or a shipped voice's "
                       "name, a ttskit vocoder checkpoint or run, or a jik876/hifi-gan g_XXXXXXXX (with its "
                       "config.json; a do_XXXXXXXX beside it initialises the discriminators).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue RUN from its latest checkpoint.")] = False,
    device: DeviceOption = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Train a vocoder (mel -> waveform) on a WORK folder: HiFi-GAN, or the harmonic-plus-noise vocoder.

    Examples:
      ttskit train-vocoder work/lj -o runs/lj-vocoder --model hifigan-v1 --gpus 2
      ttskit train-vocoder work/mine -o runs/mine-vocoder --model harmonic-noise --device cpu
      ttskit train-vocoder work/mine -o runs/mine-vocoder --init default --max-steps 2000
    """
    from ttskit.runtime import default_device
    from ttskit.synthesis.voices import init_source
    from ttskit.train.vocoder import prepare_vocoder_run
    from ttskit.train.vocoder import train_vocoder as run_training

    with user_errors():
        default_device(device)  # a wrong --device is refused before RUN is touched
        job = prepare_vocoder_run(work, output, model=model, config_path=config, overrides=overrides or [],
                                  max_steps=max_steps, resume=resume, gta=gta,
                                  init=init_source(init, "vocoder") if init is not None else None)
        start = (f"resuming from {job.resume_from.name}" if job.resume_from
                 else f"fine-tuning {job.init_from}" if job.init_from else "starting")
        mels = "teacher-forced (gta) mels" if job.gta else "recorded mels"
        say(f"{start}: training the vocoder to step {job.max_steps} on {work} ({mels}) -> {output}")
        summary = train_with_progress(run_training, job, describe_vocoder, gpus, device)
        say(f"{ending(summary)}; generator checkpoints in {output / 'checkpoints'} "
            f"(use with `ttskit vocode IN -o OUT --vocoder {output}`)")
