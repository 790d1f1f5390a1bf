from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from ttskit.cli import app

runner = CliRunner()


def test_help_lists_only_real_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "text" in result.output and "version" in result.output


def test_text_prints_normalized_symbols_and_ids():
    result = runner.invoke(app, ["text", "Dr. Smith paid $3.50 on Jan. 5th, 1999."])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == ("normalized: doctor Smith paid three dollars and fifty cents on january fifth, "
                        "nineteen ninety-nine.")
    assert lines[1].startswith("symbols:    D AA1 K T ER0 S M IH1 TH") and lines[1].endswith("N AY1 N .")
    ids = [int(i) for i in lines[2].split()[1:]]
    assert len(ids) == len(lines[1].split()) - 1 and 0 not in ids


def test_text_json_file_and_vocab(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("a|Hello there.\nb|Ça va?\n", encoding="utf-8")
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"symbols": ["<pad>", "sp", ".", "?", "h", "e", "l", "o", " ", "t", "r"]}))
    result = runner.invoke(app, ["text", "--file", str(lines), "--frontend", "chars", "--vocab", str(vocab),
                                 "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["normalized"] for r in rows] == ["hello there.", "ça va?"]
    assert rows[0]["ids"] == [4, 5, 6, 6, 7, 8, 9, 4, 5, 10, 5, 2]
    assert "not in the vocabulary" in result.stderr  # ç, a and v are not in this vocab


def test_text_errors_are_one_clear_line():
    result = runner.invoke(app, ["text"])
    assert result.exit_code == 2 and "either a TEXT argument or --file" in result.stderr
    result = runner.invoke(app, ["text", "hi", "--set", "text.frontendd=chars"])
    assert result.exit_code == 2 and "unknown key text.frontendd" in result.stderr
    result = runner.invoke(app, ["text", "hi", "--frontend", "klingon"])
    assert result.exit_code == 2 and "text.frontend must be one of" in result.stderr
    result = runner.invoke(app, ["text", "--file", "/no/such/file.txt"])
    assert result.exit_code == 2 and "does not exist" in result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_text_warns_on_unknown_characters():
    result = runner.invoke(app, ["text", "snow \u2603 man"])
    assert result.exit_code == 0
    assert "unknown characters ignored" in result.stderr and "U+2603" in result.stderr


def test_version_and_console_script():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.stdout.startswith("ttskit ") and "torch" in result.stdout
    proc = subprocess.run([sys.executable, "-m", "ttskit", "text", "Hello."], capture_output=True, text=True,
                          check=True)
    assert "symbols:    HH AH0 L OW1 ." in proc.stdout


def test_text_with_nvidias_character_front_end():
    """NVIDIA Tacotron 2's symbols and english_cleaners: ids are positions in its table
    ('_', then -!'(),.:;? and space, then A-Z and a-z), no vocabulary file needed."""
    result = runner.invoke(app, ["text", "Dr. Smith paid $5.", "--frontend", "nvidia-chars"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "normalized: doctor smith paid five dollars."
    table = ["_", *"-!'(),.:;? ", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", *"abcdefghijklmnopqrstuvwxyz"]
    assert [int(i) for i in lines[2].split()[1:]] == [table.index(c) for c in "doctor smith paid five dollars."]
