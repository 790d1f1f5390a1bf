"""HiFi-GAN training speed: `ttskit train-vocoder` (the real loop: data loading, both
discriminators, AMP as configured) against jik876/hifi-gan's own training step (its train.py's
generator + MPD + MSD update, as shipped: float32) at the same batch and segment size, same device.

    python benchmarks/bench_train_vocoder.py WORK [--model hifigan-v1] [--batch N] [--steps 3]
                                          [--hifigan CHECKOUT] [--threads 2]

ttskit's step times come from its own metrics.jsonl (one record per step, after `--warmup` steps;
validation and checkpoints are moved out of the timed steps). jik876's models.py is loaded at run
time from the checkout (never copied into ttskit). Its meldataset.mel_spectrogram cannot run on
today's torch (torch.stft now requires return_complex), so ttskit's mel, the same definition
(docs/audio.md), stands in for it in its step. Its batch is real speech: 8192-sample segments of
WORK's recordings with their mels.

The batch defaults to 16 on CUDA (the paper's; ttskit in bf16, its default there) and 2 on the
CPU, where one adversarial V1 step at batch 16 takes minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from common import machine, table
from peers import checkout_module, jik876_config

from ttskit.runtime import default_device
from ttskit.train.vocoder import prepare_vocoder_run, train_vocoder
from ttskit.work import read_jsonl


def ttskit_step_seconds(work: Path, model: str, batch: int, steps: int, warmup: int, device: torch.device) -> float:
    """Median seconds per step of the real training loop."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        overrides = [f"train.batch_size={batch}", "train.log_every=1", "train.val_every=1000000",
                     "train.checkpoint_every=1000000", "train.val_utterances=1",
                     f"train.num_workers={2 if device.type == 'cuda' else 0}"]
        job = prepare_vocoder_run(work, run, model=model, overrides=overrides, max_steps=warmup + steps)
        train_vocoder(job, device=device.type)
        segment_s = job.config.train.segment_samples / job.audio.sample_rate
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        rates = [r["audio_s_per_s"] for r in records if "audio_s_per_s" in r and r["step"] > warmup]
    return float(np.median([batch * segment_s / rate for rate in rates]))


def jik876_step_seconds(checkout: Path, model: str, work: Path, batch: int, steps: int, warmup: int,
                        device: torch.device) -> float:
    """Median seconds of jik876's train.py step (discriminators, then generator) on real segments."""
    import dataclasses

    from ttskit.audio import MelSpectrogram
    from ttskit.work import load_work_config

    models = checkout_module(checkout, "models.py", "jik876_models")
    h = jik876_config(checkout, model)
    generator = models.Generator(h).to(device)
    mpd, msd = models.MultiPeriodDiscriminator().to(device), models.MultiScaleDiscriminator().to(device)
    optim_g = torch.optim.AdamW(generator.parameters(), h.learning_rate, betas=[h.adam_b1, h.adam_b2])
    optim_d = torch.optim.AdamW([*msd.parameters(), *mpd.parameters()], h.learning_rate,
                                betas=[h.adam_b1, h.adam_b2])
    rows = read_jsonl(work / "train.jsonl")
    rng = np.random.default_rng(0)
    waves = []
    for row in rows:
        wave, _ = sf.read(str(work / row["wav"]), dtype="float32")
        if len(wave) >= h.segment_size:
            waves.append(wave)
    if len(waves) < batch:
        raise SystemExit(f"{work}: fewer than {batch} recordings of {h.segment_size} samples")

    def segments() -> torch.Tensor:
        picks = rng.choice(len(waves), batch, replace=False)
        starts = [rng.integers(0, len(waves[p]) - h.segment_size + 1) for p in picks]
        return torch.from_numpy(np.stack([waves[p][s:s + h.segment_size] for p, s in zip(picks, starts)])).to(device)

    audio = load_work_config(work).audio
    analyses = {fmax: MelSpectrogram(dataclasses.replace(audio, fmax=fmax), double_precision=False).to(device)
                for fmax in (h.fmax, None)}  # float32, as jik876 computes its mels

    def mel(y: torch.Tensor, fmax: float | None) -> torch.Tensor:
        return analyses[fmax](y)

    def step() -> float:
        y = segments()
        x, y_mel = mel(y, h.fmax), mel(y, h.fmax_for_loss)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        y = y.unsqueeze(1)
        y_g_hat = generator(x)
        y_g_hat_mel = mel(y_g_hat.squeeze(1), h.fmax_for_loss)
        optim_d.zero_grad()
        y_df_hat_r, y_df_hat_g, _, _ = mpd(y, y_g_hat.detach())
        loss_disc_f = models.discriminator_loss(y_df_hat_r, y_df_hat_g)[0]
        y_ds_hat_r, y_ds_hat_g, _, _ = msd(y, y_g_hat.detach())
        loss_disc_s = models.discriminator_loss(y_ds_hat_r, y_ds_hat_g)[0]
        (loss_disc_s + loss_disc_f).backward()
        optim_d.step()
        optim_g.zero_grad()
        loss_mel = F.l1_loss(y_mel, y_g_hat_mel) * 45
        y_df_hat_r, y_df_hat_g, fmap_f_r, fmap_f_g = mpd(y, y_g_hat)
        y_ds_hat_r, y_ds_hat_g, fmap_s_r, fmap_s_g = msd(y, y_g_hat)
        loss = (models.generator_loss(y_ds_hat_g)[0] + models.generator_loss(y_df_hat_g)[0]
                + models.feature_loss(fmap_s_r, fmap_s_g) + models.feature_loss(fmap_f_r, fmap_f_g) + loss_mel)
        loss.backward()
        optim_g.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    times = [step() for _ in range(warmup + steps)][warmup:]
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--model", default="hifigan-v1", choices=["hifigan-v1", "hifigan-v2", "hifigan-v3"])
    parser.add_argument("--batch", type=int, help="default: 16 on CUDA, 2 on the CPU")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--hifigan", type=Path, help="a jik876/hifi-gan checkout (optional)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = default_device()
    batch = args.batch or (16 if device.type == "cuda" else 2)
    precision = "ttskit bf16 autocast, jik876 float32 as shipped" if device.type == "cuda" \
        else f"float32, {args.threads} threads"
    ours = ttskit_step_seconds(args.work, args.model, batch, args.steps, args.warmup, device)
    rows = [["ttskit train-vocoder (whole loop)", f"{ours:.2f}", f"{1 / ours:.2f}", "1.00"]]
    if args.hifigan:
        theirs = jik876_step_seconds(args.hifigan, args.model, args.work, batch, args.steps, args.warmup, device)
        rows.append(["jik876/hifi-gan train.py step", f"{theirs:.2f}", f"{1 / theirs:.2f}", f"{theirs / ours:.2f}"])
    print(f"# Vocoder training: {args.model}, batch {batch} x 8192 samples, {device.type} ({precision}), "
          f"median of {args.steps} adversarial steps after {args.warmup} warm-up\n")
    print(f"Machine: {machine()}\n")
    if not args.hifigan:
        print("(no --hifigan checkout given: its row skipped)\n")
    print(table(["training step", "s per step", "steps/s", "time / ttskit's"], rows))


if __name__ == "__main__":
    main()
