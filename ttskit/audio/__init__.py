"""Audio leaf: the one mel analysis, audio I/O, trimming and Griffin-Lim."""

from ttskit.audio.griffin_lim import griffin_lim
from ttskit.audio.io import AudioError, atomic_write, load_audio, peak_normalize, save_wav, trim_silence
from ttskit.audio.mel import MelSpectrogram

__all__ = ["AudioError", "MelSpectrogram", "atomic_write", "griffin_lim", "load_audio", "peak_normalize",
           "save_wav", "trim_silence"]
