"""Text -> speech: the acoustic model and a vocoder behind one `Synthesizer` (`ttskit synth`)."""

from ttskit.synthesis.synthesizer import SynthesisError, Synthesizer

__all__ = ["SynthesisError", "Synthesizer"]
