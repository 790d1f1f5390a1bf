from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from ttskit.assets import MINI_LJSPEECH

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="session")
def mini_corpus():
    return MINI_LJSPEECH


@pytest.fixture(scope="session")
def speech_clip() -> tuple[np.ndarray, int]:
    """A real utterance from the embedded corpus (22050 Hz float32)."""
    wave, rate = sf.read(str(MINI_LJSPEECH / "wavs" / "SY01-00002.flac"), dtype="float32")
    return wave, rate


MINI_CLIPS = ("SY01-00000", "SY01-00001", "SY01-00002", "SY01-00005", "SY01-00006", "SY01-00009", "SY01-00061",
              "SY01-00078")


def mini_subset(folder, clips=MINI_CLIPS):
    """An LJSpeech-layout corpus in `folder` holding `clips` of the embedded corpus."""
    import shutil

    (folder / "wavs").mkdir(parents=True)
    rows = {line.split("|")[0]: line for line in (MINI_LJSPEECH / "metadata.csv").read_text().splitlines()}
    for clip in clips:
        shutil.copy(MINI_LJSPEECH / "wavs" / f"{clip}.flac", folder / "wavs" / f"{clip}.flac")
    (folder / "metadata.csv").write_text("".join(rows[c] + "\n" for c in clips))
    return folder


@pytest.fixture(scope="session")
def mini_work(tmp_path_factory):
    """A WORK folder preprocessed from 8 clips of the embedded corpus (shared by the tests that read one)."""
    from typer.testing import CliRunner

    from ttskit.cli import app

    corpus = mini_subset(tmp_path_factory.mktemp("corpus") / "lj")
    out = tmp_path_factory.mktemp("work") / "w"
    result = CliRunner().invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    return out


def tiny_acoustic_run(work, run, frames_per_phoneme: int):
    """A tiny acoustic model trained 2 steps whose duration predictor is then set to give every
    phoneme exactly `frames_per_phoneme` frames: untrained speech of a known, measurable length."""
    import math

    from test_train_acoustic import TINY

    from ttskit.checkpoints.store import load_checkpoint, save_checkpoint
    from ttskit.train.acoustic import prepare_run, train_acoustic

    train_acoustic(prepare_run(work, run, overrides=TINY, max_steps=2), device="cpu")
    path = run / "checkpoints" / "step_00000002.pt"
    state = load_checkpoint(path)
    state["model"]["duration_predictor.output.weight"].zero_()
    state["model"]["duration_predictor.output.bias"].fill_(math.log(1 + frames_per_phoneme))
    save_checkpoint(path, state)
    (run / "checkpoints" / "best.pt").unlink()
    return run


def assert_same_run(a: dict, b: dict, atol: float = 1e-4) -> None:
    """Two state dicts from what should be the same training run. Not bit-for-bit: oneDNN and MKL
    can round differently between two identical runs in one process (their kernels depend on
    memory alignment; seen: 3.5e-5 after 6 steps), while a resume that lost optimizer state,
    RNG state or its place in the data moves weights by orders of magnitude more."""
    for name, tensor in a.items():
        if tensor.is_floating_point():
            assert torch.allclose(tensor, b[name], atol=atol, rtol=1e-3), (name, (tensor - b[name]).abs().max())
        else:
            assert torch.equal(tensor, b[name]), name


def private_work(mini_work, folder):
    """A copy of the shared WORK folder in `folder`, for a test that writes into it (--export-gta)."""
    import shutil

    work = folder / "work"
    shutil.copytree(mini_work, work)
    shutil.rmtree(work / "gta", ignore_errors=True)
    return work
