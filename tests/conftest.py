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


@pytest.fixture(scope="session")
def mini_work(tmp_path_factory):
    """A WORK folder preprocessed from 8 clips of the embedded corpus (shared by the tests that read one)."""
    import shutil

    from typer.testing import CliRunner

    from ttskit.cli import app

    clips = ["SY01-00000", "SY01-00001", "SY01-00002", "SY01-00005", "SY01-00006", "SY01-00009", "SY01-00061",
             "SY01-00078"]
    corpus = tmp_path_factory.mktemp("corpus") / "lj"
    (corpus / "wavs").mkdir(parents=True)
    rows = {line.split("|")[0]: line for line in (MINI_LJSPEECH / "metadata.csv").read_text().splitlines()}
    for clip in clips:
        shutil.copy(MINI_LJSPEECH / "wavs" / f"{clip}.flac", corpus / "wavs" / f"{clip}.flac")
    (corpus / "metadata.csv").write_text("".join(rows[c] + "\n" for c in clips))
    out = tmp_path_factory.mktemp("work") / "w"
    result = CliRunner().invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    return out
