#!/usr/bin/env python3
"""Phoneme-boundary agreement of two aligners: REF and HYP are WORK folders preprocessed from the
same corpus and settings except the aligner (e.g. pocketsphinx and learned).

    python tools/compare_aligners.py REF_WORK HYP_WORK
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ttskit.data.compare_alignments import compare_alignments
from ttskit.work import load_work_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("hypothesis", type=Path)
    args = parser.parse_args()
    hop = load_work_config(args.reference).audio.hop_length
    result = compare_alignments(args.reference, args.hypothesis, hop)
    print(result.summary())
    if result.unmatched:
        print(f"not compared (different phonemes): {len(result.unmatched)}, e.g. {result.unmatched[:5]}")


if __name__ == "__main__":
    main()
