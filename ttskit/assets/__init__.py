"""Data shipped inside the package: the embedded mini corpus."""

from __future__ import annotations

from pathlib import Path

MINI_LJSPEECH = Path(__file__).resolve().parent / "mini_ljspeech"
