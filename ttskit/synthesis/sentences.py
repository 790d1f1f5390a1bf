"""Long-form text -> sentences, so any length synthesises in batches and streams sentence by sentence.

A sentence ends at . ! ? (with closing quotes or brackets) before whitespace and a capital,
digit or opening quote, unless the word before the period is an abbreviation or an initial;
blank lines and line breaks between paragraphs end sentences too. Sentences longer than
`max_chars` are cut further at ; : and then at commas, so no single input grows beyond what the
acoustic model saw in training.
"""

from __future__ import annotations

import re

# Words that end with a period without ending the sentence ("Dr. Smith", "e.g. this").
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "jr", "sr", "st", "capt", "gen", "lt", "col", "maj", "sgt",
                  "rev", "hon", "gov", "sen", "rep", "co", "corp", "inc", "ltd", "bros", "mt", "ft", "ave",
                  "blvd", "rd", "dept", "univ", "approx", "vs", "etc", "no", "e.g", "i.e", "a.m", "p.m", "u.s",
                  "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
_END_RE = re.compile(r"([.!?]+[\"')\]]*)(\s+)(?=[\"'(\[]?[A-Z0-9])")
_PARAGRAPH_RE = re.compile(r"\s*\n\s*\n\s*|\s*\n\s*(?=[A-Z0-9\"'(\[])")


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    sentences: list[str] = []
    for paragraph in _PARAGRAPH_RE.split(text.strip()):
        sentences += _split_paragraph(" ".join(paragraph.split()))
    return [piece for sentence in sentences for piece in _cut_long(sentence, max_chars) if piece]


def _split_paragraph(paragraph: str) -> list[str]:
    pieces, start = [], 0
    for match in _END_RE.finditer(paragraph):
        before = paragraph[start:match.start(1)].split()
        last = before[-1].lower().rstrip(".") if before else ""
        if match.group(1).startswith(".") and (last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())):
            continue  # "Dr. Smith", "J. Smith"
        pieces.append(paragraph[start:match.end(1)].strip())
        start = match.end()
    pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]


def _cut_long(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    for separator in (r"(?<=[;:])\s+", r"(?<=,)\s+", r"\s+"):
        parts = re.split(separator, sentence)
        if len(parts) > 1:
            merged: list[str] = []
            for part in parts:  # rejoin neighbours while they fit, so pieces stay phrase-sized
                if merged and len(merged[-1]) + 1 + len(part) <= max_chars:
                    merged[-1] += " " + part
                else:
                    merged.append(part)
            return [piece for part in merged for piece in _cut_long(part, max_chars)]
    return [sentence]
