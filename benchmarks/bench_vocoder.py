"""HiFi-GAN generator inference speed, x real time, for V1, V2 and V3: ttskit (FastGenerator, the
CPU path `ttskit vocode` and synthesis use) against jik876/hifi-gan's own Generator with the
same weights on the same mel, in the same run; also ttskit's plain Generator.

jik876's code is loaded at run time from a checkout you name (never copied into ttskit); without
one, only ttskit's two paths are timed:

    python benchmarks/bench_vocoder.py [--hifigan /path/to/hifi-gan] [--threads 2] [--seconds 10]

Both sides run with weight norm removed, in inference mode, batch 1, in float32 and again under
bfloat16 autocast (`--precision bf16` in ttskit; jik876 has no such option, so its model is run
under the same autocast for a like-for-like row). The mel is the analysis of real speech from
the embedded mini corpus, clips joined to `--seconds`. Runs of all contenders are interleaved
(A, B, C, A, B, C, ...) and each keeps its fastest, so a slow spell of the machine cannot
favour one of them. Output equality in float32 is reported as the largest absolute sample
difference; bf16 output as its signal-to-noise ratio against ttskit's float32 output.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import time

from common import best_of, machine, table
from peers import checkout_module, jik876_config

from ttskit.assets import MINI_LJSPEECH
from ttskit.audio import MelSpectrogram
from ttskit.checkpoints import jik876
from ttskit.models.hifigan import PRESETS, Generator
from ttskit.models.hifigan_inference import FastGenerator


def speech_mel(seconds: float) -> torch.Tensor:
    clips, total = [], 0
    for path in sorted((MINI_LJSPEECH / "wavs").glob("*.flac")):
        wave, rate = sf.read(path, dtype="float32")
        clips.append(wave)
        total += len(wave)
        if total >= seconds * rate:
            break
    return MelSpectrogram()(torch.from_numpy(np.concatenate(clips)[: int(seconds * rate)]))


def load_jik876_generator(checkout: Path, name: str, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """jik876's models.Generator built from its own config_vN.json, with `state` loaded."""
    models = checkout_module(checkout, "models.py", "jik876_models")  # it imports utils from the checkout
    generator = models.Generator(jik876_config(checkout, name))
    generator.load_state_dict(jik876.to_jik876_keys(state))
    generator.eval()
    with contextlib.redirect_stdout(sys.stderr):  # it prints "Removing weight norm..."; stdout is the result
        generator.remove_weight_norm()
    return generator


class InBf16:
    """A model called under bfloat16 autocast, its output back in float32 (as `--precision bf16`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        with torch.autocast(mel.device.type, dtype=torch.bfloat16):
            return self.model(mel).float()


def snr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).sum() / (other - reference).pow(2).sum()))


def interleaved_best(contenders: dict[str, Callable[[torch.Tensor], torch.Tensor]], mel: torch.Tensor, repeats: int) -> dict[str, float]:
    best = {key: float("inf") for key in contenders}
    for _ in range(repeats):
        for key, model in contenders.items():
            started = time.perf_counter()
            model(mel)
            best[key] = min(best[key], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hifigan", type=Path, help="a jik876/hifi-gan checkout (optional)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mel = speech_mel(args.seconds)
    seconds = mel.shape[-1] * 256 / 22050
    print(f"Machine: {machine()}, torch {torch.__version__}, {args.threads} threads; {seconds:.1f} s of speech\n")
    rows, bf16_rows = [], []
    for name, config in PRESETS.items():
        torch.manual_seed(0)
        trained = Generator(config).eval()
        state = {k: v.clone() for k, v in trained.state_dict().items()}
        fast = FastGenerator(trained)
        plain = Generator(config).eval()
        plain.load_state_dict(state)
        plain.remove_weight_norm()
        contenders: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"fast": fast, "plain": plain}
        if args.hifigan:
            contenders["jik876"] = load_jik876_generator(args.hifigan, name, state)
        contenders.update({f"{key} bf16": InBf16(model) for key, model in list(contenders.items())})  # type: ignore[arg-type]
        with torch.inference_mode():
            outputs = {key: model(mel) for key, model in contenders.items()}  # also the warm-up
            best = interleaved_best(contenders, mel, args.repeats)
        row = [name, f"{seconds / best['fast']:.1f}x", f"{seconds / best['plain']:.1f}x"]
        bf16_row = [name, f"{seconds / best['fast bf16']:.1f}x", f"{snr_db(outputs['fast'], outputs['fast bf16']):.1f} dB"]
        if args.hifigan:
            difference = (outputs["fast"] - outputs["jik876"]).abs().max().item()
            row += [f"{seconds / best['jik876']:.1f}x", f"{best['jik876'] / best['fast']:.2f}", f"{difference:.1e}"]
            bf16_row += [f"{seconds / best['jik876 bf16']:.1f}x",
                         f"{snr_db(outputs['fast'], outputs['jik876 bf16']):.1f} dB",
                         f"{best['jik876 bf16'] / best['fast bf16']:.2f}", f"{best['jik876'] / best['fast bf16']:.2f}"]
        else:
            row += ["-", "-", "-"]
            bf16_row += ["-", "-", "-", "-"]
        rows.append(row)
        bf16_rows.append(bf16_row)
        print(row, bf16_row, file=sys.stderr, flush=True)
    print(table(["model", "ttskit FastGenerator", "ttskit Generator", "jik876 Generator",
                 "speed-up vs jik876", "max abs difference vs jik876"], rows))
    print()
    print(table(["model, bf16 autocast", "ttskit FastGenerator", "SNR vs fp32", "jik876 Generator", "its SNR vs fp32",
                 "speed-up vs jik876 bf16", "vs jik876 fp32"], bf16_rows))
    if torch.cuda.is_available():
        cuda_rows = []
        for name, config in PRESETS.items():
            generator = Generator(config).eval().remove_weight_norm().cuda()
            gpu_mel = mel.cuda()
            with torch.inference_mode():
                generator(gpu_mel)

                def run(generator: torch.nn.Module = generator, gpu_mel: torch.Tensor = gpu_mel) -> None:
                    generator(gpu_mel)
                    torch.cuda.synchronize()

                fp32 = best_of(run, 10)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    generator(gpu_mel)
                    bf16 = best_of(run, 10)
                cuda_rows.append([name, f"{seconds / fp32:.0f}x", f"{seconds / bf16:.0f}x"])
        print(table(["model (CUDA, batch 1)", "x real time, fp32", "x real time, bf16 autocast"], cuda_rows))


if __name__ == "__main__":
    main()
