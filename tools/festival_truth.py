#!/usr/bin/env python3
"""Aligners against the truth: for a corpus made by shared/corpus/make_corpus.py with festival's
HTS voice (hts-slt), festival itself knows where every word ends, because it decided. This
re-runs festival on each sentence (the HTS voice is deterministic: the same audio), takes its
word end times, and measures how far each WORK folder's durations put the same word ends.

    python tools/festival_truth.py CORPUS WORK [WORK ...] [--limit N]

Needs `apt-get install festival festvox-us-slt-hts`. Word ends, not phoneme ends, because
festival's lexicon and phone set differ from ttskit's ARPAbet front end; an utterance whose word
count differs between festival and ttskit (numbers, abbreviations read differently) is left out.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ttskit.audio.io import load_audio, peak_normalize, trim_bounds
from ttskit.text.frontend import PAUSE_SYMBOLS, WORD_BOUNDARY, build_frontend
from ttskit.work import array_path, load_work_config, read_metas


def festival_word_ends(texts: dict[str, str]) -> dict[str, list[float]]:
    """{id: [end time (s) of each word]} from one festival process."""
    lines = ["(voice_cmu_us_slt_arctic_hts)"]
    for uid, text in texts.items():
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'(set! u (utt.synth (Utterance Text "{quoted}")))')
        lines.append(f'(mapcar (lambda (w) (format t "{uid}\\t%s\\n" '
                     '(item.feat w "R:SylStructure.daughtern.daughtern.end"))) (utt.relation.items u \'Word))')
    with tempfile.NamedTemporaryFile("w", suffix=".scm") as script:
        script.write("\n".join(lines) + "\n")
        script.flush()
        out = subprocess.run(["festival", "-b", script.name], capture_output=True, text=True, check=True).stdout
    ends: dict[str, list[float]] = {uid: [] for uid in texts}
    for line in out.splitlines():
        uid, _, value = line.partition("\t")
        if uid in ends:
            ends[uid].append(float(value))
    return ends


def ttskit_word_ends(work: Path, meta: dict, frontend, offset_samples: int, hop: int, rate: int) -> list[float] | None:
    """End time (s, in the original recording) of each word, from the WORK folder's durations."""
    words = [u for u in frontend.analyze(meta["text"]).units
             if u and u != [WORD_BOUNDARY] and not (len(u) == 1 and u[0] in PAUSE_SYMBOLS)]
    durations = np.load(array_path(work, "duration", meta["id"]))
    ends = np.cumsum(durations)
    speech = [(s, e) for s, e in zip(meta["phonemes"], ends) if s not in PAUSE_SYMBOLS and s != WORD_BOUNDARY]
    if [s for s, _ in speech] != [p for word in words for p in word]:
        return None
    result, position = [], 0
    for word in words:
        position += len(word)
        result.append((offset_samples + meta["cut_start_sample"] + speech[position - 1][1] * hop) / rate)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("works", type=Path, nargs="+")
    parser.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args()
    config = load_work_config(args.works[0])
    audio = config.audio
    rows = [line.split("|") for line in (args.corpus / "metadata.csv").read_text().splitlines() if line.strip()]
    texts = {r[0]: r[1] for r in rows[:args.limit]}
    truth = festival_word_ends(texts)
    frontend = build_frontend(config.text)
    offsets = {}
    for uid in texts:
        path = next(args.corpus.glob(f"wavs/{uid}.*"))
        offsets[uid] = trim_bounds(peak_normalize(load_audio(path, audio.sample_rate), audio.peak_normalize), audio)[0]
    print(f"{len(texts)} sentences; word ends vs festival's own (1 mel frame = {1000 * audio.frame_shift_s:.1f} ms)")
    print("| WORK | utterances compared | words | mean abs difference | median | signed mean | within 2 frames |")
    print("|---|---|---|---|---|---|---|")
    for work in args.works:
        differences = []
        compared = 0
        for meta in read_metas(work):
            if meta["status"] != "ok" or meta["id"] not in texts:
                continue
            ends = ttskit_word_ends(work, meta, frontend, offsets[meta["id"]], audio.hop_length, audio.sample_rate)
            if ends is None or len(ends) != len(truth[meta["id"]]):
                continue
            compared += 1
            differences.append(np.array(ends) - np.array(truth[meta["id"]]))
        d = np.concatenate(differences) / audio.frame_shift_s
        print(f"| {work} | {compared} | {len(d)} | {np.abs(d).mean():.2f} frames | {np.median(np.abs(d)):.2f} | "
              f"{d.mean():+.2f} | {100 * (np.abs(d) <= 2).mean():.0f} % |")


if __name__ == "__main__":
    main()
