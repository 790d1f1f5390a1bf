"""Length regulator speed on CPU: ttskit's numba index map + one gather, against the pure-torch
repeat_interleave reference and ming024/FastSpeech2's Python-loop LengthRegulator, in the same run.

ming024's code is loaded at run time from a checkout you name (never copied into ttskit):

    python benchmarks/bench_length_regulator.py [--fastspeech2 /path/to/FastSpeech2] [--threads 2]

Batch 16, 128 phonemes, 256 channels, durations 1..14 frames (LJSpeech averages ~8).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_of, table
from peers import checkout_module

from ttskit.models.length_regulator import regulate_length, regulate_length_reference


def load_ming024(checkout: Path):
    """Their model/__init__ imports the whole model (and its text deps): load modules.py alone."""
    module = checkout_module(checkout, "model/modules.py", "ming024_modules")  # it imports utils.tools from there
    return module.LengthRegulator()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fastspeech2", type=Path, help="a ming024/FastSpeech2 checkout (optional)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(16, 128, 256, generator=generator)
    durations = torch.randint(1, 15, (16, 128), generator=generator)
    max_len = int(durations.sum(1).max())
    regulate_length(hidden, durations, max_len)  # compile the numba kernel (cached on disk afterwards)

    ours = median_of(lambda: regulate_length(hidden, durations, max_len), args.repeats)
    rows = [["ttskit: numba index map + gather", f"{ours * 1e3:.2f}", "1.0"]]
    reference = median_of(lambda: regulate_length_reference(hidden, durations, max_len), args.repeats)
    rows.append(["torch repeat_interleave reference", f"{reference * 1e3:.2f}", f"{reference / ours:.1f}"])
    if args.fastspeech2:
        theirs_module = load_ming024(args.fastspeech2)
        out, _ = theirs_module(hidden, durations, max_len)
        assert torch.equal(out, regulate_length(hidden, durations, max_len)[0]), "outputs differ"
        theirs = median_of(lambda: theirs_module(hidden, durations, max_len), max(3, args.repeats // 4))
        rows.append(["ming024/FastSpeech2 LengthRegulator (Python loops)", f"{theirs * 1e3:.2f}",
                     f"{theirs / ours:.1f}"])
    else:
        print("(no --fastspeech2 checkout given: ming024's row skipped)\n")
    print(f"# Length regulator, CPU, {args.threads} threads, B=16, N=128, C=256, {max_len} frames\n")
    print(f"Machine: {machine()}\n")
    print(table(["implementation", "ms per batch (median)", "time / ttskit's"], rows))


if __name__ == "__main__":
    main()
