#!/usr/bin/env python3
"""Phoneme-boundary agreement of two aligners: REF and HYP are WORK folders preprocessed from the
same corpus and settings except the aligner (e.g. pocketsphinx and learned).

    python tools/compare_aligners.py REF_WORK HYP_WORK [--manifest WORK/val.jsonl]

--manifest compares only the utterances it lists (e.g. those a Tacotron 2 teacher was validated
on, never trained on).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ttskit.data.compare_alignments import compare_alignments
from ttskit.work import load_work_config, read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("hypothesis", type=Path)
    parser.add_argument("--manifest", type=Path, help="compare only the ids of this train.jsonl/val.jsonl")
    args = parser.parse_args()
    hop = load_work_config(args.reference).audio.hop_length
    only = {row["id"] for row in read_jsonl(args.manifest)} if args.manifest else None
    result = compare_alignments(args.reference, args.hypothesis, hop, only)
    print(result.summary())
    if result.unmatched:
        print(f"not compared (different phonemes): {len(result.unmatched)}, e.g. {result.unmatched[:5]}")


if __name__ == "__main__":
    main()
