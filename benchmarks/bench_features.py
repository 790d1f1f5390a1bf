"""Feature extraction speed on one core: ttskit (mel + energy + YIN pitch) against the method
ming024/FastSpeech2 uses (pyworld dio + stonemask F0 at the hop, STFT mel and energy), and the
pitch trackers alone (ttskit YIN, librosa.yin, librosa.pyin, pyworld), in the same run.

pyworld is a baseline only (pip install pyworld "setuptools<81"); without it those rows are skipped.

    python benchmarks/bench_features.py CORPUS_DIR [--files 40]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import librosa
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, machine, table  # noqa: E402

from ttskit.audio import MelSpectrogram, load_audio  # noqa: E402
from ttskit.audio.pitch import extract_pitch  # noqa: E402
from ttskit.config import AudioConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, help="folder with wavs/ (LJSpeech layout)")
    parser.add_argument("--files", type=int, default=40)
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

        def ming024_method() -> None:
            for wave in waves:
                signal = wave.astype(np.float64)
                f0, times = pyworld.dio(signal, config.sample_rate, frame_period=frame_ms)
                pyworld.stonemask(signal, f0, times, config.sample_rate)
                with torch.inference_mode():
                    mel.mel_and_energy(torch.from_numpy(wave)[None])

        baseline = best_of(ming024_method, repeats=2)
        rows.append(["ming024 method: pyworld dio + stonemask, STFT mel + energy", f"{seconds / baseline:.0f}x",
                     f"{baseline / ours:.1f}"])
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
