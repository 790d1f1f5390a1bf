"""Whole `ttskit preprocess` throughput (audio, alignment, features, writing, merge) as x real
time, on a fresh WORK folder, with the jobs given (default: all cores).

    python benchmarks/bench_preprocess.py CORPUS_DIR [--jobs 2] [--keep-work WORK]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soundfile as sf
from common import machine

from ttskit.config import Config
from ttskit.data.preprocess import run_preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, help="LJSpeech-layout folder")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--keep-work", type=Path, help="write the WORK folder here and keep it (it must not exist)")
    args = parser.parse_args()
    if args.keep_work is not None and args.keep_work.exists():
        parser.error(f"{args.keep_work} exists; the benchmark needs a fresh WORK folder")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep_work or Path(tmp) / "work"
        started = time.perf_counter()
        summary = run_preprocess("ljspeech", args.corpus, work, Config(), jobs=args.jobs)
        elapsed = time.perf_counter() - started
        report = json.loads((work / "report.json").read_text())
        metas = [json.loads(p.read_text()) for p in (work / "meta").glob("*.json")]
    # Real time is the corpus' own length: what a user has before preprocessing.
    seconds = sum(sf.info(str(p)).duration for p in (args.corpus / "wavs").iterdir())
    worker_time = sum(m["seconds"] for m in metas)
    print(f"# Whole preprocess ({summary.ok} usable of {report['counts']['total']} utterances, "
          f"{seconds / 60:.1f} min of audio)\n")
    print(f"Machine: {machine()}; jobs: {args.jobs or 'all cores'}\n")
    print(f"- wall time {elapsed:.1f} s, including worker start-up and the merge: "
          f"**{seconds / elapsed:.0f}x real time**")
    print(f"- per utterance inside the workers: {worker_time:.1f} s in all, "
          f"{seconds / worker_time:.0f}x real time per core")


if __name__ == "__main__":
    main()
