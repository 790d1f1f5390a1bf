"""benchmarks/run_all.py: runs the chosen benchmarks and rewrites only its own part of the docs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUN_ALL = Path(__file__).resolve().parent.parent / "benchmarks" / "run_all.py"


def run_all(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN_ALL), *args], capture_output=True, text=True, timeout=300)


def test_rewrites_its_section_and_keeps_the_rest(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nHand-written analysis.\n")
    for _ in range(2):  # the second run replaces the section instead of adding another
        result = run_all("--only", "length_regulator", "--docs", str(docs))
        assert result.returncode == 0, result.stderr
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written analysis.\n")
    assert text.count("## Latest full run") == 1 and text.count("### Length regulator") == 1
    assert "`python benchmarks/bench_length_regulator.py --threads 2`" in text  # the command that made it
    assert "| torch repeat_interleave reference |" in text and "time / ttskit's" in text  # the measured ratio
    assert "Machine: " in text and ("no GPU" in text or "GPU: " in text)


def test_a_failing_benchmark_is_reported_and_the_others_still_written(tmp_path):
    docs = tmp_path / "benchmarks.md"
    result = run_all("--only", "preprocess,length_regulator", "--corpus", str(tmp_path / "missing"),
                     "--docs", str(docs))
    assert result.returncode == 1 and "failed: preprocess" in result.stderr
    text = docs.read_text()
    assert "**Failed** (exit status" in text and "| torch repeat_interleave reference |" in text


def test_unknown_names_are_refused():
    result = run_all("--only", "warp_drive", "--no-write")
    assert result.returncode == 2 and "unknown benchmark warp_drive" in result.stderr
