"""End-to-end text-to-speech speed on the CPU: ttskit's Synthesizer with the `small` acoustic model
+ HiFi-GAN V3 and V2, and `base` + V1, split into text, acoustic model and vocoder.

    python benchmarks/bench_synth.py [--threads 2] [--repeats 3]

Speed does not depend on what the weights learned, except through how many frames the duration
predictor asks for; so the models are freshly initialised and their duration predictor is set to
7 frames per phoneme (81 ms, LJSpeech's average). The text is three sentences, about 8-9 s of
speech. Not yet here: the side-by-side run of ming024/FastSpeech2 + jik876/hifi-gan inference.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

from ttskit.config import AudioConfig, TextConfig  # noqa: E402
from ttskit.models.fastspeech2 import PRESETS as ACOUSTIC  # noqa: E402
from ttskit.models.fastspeech2 import FastSpeech2  # noqa: E402
from ttskit.models.hifigan import PRESETS as VOCODERS  # noqa: E402
from ttskit.models.hifigan import Generator  # noqa: E402
from ttskit.models.vocoder import Vocoder, for_inference  # noqa: E402
from ttskit.synthesis.synthesizer import AcousticModel, Synthesizer  # noqa: E402
from ttskit.text.frontend import build_frontend  # noqa: E402

TEXT = ("The quick brown fox jumps over the lazy dog near the riverbank. "
        "Scientists announced on Tuesday that the new telescope had captured its first images. "
        "Would you like another cup of tea before we leave?")
FRAMES_PER_PHONEME = 7
STATS = {"feature_level": "phoneme",
         "pitch": {"per_speaker": {"speaker": {"mean": 200.0, "std": 40.0}}, "normalized_min": -4.0,
                   "normalized_max": 4.0},
         "energy": {"mean": 20.0, "std": 15.0, "normalized_min": -2.0, "normalized_max": 5.0}}


def synthesizer(acoustic: str, vocoder: str) -> Synthesizer:
    torch.manual_seed(0)
    audio = AudioConfig()
    frontend = build_frontend(TextConfig())
    vocab = frontend.build_vocab()
    model = FastSpeech2(ACOUSTIC[acoustic], len(vocab), audio.n_mels, 1, (-4.0, 4.0), (-2.0, 5.0)).eval()
    with torch.no_grad():
        model.duration_predictor.output.weight.zero_()
        model.duration_predictor.output.bias.fill_(math.log(1 + FRAMES_PER_PHONEME))
    device = torch.device("cpu")
    voice = Vocoder(for_inference(Generator(VOCODERS[vocoder]), device), audio, vocoder, device)
    return Synthesizer(AcousticModel(model, frontend, vocab, {"speaker": 0}, STATS, audio, acoustic), voice, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{machine()}, torch {torch.__version__}, {args.threads} threads")
    rows = []
    for acoustic, vocoder in (("small", "hifigan-v3"), ("small", "hifigan-v2"), ("base", "hifigan-v1")):
        synth = synthesizer(acoustic, vocoder)
        synth.tts(TEXT)  # warm-up: front-end dictionaries, numba, allocator
        best = None
        for _ in range(args.repeats):
            synth.tts(TEXT)
            if best is None or synth.timing.compute_s < best.compute_s:
                best = synth.timing
        rows.append([f"{acoustic} + {vocoder}", f"{best.audio_s:.1f} s", f"{best.text_s * 1000:.0f} ms",
                     f"{best.acoustic_s * 1000:.0f} ms", f"{best.vocoder_s * 1000:.0f} ms",
                     f"{best.real_time_factor:.3f}", f"{1 / best.real_time_factor:.1f}x"])
        print(rows[-1], flush=True)
    print(table(["models", "audio", "text", "acoustic", "vocoder", "RTF", "x real time"], rows))


if __name__ == "__main__":
    main()
