"""Feature extraction speed on one core: ttskit (mel + energy + YIN pitch) against the method
ming024/FastSpeech2 uses (pyworld dio + stonemask F0 at the hop, STFT mel and energy), and the
pitch trackers alone (ttskit YIN, librosa.yin, librosa.pyin, pyworld), in the same run.

pyworld is a baseline only (pip install pyworld "setuptools<81"); without it those rows are skipped.
With --fastspeech2 CHECKOUT the baseline's mel and energy come from ming024's own TacotronSTFT
(loaded at run time from the checkout; its positional calls of librosa.filters.mel and
librosa.util.pad_center are adapted to today's keyword-only librosa, nothing else); without it, from ttskit's mel.

    python benchmarks/bench_features.py CORPUS_DIR [--files 40] [--fastspeech2 /path/to/FastSpeech2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import librosa
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, machine, table
from peers import checkout_module

from ttskit.audio import MelSpectrogram, load_audio
from ttskit.audio.pitch import extract_pitch
from ttskit.config import AudioConfig


def load_ming024_mel(checkout: Path, config: AudioConfig):
    """ming024's get_mel_from_wav with its TacotronSTFT, from a checkout (never copied into ttskit)."""
    stft = checkout_module(checkout, "audio/stft.py", "audio.stft", register=True)
    stft.librosa_mel_fn = lambda sr, n_fft, n_mels, fmin, fmax: librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    stft.pad_center = lambda data, size: librosa.util.pad_center(data, size=size)
    tools = checkout_module(checkout, "audio/tools.py", "audio.tools", register=True)
    module = stft.TacotronSTFT(config.n_fft, config.hop_length, config.win_length, config.n_mels,
                               config.sample_rate, config.fmin, config.fmax_hz)
    return lambda wave: tools.get_mel_from_wav(np.clip(wave, -1, 1), module)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, help="folder with wavs/ (LJSpeech layout)")
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--fastspeech2", type=Path, help="a ming024/FastSpeech2 checkout (optional)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = AudioConfig()
    files = sorted((args.corpus / "wavs").glob("*.*"))[:args.files]
    waves = [load_audio(f, config.sample_rate) for f in files]
    seconds = sum(len(w) for w in waves) / config.sample_rate
    mel = MelSpectrogram(config)

    def ttskit_features() -> None:
        for wave in waves:
            with torch.inference_mode():
                mel.mel_and_energy(torch.from_numpy(wave)[None])
            extract_pitch(wave, config)

    rows = []
    ours = best_of(ttskit_features)
    rows.append(["ttskit: mel + energy + YIN pitch", f"{seconds / ours:.0f}x", "1.00"])
    try:
        import pyworld
    except ImportError:
        pyworld = None
    if pyworld is not None:
        frame_ms = 1000 * config.hop_length / config.sample_rate
        their_mel = load_ming024_mel(args.fastspeech2, config) if args.fastspeech2 else None
        if their_mel is not None:
            try:
                their_mel(waves[0])
            except (AssertionError, RuntimeError) as err:  # their STFT calls .cuda() unconditionally
                print(f"(ming024's TacotronSTFT cannot run here: {err}; ttskit's STFT stands in for it)\n")
                their_mel = None

        def ming024_method() -> None:
            for wave in waves:
                signal = wave.astype(np.float64)
                f0, times = pyworld.dio(signal, config.sample_rate, frame_period=frame_ms)
                pyworld.stonemask(signal, f0, times, config.sample_rate)
                if their_mel is not None:
                    their_mel(wave)
                else:
                    with torch.inference_mode():
                        mel.mel_and_energy(torch.from_numpy(wave)[None])

        baseline = best_of(ming024_method, repeats=2)
        source = "their TacotronSTFT" if their_mel else "ttskit's STFT"
        rows.append([f"ming024 method: pyworld dio + stonemask, mel + energy from {source}",
                     f"{seconds / baseline:.0f}x", f"{baseline / ours:.1f}"])
    pitch_rows = []
    yin_time = best_of(lambda: [extract_pitch(w, config) for w in waves])
    pitch_rows.append(["ttskit YIN (+ voicing, cleanup, interpolation)", f"{seconds / yin_time:.0f}x", "1.00"])
    lib_yin = best_of(lambda: [librosa.yin(w, fmin=60, fmax=800, sr=config.sample_rate,
                                            hop_length=config.hop_length) for w in waves])
    pitch_rows.append(["librosa.yin (no voicing decision)", f"{seconds / lib_yin:.0f}x", f"{lib_yin / yin_time:.2f}"])
    few = waves[:3]
    few_seconds = sum(len(w) for w in few) / config.sample_rate
    pyin_time = best_of(lambda: [extract_pitch(w, config, method="pyin") for w in few], repeats=1)
    pitch_rows.append(["ttskit --pitch pyin (librosa.pyin)", f"{few_seconds / pyin_time:.1f}x",
                       f"{pyin_time / few_seconds / (yin_time / seconds):.0f}"])
    if pyworld is not None:
        frame_ms = 1000 * config.hop_length / config.sample_rate
        dio_time = best_of(lambda: [pyworld.stonemask(w.astype(np.float64), *pyworld.dio(
            w.astype(np.float64), config.sample_rate, frame_period=frame_ms), config.sample_rate) for w in waves], 2)
        pitch_rows.append(["pyworld dio + stonemask", f"{seconds / dio_time:.0f}x", f"{dio_time / yin_time:.1f}"])
    print(f"# Feature extraction, one core ({len(files)} files, {seconds:.0f} s of audio)\n")
    print(f"Machine: {machine()}\n")
    print(table(["features", "x real time", "time / ttskit's"], rows))
    print()
    print(table(["pitch tracker", "x real time", "time / ttskit YIN"], pitch_rows))


if __name__ == "__main__":
    main()
