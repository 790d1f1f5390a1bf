"""Checkpoints written before the checkpoint layer existed still load and give the same speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from ttskit.checkpoints.acoustic import load_acoustic
from ttskit.checkpoints.vocoder import load_vocoder
from ttskit.cli import app
from ttskit.synthesis import Synthesizer

OLD = Path(__file__).parent / "fixtures" / "checkpoints-0.1"


def test_old_checkpoints_synthesise_what_the_old_code_did():
    synth = Synthesizer.from_checkpoints(OLD / "acoustic_step_00000002.pt", OLD / "vocoder_generator_00000002.pt",
                                         device="cpu")
    wave = synth.tts("Hello there.")
    expected = np.load(OLD / "expected_hello_there.npy")
    assert wave.shape == expected.shape
    assert np.abs(wave - expected).max() < 1e-4


def test_old_checkpoints_load_through_the_layer_and_the_cli(tmp_path):
    acoustic = load_acoustic(OLD / "acoustic_step_00000002.pt", torch.device("cpu"))
    vocoder = load_vocoder(OLD / "vocoder_generator_00000002.pt", "cpu")
    assert acoustic.audio == vocoder.audio and acoustic.speakers == {"ljspeech": 0}
    out = tmp_path / "hello.wav"
    result = CliRunner().invoke(app, ["synth", "Hello there.", "-o", str(out), "--acoustic",
                                      str(OLD / "acoustic_step_00000002.pt"), "--vocoder",
                                      str(OLD / "vocoder_generator_00000002.pt"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 44 + 2 * 8000


def test_an_aligner_checkpoint_from_before_the_skeleton_resumes_to_the_same_aligner(tmp_path):
    import json
    import shutil

    import pytest

    from ttskit.align.learned.training import CHECKPOINT, AlignerItem, train_aligner
    from ttskit.config import LearnedAlignerConfig

    fixture = OLD.parent / "aligner-0.1"
    symbols = json.loads((fixture / "items.json").read_text())
    expected = json.loads((fixture / "expected.json").read_text())
    items = [AlignerItem(uid, phonemes, fixture / "mels" / f"{uid}.npy") for uid, phonemes in symbols.items()]
    config = LearnedAlignerConfig(channels=32, max_steps=6, min_steps=6, checkpoint_every=2, window_steps=2,
                                  binarization_start_step=3, batch_frames=3000)
    folder = tmp_path / "aligner"
    folder.mkdir()
    shutil.copy(fixture / "aligner_step2.pt", folder / CHECKPOINT)
    steps: list[int] = []
    aligner = train_aligner(items, 80, config, folder, torch.device("cpu"), lambda step, most, loss: steps.append(step))
    assert steps == [3, 4, 5, 6]  # continued from the old checkpoint's step 2
    assert aligner.progress.history == pytest.approx(expected["history"], rel=1e-4)
    durations = aligner.durations(items, torch.device("cpu"))
    assert {uid: d.tolist() for uid, d in durations.items()} == expected["durations"]
