"""Predicted MOS (naturalness) with DistillMOS (Stahl and Gamper, 2025), when it is installed.

DistillMOS ships its weights inside its wheel, so it runs offline. It is optional, and installed
without its declared dependencies, because they pull torchaudio, whose wheels need a CUDA build of
torch (docs/eval.md):

    pip install --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0

Its `sqa.py` imports torchaudio at the top for its file-reading command line only; the model
itself needs torch alone. Where torchaudio is absent, a stand-in module that refuses every use
is registered under its name for that import, and never used: audio reaches the model here as a
16 kHz tensor, resampled by librosa.
"""

from __future__ import annotations

import contextlib
import io
import sys
import types
from typing import Any

import numpy as np

MOS_RATE = 16000
INSTALL_HINT = "pip install --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0"


def _torchaudio_stand_in() -> types.ModuleType:
    module = types.ModuleType("torchaudio")

    def refuse(name: str) -> Any:
        # AttributeError, as for any missing attribute: libraries that probe sys.modules with
        # hasattr() (torch does) must keep working.
        raise AttributeError(f"torchaudio.{name}: torchaudio is not installed (ttskit feeds DistillMOS tensors itself)")

    module.__getattr__ = refuse  # type: ignore[attr-defined]  # module-level __getattr__ (PEP 562)
    return module


def load_mos_model() -> Any | None:
    """DistillMOS's model on the CPU in eval mode, or None when DistillMOS is not installed."""
    import torch  # noqa: F401  # before the stand-in exists: torch's import probes optional modules

    try:
        import torchaudio  # noqa: F401
    except ImportError:
        sys.modules.setdefault("torchaudio", _torchaudio_stand_in())
    try:
        import distillmos
    except ImportError:
        return None
    with contextlib.redirect_stdout(io.StringIO()):  # it prints where its weights came from; stdout is for data
        model = distillmos.ConvTransformerSQAModel()
    model.eval()
    return model


def predict_mos(model: Any, wave: np.ndarray, sample_rate: int) -> float:
    """Predicted MOS (1-5) of one utterance."""
    import librosa
    import torch

    audio = np.asarray(wave, dtype=np.float32)
    if sample_rate != MOS_RATE:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=MOS_RATE, res_type="soxr_hq")
    with torch.inference_mode():
        return float(model(torch.from_numpy(np.ascontiguousarray(audio))[None]).reshape(-1)[0])
