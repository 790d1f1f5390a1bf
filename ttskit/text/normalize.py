"""English text normalization: written forms -> words a speaker would say.

Order matters: abbreviations and symbols that contain digits or periods are expanded
before plain numbers, and currency before decimals ("$3.50" is money, not "three point five").
"""

from __future__ import annotations

import re
import unicodedata

from ttskit.text.numbers import cardinal, ordinal

# Unicode punctuation folded to ASCII so the rest of the pipeline sees one form of each.
UNICODE_FOLD = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": " - ", "\u2014": " - ", "\u2015": " - ", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u00b7": " ",
}

_ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "prof": "professor", "jr": "junior",
    "sr": "senior", "capt": "captain", "gen": "general", "lt": "lieutenant", "col": "colonel",
    "maj": "major", "sgt": "sergeant", "rev": "reverend", "hon": "honorable", "gov": "governor",
    "sen": "senator", "rep": "representative", "co": "company", "corp": "corporation", "inc": "incorporated",
    "ltd": "limited", "bros": "brothers", "mt": "mount", "ft": "fort", "ave": "avenue", "blvd": "boulevard",
    "rd": "road", "dept": "department", "univ": "university", "approx": "approximately", "vs": "versus",
    "etc": "et cetera", "no": "number",
    "jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june", "jul": "july",
    "aug": "august", "sep": "september", "sept": "september", "oct": "october", "nov": "november",
    "dec": "december", "mon": "monday", "tue": "tuesday", "tues": "tuesday", "wed": "wednesday",
    "thu": "thursday", "thur": "thursday", "thurs": "thursday", "fri": "friday", "sat": "saturday",
    "sun": "sunday",
}
# "No." is "number" only before a digit; "St." is "saint" before a name and "street" otherwise.
_ABBREVIATION_RE = re.compile(
    r"\b(" + "|".join(sorted((k for k in _ABBREVIATIONS if k != "no"), key=len, reverse=True)) + r")\.",
    re.IGNORECASE)
_NUMBER_ABBREVIATION_RE = re.compile(r"\bno\.\s*(?=\d)", re.IGNORECASE)
_SAINT_RE = re.compile(r"\b(?i:st)\.\s+(?=[A-Z])")
_STREET_RE = re.compile(r"\bst\.", re.IGNORECASE)
_LATIN_RE = [(re.compile(r"\be\.g\.", re.IGNORECASE), "for example"),
             (re.compile(r"\bi\.e\.", re.IGNORECASE), "that is"),
             # "a.m." keeps its final period only where it also ends the sentence.
             (re.compile(r"\b([ap])\.m\.(?=\s*$)", re.IGNORECASE), r"\1m."),
             (re.compile(r"\b([ap])\.m\.", re.IGNORECASE), r"\1m")]

# A number with thousands separators, or plain digits: "1,234" but not the comma in "1, 2".
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)"

_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}
_SCALES = {"k": "thousand", "thousand": "thousand", "m": "million", "million": "million", "mn": "million",
           "b": "billion", "bn": "billion", "billion": "billion", "trillion": "trillion"}
_CURRENCY_RE = re.compile(
    r"([$£€¥])\s?(" + _NUM + r")(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion|bn|mn|[kmb])\b)?",
    re.IGNORECASE)
_TIME_RE = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([ap])\.?\s?m\b|\b(\d{1,2}):(\d{2})\b",
                      re.IGNORECASE)
_AM_PM_RE = re.compile(r"\b(\d{1,2})\s*([ap])\.?m\b", re.IGNORECASE)
_PERCENT_RE = re.compile(r"(-?" + _NUM + r"(?:\.\d+)?)\s?%")
_ORDINAL_RE = re.compile(r"\b(" + _NUM + r")(st|nd|rd|th)\b", re.IGNORECASE)
# "February 31", "Jan. 5" (after abbreviation expansion): days are read as ordinals.
# "May" is a month only after a date preposition ("on May 3"), not in "May 3 people come?".
_MONTH_DAY_RE = re.compile(r"\b(january|february|march|april|june|july|august|september|october|november|december|"
                           r"(?:(?<=\bon )|(?<=\bof )|(?<=\bin )|(?<=\bby )|(?<=\bsince )|(?<=\buntil )|"
                           r"(?<=\bfrom )|(?<=\bbefore )|(?<=\bafter ))may)"
                           r"\s+([1-9]|[12]\d|3[01])\b(?!\s*(?:st|nd|rd|th)\b|[.,:]\d|\d)", re.IGNORECASE)
_DECADE_RE = re.compile(r"\b(1[1-9]|20)(\d0)'?s\b")
_YEAR_RE = re.compile(r"(?<![\d.,$£€¥-])\b(1[1-9]\d\d|20\d\d)\b(?![.,]\d)")
_DECIMAL_RE = re.compile(r"(?<![\d.])(-?)(" + _NUM + r")?\.(\d+)\b")
_NUMBER_RE = re.compile(r"(?<![\w.])(-?)(" + _NUM + r")\b")
_DIGITS_IN_WORD_RE = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number ", "%": " percent ",
            "/": " slash ", "°": " degrees ", "×": " times "}
_WHITESPACE_RE = re.compile(r"\s+")


def _clean_int(digits: str) -> int:
    return int(digits.replace(",", ""))


def year(n: int) -> str:
    """1999 -> nineteen ninety-nine, 1905 -> nineteen oh five, 2000 -> two thousand, 2013 -> twenty thirteen."""
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{cardinal(high)} hundred"
    if low < 10:
        return f"{cardinal(high)} oh {cardinal(low)}"
    return f"{cardinal(high)} {cardinal(low)}"


def _digits(text: str) -> str:
    return " ".join("oh" if d == "0" else cardinal(int(d)) for d in text)


def _money(match: re.Match) -> str:
    unit, units, sub, subs = _CURRENCIES[match.group(1)]
    whole = _clean_int(match.group(2))
    fraction, scale = match.group(3), match.group(4)
    if scale:
        amount = cardinal(whole) + (f" point {_digits(fraction)}" if fraction else "")
        return f"{amount} {_SCALES[scale.lower()]} {units}"
    cents = int((fraction + "00")[:2]) if fraction else 0
    parts = []
    if whole or not cents:
        parts.append(f"{cardinal(whole)} {unit if whole == 1 else units}")
    if cents:
        parts.append(f"{cardinal(cents)} {sub if cents == 1 else subs}")
    return " and ".join(parts)


def _time(match: re.Match) -> str:
    if match.group(1):
        hours, minutes, meridiem = int(match.group(1)), int(match.group(2)), match.group(4).lower()
    else:
        hours, minutes, meridiem = int(match.group(5)), int(match.group(6)), ""
        if hours > 24 or minutes > 59:
            return match.group(0)
    if minutes == 0:
        spoken = f"{cardinal(hours)} o'clock" if not meridiem else cardinal(hours)
    elif minutes < 10:
        spoken = f"{cardinal(hours)} oh {cardinal(minutes)}"
    else:
        spoken = f"{cardinal(hours)} {cardinal(minutes)}"
    return f"{spoken} {meridiem} m" if meridiem else spoken


def _decimal(match: re.Match) -> str:
    sign = "minus " if match.group(1) else ""
    whole = cardinal(_clean_int(match.group(2))) if match.group(2) else "zero"
    return f"{sign}{whole} point {_digits(match.group(3))}"


def _number(match: re.Match) -> str:
    digits = match.group(2)
    sign = "minus " if match.group(1) else ""
    # Long digit strings without separators are read digit by digit (phone and serial numbers).
    if len(digits) > 9 and "," not in digits:
        return sign + _digits(digits)
    return sign + cardinal(_clean_int(digits))


def normalize_english(text: str) -> str:
    """Expand numbers, currency, times, abbreviations and symbols; fold Unicode punctuation."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(UNICODE_FOLD.get(ch, ch) for ch in text)
    for pattern, spoken in _LATIN_RE:
        text = pattern.sub(spoken, text)
    text = _NUMBER_ABBREVIATION_RE.sub("number ", text)
    text = _SAINT_RE.sub("saint ", text)
    text = _STREET_RE.sub("street", text)
    text = _ABBREVIATION_RE.sub(lambda m: _ABBREVIATIONS[m.group(1).lower()], text)
    text = _CURRENCY_RE.sub(_money, text)
    text = _TIME_RE.sub(_time, text)
    text = _AM_PM_RE.sub(lambda m: f"{cardinal(int(m.group(1)))} {m.group(2).lower()} m", text)
    text = _PERCENT_RE.sub(lambda m: f"{m.group(1)} percent", text)
    text = _ORDINAL_RE.sub(lambda m: ordinal(_clean_int(m.group(1))), text)
    text = _MONTH_DAY_RE.sub(lambda m: f"{m.group(1)} {ordinal(int(m.group(2)))}", text)
    text = _DECADE_RE.sub(lambda m: _decade(int(m.group(1) + m.group(2))), text)
    text = _YEAR_RE.sub(lambda m: year(int(m.group(1))), text)
    text = _DECIMAL_RE.sub(_decimal, text)
    text = _DIGITS_IN_WORD_RE.sub(" ", text)
    text = _NUMBER_RE.sub(_number, text)
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    return _WHITESPACE_RE.sub(" ", text).strip()


def _decade(n: int) -> str:
    """1980s -> nineteen eighties, 2000s -> two thousands."""
    spoken = year(n)
    if spoken.endswith("y"):
        return spoken[:-1] + "ies"
    return spoken + "s"
