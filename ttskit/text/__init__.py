"""Text leaf: normalizer, lexicon + G2P, vocabularies and the front ends that join them."""

from ttskit.text.frontend import PAUSE_SYMBOLS, FrontendUnavailable, TextAnalysis, TextFrontend, build_frontend
from ttskit.text.normalize import normalize_english
from ttskit.text.nvidia_chars import NvidiaCharsFrontend
from ttskit.text.vocab import Vocab, VocabError

__all__ = ["PAUSE_SYMBOLS", "FrontendUnavailable", "NvidiaCharsFrontend", "TextAnalysis", "TextFrontend", "Vocab",
           "VocabError",
           "build_frontend", "normalize_english"]
