#!/usr/bin/env python3
"""How good is a vocoder at copy-synthesis? For the WORK folder's validation utterances, turn the
recorded mels back into audio with the vocoder and with Griffin-Lim, then measure the full-band
log-mel L1 against the recording (what train-vocoder validates on) and the word error rate of
pocketsphinx's offline English recogniser (recordings as the reference).

    python tools/check_vocoder.py WORK VOCODER [--out DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ttskit.audio import MelSpectrogram, griffin_lim, save_wav
from ttskit.checkpoints.vocoder import load_vocoder
from ttskit.evaluation.intelligibility import Recognizer
from ttskit.work import load_work_config, read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("vocoder", type=Path)
    parser.add_argument("--out", type=Path, help="write the vocoded wavs here")
    parser.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args()
    audio = load_work_config(args.work).audio
    vocoder = load_vocoder(args.vocoder, "cpu")
    vocoder.check_mel_config(audio, str(args.work))
    analysis = MelSpectrogram(audio)
    full_band = MelSpectrogram(dataclasses.replace(audio, fmax=None))
    recognizer = Recognizer()
    rows = read_jsonl(args.work / "val.jsonl")[:args.limit]
    kinds = ("recording", "griffin-lim", "vocoder")
    errors = dict.fromkeys(kinds, 0)
    l1 = dict.fromkeys(kinds, 0.0)
    words, seconds, compute = 0, 0.0, 0.0
    for row in rows:
        recorded, rate = sf.read(str(args.work / row["wav"]), dtype="float32")
        mel = torch.from_numpy(np.load(args.work / "mel" / f"{row['id']}.npy"))
        started = time.perf_counter()
        vocoded = vocoder(mel)[0].numpy()
        compute += time.perf_counter() - started
        seconds += len(vocoded) / rate
        waves = {"recording": recorded, "griffin-lim": griffin_lim(mel, analysis).numpy(), "vocoder": vocoded}
        target = full_band(torch.from_numpy(recorded))
        for kind, wave in waves.items():
            n = min(len(wave), len(recorded))
            l1[kind] += float((full_band(torch.from_numpy(wave[:n])) - target[..., :n // audio.hop_length]).abs().mean())
            count_errors, count = recognizer.word_errors(wave, rate, row["text"])
            errors[kind] += count_errors
        words += count
        if args.out:
            save_wav(args.out / f"{row['id']}.wav", vocoded, rate)
    print(f"{len(rows)} validation utterances, {words} words, {seconds:.1f} s; vocoder {vocoder.source}: "
          f"{seconds / compute:.1f}x real time on the CPU")
    print("| audio | full-band log-mel L1 vs the recording | word error rate |")
    print("|---|---|---|")
    for kind in kinds:
        print(f"| {kind} | {l1[kind] / len(rows):.3f} | {100 * errors[kind] / words:.1f} % |")


if __name__ == "__main__":
    main()
