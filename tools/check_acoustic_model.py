#!/usr/bin/env python3
"""Is an acoustic checkpoint's speech recognisable? Synthesise the WORK folder's validation
sentences free-running (predicted durations, pitch, energy), turn the mels into audio with
Griffin-Lim, and let pocketsphinx's offline English recogniser transcribe them. The same
recogniser on the original recordings, and on Griffin-Lim of the recorded mels, gives the
references: the gap to the latter is what the acoustic model loses.

    python tools/check_acoustic_model.py WORK CHECKPOINT [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import soundfile as sf
import torch

from ttskit.audio import MelSpectrogram, griffin_lim, save_wav
from ttskit.checkpoints.acoustic import model_from_state
from ttskit.checkpoints.store import load_checkpoint
from ttskit.config import config_from_dict
from ttskit.data.dataset import WorkDataset, collate
from ttskit.evaluation.intelligibility import Recognizer
from ttskit.work import read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, help="write the synthesised wavs here")
    args = parser.parse_args()
    state = load_checkpoint(args.checkpoint)
    dataset = WorkDataset(args.work, "val")
    model = model_from_state(state, args.checkpoint).eval()
    mel = MelSpectrogram(config_from_dict(type(MelSpectrogram().config), state["audio"]))
    recognizer = Recognizer()
    rows = read_jsonl(args.work / "val.jsonl")
    totals = {"recording": 0, "griffin-lim of the recorded mel": 0, "model (free-running) + griffin-lim": 0}
    reference_words = 0
    for index, row in enumerate(rows):
        recorded, rate = sf.read(str(args.work / row["wav"]), dtype="float32")
        item = dataset[index]
        with torch.no_grad():
            batch = collate([item])
            out = model(batch.phonemes, batch.phoneme_lengths, batch.speakers)
            synthetic = griffin_lim(out.mel_postnet[0, :int(out.frame_lengths[0])].T, mel).numpy()
            copy = griffin_lim(item["mel"].T, mel).numpy()
        if args.out:
            save_wav(args.out / f"{row['id']}.wav", synthetic, rate)
        for key, wave in zip(totals, (recorded, copy, synthetic)):
            errors, count = recognizer.word_errors(wave, rate, row["text"])
            totals[key] += errors
        reference_words += count
    print(f"{len(rows)} validation sentences, {reference_words} words; pocketsphinx word error rate:")
    for key, count in totals.items():
        print(f"  {key}: {100 * count / reference_words:.1f} %")


if __name__ == "__main__":
    main()
