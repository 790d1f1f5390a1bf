"""The fine-tuning curve from a `recipes/fine-tune/run.sh` folder: word error rate (and the other
`ttskit eval` scores) against minutes of the new voice's speech and minutes of CPU training.

    python tools/fine_tune_curve.py OUT [--plot curve.png] [--goal 1.5]

OUT holds `eval_recordings.json` (the new voice's held-out recordings scored against themselves),
`eval_<clips>_<minutes>min.json` (the fine-tuned pair after that many wall-clock minutes) and
`work_<clips>/train.jsonl` (what was trained on). Prints a markdown table; `--plot` draws WER
against training minutes, one line per amount of data, with the recordings' WER and the goal.
Where `DIAGNOSE=1` scored each model alone (`eval_<clips>_<minutes>min_griffin-lim.json`: the
acoustic model through Griffin-Lim; `..._copy.json`: the vocoder's copy-synthesis), a second
table shows them.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

SCORES_NAME = re.compile(r"eval_(\d+)_(\d+(?:\.\d+)?)min\.json$")


@dataclass(frozen=True)
class Point:
    clips: int
    data_minutes: float  # speech in the training split (validation clips excluded)
    train_minutes: float
    summary: dict


def training_speech_minutes(work: Path) -> float:
    with (work / "train.jsonl").open() as rows:
        return sum(json.loads(line)["duration_s"] for line in rows if line.strip()) / 60


def read_points(out: Path) -> list[Point]:
    points = []
    for path in sorted(out.glob("eval_*min.json")):
        match = SCORES_NAME.search(path.name)
        if not match:
            continue
        clips, minutes = int(match[1]), float(match[2])
        summary = json.loads(path.read_text())["summary"]
        points.append(Point(clips, training_speech_minutes(out / f"work_{clips}"), minutes, summary))
    return sorted(points, key=lambda point: (point.clips, point.train_minutes))


def markdown_table(points: list[Point], reference: dict) -> str:
    rows = ["| data (clips, minutes of speech) | training (wall minutes) | MCD dB | log-F0 RMSE | WER (x recordings) "
            "| CER | MOS (pred.) |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| recordings (held-out) | | 0 | 0 | {reference['wer']:.1%} (1.00) | {reference['cer']:.1%} "
            f"| {_mos(reference)} |"]
    for point in points:
        s = point.summary
        rows.append(f"| {point.clips} clips, {point.data_minutes:.1f} min | {point.train_minutes:g} | {s['mcd_db']:.2f} "
                    f"| {s['log_f0_rmse_cents']:.0f} | {s['wer']:.1%} ({s['wer'] / reference['wer']:.2f}) "
                    f"| {s['cer']:.1%} | {_mos(s)} |")
    return "\n".join(rows)


ALONE = {"griffin-lim": "acoustic model through Griffin-Lim", "copy": "vocoder, copy-synthesis"}


def models_alone_table(out: Path, points: list[Point], reference: dict) -> str | None:
    """Each model scored alone where the run left those scores; None where it left none."""
    rows = []
    for point in points:
        for suffix, what in ALONE.items():
            path = out / f"eval_{point.clips}_{point.train_minutes:g}min_{suffix}.json"
            if path.is_file():
                s = json.loads(path.read_text())["summary"]
                rows.append(f"| {point.clips} clips | {point.train_minutes:g} | {what} | {s['mcd_db']:.2f} "
                            f"| {s['log_f0_rmse_cents']:.0f} | {s['voicing_error']:.1%} "
                            f"| {s['wer']:.1%} ({s['wer'] / reference['wer']:.2f}) | {_mos(s)} |")
    if not rows:
        return None
    return "\n".join(["| data | training (wall minutes) | model alone | MCD dB | log-F0 RMSE | voicing error "
                      "| WER (x recordings) | MOS (pred.) |", "|---|---:|---|---:|---:|---:|---:|---:|", *rows])


def _mos(summary: dict) -> str:
    return f"{summary['mos']:.2f}" if summary.get("mos") is not None else "-"


def plot(points: list[Point], reference: dict, goal: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (wer_axis, mos_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for clips in sorted({point.clips for point in points}, reverse=True):
        line = [point for point in points if point.clips == clips]
        label = f"{line[0].data_minutes:.1f} min of speech ({clips} clips)"
        wer_axis.plot([p.train_minutes for p in line], [100 * p.summary["wer"] for p in line], "o-", label=label)
        if all(p.summary.get("mos") is not None for p in line):
            mos_axis.plot([p.train_minutes for p in line], [p.summary["mos"] for p in line], "o-", label=label)
    wer_axis.axhline(100 * reference["wer"], color="black", linewidth=1, label="recordings")
    wer_axis.axhline(100 * goal * reference["wer"], color="black", linestyle="--", linewidth=1,
                     label=f"goal: {goal:g}x the recordings")
    wer_axis.set(xlabel="fine-tuning, wall minutes on 2 cores", ylabel="WER % (pocketsphinx)",
                 title="Word error rate, held-out sentences")
    if reference.get("mos") is not None:
        mos_axis.axhline(reference["mos"], color="black", linewidth=1, label="recordings")
    mos_axis.set(xlabel="fine-tuning, wall minutes on 2 cores", ylabel="predicted MOS (DistillMOS)",
                 title="Predicted naturalness")
    for axis in (wer_axis, mos_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder recipes/fine-tune/run.sh wrote")
    parser.add_argument("--plot", type=Path, help="write the curve as a PNG here")
    parser.add_argument("--goal", type=float, default=1.5, help="the WER goal as a multiple of the recordings'")
    args = parser.parse_args(argv)
    reference_path = args.out / "eval_recordings.json"
    if not reference_path.is_file():
        print(f"{reference_path}: missing (recipes/fine-tune/run.sh writes it first)", file=sys.stderr)
        return 2
    reference = json.loads(reference_path.read_text())["summary"]
    points = read_points(args.out)
    if not points:
        print(f"{args.out}: no eval_<clips>_<minutes>min.json yet", file=sys.stderr)
        return 2
    print(markdown_table(points, reference))
    if alone := models_alone_table(args.out, points, reference):
        print("\n" + alone)
    if args.plot:
        plot(points, reference, args.goal, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
