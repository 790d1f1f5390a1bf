"""Monotonic alignment search speed on the CPU: ttskit's numba kernel against the pure-Python
reference and, given a checkout, glow-tts's Cython `maximum_path_c` (the implementation VITS,
Grad-TTS and others copy), on B=16, T = 128/256/512 symbols, S = 4T frames; and MAS's share of
one learned-aligner training step (forward-sum + binarization loss, B=16, T=128, S=512).

    python benchmarks/bench_mas.py [--glow-tts /path/to/glow-tts] [--threads 2]

glow-tts's `monotonic_align/core.pyx` is compiled at run time into a temporary folder (needs
`pip install cython` and a C compiler), twice: as its own setup.py builds it (no OpenMP flag, so
its prange runs serially) and with -fopenmp (its batch in parallel, as ttskit's). Its buffers
(a copy of the values it overwrites, the int32 path) are made outside the timing, which favours it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import torch
from common import best_of, machine, table
from peers import module_from_file

from ttskit.align.mas import maximum_path, maximum_path_reference

BUILD = """
import numpy
from setuptools import Extension, setup
from Cython.Build import cythonize
setup(ext_modules=cythonize([Extension("{name}", ["{name}.pyx"], include_dirs=[numpy.get_include()],
      extra_compile_args={flags}, extra_link_args={flags})], language_level=3),
      script_args=["build_ext", "--inplace", "-q"])
"""


def build_glow_tts(checkout: Path, folder: Path, openmp: bool):
    """glow-tts's Cython MAS compiled from the checkout; None (with the reason printed) if it cannot be."""
    name = "glow_mas_omp" if openmp else "glow_mas"
    source = checkout / "monotonic_align" / "core.pyx"
    if not source.is_file():
        print(f"(no {source}: glow-tts rows skipped)", file=sys.stderr)
        return None
    shutil.copy(source, folder / f"{name}.pyx")
    flags = ["-O3", "-fopenmp"] if openmp else ["-O3"]
    result = subprocess.run([sys.executable, "-c", BUILD.format(name=name, flags=flags)], cwd=folder,
                            capture_output=True, text=True)
    built = next(folder.glob(f"{name}*.so"), None)
    if result.returncode != 0 or built is None:
        print(f"(glow-tts's core.pyx did not build: {result.stderr.strip()[-300:]})", file=sys.stderr)
        return None
    return module_from_file(built, name)


def glow_tts_durations(module, logp: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    """(best time, durations) of glow-tts's kernel on logp (B, S, T): it wants values (B, T, S)."""
    batch, frames, symbols = logp.shape
    values = np.ascontiguousarray(logp.transpose(0, 2, 1))
    t_x = np.full(batch, symbols, dtype=np.int32)
    t_y = np.full(batch, frames, dtype=np.int32)
    copies = [values.copy() for _ in range(repeats + 1)]
    paths = [np.zeros((batch, symbols, frames), dtype=np.int32) for _ in range(repeats + 1)]
    module.maximum_path_c(paths[-1], copies[-1], t_x, t_y)
    times = []
    import time

    for index in range(repeats):
        started = time.perf_counter()
        module.maximum_path_c(paths[index], copies[index], t_x, t_y)
        times.append(time.perf_counter() - started)
    return min(times), paths[-1].sum(-1).astype(np.int64)


def training_step_share(threads: int) -> tuple[float, float]:
    """(ms of one aligner training step, ms of its MAS) at B=16, T=128, S=512."""
    from ttskit.align.learned.model import (
        AlignmentModel,
        batch_log_prior,
        binarization_loss,
        durations_to_path,
        forward_sum_loss,
        hard_durations,
    )
    from ttskit.config import LearnedAlignerConfig

    torch.manual_seed(0)
    batch, symbols, frames = 16, 128, 512
    model = AlignmentModel(80, 80, LearnedAlignerConfig())
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    ids = torch.randint(0, 80, (batch, symbols))
    mask = torch.zeros(batch, symbols, dtype=torch.bool)
    mels = torch.randn(batch, 80, frames)
    prior = batch_log_prior([frames] * batch, [symbols] * batch, 1.0)
    frame_lengths, symbol_lengths = torch.full((batch,), frames), torch.full((batch,), symbols)
    mas_time = [0.0]

    def step() -> None:
        import time

        log_attention = model(ids, mask, mels, prior)
        started = time.perf_counter()
        durations = hard_durations(log_attention, frame_lengths, symbol_lengths)
        mas_time[0] = time.perf_counter() - started
        loss = forward_sum_loss(log_attention, frame_lengths, symbol_lengths) + \
            binarization_loss(log_attention, durations_to_path(durations, frames))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    shares = []
    for _ in range(5):
        total = best_of(step, 1)
        shares.append((total, mas_time[0]))
    total, mas = min(shares)
    return 1000 * total, 1000 * mas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glow-tts", type=Path, help="a jaywalnut310/glow-tts checkout (optional)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        glow = {}
        if args.glow_tts:
            for openmp in (False, True):
                module = build_glow_tts(args.glow_tts, Path(tmp), openmp)
                if module is not None:
                    glow["glow-tts Cython, OpenMP" if openmp else "glow-tts Cython, as its setup.py builds it"] = module
        rows = []
        for symbols in (128, 256, 512):
            frames = 4 * symbols
            logp = np.log(rng.random((16, frames, symbols), dtype=np.float32) + 1e-6)
            lengths_f, lengths_s = np.full(16, frames), np.full(16, symbols)
            ours = maximum_path(logp, lengths_f, lengths_s)  # compiles (or loads the cache) and warms up
            ttskit_s = best_of(lambda logp=logp, lf=lengths_f, ls=lengths_s: maximum_path(logp, lf, ls), args.repeats)
            reference_s = best_of(lambda logp=logp: [maximum_path_reference(logp[b]) for b in range(16)], 1)
            same = all(np.array_equal(maximum_path_reference(logp[b]), ours[b]) for b in range(2))
            rows.append([f"T={symbols}, S={frames}", "ttskit numba (prange)", f"{1000 * ttskit_s:.1f}", "1.00",
                         "yes" if same else "NO"])
            for label, module in glow.items():
                seconds, durations = glow_tts_durations(module, logp, args.repeats)
                rows.append(["", label, f"{1000 * seconds:.1f}", f"{seconds / ttskit_s:.2f}",
                             "yes" if np.array_equal(durations, ours) else "NO"])
            rows.append(["", "pure Python reference", f"{1000 * reference_s:.0f}", f"{reference_s / ttskit_s:.0f}",
                         "yes" if same else "NO"])
    print(f"# Monotonic alignment search, CPU, {args.threads} threads, B=16, S=4T\n")
    print(f"Machine: {machine()}\n")
    if not args.glow_tts:
        print("(no --glow-tts checkout given: its rows skipped)\n")
    print(table(["size", "implementation", "ms per batch", "time / ttskit's", "same durations"], rows))
    step_ms, mas_ms = training_step_share(args.threads)
    print(f"\n- one learned-aligner training step (B=16, T=128, S=512, forward-sum + binarization): {step_ms:.0f} ms, "
          f"of which MAS {mas_ms:.1f} ms = **{100 * mas_ms / step_ms:.1f} %**")


if __name__ == "__main__":
    main()
