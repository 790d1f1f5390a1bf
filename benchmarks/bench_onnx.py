"""torch against ONNX Runtime for the shipped voice, per stage and end to end, in one run; and
what `ttskit export --quantize` costs.

    python benchmarks/bench_onnx.py --sentences ../shared/corpus/sentences.txt --offset 10000 --count 60 \
        [--threads 2] [--repeats 3] [--wer]

The shipped voice is exported twice into a temporary folder (float32, and int8 acoustic weights)
by `ttskit.deploy.onnx_export.export_voice`, then every backend speaks the same held-out
sentences through `Synthesizer.tts_many` (the front end, length-sorted batches of 16 for the
acoustic model, then the vocoder per sentence: what `ttskit synth --text-file` does). Each figure
is the best of --repeats runs, taken in turns across the backends, with the same thread count for
torch and ONNX Runtime.

Agreement: the share of sentences whose frame count (the durations) equals torch's, and the mel's
SNR against torch's on the same batches. With --wer, pocketsphinx's word error rate on each
backend's audio against the sentences' text (the quality cost of int8 in the units users read).

With --hifigan PRESET (hifigan-v1, -v2, -v3), the same comparison with the shipped acoustic model
and a HiFi-GAN generator of that size in place of the shipped vocoder: random weights (its speed
does not depend on them; its audio is noise, so no WER), torch's CPU inference path
(`FastGenerator`) against the exported graph.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table


def read_sentences(path: Path, offset: int, count: int) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines[offset:offset + count] if line]


def speed(backends: dict, sentences: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """Each backend's best of `repeats` runs of `tts_many`, the runs taken in turns (torch, onnx,
    int8, torch, ...) so that a slow spell of a shared machine falls on every backend alike."""
    for synth in backends.values():
        synth.tts("Warm up, twice over.")
    best: dict[str, dict[str, float]] = {}
    for _ in range(repeats):
        for label, synth in backends.items():
            waves = synth.tts_many(sentences)
            t = synth.timing
            if label not in best or t.compute_s < best[label]["compute_s"]:
                best[label] = {"compute_s": t.compute_s, "text_s": t.text_s, "acoustic_s": t.acoustic_s,
                               "vocoder_s": t.vocoder_s,
                               "audio_s": sum(len(w) for w in waves if w is not None) / synth.sample_rate}
    return best


def acoustic_outputs(synth, sentences: list[str]) -> list[tuple[int, np.ndarray]]:
    """(frames, mel (M, frames)) per sentence, in batches of 16 as tts_many makes them."""
    found = synth.sentences(sentences)
    results = []
    for start in range(0, len(found), 16):
        batch = found[start:start + 16]
        lengths = np.array([len(s.ids) for s in batch])
        phonemes = np.zeros((len(batch), lengths.max()), np.int64)
        for row, s in enumerate(batch):
            phonemes[row, :len(s.ids)] = s.ids
        n = len(batch)
        out = synth.engine(phonemes, lengths, np.zeros(n, np.int64), np.ones(n, np.float32), np.zeros(n, np.float32),
                           np.ones(n, np.float32))
        results += [(f, out.mel[row, :, :f].numpy()) for row, f in enumerate(out.frames)]
    return results


def agreement(reference, other) -> tuple[float, float]:
    """(share of equal frame counts, mel SNR dB over the sentences whose counts agree)."""
    same = [(a, b) for (fa, a), (fb, b) in zip(reference, other) if fa == fb]
    signal = sum(float(np.sum((a + 11.5) ** 2)) for a, _ in same)  # against the silence floor, not 0
    error = sum(float(np.sum((a - b) ** 2)) for a, b in same)
    return len(same) / len(reference), 10 * math.log10(signal / max(error, 1e-30))


def word_error_rate(synth, sentences: list[str]) -> float:
    from ttskit.evaluation.intelligibility import Recognizer

    recognizer = Recognizer()
    errors = words = 0
    for sentence, wave in zip(sentences, synth.tts_many(sentences)):
        e, w = recognizer.word_errors(wave, synth.sample_rate, sentence)
        errors, words = errors + e, words + w
    return errors / max(words, 1)


def random_hifigan(preset: str, voice, folder: Path) -> Path:
    """A generator file of `preset`'s size with random weights, for the voice's mel settings."""
    import torch

    from ttskit.checkpoints.formats import VOCODER_GENERATOR_FORMAT
    from ttskit.checkpoints.store import load_checkpoint, save_checkpoint
    from ttskit.config import config_to_dict
    from ttskit.models.hifigan import PRESETS, Generator

    torch.manual_seed(0)
    audio = load_checkpoint(voice.acoustic)["audio"]
    generator = Generator(PRESETS[preset], n_mels=audio["n_mels"])
    path = folder / f"{preset}.pt"
    save_checkpoint(path, {"format": VOCODER_GENERATOR_FORMAT, "architecture": "hifigan",
                           "generator": generator.state_dict(), "model": config_to_dict(PRESETS[preset]),
                           "audio": audio, "step": 0})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=Path, required=True, help="one sentence per line (sentences.txt)")
    parser.add_argument("--offset", type=int, default=10000, help="first line (10000: the held-out lines)")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wer", action="store_true", help="also the recogniser's WER of each backend's audio")
    parser.add_argument("--hifigan", help="a HiFi-GAN preset (random weights) in place of the shipped vocoder")
    args = parser.parse_args()
    import onnxruntime
    import torch

    from ttskit.deploy.onnx_export import export_voice
    from ttskit.synthesis import Synthesizer
    from ttskit.synthesis.voices import find_voice

    torch.set_num_threads(args.threads)
    sentences = read_sentences(args.sentences, args.offset, args.count)
    print(f"{machine()}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} threads; "
          f"{len(sentences)} sentences (lines {args.offset + 1}-{args.offset + len(sentences)}), best of {args.repeats}")
    voice = find_voice(None, "torch")
    with tempfile.TemporaryDirectory() as folder:
        vocoder = random_hifigan(args.hifigan, voice, Path(folder)) if args.hifigan else voice.vocoder
        backends = {"torch": Synthesizer.from_checkpoints(voice.acoustic, vocoder, "cpu")}
        print("vocoder:", f"{args.hifigan} (random weights)" if args.hifigan else "the shipped voice's")
        for label, quantize in (("onnx", False), ("onnx int8", True)):
            out = Path(folder) / label.replace(" ", "-")
            export_voice(voice.acoustic, vocoder, out, voice=voice, quantize=quantize)
            backends[label] = Synthesizer.from_voice(out)
            sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(out.glob("*.onnx")))
            print(f"{label}: {sizes}")
        figures = speed(backends, sentences, args.repeats)
        reference = acoustic_outputs(backends["torch"], sentences)
        rows = []
        base = figures["torch"]
        for label, f in figures.items():
            same, snr = agreement(reference, acoustic_outputs(backends[label], sentences))
            row = [label, f"{f['audio_s'] / f['acoustic_s']:.0f}x", f"{f['audio_s'] / f['vocoder_s']:.0f}x",
                   f"{f['audio_s'] / f['compute_s']:.1f}x",
                   f"{base['acoustic_s'] / f['acoustic_s']:.2f} / {base['vocoder_s'] / f['vocoder_s']:.2f} / "
                   f"{base['compute_s'] / f['compute_s']:.2f}", f"{same:.0%}", "-" if label == "torch" else f"{snr:.1f}"]
            if args.wer:
                row.append(f"{word_error_rate(backends[label], sentences):.1%}")
            rows.append(row)
    headers = ["backend", "acoustic x RT", "vocoder x RT", "end to end x RT", "vs torch (acoustic / vocoder / e2e)",
               "same frames", "mel SNR dB"] + (["WER"] if args.wer else [])
    print(table(headers, rows))
    print(f"audio: {base['audio_s']:.1f} s; text front end {base['text_s']:.2f} s (the same code for every backend)")


if __name__ == "__main__":
    main()
