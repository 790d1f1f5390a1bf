"""Acoustic-model training throughput: steps/s and mel frames/s of a preset on a WORK folder, and
the length regulator's share of a training step (its calls timed inside real steps).

    python benchmarks/bench_train_acoustic.py WORK [--preset small] [--steps 30] [--threads 2]

On CUDA it runs in bf16 autocast, as training does.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

import ttskit.models.fastspeech2 as fastspeech2  # noqa: E402
from ttskit.data.dataset import FrameBudgetSampler, WorkDataset, collate  # noqa: E402
from ttskit.models.losses import fastspeech2_loss  # noqa: E402
from ttskit.train.acoustic import build_model  # noqa: E402
from ttskit.train.acoustic_config import RUN_PRESETS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--preset", default="small", choices=sorted(RUN_PRESETS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run_config = RUN_PRESETS[args.preset]
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
        with autocast:
            out = model(batch.phonemes, batch.phoneme_lengths, batch.speakers,
                        targets=fastspeech2.VarianceTargets(batch.durations, batch.pitch, batch.energy),
                        max_frames=batch.mels.shape[1])
        loss = fastspeech2_loss(out, batch.mels, batch.durations, batch.pitch, batch.energy)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

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
    print(f"# Acoustic training throughput: preset {args.preset}, {device.type}"
          f"{' bf16' if device.type == 'cuda' else f', {args.threads} threads'}\n")
    print(f"Machine: {machine()}\n")
    print(f"- {args.steps / elapsed:.2f} steps/s, {frames / elapsed:.0f} mel frames/s "
          f"(batches of up to {run_config.train.max_frames_per_batch} padded frames)")
    print(f"- length regulator: {100 * regulator_time[0] / elapsed:.2f} % of the training step time")


if __name__ == "__main__":
    main()
