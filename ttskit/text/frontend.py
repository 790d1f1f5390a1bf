"""Text front ends: text -> symbols -> ids, behind one small interface.

- `english`: normalizer + CMUdict (ARPAbet with stress) + the neural letter-to-sound model for
  words the dictionary lacks; `{HH AH0 L OW1}` passes phonemes through untouched.
- `chars`: graphemes of any language; the vocabulary is learned from the corpus.
- `espeak`: IPA phonemes from espeak-ng, when it is installed.

Punctuation becomes pause symbols in every front end, so aligners and models treat pauses alike.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ttskit.config import TextConfig
from ttskit.errors import TtskitError
from ttskit.text.arpabet import WITH_STRESS, WITHOUT_STRESS
from ttskit.text.lexicon import cmudict
from ttskit.text.normalize import UNICODE_FOLD, normalize_english
from ttskit.text.vocab import Vocab

SILENCE = "sil"  # leading/trailing silence, placed by aligners
SHORT_PAUSE = "sp"  # a pause inside a sentence: comma, semicolon, colon, dash, parenthesis
SENTENCE_ENDS = (".", "?", "!")  # kept apart: a question ends differently from a statement
PAUSE_SYMBOLS = (SILENCE, SHORT_PAUSE, *SENTENCE_ENDS)
WORD_BOUNDARY = " "  # chars and espeak keep word boundaries; ARPAbet (like FastSpeech2) does not

_PAUSE_OF = {",": SHORT_PAUSE, ";": SHORT_PAUSE, ":": SHORT_PAUSE, "-": SHORT_PAUSE, "(": SHORT_PAUSE,
             ")": SHORT_PAUSE, ".": ".", "?": "?", "!": "!"}
# A hyphen inside a word ("ninety-nine", "well-known") separates words; only a free-standing
# dash is a pause.
_WORD_HYPHEN_RE = re.compile(r"(?<=\w)-(?=\w)")
# Characters dropped silently: they carry no sound of their own.
_SILENT = set("\"'`*_[]{}<>~^|\\")


class FrontendUnavailable(TtskitError, RuntimeError):
    """The front end needs a program or file that is not installed; the message says how to get it."""


@dataclass
class TextAnalysis:
    """What a front end made of one text.

    `units` groups the symbols: one list per word (its phonemes or letters), and a one-symbol
    list per pause or word boundary; aligners that work on words (pocketsphinx) need them.
    """

    normalized: str
    units: list[list[str]]
    warnings: list[str] = field(default_factory=list)

    @property
    def symbols(self) -> list[str]:
        return [s for unit in self.units for s in unit]


class TextFrontend(ABC):
    """Turns text into model symbols. Subclasses implement `normalize` and `_symbols`."""

    name: str
    # True when every symbol the front end can produce is known in advance (ARPAbet), so the
    # vocabulary does not depend on the corpus.
    fixed_inventory: bool = False

    @abstractmethod
    def normalize(self, text: str) -> str:
        """Written text -> the words to be spoken."""

    @abstractmethod
    def _units(self, normalized: str, warnings_out: list[str]) -> list[list[str]]:
        """Normalized text -> units (see `TextAnalysis`); problems are appended to `warnings_out`."""

    def base_symbols(self) -> tuple[str, ...]:
        """Symbols every vocabulary of this front end holds, whatever the corpus."""
        return PAUSE_SYMBOLS

    def analyze(self, text: str) -> TextAnalysis:
        found: list[str] = []
        normalized = self.normalize(text)
        units = _squeeze_pauses(self._units(normalized, found))
        return TextAnalysis(normalized, units, found)

    def build_vocab(self, symbol_lists: Iterable[Sequence[str]] = ()) -> Vocab:
        """The base symbols, then every other symbol seen, sorted so the ids do not depend on corpus order."""
        seen = {s for symbols in symbol_lists for s in symbols}
        base = self.base_symbols()
        return Vocab.build([*base, *sorted(seen - set(base))])

    def encode(self, text: str, vocab: Vocab) -> tuple[list[int], TextAnalysis]:
        """Ids for `text` in `vocab`; symbols the vocabulary lacks are dropped with a warning."""
        analysis = self.analyze(text)
        return _encode_known(analysis, vocab), analysis


def _encode_known(analysis: TextAnalysis, vocab: Vocab) -> list[int]:
    """Ids of the analysis' symbols; symbols the vocabulary lacks are dropped with a warning."""
    missing = sorted({s for s in analysis.symbols if s not in vocab})
    if missing:
        analysis.warnings.append(f"symbols not in the vocabulary, skipped: {missing}")
        analysis.units = [kept for unit in analysis.units if (kept := [s for s in unit if s in vocab])]
    return vocab.encode(analysis.symbols)


def _is_pause(unit: list[str]) -> bool:
    return len(unit) == 1 and unit[0] in PAUSE_SYMBOLS


def _squeeze_pauses(units: list[list[str]]) -> list[list[str]]:
    """No pause or word boundary at the start, none doubled: "Well, - yes." has one pause, not two."""
    out: list[list[str]] = []
    for unit in units:
        if not unit:
            continue
        if _is_pause(unit):
            while out and out[-1] == [WORD_BOUNDARY]:
                out.pop()
            if not out:
                continue
            if _is_pause(out[-1]):
                # A sentence end outranks a short pause next to it.
                if out[-1] == [SHORT_PAUSE]:
                    out[-1] = unit
                continue
        elif unit == [WORD_BOUNDARY] and (not out or out[-1] == [WORD_BOUNDARY] or _is_pause(out[-1])):
            continue
        out.append(unit)
    while out and out[-1] == [WORD_BOUNDARY]:
        out.pop()
    return out


def _fold_unicode(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return "".join(UNICODE_FOLD.get(ch, ch) for ch in text)


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _unknown_warning(chars: Iterable[str]) -> str:
    listed = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in sorted(set(chars)))
    return f"unknown characters ignored: {listed}"


class EnglishFrontend(TextFrontend):
    """English text -> ARPAbet phonemes (CMUdict, then the neural G2P for unknown words)."""

    name = "english"
    fixed_inventory = True
    _TOKEN_RE = re.compile(r"(\{[^}]*\})|([A-Za-z]+(?:'[A-Za-z]+)*)|([,.;:?!()\-])|(\s+)|(.)")

    def __init__(self, config: TextConfig | None = None) -> None:
        self.config = config or TextConfig()

    def base_symbols(self) -> tuple[str, ...]:
        phonemes = WITH_STRESS if self.config.stress else WITHOUT_STRESS
        return (*PAUSE_SYMBOLS, *phonemes)

    def normalize(self, text: str) -> str:
        # Inline phonemes must survive normalization untouched ("AH0" is not a number).
        parts = re.split(r"(\{[^}]*\})", text)
        return " ".join(p if p.startswith("{") else normalize_english(p) for p in parts if p.strip()).strip()

    def _units(self, normalized: str, warnings_out: list[str]) -> list[list[str]]:
        units: list[list[str]] = []
        unknown: list[str] = []
        pending_words: list[tuple[int, str]] = []  # (unit index, word) for the G2P, batched
        for match in self._TOKEN_RE.finditer(_WORD_HYPHEN_RE.sub(" ", _strip_accents(normalized))):
            braces, word, punct, _space, other = match.groups()
            if braces is not None:
                units.append(self._inline(braces, warnings_out))
            elif word is not None:
                known = self._lookup(word)
                if known is None:
                    pending_words.append((len(units), word.lower()))
                units.append(known or [])  # unknown words are filled in below
            elif punct is not None:
                units.append([_PAUSE_OF[punct]])
            elif other is not None and other not in _SILENT and not other.isspace():
                unknown.append(other)
        if unknown:
            warnings_out.append(_unknown_warning(unknown))
        if pending_words:
            # Imported here: the model needs torch, which a text made of dictionary words never pays for.
            from ttskit.text.g2p import default_g2p

            guesses = default_g2p().predict([w for _, w in pending_words])
            for (index, _), phones in zip(pending_words, guesses):
                units[index] = [self._stress(p) for p in phones]
        return units

    def _lookup(self, word: str) -> list[str] | None:
        entries = cmudict().get(word.lower())
        if entries:
            return [self._stress(p) for p in entries[0]]
        # Unknown all-capital tokens ("NTSC") are usually read letter by letter.
        if word.isupper() and 2 <= len(word) <= 5:
            letters = [cmudict().get(ch.lower()) for ch in word]
            if all(letters):
                return [self._stress(p) for entry in letters for p in entry[0]]  # type: ignore[index]
        return None

    def _stress(self, phoneme: str) -> str:
        return phoneme if self.config.stress else phoneme.rstrip("012")

    def _inline(self, braces: str, warnings_out: list[str]) -> list[str]:
        valid = set(self.base_symbols())
        phones = braces.strip("{}").split()
        bad = [p for p in phones if p not in valid]
        if bad:
            warnings_out.append(f"inline phonemes not in the ARPAbet set, skipped: {bad}")
        return [p for p in phones if p in valid]


class CharsFrontend(TextFrontend):
    """Graphemes of any script; digits stay digits (no language-specific expansion)."""

    name = "chars"

    def __init__(self, config: TextConfig | None = None) -> None:
        self.config = config or TextConfig(frontend="chars")

    def base_symbols(self) -> tuple[str, ...]:
        return (*PAUSE_SYMBOLS, WORD_BOUNDARY)

    def normalize(self, text: str) -> str:
        text = re.sub(r"\s+", " ", _fold_unicode(text)).strip()
        return text.lower() if self.config.lowercase else text

    def _units(self, normalized: str, warnings_out: list[str]) -> list[list[str]]:
        units: list[list[str]] = [[]]
        unknown: list[str] = []
        for ch in _WORD_HYPHEN_RE.sub(" ", normalized):
            category = unicodedata.category(ch)
            if ch in _PAUSE_OF:
                units += [[_PAUSE_OF[ch]], []]
            elif ch.isspace():
                units += [[WORD_BOUNDARY], []]
            elif category[0] in "LMN" or ch == "'":
                units[-1].append(ch)
            elif ch not in _SILENT:
                unknown.append(ch)
        if unknown:
            warnings_out.append(_unknown_warning(unknown))
        return units


class EspeakFrontend(TextFrontend):
    """IPA phonemes from the espeak-ng program (GPL, so it is used as a separate program only)."""

    name = "espeak"
    _CLAUSE_RE = re.compile(r"([,.;:?!()]|\s-\s)")

    def __init__(self, config: TextConfig | None = None) -> None:
        self.config = config or TextConfig(frontend="espeak")
        self.program = shutil.which("espeak-ng") or shutil.which("espeak")
        if self.program is None:
            raise FrontendUnavailable(
                "the espeak front end needs the espeak-ng program, which is not installed. "
                "Install it with `apt-get install espeak-ng` (Debian/Ubuntu), `brew install espeak-ng` (macOS) "
                "or from https://github.com/espeak-ng/espeak-ng/releases; or choose --frontend english or chars.")

    def base_symbols(self) -> tuple[str, ...]:
        return (*PAUSE_SYMBOLS, WORD_BOUNDARY)

    def normalize(self, text: str) -> str:
        # espeak-ng expands numbers itself, in the chosen language; only whitespace and quotes are ours.
        return re.sub(r"\s+", " ", _fold_unicode(text)).strip()

    def _phonemize(self, clause: str) -> list[list[str]]:
        result = subprocess.run([self.program, "-q", "--ipa", "--sep=_", "-v", self.config.language, clause],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise FrontendUnavailable(f"espeak-ng failed for voice {self.config.language!r}: "
                                      f"{result.stderr.strip() or 'exit ' + str(result.returncode)}")
        units: list[list[str]] = []
        for word in result.stdout.split():
            if units:
                units.append([WORD_BOUNDARY])
            phones = [p.replace("ˈ", "").replace("ˌ", "") if not self.config.stress else p for p in word.split("_")]
            units.append([p for p in phones if p])
        return units

    def _units(self, normalized: str, warnings_out: list[str]) -> list[list[str]]:
        units: list[list[str]] = []
        for piece in self._CLAUSE_RE.split(normalized):
            if not piece or piece.isspace():
                continue
            stripped = piece.strip()
            if stripped in _PAUSE_OF:
                units.append([_PAUSE_OF[stripped]])
            else:
                if units and not _is_pause(units[-1]):
                    units.append([WORD_BOUNDARY])
                units.extend(self._phonemize(stripped))
        return units


FRONTENDS: dict[str, type[TextFrontend]] = {"english": EnglishFrontend, "chars": CharsFrontend,
                                            "espeak": EspeakFrontend}


def build_frontend(config: TextConfig) -> TextFrontend:
    """The front end named by `config.frontend`, configured. (`nvidia-chars` registers itself in
    FRONTENDS when `ttskit.text` is imported: its module builds on this one.)"""
    return FRONTENDS[config.frontend](config)  # type: ignore[call-arg]



@dataclass
class EncodedText:
    text: str
    analysis: TextAnalysis
    ids: list[int]


def analyze_texts(texts: Sequence[str], config: TextConfig,
                  vocab: Vocab | None = None) -> tuple[list[EncodedText], Vocab, bool]:
    """Analyse and encode `texts`. Without a vocabulary, one is built from the front end's base
    symbols plus what the texts contain; the flag returned says when that made the ids depend on
    these texts (front ends without a fixed inventory)."""
    frontend = build_frontend(config)
    analyses = [frontend.analyze(t) for t in texts]
    built = vocab is None and not frontend.fixed_inventory
    if vocab is None:
        vocab = frontend.build_vocab(a.symbols for a in analyses)
    results = []
    for text, analysis in zip(texts, analyses):
        results.append(EncodedText(text, analysis, _encode_known(analysis, vocab)))
    return results, vocab, built
