"""End-to-end text-to-speech speed on the CPU: ttskit's Synthesizer with the `small` acoustic model
+ HiFi-GAN V3 and V2, and `base` + V1, split into text, acoustic model and vocoder.

    python benchmarks/bench_synth.py [--threads 2] [--repeats 3]

Speed does not depend on what the weights learned, except through how many frames the duration
predictor asks for; so the models are freshly initialised and their duration predictor is set to
7 frames per phoneme (81 ms, LJSpeech's average). The text is three sentences, about 8-9 s of
speech.

With --fastspeech2 CHECKOUT --hifigan CHECKOUT, ming024/FastSpeech2 (its LJSpeech model config,
the size of ttskit's `base`) + jik876/hifi-gan V1 synthesise the same sentences side by side,
sentence by sentence as their synthesize.py does for one text, with the same phoneme counts and
the same 7 frames per phoneme; their code is loaded at run time from the checkouts (never copied
into ttskit; ming024's text package needs `pip install unidecode inflect`). Their text front end
is not timed (ttskit's is), which favours the baseline slightly.

`base` + V1 runs a second time with the vocoder in bfloat16 (`--precision bf16`), and so does
the side-by-side, jik876's generator under the same autocast (it has no such option).

On a machine with CUDA it adds the GPU figures: latency of one ~8 s sentence at batch 1
(`Synthesizer.tts`, the audio back on the CPU) and throughput of 64 such sentences in batches.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table
from peers import ming024_fastspeech2

from ttskit.checkpoints.acoustic import AcousticModel
from ttskit.config import AudioConfig, TextConfig
from ttskit.models.fastspeech2 import PRESETS as ACOUSTIC
from ttskit.models.fastspeech2 import FastSpeech2
from ttskit.models.hifigan import PRESETS as VOCODERS
from ttskit.models.hifigan import Generator
from ttskit.models.hifigan_inference import for_inference
from ttskit.models.vocoder import NeuralVocoder
from ttskit.synthesis.synthesizer import Synthesizer
from ttskit.text.frontend import build_frontend

TEXT = ("The quick brown fox jumps over the lazy dog near the riverbank. "
        "Scientists announced on Tuesday that the new telescope had captured its first images. "
        "Would you like another cup of tea before we leave?")
FRAMES_PER_PHONEME = 7
STATS = {"feature_level": "phoneme",
         "pitch": {"per_speaker": {"speaker": {"mean": 200.0, "std": 40.0}}, "normalized_min": -4.0,
                   "normalized_max": 4.0},
         "energy": {"mean": 20.0, "std": 15.0, "normalized_min": -2.0, "normalized_max": 5.0}}


def synthesizer(acoustic: str, vocoder: str, device: torch.device = torch.device("cpu"),
                precision: str = "fp32") -> Synthesizer:
    torch.manual_seed(0)
    audio = AudioConfig()
    frontend = build_frontend(TextConfig())
    vocab = frontend.build_vocab()
    model = FastSpeech2(ACOUSTIC[acoustic], len(vocab), audio.n_mels, 1, (-4.0, 4.0), (-2.0, 5.0)).eval()
    with torch.no_grad():
        model.duration_predictor.output.weight.zero_()
        model.duration_predictor.output.bias.fill_(math.log(1 + FRAMES_PER_PHONEME))
    voice = NeuralVocoder(for_inference(Generator(VOCODERS[vocoder]), device), audio, vocoder, device,
                    precision)  # type: ignore[arg-type]
    return Synthesizer(AcousticModel(model.to(device), frontend, vocab, {"speaker": 0}, STATS, audio, acoustic), voice,
                       device)


# One sentence of ~8 s at 7 frames per phoneme: the GPU latency goal's length.
LONG_SENTENCE = ("When the committee published its report on the harbour, the town learned that the repairs "
                 "would take three more years and cost twice as much as promised.")


def cuda_rows(repeats: int) -> list[list[str]]:
    """Latency of one ~8 s sentence at batch 1, and throughput of 64 sentences in batches, on CUDA."""
    import statistics

    rows = []
    device = torch.device("cuda")
    for acoustic, vocoder, precision in (("base", "hifigan-v1", "fp32"), ("base", "hifigan-v1", "bf16"),
                                         ("small", "hifigan-v3", "fp32"), ("small", "hifigan-v3", "bf16")):
        synth = synthesizer(acoustic, vocoder, device, precision)
        for _ in range(3):
            synth.tts(LONG_SENTENCE)  # warm-up (the result comes back to the CPU: synchronised)
        latencies = []
        for _ in range(max(repeats, 10)):
            started = time.perf_counter()
            synth.tts(LONG_SENTENCE)
            latencies.append(time.perf_counter() - started)
        speech_s = synth.timing.audio_s
        started = time.perf_counter()
        synth.tts_many([LONG_SENTENCE] * 64)
        batch_s = time.perf_counter() - started
        rows.append([f"{acoustic} + {vocoder}, vocoder {precision}", f"{speech_s:.1f} s", f"{1000 * statistics.median(latencies):.1f} ms",
                     f"{speech_s / statistics.median(latencies):.0f}x", f"{64 * speech_s / batch_s:.0f}x"])
    return rows


def ming024_and_jik876(fastspeech2: Path, hifigan: Path, phoneme_counts: list[int], repeats: int,
                       precision: str = "fp32") -> tuple[float, float]:
    """(acoustic seconds, vocoder seconds) of the peers' inference for sentences of these lengths;
    precision "bf16" runs jik876's generator under bfloat16 autocast, as ttskit's bf16 vocoder."""
    from bench_vocoder import load_jik876_generator

    from ttskit.runtime import autocast

    acoustic = ming024_fastspeech2(fastspeech2, [-2.9, 11.4, 207.6, 46.5], [-1.4, 8.4, 42.7, 29.6])[0].eval()
    with torch.no_grad():
        acoustic.variance_adaptor.duration_predictor.linear_layer.weight.zero_()
        acoustic.variance_adaptor.duration_predictor.linear_layer.bias.fill_(math.log(1 + FRAMES_PER_PHONEME))
    torch.manual_seed(0)
    # Both checkouts have a top-level `utils`: give jik876's its own while its models.py loads.
    theirs_utils = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] == "utils"}
    try:
        vocoder = load_jik876_generator(hifigan, "hifigan-v1", Generator(VOCODERS["hifigan-v1"]).state_dict())
    finally:
        sys.modules.update(theirs_utils)
    best = (math.inf, math.inf)
    for _ in range(repeats + 1):  # the first is the warm-up
        acoustic_s = vocoder_s = 0.0
        for count in phoneme_counts:
            texts = torch.randint(1, 70, (1, count))
            with torch.no_grad():
                started = time.perf_counter()
                mel = acoustic(torch.zeros(1, dtype=torch.long), texts, torch.tensor([count]), count)[1]
                middle = time.perf_counter()
                with autocast(torch.device("cpu"), torch.bfloat16 if precision == "bf16" else None):
                    vocoder(mel.transpose(1, 2))
                acoustic_s += middle - started
                vocoder_s += time.perf_counter() - middle
        if acoustic_s + vocoder_s < sum(best):
            best = (acoustic_s, vocoder_s)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fastspeech2", type=Path, help="a ming024/FastSpeech2 checkout (optional)")
    parser.add_argument("--hifigan", type=Path, help="a jik876/hifi-gan checkout (optional, with --fastspeech2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"Machine: {machine()}, torch {torch.__version__}, {args.threads} threads\n")
    rows = []
    for acoustic, vocoder, precision in (("small", "hifigan-v3", "fp32"), ("small", "hifigan-v2", "fp32"),
                                         ("base", "hifigan-v1", "fp32"), ("small", "hifigan-v3", "bf16"),
                                         ("base", "hifigan-v1", "bf16")):
        synth = synthesizer(acoustic, vocoder, precision=precision)
        synth.tts(TEXT)  # warm-up: front-end dictionaries, numba, allocator
        best = None
        for _ in range(args.repeats):
            synth.tts(TEXT)
            if best is None or synth.timing.compute_s < best.compute_s:
                best = synth.timing
        label = f"{acoustic} + {vocoder}" + (", vocoder bf16" if precision == "bf16" else "")
        rows.append([label, f"{best.audio_s:.1f} s", f"{best.text_s * 1000:.0f} ms",
                     f"{best.acoustic_s * 1000:.0f} ms", f"{best.vocoder_s * 1000:.0f} ms",
                     f"{best.real_time_factor:.3f}", f"{1 / best.real_time_factor:.1f}x"])
        print(rows[-1], file=sys.stderr, flush=True)
        if acoustic == "base" and args.fastspeech2 and args.hifigan:
            counts = [len(s.ids) for s in synth.sentences([TEXT])]
            theirs_acoustic, theirs_vocoder = ming024_and_jik876(args.fastspeech2, args.hifigan, counts, args.repeats,
                                                                 precision)
            speech_s = best.audio_s  # the same frames per phoneme: the same audio, pauses aside
            theirs = theirs_acoustic + theirs_vocoder
            ours = best.acoustic_s + best.vocoder_s + best.text_s
            rows.append([f"ming024 FastSpeech2 + jik876 V1{' in bf16 autocast' if precision == 'bf16' else ''}", "",
                         "not timed", f"{theirs_acoustic * 1000:.0f} ms", f"{theirs_vocoder * 1000:.0f} ms",
                         f"{theirs / speech_s:.3f}", f"{speech_s / theirs:.1f}x (ttskit {theirs / ours:.2f}x faster)"])
            print(rows[-1], file=sys.stderr, flush=True)
    print(table(["models", "audio", "text", "acoustic", "vocoder", "RTF", "x real time"], rows))
    if torch.cuda.is_available():
        print(f"\nCUDA ({torch.cuda.get_device_name(0)}), acoustic model in float32, `Synthesizer.tts` of one "
              "sentence (latency, median) and `tts_many` of 64 (throughput):\n")
        print(table(["models", "speech", "latency, batch 1", "x real time, batch 1", "x real time, 64 in batches"],
                    cuda_rows(args.repeats)))


if __name__ == "__main__":
    main()
