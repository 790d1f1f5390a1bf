"""Acoustic-model training throughput: steps/s and mel frames/s of a preset on a WORK folder, and
the length regulator's share of a training step (its calls timed inside real steps).

    python benchmarks/bench_train_acoustic.py WORK [--model fastspeech2|fastspeech] [--preset small] [--steps 30]
                                              [--threads 2] [--fastspeech2 CHECKOUT [--compare-steps 4]]

On CUDA it runs in bf16 autocast, as training does.

With --fastspeech2, ming024/FastSpeech2's model and loss (its LJSpeech config: the size of
ttskit's `base`; loaded at run time from the checkout, never copied) train side by side with
ttskit's `base` on the same batches of 16 utterances from WORK: the same phonemes, durations,
phoneme-level pitch and energy and mels, the same Adam update, bf16 autocast for both on CUDA;
steps interleaved (ttskit, ming024, ttskit, ...) after a warm-up, and timed synchronised.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table
from peers import ming024_fastspeech2

import ttskit.models.fastspeech2 as fastspeech2
from ttskit.data.dataset import FrameBudgetSampler, WorkDataset, collate
from ttskit.models.losses import fastspeech2_loss
from ttskit.runtime import default_device
from ttskit.train.acoustic import build_model
from ttskit.train.acoustic_config import MODEL_PRESETS, RUN_PRESETS


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch, autocast) -> None:
    """One ttskit FastSpeech2 step: teacher-forced forward and loss (in autocast on CUDA), update."""
    with autocast:
        out = model(batch.phonemes, batch.phoneme_lengths, batch.speakers,
                    targets=fastspeech2.VarianceTargets(batch.durations, batch.pitch, batch.energy),
                    max_frames=batch.mels.shape[1])
        config = model.config
        loss = fastspeech2_loss(out, batch.mels, batch.durations, batch.pitch, batch.energy,
                                postnet=config.postnet_layers > 0, variance_predictors=config.variance_predictors)["loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def ming024_model(checkout: Path, stats: dict, device: torch.device):
    """ming024's FastSpeech2 and loss, built from its LJSpeech configs with our WORK's statistics."""
    pitch, energy = stats["pitch"], stats["energy"]
    model, preprocess, model_config = ming024_fastspeech2(
        checkout, [pitch["normalized_min"], pitch["normalized_max"], 0.0, 1.0],
        [energy["normalized_min"], energy["normalized_max"], 0.0, 1.0], device)
    from model.loss import FastSpeech2Loss  # the checkout's module (on sys.path now)

    return model, FastSpeech2Loss(preprocess, model_config)


def side_by_side(args: argparse.Namespace, dataset: WorkDataset, device: torch.device) -> None:
    """ttskit `base` and ming024's FastSpeech2 on the same batches of 16, steps interleaved."""
    import random

    run_config = RUN_PRESETS["base"]
    ours = build_model(run_config, len(dataset.vocab), 80, len(dataset.speakers), dataset.stats).to(device)
    theirs, their_loss = ming024_model(args.fastspeech2, dataset.stats, device)
    our_optimizer = torch.optim.Adam(ours.parameters(), lr=1e-4)
    their_optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-4)
    rng = random.Random(0)
    indices = list(range(len(dataset)))
    batches = []
    for _ in range(args.compare_steps + 2):
        rng.shuffle(indices)
        batches.append(collate([dataset[i] for i in indices[:16]]).to(device))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    def our_step(batch) -> None:
        train_step(ours, our_optimizer, batch, autocast)

    def their_step(batch) -> None:
        n, t = int(batch.phoneme_lengths.max()), int(batch.frame_lengths.max())
        inputs = (None, None, batch.speakers, batch.phonemes, batch.phoneme_lengths, n, batch.mels,
                  batch.frame_lengths, t, batch.pitch, batch.energy, batch.durations)
        with autocast:
            output = theirs(*inputs[2:])
            loss = their_loss(inputs, output)[0]
        their_optimizer.zero_grad()
        loss.backward()
        their_optimizer.step()

    def timed(step, batch) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    for batch in batches[:2]:  # warm-up
        our_step(batch)
        their_step(batch)
    our_s = their_s = 0.0
    frames = 0
    for batch in batches[2:]:
        our_s += timed(our_step, batch)
        their_s += timed(their_step, batch)
        frames += int(batch.frame_lengths.sum())
    steps = len(batches) - 2
    precision = "bf16 autocast" if device.type == "cuda" else f"float32, {args.threads} threads"
    print(f"\n**Side by side: `base` size, batch 16, {device.type} ({precision}), {steps} interleaved steps each**\n")
    print(table(["model", "steps/s", "mel frames/s", "time / ttskit's"],
                [["ttskit FastSpeech2 `base`", f"{steps / our_s:.2f}", f"{frames / our_s:.0f}", "1.00"],
                 ["ming024/FastSpeech2 (LJSpeech config)", f"{steps / their_s:.2f}", f"{frames / their_s:.0f}",
                  f"{their_s / our_s:.2f}"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--model", default="fastspeech2", choices=sorted(MODEL_PRESETS))
    parser.add_argument("--preset", default="small", choices=sorted(RUN_PRESETS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fastspeech2", type=Path, help="a ming024/FastSpeech2 checkout (optional)")
    parser.add_argument("--compare-steps", type=int, default=4, help="timed steps of each in the side-by-side")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = default_device()
    run_config = MODEL_PRESETS[args.model][args.preset]
    dataset = WorkDataset(args.work, "train")
    model = build_model(run_config, len(dataset.vocab), 80, len(dataset.speakers), dataset.stats).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sampler = FrameBudgetSampler([dataset.frames(i) for i in range(len(dataset))],
                                 run_config.train.max_frames_per_batch, seed=0)
    batches = [collate([dataset[i] for i in b]).to(device) for b in sampler]
    regulator_time = [0.0]
    original = fastspeech2.regulate_length

    def timed(*a, **k):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        out = original(*a, **k)
        if device.type == "cuda":
            torch.cuda.synchronize()
        regulator_time[0] += time.perf_counter() - started
        return out

    fastspeech2.regulate_length = timed
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    def step(batch) -> None:
        train_step(model, optimizer, batch, autocast)

    for batch in batches[:3]:  # warm-up: numba compile, allocator
        step(batch)
    regulator_time[0] = 0.0
    frames = 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for n in range(args.steps):
        batch = batches[n % len(batches)]
        step(batch)
        frames += int(batch.frame_lengths.sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    print(f"# Acoustic training throughput: {args.model} preset {args.preset}, {device.type}"
          f"{' bf16' if device.type == 'cuda' else f', {args.threads} threads'}\n")
    print(f"Machine: {machine()}\n")
    print(f"- {args.steps / elapsed:.2f} steps/s, {frames / elapsed:.0f} mel frames/s "
          f"(batches of up to {run_config.train.max_frames_per_batch} padded frames)")
    print(f"- length regulator: {100 * regulator_time[0] / elapsed:.2f} % of the training step time")
    fastspeech2.regulate_length = original
    if args.fastspeech2:
        side_by_side(args, dataset, device)


if __name__ == "__main__":
    main()
