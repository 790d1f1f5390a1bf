from __future__ import annotations

import shutil

import pytest

from ttskit.config import TextConfig
from ttskit.text import FrontendUnavailable, Vocab, VocabError, build_frontend, normalize_english
from ttskit.text.frontend import PAUSE_SYMBOLS, EspeakFrontend, analyze_texts
from ttskit.text.numbers import cardinal, ordinal


@pytest.mark.parametrize("written, spoken", [
    ("Dr. Smith paid $3.50 on Jan. 5th, 1999.",
     "doctor Smith paid three dollars and fifty cents on january fifth, nineteen ninety-nine."),
    ("It is 3:15 pm.", "It is three fifteen p m."),
    ("Meet at 10 a.m. or 7pm.", "Meet at ten a m or seven p m."),
    ("Leave at 7 p.m.", "Leave at seven p m."),
    ("1, 2, 3", "one, two, three"),
    ("On February 31, 2024 and Jan. 5 we met.", "On February thirty-first, twenty twenty-four and january fifth we met."),
    ("May 3 people come? Yes, on May 3.", "May three people come? Yes, on May third."),
    ("We open at 9:05 and close at 5:00.", "We open at nine oh five and close at five o'clock."),
    ("Prices rose 12.5% in 2013.", "Prices rose twelve point five percent in twenty thirteen."),
    ("Born 1905, died 2000, back in 2007.", "Born nineteen oh five, died two thousand, back in two thousand seven."),
    ("The 1980s were loud.", "The nineteen eighties were loud."),
    ("I have 1,234 apples and -3 pears.", "I have one thousand two hundred thirty-four apples and minus three pears."),
    ("$1, $0.99, £2 and €1.5 million.", "one dollar, ninety-nine cents, two pounds and one point five million euros."),
    ("Mr. and Mrs. Jones live on Baker St. near St. Paul's.",
     "mister and missus Jones live on Baker street near saint Paul's."),
    ("Fish & chips + tea = lunch.", "Fish and chips plus tea equals lunch."),
    ("He came 2nd, she 21st, they 103rd.", "He came second, she twenty-first, they one hundred third."),
    ("It\u2019s \u201cfine\u201d \u2014 really\u2026", "It's \"fine\" - really..."),
    ("pi is 3.14159", "pi is three point one four one five nine"),
    ("No. 7, e.g. this one", "number seven, for example this one"),
    ("   lots   of\tspace  ", "lots of space"),
])
def test_normalizer(written, spoken):
    assert normalize_english(written) == spoken


def test_number_words():
    assert cardinal(0) == "zero"
    assert cardinal(115) == "one hundred fifteen"
    assert cardinal(2_000_019) == "two million nineteen"
    assert cardinal(-40) == "minus forty"
    assert [ordinal(n) for n in (1, 2, 3, 12, 30, 42, 100)] == \
        ["first", "second", "third", "twelfth", "thirtieth", "forty-second", "one hundredth"]


def english(**kwargs):
    return build_frontend(TextConfig(frontend="english", **kwargs))


def test_english_uses_cmudict_with_stress_and_pauses():
    analysis = english().analyze("Hello, world. Ready?")
    assert analysis.symbols == ["HH", "AH0", "L", "OW1", "sp", "W", "ER1", "L", "D", ".",
                                "R", "EH1", "D", "IY0", "?"]
    assert analysis.warnings == []
    assert english(stress=False).analyze("Hello").symbols == ["HH", "AH", "L", "OW"]


def test_english_hyphenated_words_are_not_pauses():
    symbols = english().analyze("ninety-nine well-known - cats").symbols
    assert symbols.count("sp") == 1
    assert symbols[-5:] == ["sp", "K", "AE1", "T", "S"]


def test_inline_phonemes_bypass_g2p_and_bad_ones_warn():
    analysis = english().analyze("Say {HH AH0 L OW1} {XX T}!")
    assert analysis.symbols == ["S", "EY1", "HH", "AH0", "L", "OW1", "T", "!"]
    assert any("XX" in w for w in analysis.warnings)


def test_unknown_characters_warn_and_never_crash():
    analysis = english().analyze("tea \u2603 caf\u00e9 \u4e2d")
    assert "U+2603" in analysis.warnings[0] and "U+4E2D" in analysis.warnings[0]
    assert analysis.symbols[:3] == ["T", "IY1", "K"]  # café folds to cafe, which CMUdict knows


def test_oov_words_get_g2p_pronunciations_and_acronyms_are_spelled():
    analysis = english().analyze("The blorptastic NTSC")
    assert analysis.warnings == []
    blorp = analysis.symbols[2:-8]
    assert blorp[0] == "B" and "L" in blorp and len(blorp) >= 6
    assert analysis.symbols[-8:] == ["EH1", "N", "T", "IY1", "EH1", "S", "S", "IY1"]


def test_english_vocab_is_fixed_and_covers_every_output():
    frontend = english()
    vocab = frontend.build_vocab()
    assert vocab.symbols[0] == "<pad>" and set(PAUSE_SYMBOLS) <= set(vocab.symbols)
    assert len(vocab) == 1 + len(PAUSE_SYMBOLS) + 69
    ids, analysis = frontend.encode("Quantum zyxomatic flux, 42 times!", vocab)
    assert vocab.decode(ids) == analysis.symbols and 0 not in ids


def test_chars_frontend_any_script():
    chars = build_frontend(TextConfig(frontend="chars"))
    analysis = chars.analyze("Ça va, Мир! 42 \u2603")
    assert analysis.symbols == ["ç", "a", " ", "v", "a", "sp", "м", "и", "р", "!", "4", "2"]
    assert "U+2603" in analysis.warnings[0]
    vocab = chars.build_vocab([analysis.symbols])
    ids, again = chars.encode("va, Ωmega", vocab)
    assert any("ω" in w for w in again.warnings)  # lower-cased before the lookup
    assert vocab.decode(ids) == again.symbols


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_frontend_gives_ipa_and_pauses():
    analysis = build_frontend(TextConfig(frontend="espeak")).analyze("Hello, world!")
    assert analysis.symbols[-1] == "!" and "sp" in analysis.symbols
    assert "h" in analysis.symbols and "ˈoʊ" in analysis.symbols


def test_espeak_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(FrontendUnavailable, match="apt-get install espeak-ng"):
        EspeakFrontend(TextConfig(frontend="espeak"))


def test_vocab_json_roundtrip_and_errors(tmp_path):
    vocab = Vocab.build(["a", "b", "a", "sp"])
    assert vocab.symbols == ("<pad>", "a", "b", "sp")
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert Vocab.load(path) == vocab
    with pytest.raises(VocabError, match="not in the vocabulary"):
        vocab.encode(["zz"])
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(VocabError, match="bad.json"):
        Vocab.load(tmp_path / "bad.json")


def test_analyze_texts_reports_when_ids_depend_on_the_text():
    _, _, built = analyze_texts(["hello"], TextConfig(frontend="english"))
    assert not built
    results, vocab, built = analyze_texts(["ab", "ba"], TextConfig(frontend="chars"))
    assert built and results[0].ids == [vocab.symbols.index("a"), vocab.symbols.index("b")]


def test_edit_distance_by_hand():
    from ttskit.text.distance import edit_distance

    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance(["HH", "AH0", "L", "OW1"], ["HH", "EH0", "L", "OW1", "Z"]) == 2
    assert edit_distance([], ["a"]) == 1 and edit_distance(["a"], []) == 1
