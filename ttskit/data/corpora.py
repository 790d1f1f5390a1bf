"""Corpus adapters: a corpus folder or list file -> Utterance records (or a reason to skip one)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ttskit.audio.io import AUDIO_SUFFIXES
from ttskit.errors import TtskitError

CorpusKind = Literal["ljspeech", "vctk", "list"]
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


class CorpusError(TtskitError, ValueError):
    """The corpus as a whole cannot be read (missing folder, no metadata): nothing to do."""


@dataclass(frozen=True)
class Utterance:
    id: str
    speaker: str
    text: str
    audio: Path


@dataclass(frozen=True)
class BadEntry:
    """A corpus entry that cannot become an Utterance, with the reason (reported, not fatal)."""

    id: str
    source: str
    reason: str


Entry = Utterance | BadEntry


def safe_id(raw: str) -> str:
    """A file-name-safe id: ids become file names under WORK/."""
    return _SAFE_ID.sub("_", raw).strip("._") or "utt"


def _read_lines(path: Path, missing: str) -> list[tuple[int, str | None]]:
    """(line number, text) of a corpus' index file; text None for a line that is not UTF-8 (the
    reader reports it by number and goes on). A UTF-8 byte-order mark is dropped. `missing` is
    the error when the file does not exist."""
    if not path.is_file():
        raise CorpusError(missing)
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    lines: list[tuple[int, str | None]] = []
    for number, line in enumerate(raw.splitlines(), 1):
        try:
            lines.append((number, line.decode("utf-8")))
        except UnicodeDecodeError:
            lines.append((number, None))
    return lines


def _not_utf8(index: Path, number: int) -> BadEntry:
    return BadEntry(f"{index.name}:{number}", f"{index}:{number}",
                    f"line {number} of {index.name} is not UTF-8 text (save the file as UTF-8)")


def _unsafe_id(raw_id: str) -> str | None:
    """Why an id cannot name a file inside the corpus (None: it can)."""
    if "/" in raw_id or "\\" in raw_id or raw_id in (".", ".."):
        return f"id {raw_id!r} holds a path separator or '..'; an id names a file in the corpus' wavs/ folder"
    return None


def read_ljspeech(root: Path, speaker: str = "ljspeech") -> Iterator[Entry]:
    """LJSpeech: root/metadata.csv (`id|text|normalized text`) and root/wavs/<id>.wav (or .flac)."""
    metadata = root / "metadata.csv"
    lines = _read_lines(metadata, f"{root}: no metadata.csv (an LJSpeech folder holds metadata.csv and wavs/)")
    for number, line in lines:
        if line is None:
            yield _not_utf8(metadata, number)
            continue
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) not in (2, 3) or not fields[0].strip():
            yield BadEntry(f"{metadata.name}:{number}", f"{metadata}:{number}",
                           f"expected `id|text|normalized text`, got {len(fields)} field(s)")
            continue
        raw_id = fields[0].strip()
        if (unsafe := _unsafe_id(raw_id)) is not None:
            yield BadEntry(f"{metadata.name}:{number}", f"{metadata}:{number}", unsafe)
            continue
        # The normalized column, when present and not empty, is what the speaker said.
        text = (fields[2] if len(fields) == 3 and fields[2].strip() else fields[1]).strip()
        audio = _find_audio(root / "wavs", raw_id)
        yield Utterance(safe_id(raw_id), speaker, text, audio)


def read_vctk(root: Path) -> Iterator[Entry]:
    """VCTK: root/wav48*/SPK/*.wav|flac (or root/wav/SPK) and root/txt/SPK/<id>.txt."""
    audio_root = next((root / name for name in ("wav48_silence_trimmed", "wav48", "wav", "wavs", "flac")
                       if (root / name).is_dir()), None)
    text_root = root / "txt"
    if audio_root is None or not text_root.is_dir():
        raise CorpusError(f"{root}: expected a VCTK layout with txt/SPEAKER/*.txt and wav48/ (or wav/) "
                          "holding SPEAKER/*.wav|flac")
    speakers = sorted(p for p in audio_root.iterdir() if p.is_dir())
    if not speakers:
        raise CorpusError(f"{audio_root}: no speaker folders")
    for speaker_dir in speakers:
        speaker = speaker_dir.name
        files = sorted(p for p in speaker_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        seen: set[str] = set()
        for audio in files:
            # VCTK 0.92 has two microphones per utterance (p225_001_mic1.flac, _mic2): take the first.
            stem = re.sub(r"_mic\d$", "", audio.stem)
            if stem in seen:
                continue
            seen.add(stem)
            transcript = text_root / speaker / f"{stem}.txt"
            if not transcript.is_file():
                yield BadEntry(safe_id(stem), str(audio), f"no transcript {transcript}")
                continue
            try:
                text = transcript.read_text(encoding="utf-8-sig").strip()
            except (UnicodeDecodeError, OSError) as err:
                yield BadEntry(safe_id(stem), str(transcript), f"transcript {transcript} cannot be read ({err})")
                continue
            yield Utterance(safe_id(stem), speaker, text, audio)


def read_list(list_file: Path, default_speaker: str = "speaker") -> Iterator[Entry]:
    """Lines `audio_path|text` or `audio_path|speaker|text`; paths relative to the list file."""
    lines = _read_lines(list_file, f"{list_file}: list file not found")
    folder = Path(os.path.normpath(list_file.parent.absolute()))
    for number, line in lines:
        if line is None:
            yield _not_utf8(list_file, number)
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("|")
        if len(fields) == 2:
            path, speaker, text = fields[0], default_speaker, fields[1]
        elif len(fields) == 3:
            path, speaker, text = fields
        else:
            yield BadEntry(f"{list_file.name}:{number}", f"{list_file}:{number}",
                           f"expected `audio_path|text` or `audio_path|speaker|text`, got {len(fields)} field(s)")
            continue
        audio = (list_file.parent / path.strip()).resolve()
        # Lexically, so that a corpus whose files are symlinks to another disk still reads.
        if not Path(os.path.normpath(folder / path.strip())).is_relative_to(folder):
            yield BadEntry(f"{list_file.name}:{number}", f"{list_file}:{number}",
                           f"audio {path.strip()!r} is outside {folder} (paths are relative to the list file "
                           "and stay inside its folder)")
            continue
        uid = safe_id(f"{speaker.strip()}_{audio.stem}" if len(fields) == 3 else audio.stem)
        yield Utterance(uid, speaker.strip() or default_speaker, text.strip(), audio)


def _find_audio(folder: Path, stem: str) -> Path:
    for suffix in AUDIO_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return folder / f"{stem}.wav"  # reported as missing when it is read


def read_corpus(kind: CorpusKind, source: Path) -> list[Entry]:
    """All entries of a corpus, sorted by id; duplicate ids are reported, not silently merged."""
    reader = {"ljspeech": read_ljspeech, "vctk": read_vctk, "list": read_list}[kind]
    entries = list(reader(source))
    seen: set[str] = set()
    out: list[Entry] = []
    for entry in sorted(entries, key=lambda e: e.id):
        if entry.id in seen:
            out.append(BadEntry(f"{entry.id}#dup{len(out)}", str(getattr(entry, "audio", entry.id)),
                                f"duplicate id {entry.id}"))
            continue
        seen.add(entry.id)
        out.append(entry)
    if not any(isinstance(e, Utterance) for e in out):
        raise CorpusError(f"{source}: no utterances found in this {kind} corpus")
    return out
