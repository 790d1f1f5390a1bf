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
import re
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch

from ttskit.audio import MelSpectrogram, griffin_lim, save_wav
from ttskit.config import config_from_dict
from ttskit.data.dataset import WorkDataset, collate
from ttskit.data.work import read_jsonl
from ttskit.text.distance import edit_distance
from ttskit.text.normalize import normalize_english
from ttskit.train.acoustic import build_model
from ttskit.train.acoustic_config import AcousticRunConfig
from ttskit.train.checkpoint import load_checkpoint


def recognise(decoder, wave: np.ndarray, rate: int) -> str:
    audio = librosa.resample(wave, orig_sr=rate, target_sr=16000)
    decoder.start_utt()
    decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    return decoder.hyp().hypstr if decoder.hyp() else ""


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]+", " ", normalize_english(text).lower().replace("-", " ")).split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, help="write the synthesised wavs here")
    args = parser.parse_args()
    from pocketsphinx import Decoder

    state = load_checkpoint(args.checkpoint)
    run_config = config_from_dict(AcousticRunConfig, state["run_config"])
    dataset = WorkDataset(args.work, "val")
    model = build_model(run_config, len(dataset.vocab), state["audio"]["n_mels"], len(dataset.speakers), state["stats"])
    model.load_state_dict(state["model"])
    model.eval()
    mel = MelSpectrogram(config_from_dict(type(MelSpectrogram().config), state["audio"]))
    decoder = Decoder(loglevel="FATAL")
    rows = read_jsonl(args.work / "val.jsonl")
    totals = {"recording": 0, "griffin-lim of the recorded mel": 0, "model (free-running) + griffin-lim": 0}
    reference_words = 0
    for index, row in enumerate(rows):
        truth = words(row["text"])
        reference_words += len(truth)
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
            totals[key] += edit_distance(truth, recognise(decoder, wave, rate).split())
    print(f"{len(rows)} validation sentences, {reference_words} words; pocketsphinx word error rate:")
    for key, count in totals.items():
        print(f"  {key}: {100 * count / reference_words:.1f} %")


if __name__ == "__main__":
    main()
