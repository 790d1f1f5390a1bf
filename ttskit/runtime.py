"""Where and in which arithmetic ttskit runs: the default device, the precision settings and
autocast. A leaf: every layer may import it."""

from __future__ import annotations

import re
import typing
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Literal

from ttskit.errors import TtskitError

if TYPE_CHECKING:  # torch is imported where it is used, so the CLI starts without it
    import torch

# train.precision: auto is bf16 autocast on CUDA and fp32 on a CPU; fp16 always comes with a
# GradScaler. Inference (`--precision`) takes the two whose output needs no loss scaling.
Precision = Literal["auto", "bf16", "fp16", "fp32"]
InferencePrecision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
INFERENCE_PRECISIONS: tuple[str, ...] = typing.get_args(InferencePrecision)


_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


class DeviceError(TtskitError, ValueError):
    """A device that is not one ttskit runs on, or is not on this machine."""


def default_device(device: str | torch.device | None = None) -> torch.device:
    """`device` checked (cpu, cuda or cuda:N, and CUDA present for the latter); None means CUDA
    when it is present, else the CPU."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        return device
    if not _DEVICE.match(device):
        raise DeviceError(f"--device {device!r}: choose cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "torch is a CPU-only build" if torch.version.cuda is None else "CUDA is not available"
            raise DeviceError(f"--device {device}: 0 CUDA device(s) are visible here ({build}); use --device cpu")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return torch.device(device)


def training_precision(setting: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a GradScaler) for a `train.precision` setting. float16
    gradients underflow on any device, so fp16 always comes with a GradScaler (CPU included,
    which is also how the tests drive the scaler path without a GPU)."""
    import torch

    if setting == "fp32" or (setting == "auto" and device.type != "cuda"):
        return None, False
    if setting == "fp16":
        return torch.float16, True
    return torch.bfloat16, False


def inference_dtype(precision: str) -> torch.dtype | None:
    import torch

    return torch.bfloat16 if precision == "bf16" else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Autocast to `dtype` on `device`; no autocast at all for None (float32)."""
    import torch

    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively (else autocast emulates it, slower than fp32)."""
    import torch

    return torch.cuda.is_bf16_supported() if device.type == "cuda" else torch.ops.mkldnn._is_mkldnn_bf16_supported()
