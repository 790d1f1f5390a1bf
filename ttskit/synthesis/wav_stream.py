"""16-bit PCM WAV to a stream whose length is not known in advance (`ttskit synth -o -`).

The RIFF and data sizes are written as 0xFFFFFFFF, which players reading a pipe (aplay, sox,
ffmpeg) take as "until the end of the stream".
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np

UNKNOWN_SIZE = 0xFFFFFFFF


def wav_header(sample_rate: int, channels: int = 1, bits: int = 16) -> bytes:
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", UNKNOWN_SIZE) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, bits)
            + b"data" + struct.pack("<I", UNKNOWN_SIZE))


def pcm16(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def write_chunk(stream: BinaryIO, wave: np.ndarray) -> None:
    stream.write(pcm16(wave))
    stream.flush()
