"""The seed vocoders side by side (issue 20): inference speed of MelGAN, multi-band MelGAN and
WaveGlow, batch 1, 10 s of speech, against the reference implementations with the same weights on
the same mel; and the training step of every `train-vocoder --model` on the same batches.

    python benchmarks/bench_seed_vocoders.py [WORK] [--threads 2] [--seconds 10] [--skip-waveglow]
        [--melgan-neurips CHECKOUT] [--parallel-wavegan CHECKOUT] [--waveglow CHECKOUT]

Inference: ttskit's path is what `load_vocoder` returns on this device (on a CPU, `FastMelGAN`
for the MelGANs), fed ttskit's natural-log mel; the reference gets the same weights (renamed to
its layout) and the mel in its convention (log10, its normalisation folded out), with weight norm
removed as its own inference does. Runs alternate (ttskit, reference, ...) and each keeps its
fastest. The outputs' largest difference is printed. On a CPU with bfloat16 arithmetic (AVX-512
BF16 / AMX) each MelGAN also runs as `--precision bf16` does: its time over float32's, and its
signal-to-noise ratio against the float32 output. WaveGlow's reference draws its noise in a
`torch.cuda.FloatTensor`, so it runs only where CUDA does; on a CPU ttskit's figure stands alone.

Training (with WORK): one step of each family's own trainer (`train/*.py`, the step `train-vocoder`
runs) on the same 4 segments of 8,192 samples, best of 3 after a warm-up; multi-band MelGAN both in
its STFT warm-up and adversarial.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vocoder import speech_mel
from common import machine, table

from ttskit.checkpoints.jik876 import to_jik876_keys
from ttskit.checkpoints.melgan_checkpoints import reference_names
from ttskit.models.melgan import PRESETS as MELGAN
from ttskit.models.melgan import MelGANGenerator
from ttskit.models.melgan_inference import FastMelGAN
from ttskit.models.waveglow import PRESETS as WAVEGLOW
from ttskit.models.waveglow import WaveGlow, WaveGlowSynthesis
from ttskit.runtime import default_device, native_bfloat16

LN10 = math.log(10)


def best(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def race(ours, theirs, repeats: int) -> tuple[float, float, float]:
    """(our best s, their best s, largest output difference), runs alternating."""
    with torch.inference_mode():
        a, b = ours(), theirs()
        difference = float((a.reshape(-1)[:b.numel()] - b.reshape(-1)[:a.numel()]).abs().max())
        our_times, their_times = [], []
        for _ in range(repeats):
            our_times.append(best(ours, 1))
            their_times.append(best(theirs, 1))
    return min(our_times), min(their_times), difference


def melgan_rows(args: argparse.Namespace, mel: torch.Tensor, device: torch.device) -> list[list[str]]:
    rows = []
    seconds = mel.shape[-1] * 256 / 22050
    for name in ("melgan", "mb-melgan"):
        torch.manual_seed(0)
        generator = MelGANGenerator(MELGAN[name]).eval()
        plain = MelGANGenerator(MELGAN[name]).eval()
        plain.load_state_dict(generator.state_dict())
        plain.remove_weight_norm()
        ours_module = FastMelGAN(generator) if device.type == "cpu" else plain.to(device)
        with torch.inference_mode():
            ours_module(mel)  # warm-up
            ours_s = min(best(lambda m=ours_module: m(mel), 1) for _ in range(args.repeats))
        rows.append([f"ttskit {name}", f"{seconds / ours_s:.1f}x", "1.00", "-"])
        rough = None
        if device.type == "cpu" and native_bfloat16(device):
            rough = FastMelGAN(generator, torch.bfloat16)
            rows.append(bfloat16_row(name, rough, ours_module, mel, ours_s, args.repeats))
        peers = []
        if args.melgan_neurips and name == "melgan":
            sys.path.insert(0, str(args.melgan_neurips))
            from mel2wav.modules import Generator  # the checkout's

            theirs = Generator(80, 32, 3)
            theirs.load_state_dict(reference_names(generator, "descript"))
            for module in theirs.modules():
                if hasattr(module, "weight_g"):
                    torch.nn.utils.remove_weight_norm(module)
            peers.append(("descript melgan-neurips", theirs.eval().to(device)))
        if args.parallel_wavegan:
            import scipy.signal

            if not hasattr(scipy.signal, "kaiser"):  # its PQMF imports the name SciPy 1.13 removed
                scipy.signal.kaiser = scipy.signal.windows.kaiser
            sys.path.insert(0, str(args.parallel_wavegan))
            from parallel_wavegan.layers import PQMF
            from parallel_wavegan.models import MelGANGenerator as Theirs

            c = MELGAN[name]
            theirs = Theirs(in_channels=80, out_channels=c.subbands, channels=c.channels,
                            upsample_scales=list(c.upsample_rates), stacks=c.stacks)
            theirs.load_state_dict(reference_names(generator, "kan-bayashi"))
            theirs.remove_weight_norm()
            theirs = theirs.eval().to(device)
            pqmf = PQMF(c.subbands).to(device) if c.subbands > 1 else None
            peers.append(("kan-bayashi ParallelWaveGAN",
                          (lambda m, t=theirs, p=pqmf: p.synthesis(t(m)) if p is not None else t(m))))
        for label, theirs in peers:
            ours_t, their_t, difference = race(lambda m=ours_module: m(mel), lambda t=theirs: t(mel), args.repeats)
            rows.append([f"{label} {name}", f"{seconds / their_t:.1f}x", f"{their_t / ours_t:.2f}",
                         f"{difference:.1e}"])
        for label, theirs in peers if rough is not None else []:  # like for like: theirs in bfloat16 autocast
            ours_t, their_t, difference = race(lambda r=rough: r(mel), lambda t=theirs: _autocast_bf16(t, mel),
                                               args.repeats)
            rows.append([f"{label} {name}, bf16 autocast", f"{seconds / their_t:.1f}x",
                         f"{their_t / ours_t:.2f} (of ttskit bf16's)", f"{difference:.1e}"])
    return rows


def _autocast_bf16(module, mel: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return module(mel).float()


def bfloat16_row(name: str, rough: FastMelGAN, exact: FastMelGAN, mel: torch.Tensor, exact_s: float,
                 repeats: int) -> list[str]:
    """`--precision bf16` on a CPU with bfloat16 arithmetic: the fast path in bfloat16 throughout;
    its time against float32's, and its distance from it as a signal-to-noise ratio."""
    with torch.inference_mode():
        reference, approximate = exact(mel), rough(mel)
        rough_s = min(best(lambda: rough(mel), 1) for _ in range(repeats))
    snr = 10 * math.log10(float(reference.pow(2).sum() / (approximate - reference).pow(2).sum()))
    seconds = mel.shape[-1] * 256 / 22050
    return [f"ttskit {name}, bf16", f"{seconds / rough_s:.1f}x", f"{rough_s / exact_s:.2f}", f"SNR {snr:.1f} dB"]


def waveglow_rows(args: argparse.Namespace, mel: torch.Tensor, device: torch.device) -> list[list[str]]:
    seconds = mel.shape[-1] * 256 / 22050
    rows = []
    for name in ("waveglow", "waveglow-512"):
        torch.manual_seed(0)
        model = WaveGlow(WAVEGLOW[name])
        state = to_jik876_keys(model.state_dict())  # for the reference, weight norm as its names say
        model = model.remove_weight_norm().eval().to(device)
        synthesis = WaveGlowSynthesis(model)
        with torch.inference_mode():
            synthesis(mel)
            ours_s = min(best(lambda m=synthesis: m(mel), 1) for _ in range(max(1, args.repeats // 2)))
        rows.append([f"ttskit {name} (sigma 0.6)", f"{seconds / ours_s:.2f}x", "1.00", "-"])
        if args.waveglow and device.type == "cuda":
            sys.path.insert(0, str(args.waveglow))
            import glow  # the checkout's

            c = WAVEGLOW[name]
            theirs = glow.WaveGlow(80, c.flows, c.group, c.early_every, c.early_size,
                                   {"n_layers": c.layers, "n_channels": c.channels, "kernel_size": c.kernel})
            theirs.load_state_dict(state)
            theirs = glow.WaveGlow.remove_weightnorm(theirs).eval().to(device)
            ours_t, their_t, _ = race(lambda m=synthesis: m(mel), lambda t=theirs: t.infer(mel, sigma=0.6), args.repeats)
            rows.append([f"NVIDIA/waveglow {name}", f"{seconds / their_t:.2f}x", f"{their_t / ours_t:.2f}", "(noise)"])
    return rows


def training_rows(work: Path, device: torch.device) -> list[list[str]]:
    import tempfile

    from ttskit.skeleton.distributed import Rank
    from ttskit.skeleton.loop import RunPrecision
    from ttskit.train.harmonic_noise import HarmonicNoiseTrainer
    from ttskit.train.melgan import MelGANTrainer
    from ttskit.train.vocoder import VocoderTrainer, prepare_vocoder_run
    from ttskit.train.waveglow import WaveGlowTrainer

    trainers = {"hifigan-v1": VocoderTrainer, "hifigan-v3": VocoderTrainer, "harmonic-noise": HarmonicNoiseTrainer,
                "melgan": MelGANTrainer, "mb-melgan": MelGANTrainer, "waveglow": WaveGlowTrainer}
    rows = []
    for name, kind in trainers.items():
        for phase in (("warm-up", "adversarial") if name == "mb-melgan" else ("",)):
            start = 10_000 if phase == "warm-up" else 0
            overrides = ["train.batch_size=4", "train.segment_samples=8192", "train.num_workers=0"]
            if name in ("mb-melgan", "melgan", "hifigan-v1", "hifigan-v3"):
                overrides.append(f"train.discriminator_start_step={start}")
            with tempfile.TemporaryDirectory() as folder:
                job = prepare_vocoder_run(work, Path(folder) / "run", model=name, overrides=overrides, max_steps=10)
                trainer = kind(job)
                precision = RunPrecision(torch.bfloat16 if device.type == "cuda" else None,
                                         torch.amp.GradScaler(device.type, enabled=False))
                trainer.build(Rank(0, 1, 0, device), precision)
                batch = next(iter(torch.utils.data.DataLoader(trainer.train_set, batch_sampler=trainer.sampler,
                                                              collate_fn=trainer.collate)))

                def step(trainer=trainer, batch=batch) -> None:
                    trainer.step(batch, 0)
                    trainer.apply()
                    if device.type == "cuda":
                        torch.cuda.synchronize()

                step()
                seconds = min(best(step, 1) for _ in range(3))
            audio = 4 * 8192 / job.audio.sample_rate
            label = f"{name}{f' ({phase})' if phase else ''}"
            rows.append([label, f"{seconds:.2f} s", f"{audio / seconds:.2f}"])
            print(f"  trained {label}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, nargs="?", help="a WORK folder, for the training rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--melgan-neurips", type=Path, help="a descriptinc/melgan-neurips checkout")
    parser.add_argument("--parallel-wavegan", type=Path, help="a kan-bayashi/ParallelWaveGAN checkout")
    parser.add_argument("--waveglow", type=Path, help="an NVIDIA/waveglow checkout (compared on CUDA only)")
    parser.add_argument("--skip-waveglow", action="store_true", help="leave WaveGlow out (minutes on a CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = default_device()
    mel = speech_mel(args.seconds).reshape(1, 80, -1).to(device)
    where = "CUDA" if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"# The seed vocoders ({where})\n\nMachine: {machine()}\n")
    print(f"**Inference**, batch 1, {args.seconds:.0f} s of speech (the embedded corpus), float32 (bfloat16 "
          f"where a row says bf16), best of {args.repeats}, runs alternating\n")
    print(table(["vocoder", "x real time", "time / ttskit's", "max |difference|"],
                melgan_rows(args, mel, device) + ([] if args.skip_waveglow else waveglow_rows(args, mel, device))))
    if args.work is not None:
        print(f"\n**Training step**, 4 segments of 8,192 samples, {where}, best of 3\n")
        print(table(["model", "step", "s of audio / s"], training_rows(args.work, device)))


if __name__ == "__main__":
    main()
