"""The data report of a WORK folder: report.json, report.md and PNG histograms.

It answers what a user checks before training: how much usable speech there is, what was
skipped and why, whether durations, pitch and speaking rate look like speech, and which
utterances are worth a listen.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ttskit.audio.io import atomic_write
from ttskit.config import Config
from ttskit.text.frontend import PAUSE_SYMBOLS
from ttskit.work import REPORT, array_path, has_durations, save_json

OUTLIERS_SHOWN = 10


def _reason_kind(reason: str) -> str:
    """Group reasons for counting: 'alignment rejected: phoneme AA1 lasts...' -> 'alignment rejected'."""
    head = reason.split(":", 1)
    if head[0].endswith((".wav", ".flac", ".mp3", ".ogg")) and len(head) > 1:
        return head[1].split("(")[0].strip()
    return head[0].split("(")[0].strip()


def write_report(work: Path, metas: list[dict[str, Any]], config: Config) -> dict[str, Any]:
    ok = [m for m in metas if m["status"] == "ok"]
    skipped = [m for m in metas if m["status"] != "ok"]
    frame_ms = 1000 * config.audio.frame_shift_s
    phone_ms, pitch_values = [], []
    longest: list[tuple[float, str, str]] = []
    durations_made = has_durations(config)
    for m in ok:
        pitch = np.load(array_path(work, "pitch", m["id"]))
        if not durations_made:  # --aligner none: pitch per frame, no phoneme lengths
            pitch_values.append(pitch[pitch > 0])
            continue
        durations = np.load(array_path(work, "duration", m["id"]))
        speech = np.array([s not in PAUSE_SYMBOLS for s in m["phonemes"]])
        phone_ms.append(durations[speech] * frame_ms)
        index = int(np.argmax(np.where(speech, durations, -1)))
        longest.append((float(durations[index] * frame_ms), m["id"], m["phonemes"][index]))
        pitch_values.append(pitch[(pitch > 0) & (speech if len(pitch) == len(speech) else True)])
    phone_ms_all = np.concatenate(phone_ms) if phone_ms else np.zeros(0)
    pitch_all = np.concatenate(pitch_values) if pitch_values else np.zeros(0)
    rates = np.array([m["phones_per_s"] for m in ok])
    by_speaker: dict[str, dict[str, float]] = {}
    for m in ok:
        entry = by_speaker.setdefault(m["speaker"], {"utterances": 0, "hours": 0.0})
        entry["utterances"] += 1
        entry["hours"] += m["duration_s"] / 3600
    by_rate = sorted(ok, key=lambda m: m["phones_per_s"])
    report: dict[str, Any] = {
        "counts": {"total": len(metas), "ok": len(ok), "skipped": len(skipped)},
        "hours": round(sum(m["duration_s"] for m in ok) / 3600, 4),
        "speakers": {k: {"utterances": v["utterances"], "hours": round(v["hours"], 4)} for k, v in by_speaker.items()},
        "skipped_by_reason": dict(Counter(_reason_kind(m.get("reason", "")) for m in skipped).most_common()),
        "skipped": [{"id": m["id"], "source": m.get("source"), "reason": m.get("reason")} for m in skipped],
        "phoneme_ms": _summary(phone_ms_all),
        "pitch_hz": _summary(pitch_all),
        "phones_per_s": _summary(rates),
        "outliers": {
            "fastest": [{"id": m["id"], "phones_per_s": m["phones_per_s"]} for m in by_rate[::-1][:OUTLIERS_SHOWN]],
            "slowest": [{"id": m["id"], "phones_per_s": m["phones_per_s"]} for m in by_rate[:OUTLIERS_SHOWN]],
            "longest_phoneme": [{"id": i, "phoneme": p, "ms": round(ms, 1)}
                                for ms, i, p in sorted(longest, reverse=True)[:OUTLIERS_SHOWN]],
            "least_voiced": [{"id": m["id"], "voiced_fraction": m["voiced_fraction"]}
                             for m in sorted(ok, key=lambda m: m["voiced_fraction"])[:OUTLIERS_SHOWN]],
        },
        "warnings": sorted({w for m in ok for w in m.get("warnings", [])})[:50],
    }
    plots = _plots(work, phone_ms_all, pitch_all, rates, frame_ms)
    save_json(work / "report.json", report)
    atomic_write(work / "report.md", lambda tmp: tmp.write_text(_markdown(report, plots), encoding="utf-8"))
    return report


def _summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    p = np.percentile(values, [1, 50, 99])
    return {"mean": round(float(values.mean()), 3), "std": round(float(values.std()), 3),
            "p1": round(float(p[0]), 3), "median": round(float(p[1]), 3), "p99": round(float(p[2]), 3)}


def _plots(work: Path, phone_ms: np.ndarray, pitch: np.ndarray, rates: np.ndarray, frame_ms: float) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display here or on a cluster node
    import matplotlib.pyplot as plt

    names = []
    # Durations are whole frames: one bin per frame, or the histogram shows comb-like gaps.
    frame_bins = (np.arange(0, (phone_ms.max() if phone_ms.size else 0) + 2 * frame_ms, frame_ms) - frame_ms / 2)
    for name, values, label, bins in (("phoneme_durations.png", phone_ms, "phoneme duration (ms)", frame_bins),
                                      ("pitch.png", pitch, "pitch (Hz)", 80),
                                      ("speaking_rate.png", rates, "phonemes per second of speech", 40)):
        if values.size == 0:
            continue
        figure, axis = plt.subplots(figsize=(6, 3.2), dpi=100)
        axis.hist(values, bins=bins, color="#3b6ea5")
        axis.set_xlabel(label)
        axis.set_ylabel("count")
        figure.tight_layout()
        path = work / REPORT / name
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, lambda tmp, figure=figure: figure.savefig(tmp, format="png"))
        plt.close(figure)
        names.append(name)
    return names


def _markdown(report: dict[str, Any], plots: list[str]) -> str:
    counts = report["counts"]
    lines = ["# Data report", "",
             f"{counts['ok']} of {counts['total']} utterances usable, {report['hours'] * 60:.1f} minutes of speech; "
             f"{counts['skipped']} skipped.", "", "| speaker | utterances | minutes |", "|---|---:|---:|"]
    lines += [f"| {name} | {s['utterances']} | {s['hours'] * 60:.1f} |" for name, s in report["speakers"].items()]
    for key, title, unit in (("phoneme_ms", "Phoneme durations", "ms"), ("pitch_hz", "Pitch", "Hz"),
                             ("phones_per_s", "Speaking rate", "phonemes/s")):
        s = report[key]
        if s:
            lines += ["", f"**{title}** ({unit}): median {s['median']}, mean {s['mean']} ± {s['std']}, "
                          f"1st-99th percentile {s['p1']}-{s['p99']}"]
    lines += [""] + [f"![{p}](report/{p})" for p in plots]
    if report["skipped"]:
        lines += ["", "## Skipped", "", "| reason | count |", "|---|---:|"]
        lines += [f"| {reason} | {n} |" for reason, n in report["skipped_by_reason"].items()]
        lines += ["", "| id | reason |", "|---|---|"]
        lines += [f"| {s['id']} | {s['reason']} |" for s in report["skipped"]]
    outliers = report["outliers"]
    lines += ["", "## Worth a listen", "",
              "Fastest: " + ", ".join(f"{o['id']} ({o['phones_per_s']:.1f}/s)" for o in outliers["fastest"][:5]),
              "", "Slowest: " + ", ".join(f"{o['id']} ({o['phones_per_s']:.1f}/s)" for o in outliers["slowest"][:5]),
              "", "Longest phonemes: " + ", ".join(f"{o['id']} {o['phoneme']} {o['ms']:.0f} ms"
                                                  for o in outliers["longest_phoneme"][:5]),
              "", "Least voiced: " + ", ".join(f"{o['id']} ({o['voiced_fraction']:.0%})"
                                              for o in outliers["least_voiced"][:5])]
    if report["warnings"]:
        lines += ["", "## Text warnings", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"
