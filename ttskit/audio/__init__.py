"""Audio leaf: the one mel analysis, audio I/O, trimming and Griffin-Lim."""

from ttskit.audio.griffin_lim import griffin_lim
from ttskit.audio.io import (
    AudioError,
    OutputError,
    atomic_write,
    check_output,
    check_output_folder,
    load_audio,
    peak_normalize,
    save_wav,
    trim_silence,
)
from ttskit.audio.mel import MelSpectrogram

__all__ = ["AudioError", "MelSpectrogram", "OutputError", "atomic_write", "check_output", "check_output_folder",
           "griffin_lim", "load_audio", "peak_normalize", "save_wav", "trim_silence"]
