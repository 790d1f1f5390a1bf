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
