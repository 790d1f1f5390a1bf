"""The seed acoustic models side by side (issue 19): training step speed of FastSpeech2, FastSpeech
and Tacotron 2 per preset, inference real-time factor per model, Tacotron 2's batch-1 latency for a
10-word sentence; and, given checkouts, the training step of NVIDIA/tacotron2 and xcmyz/FastSpeech
at their own sizes beside ttskit's at the same sizes, on the same batches. Always: Tacotron 2's
training decoder beside the same model stepping its decoder (the baseline it replaced).

    python benchmarks/bench_seed_acoustic.py WORK [--threads 2] [--steps 2]
                                             [--nvidia CHECKOUT] [--xcmyz CHECKOUT] [--compare-steps 3]

WORK needs durations (FastSpeech trains on them; any aligner). Training steps are the trainer's own
(`train.acoustic_step.teacher_forced` + `acoustic_loss`, AdamW, gradient clipping), on batches the
preset's frame budget fills, after one warm-up step; on CUDA in bf16 autocast, as training runs.

Inference: freshly initialised weights, the same length for every model (7 frames per phoneme,
LJSpeech's average): FastSpeech's duration predictor is set to it, Tacotron 2's stop token is
silenced and its decoder bounded at that many frames, so each produces the same mel of the same
sentences. Speed does not depend on what the weights learned except through the length.

Side by side (steps interleaved: ttskit, theirs, ttskit, ...; timed synchronised):
- NVIDIA/tacotron2 (its hparams: ttskit's `base`), 4 utterances a batch sorted by length as its
  encoder needs, its loss (mel + postnet MSE, gate BCE), Adam 1e-3, clipping at 1.0 as its train.py.
- xcmyz/FastSpeech (hparams.py: 256 wide, 4 + 4 FFT blocks of 1024-filter (9, 1) convolutions, a
  CBHG postnet), 16 utterances a batch with WORK's durations as its length targets, its loss; ttskit
  FastSpeech at the same encoder/decoder sizes without a postnet (the paper's) and with its 5-layer
  convolutional one. Its text package needs `pip install unidecode inflect` (benchmark only).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table
from peers import forget_checkout, nvidia_tacotron2, xcmyz_fastspeech

from ttskit.checkpoints.acoustic import AcousticModel, build_acoustic_model
from ttskit.config import AudioConfig, TextConfig
from ttskit.data.dataset import AcousticBatch, FrameBudgetSampler, WorkDataset, collate
from ttskit.models.fastspeech2 import FastSpeech2, FastSpeech2Config
from ttskit.runtime import default_device
from ttskit.synthesis.engines import acoustic_engine
from ttskit.text.frontend import build_frontend
from ttskit.train.acoustic_config import MODEL_PRESETS
from ttskit.train.acoustic_step import acoustic_loss, teacher_forced

FRAMES_PER_PHONEME = 7
TEN_WORDS = "The old lighthouse keeper walked slowly down the narrow path."
SENTENCES = ("Scientists announced on Tuesday that the new telescope had captured its first images.",
             "Would you like another cup of tea before we leave?", TEN_WORDS,
             "The committee published its report on the harbour late last night.")
# xcmyz/FastSpeech's hparams.py, in ttskit's config.
XCMYZ_SIZES = FastSpeech2Config(hidden=256, encoder_layers=4, decoder_layers=4, heads=2, conv_filter=1024,
                                conv_kernels=(9, 1), dropout=0.1, variance_filter=256, variance_kernel=3,
                                variance_dropout=0.1, postnet_layers=0, variance_predictors=False)
NVIDIA_HPARAMS = dict(symbols_embedding_dim=512, encoder_kernel_size=5, encoder_n_convolutions=3,
                      encoder_embedding_dim=512, attention_rnn_dim=1024, attention_dim=128,
                      attention_location_n_filters=32, attention_location_kernel_size=31, decoder_rnn_dim=1024,
                      prenet_dim=256, p_attention_dropout=0.1, p_decoder_dropout=0.1, postnet_embedding_dim=512,
                      postnet_kernel_size=5, postnet_n_convolutions=5)


def synchronised(device: torch.device, function: Callable[[], object]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def autocast_for(device: torch.device) -> Any:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def ttskit_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> Callable:
    def step(batch: AcousticBatch) -> None:
        model.train()
        with autocast_for(device):
            out, mels = teacher_forced(model, model, batch)
        loss = acoustic_loss(model, out, mels, batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return step


def training_rows(dataset: WorkDataset, device: torch.device, steps: int) -> list[list[str]]:
    rows = []
    for family, presets in MODEL_PRESETS.items():
        for preset, run_config in presets.items():
            torch.manual_seed(0)
            model = build_acoustic_model(run_config.model, len(dataset.vocab), 80, len(dataset.speakers),
                                         dataset.stats).to(device)
            step = ttskit_step(model, torch.optim.AdamW(model.parameters(), lr=1e-4), device)
            sampler = FrameBudgetSampler([dataset.frames(i) for i in range(len(dataset))],
                                         run_config.train.max_frames_per_batch, seed=0)
            batches = [collate([dataset[i] for i in b]).to(device) for b in list(sampler)[:steps + 1]]
            step(batches[0])  # warm-up
            seconds = sum(synchronised(device, lambda b=b, s=step: s(b)) for b in batches[1:])
            frames = sum(int(b.frame_lengths.sum()) for b in batches[1:])
            params = sum(p.numel() for p in model.parameters()) / 1e6
            rows.append([f"{family} `{preset}`", f"{params:.1f}M", f"{run_config.train.max_frames_per_batch}",
                         f"{(len(batches) - 1) / seconds:.2f}", f"{frames / seconds:.0f}"])
            print(f"  trained {family} {preset}", file=sys.stderr, flush=True)
    return rows


def inference_model(family: str, preset: str, frontend: Any, frames: int) -> AcousticModel:
    """An untrained model of a preset speaking at 7 frames per phoneme (see the module's text)."""
    vocab = frontend.build_vocab()
    stats = {"feature_level": "phoneme",
             "pitch": {"per_speaker": {"s": {"mean": 200.0, "std": 40.0}}, "normalized_min": -4.0, "normalized_max": 4.0},
             "energy": {"mean": 20.0, "std": 15.0, "normalized_min": -2.0, "normalized_max": 5.0}}
    config = MODEL_PRESETS[family][preset].model
    if family == "tacotron2":
        config = dataclasses.replace(config, max_decoder_steps=-(-frames // config.reduction))
    torch.manual_seed(0)
    model = build_acoustic_model(config, len(vocab), 80, 1, stats).eval()
    with torch.no_grad():
        if isinstance(model, FastSpeech2):
            model.duration_predictor.output.weight.zero_()
            model.duration_predictor.output.bias.fill_(math.log(1 + FRAMES_PER_PHONEME))
        else:
            model.decoder.gate_layer.linear_layer.bias.fill_(-30.0)  # never stops before the bound
    return AcousticModel(model, frontend, vocab, {"s": 0}, stats, AudioConfig(), f"{family}-{preset}")


def inference_rows(repeats: int) -> tuple[list[list[str]], list[list[str]]]:
    """(real-time factor of the four sentences one at a time per model, Tacotron 2's latency for TEN_WORDS)."""
    import numpy as np

    audio = AudioConfig()
    frontend = build_frontend(TextConfig())
    vocab = frontend.build_vocab()
    ids = [frontend.encode(s, vocab)[0] for s in SENTENCES]
    rows, latency = [], []
    for family, presets in MODEL_PRESETS.items():
        for preset in presets:
            per_sentence = []
            for sentence_ids in ids:
                acoustic = inference_model(family, preset, frontend, len(sentence_ids) * FRAMES_PER_PHONEME)
                engine = acoustic_engine(acoustic, torch.device("cpu"))

                def call(e=engine, i=sentence_ids):  # one sentence, neutral controls
                    return e(np.array([i]), np.array([len(i)]), np.zeros(1, np.int64), np.ones(1, np.float32),
                             np.zeros(1, np.float32), np.ones(1, np.float32))

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # Tacotron 2 reaching its bound, as intended here
                    with torch.inference_mode():
                        call()
                        best = min(synchronised(torch.device("cpu"), call) for _ in range(repeats))
                frames = call().frames[0]
                per_sentence.append((best, frames * audio.hop_length / audio.sample_rate))
                if family == "tacotron2" and sentence_ids is ids[2]:
                    latency.append([f"tacotron2 `{preset}`", f"{len(sentence_ids)}", f"{frames}",
                                    f"{1000 * best:.0f} ms"])
            compute = sum(s for s, _ in per_sentence)
            speech = sum(a for _, a in per_sentence)
            rows.append([f"{family} `{preset}`", f"{speech:.1f} s", f"{compute:.3f} s", f"{compute / speech:.4f}",
                         f"{speech / compute:.0f}x"])
    return rows, latency


def fixed_batches(dataset: WorkDataset, size: int, count: int, device: torch.device) -> list[AcousticBatch]:
    """`count` batches of `size` random utterances, sorted longest text first (NVIDIA's encoder packs them)."""
    rng = random.Random(0)
    indices = list(range(len(dataset)))
    batches = []
    for _ in range(count):
        rng.shuffle(indices)
        chosen = sorted(indices[:size], key=lambda i: -len(dataset.rows[i]["phonemes"]))
        batches.append(collate([dataset[i] for i in chosen]).to(device))
    return batches


def interleaved(device: torch.device, steps: dict[str, Callable], batches: list[AcousticBatch]) -> dict[str, float]:
    """Seconds per step of each, after one warm-up step each, steps taking turns on the same batches."""
    for step in steps.values():
        step(batches[0])
    totals = dict.fromkeys(steps, 0.0)
    for batch in batches[1:]:
        for name, step in steps.items():
            totals[name] += synchronised(device, lambda s=step, b=batch: s(b))
    return {name: total / (len(batches) - 1) for name, total in totals.items()}


def nvidia_side_by_side(checkout: Path, dataset: WorkDataset, device: torch.device, count: int) -> list[list[str]]:
    theirs, criterion = nvidia_tacotron2(checkout, NVIDIA_HPARAMS, len(dataset.vocab))
    theirs = theirs.to(device)
    torch.manual_seed(0)
    ours = build_acoustic_model(MODEL_PRESETS["tacotron2"]["base"].model, len(dataset.vocab), 80, 1,
                                dataset.stats).to(device)
    their_optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-3, weight_decay=1e-6)

    def their_step(batch: AcousticBatch) -> None:
        theirs.train()
        mels = batch.mels.transpose(1, 2)
        gate = (torch.arange(mels.shape[2], device=device)[None] >= batch.frame_lengths[:, None] - 1).float()
        with autocast_for(device):
            out = theirs((batch.phonemes, batch.phoneme_lengths, mels, int(batch.phoneme_lengths.max()),
                          batch.frame_lengths))
        loss = criterion([o.float() for o in out], (mels, gate))
        their_optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
        their_optimizer.step()

    batches = fixed_batches(dataset, 4, count + 1, device)
    times = interleaved(device, {"ours": ttskit_step(ours, torch.optim.Adam(ours.parameters(), lr=1e-3,
                                                                            weight_decay=1e-6), device),
                                 "theirs": their_step}, batches)
    forget_checkout(checkout)
    frames = sum(int(b.frame_lengths.sum()) for b in batches[1:]) / (len(batches) - 1)
    return [["ttskit Tacotron 2 `base`", f"{1 / times['ours']:.3f}", f"{frames / times['ours']:.0f}", "1.00"],
            ["NVIDIA/tacotron2 (its hparams)", f"{1 / times['theirs']:.3f}", f"{frames / times['theirs']:.0f}",
             f"{times['theirs'] / times['ours']:.2f}"]]


def decoder_side_by_side(dataset: WorkDataset, device: torch.device, count: int) -> list[list[str]]:
    """ttskit's Tacotron 2 training step with its training decoder and with the decoder stepped
    (`Decoder.stepwise`, the loop NVIDIA's trains with), same weights, on the same batches of 4."""
    rows = []
    for preset in ("base", "small"):
        steps: dict[str, Callable] = {}
        for name in ("teacher_forced", "stepwise"):
            torch.manual_seed(0)
            model = build_acoustic_model(MODEL_PRESETS["tacotron2"][preset].model, len(dataset.vocab), 80, 1,
                                         dataset.stats).to(device)
            model.decoder.teacher_forced = getattr(model.decoder, name)
            steps[name] = ttskit_step(model, torch.optim.Adam(model.parameters(), lr=1e-3), device)
        batches = fixed_batches(dataset, 4, count + 1, device)
        times = interleaved(device, steps, batches)
        frames = sum(int(b.frame_lengths.sum()) for b in batches[1:]) / (len(batches) - 1)
        rows += [[f"Tacotron 2 `{preset}`, {label}", f"{1 / times[n]:.3f}", f"{frames / times[n]:.0f}",
                  f"{times[n] / times['teacher_forced']:.2f}"]
                 for n, label in (("teacher_forced", "training decoder"), ("stepwise", "decoder stepped"))]
    return rows


def xcmyz_side_by_side(checkout: Path, dataset: WorkDataset, device: torch.device, count: int) -> list[list[str]]:
    theirs, criterion = xcmyz_fastspeech(checkout)
    theirs = theirs.to(device)
    their_optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-4)

    def positions(lengths: torch.Tensor, width: int) -> torch.Tensor:
        steps = torch.arange(1, width + 1, device=device)[None]
        return steps * (steps <= lengths[:, None])

    def their_step(batch: AcousticBatch) -> None:
        theirs.train()
        width = batch.mels.shape[1]
        with autocast_for(device):
            mel, mel_postnet, predicted = theirs(batch.phonemes, positions(batch.phoneme_lengths, batch.phonemes.shape[1]),
                                                 mel_pos=positions(batch.frame_lengths, width), mel_max_length=width,
                                                 length_target=batch.durations)
        losses = criterion(mel.float(), mel_postnet.float(), predicted.float(), batch.mels, batch.durations)
        their_optimizer.zero_grad()
        sum(losses).backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
        their_optimizer.step()

    steps: dict[str, Callable] = {}
    for name, config in (("ours", XCMYZ_SIZES), ("ours+postnet", dataclasses.replace(XCMYZ_SIZES, postnet_layers=5))):
        torch.manual_seed(0)
        model = build_acoustic_model(config, len(dataset.vocab), 80, 1, dataset.stats).to(device)
        steps[name] = ttskit_step(model, torch.optim.Adam(model.parameters(), lr=1e-4), device)
    steps["theirs"] = their_step
    batches = fixed_batches(dataset, 16, count + 1, device)
    times = interleaved(device, steps, batches)
    forget_checkout(checkout)
    frames = sum(int(b.frame_lengths.sum()) for b in batches[1:]) / (len(batches) - 1)
    labels = {"ours": "ttskit FastSpeech at its sizes, no postnet (the paper's)",
              "ours+postnet": "ttskit FastSpeech at its sizes + 5-layer conv postnet",
              "theirs": "xcmyz/FastSpeech (hparams.py, CBHG postnet)"}
    return [[labels[n], f"{1 / t:.3f}", f"{frames / t:.0f}", f"{t / times['ours']:.2f}"] for n, t in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per model and preset")
    parser.add_argument("--repeats", type=int, default=3, help="inference: best of this many")
    parser.add_argument("--nvidia", type=Path, help="an NVIDIA/tacotron2 checkout (optional)")
    parser.add_argument("--xcmyz", type=Path, help="an xcmyz/FastSpeech checkout (optional)")
    parser.add_argument("--compare-steps", type=int, default=3, help="timed steps of each in a side-by-side")
    parser.add_argument("--skip-training", action="store_true", help="only inference and the side-by-sides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = default_device()
    dataset = WorkDataset(args.work, "train")
    where = "CUDA, bf16 autocast" if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"# The seed acoustic models: training and inference speed ({where})\n\nMachine: {machine()}\n")
    if not args.skip_training:
        print(f"**Training step** (batches filled to the preset's frame budget from {args.work}, {args.steps} timed "
              "steps after a warm-up)\n")
        print(table(["model", "parameters", "frames / batch", "steps/s", "mel frames/s"],
                    training_rows(dataset, device, args.steps)))
    rtf, latency = inference_rows(args.repeats)
    print(f"\n**Inference** on the CPU ({args.threads} threads), batch 1, the four sentences one at a time, "
          f"{FRAMES_PER_PHONEME} frames per phoneme; acoustic model only (no vocoder)\n")
    print(table(["model", "speech", "compute", "real-time factor", "faster than real time"], rtf))
    print(f"\n**Tacotron 2, batch 1, a 10-word sentence** (\"{TEN_WORDS}\")\n")
    print(table(["model", "phonemes", "frames", "latency (best of 3)"], latency))
    print("\n**Tacotron 2's training decoder against stepping the decoder**, training steps interleaved on the "
          f"same batches of 4 ({where})\n")
    print(table(["implementation", "steps/s", "mel frames/s", "time / training decoder's"],
                decoder_side_by_side(dataset, device, args.compare_steps)))
    for name, checkout, compare in (("NVIDIA/tacotron2", args.nvidia, nvidia_side_by_side),
                                    ("xcmyz/FastSpeech", args.xcmyz, xcmyz_side_by_side)):
        if checkout is None:
            print(f"\n({name}: skipped; give its checkout with --{name.split('/')[0].lower()})")
            continue
        print(f"\n**Side by side with {name}**, training steps interleaved on the same batches, {where}\n")
        print(table(["implementation", "steps/s", "mel frames/s", "time / ttskit's"],
                    compare(checkout, dataset, device, args.compare_steps)))


if __name__ == "__main__":
    main()
