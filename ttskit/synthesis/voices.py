"""Voices: an acoustic model and a vocoder packed together with a model card, ready to speak.

A voice is a folder:

    voice.json      name, description, language, speakers, sample rate, licence, data, training
                    command and scores (the model card's facts, machine-readable)
    MODEL_CARD.md   the same for people
    acoustic.pt     the acoustic model for inference (weights, vocabulary, speakers, statistics,
                    text and audio settings; no optimiser state)
    vocoder.pt      the vocoder's generator file

ttskit ships voices inside the package (`ttskit/voices/<name>/`); `ttskit synth` with no model
options speaks with `DEFAULT_VOICE`, `--voice NAME` picks another shipped voice or a voice folder,
and `ttskit pack-voice` makes one from a train-acoustic and a train-vocoder run.

`ttskit export` writes the other kind of voice folder, for ONNX Runtime: `acoustic.onnx`,
`vocoder.onnx` and `voice.onnx.json` (everything a runtime needs; `ttskit.deploy.onnx_export`).
A folder may hold both kinds; `backend` picks (auto: torch where it has both).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import torch

from ttskit.audio.io import check_output_folder
from ttskit.checkpoints.acoustic import is_acoustic_checkpoint
from ttskit.checkpoints.formats import VOCODER_GENERATOR_FORMAT
from ttskit.checkpoints.resolve import resolve_checkpoint
from ttskit.checkpoints.store import load_checkpoint, save_checkpoint
from ttskit.checkpoints.vocoder import load_generator_and_state
from ttskit.config import AudioConfig, config_from_dict, mel_mismatches
from ttskit.errors import TtskitError
from ttskit.synthesis.postfilter import check_sharpening

VOICE_FORMAT = "ttskit-voice-1"
VOICE_FILE = "voice.json"
ONNX_VOICE_FORMAT = "ttskit-onnx-voice-1"
ONNX_VOICE_FILE = "voice.onnx.json"
CARD_FILE = "MODEL_CARD.md"
ACOUSTIC_FILE = "acoustic.pt"
VOCODER_FILE = "vocoder.pt"
DEFAULT_VOICE = "joe"
SHIPPED = Path(__file__).resolve().parent.parent / "voices"
# What synthesis needs of a train-acoustic checkpoint; the optimiser, scheduler and RNG states stay behind.
ACOUSTIC_KEYS = ("format", "run_config", "model", "audio", "text", "vocab", "speakers", "stats", "step")
Backend = Literal["auto", "torch", "onnx"]
BACKENDS = ("auto", "torch", "onnx")


class VoiceError(TtskitError, ValueError):
    """A voice cannot be found, read or packed; the message says which and why."""


@dataclass(frozen=True)
class Voice:
    name: str
    folder: Path
    card: dict[str, Any]
    backend: str = "torch"  # torch: voice.json + .pt files; onnx: voice.onnx.json + .onnx graphs

    @property
    def acoustic(self) -> Path:
        return self.folder / self.card.get("acoustic", ACOUSTIC_FILE)

    @property
    def vocoder(self) -> Path:
        return self.folder / self.card.get("vocoder", VOCODER_FILE)

    @property
    def sharpen(self) -> float:
        """The mel sharpening factor the voice was scored with (`postfilter`; 1: none)."""
        value = (self.card.get("synthesis") or {}).get("sharpen", 1.0)
        try:
            return check_sharpening(value)
        except (TypeError, ValueError) as err:  # SharpeningError is a ValueError
            raise VoiceError(f"{self.folder}: its card's synthesis.sharpen {value!r} is not usable ({err})") from None

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())


def read_voice(folder: Path, backend: str = "torch") -> Voice:
    """The voice in `folder`: its PyTorch files (voice.json) or its ONNX export (voice.onnx.json)."""
    file, expected = (VOICE_FILE, VOICE_FORMAT) if backend == "torch" else (ONNX_VOICE_FILE, ONNX_VOICE_FORMAT)
    path = folder / file
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VoiceError(f"{folder}: not a voice folder (no {file})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VoiceError(f"{path}: not readable ({err})") from None
    if not isinstance(card, dict) or card.get("format") != expected:
        raise VoiceError(f"{path}: not a ttskit voice (format {card.get('format') if isinstance(card, dict) else None!r},"
                         f" expected {expected!r})")
    voice = Voice(str(card.get("name") or folder.name), folder, card, backend)
    for part in (voice.acoustic, voice.vocoder):
        if not part.is_file():
            raise VoiceError(f"{folder}: the voice names {part.name}, which is missing")
    return voice


def shipped_voices() -> list[Voice]:
    """The voices inside the installed package, by name."""
    if not SHIPPED.is_dir():
        return []
    return sorted((read_voice(p) for p in SHIPPED.iterdir() if (p / VOICE_FILE).is_file()), key=lambda v: v.name)


def find_voice(name: str | Path | None = None, backend: str = "auto") -> Voice:
    """A shipped voice by name (None: the default), or a voice folder by path; `backend` (auto,
    torch, onnx) picks which of a folder's kinds is read (auto: torch where it has both)."""
    if backend not in BACKENDS:
        raise VoiceError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    wanted = str(name) if name is not None else DEFAULT_VOICE
    folder = next((v.folder for v in shipped_voices() if v.name == wanted), None)
    if folder is None and Path(wanted).is_dir():
        folder = Path(wanted)
    if folder is None:
        names = ", ".join(v.name for v in shipped_voices()) or "none (this installation has no voices folder)"
        raise VoiceError(f"no voice {wanted!r}: the shipped voices are {names}; or give a voice folder "
                         "made by `ttskit pack-voice` or `ttskit export`")
    has = {kind for kind, file in (("torch", VOICE_FILE), ("onnx", ONNX_VOICE_FILE)) if (folder / file).is_file()}
    if backend == "auto":
        backend = "torch" if "torch" in has or not has else "onnx"
    if backend not in has and has:
        hint = (f"export it for ONNX Runtime first: ttskit export {wanted} -o {Path(wanted).name}-onnx"
                if backend == "onnx" else "it was exported for ONNX Runtime only: use --backend onnx")
        raise VoiceError(f"the voice {wanted!r} ({folder}) has no {backend} files; {hint}")
    return read_voice(folder, backend)


def init_source(value: Path, part: str) -> Path:
    """`--init VALUE` of a training command: a path as given; `default` or a shipped voice's name
    (where no such path exists): that voice's acoustic model or vocoder (`part`)."""
    if value.exists():
        return value
    wanted = DEFAULT_VOICE if str(value) == "default" else str(value)
    for voice in shipped_voices():
        if voice.name == wanted:
            return voice.acoustic if part == "acoustic" else voice.vocoder
    return value  # the training command's own check names the missing file


def acoustic_for_inference(state: dict[str, Any]) -> dict[str, Any]:
    """A train-acoustic checkpoint without what only training needs."""
    return {key: state[key] for key in ACOUSTIC_KEYS if key in state}


def half_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with its float32 tensors stored as float16 (others as they are). Loading copies
    them into the model's float32 parameters (`load_state_dict` converts), so a voice packed this
    way runs in float32 at half the size on disk; the rounding (11 significant bits) is measured
    per voice on its held-out scores (docs/synth.md)."""
    too_large = [key for key, t in weights.items() if t.dtype == torch.float32 and t.numel()
                 and float(t.abs().max()) > torch.finfo(torch.float16).max]
    if too_large:
        raise VoiceError(f"weights too large for float16 ({', '.join(too_large[:3])}); pack without --half")
    return {key: t.half() if t.dtype == torch.float32 else t for key, t in weights.items()}


def model_card(card: dict[str, Any]) -> str:
    """MODEL_CARD.md from voice.json's facts."""
    lines = [f"# Voice `{card['name']}`", "", card.get("description", ""), "",
             "| | |", "|---|---|"]
    facts = [("language", card.get("language")), ("speakers", ", ".join(card.get("speakers", []))),
             ("sample rate", f"{card.get('sample_rate')} Hz"), ("licence", card.get("licence")),
             ("acoustic model", card.get("acoustic_model")), ("vocoder", card.get("vocoder_model")),
             ("weights", card.get("weights")),
             ("mel sharpening (synthesis)", (card.get("synthesis") or {}).get("sharpen")),
             ("data", card.get("data")), ("made", card.get("made"))]
    lines += [f"| {key} | {value} |" for key, value in facts if value]
    if card.get("training"):
        lines += ["", "## Training", "", "```bash", card["training"], "```"]
    scores = card.get("scores") or {}
    if scores:
        lines += ["", "## Scores", "", card.get("scores_note", ""), "", "| audio | " + " | ".join(
            next(iter(scores.values())).keys()) + " |", "|---|" + "---:|" * len(next(iter(scores.values())))]
        lines += [f"| {what} | " + " | ".join(str(v) for v in row.values()) + " |" for what, row in scores.items()]
    return "\n".join(lines).rstrip() + "\n"


def pack_voice(acoustic: Path, vocoder: Path, out: Path, name: str, *, description: str = "",
               licence: str = "", language: str = "en-US", data: str = "", training: str = "",
               scores: dict[str, dict[str, Any]] | None = None, scores_note: str = "",
               half: bool = False, sharpen: float = 1.0) -> Voice:
    """Pack the acoustic model and vocoder behind two runs (or checkpoints) into the voice folder
    `out`, which must not exist yet or be empty: a voice is written whole (into a temporary folder
    beside it, renamed at the end) or not at all. `half`: store the weights as float16, half the
    size (`half_weights`); they are loaded into float32 models and run as trained. `sharpen`: the
    mel sharpening factor synthesis applies with the voice (`postfilter`), recorded in voice.json."""
    sharpen = check_sharpening(sharpen)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VoiceError(f"{out} exists and is not empty; pack-voice writes a new folder and replaces nothing")
    check_output_folder(out.parent if out.parent != Path("") else Path("."))
    acoustic_file = resolve_checkpoint(acoustic, "acoustic")
    state = load_checkpoint(acoustic_file, error=VoiceError)
    if not is_acoustic_checkpoint(state):
        raise VoiceError(f"{acoustic_file}: not an acoustic-model checkpoint (format {state.get('format')!r})")
    _, vocoder_audio, vocoder_file, vocoder_state = load_generator_and_state(vocoder)  # one load, checked
    if vocoder_state.get("format") != VOCODER_GENERATOR_FORMAT:
        raise VoiceError(f"{vocoder_file}: pack a generator file of `ttskit train-vocoder` (generator_*.pt, "
                         "or the run folder)")
    audio = config_from_dict(AudioConfig, state["audio"], source=str(acoustic_file))
    mismatches = mel_mismatches(audio, vocoder_audio)
    if mismatches:
        listed = ", ".join(f"{key} {a!r} vs {b!r}" for key, a, b in mismatches)
        raise VoiceError(f"the acoustic model {acoustic_file} and the vocoder {vocoder_file} use different mel "
                         f"settings ({listed})")
    speakers = sorted(state["speakers"], key=state["speakers"].__getitem__)
    card = {"format": VOICE_FORMAT, "name": name, "description": description, "language": language,
            "speakers": speakers, "sample_rate": audio.sample_rate, "licence": licence, "data": data,
            "acoustic": ACOUSTIC_FILE, "vocoder": VOCODER_FILE,
            "acoustic_model": f"{state['format']} step {state.get('step')}",
            "vocoder_model": f"{vocoder_state.get('architecture', 'hifigan')} step {vocoder_state.get('step')}",
            "weights": "float16" if half else "float32", "synthesis": {"sharpen": sharpen},
            "training": training, "scores": scores or {}, "scores_note": scores_note, "made": date.today().isoformat()}
    acoustic_state, vocoder_state = acoustic_for_inference(state), dict(vocoder_state)
    if half:
        acoustic_state["model"] = half_weights(acoustic_state["model"])
        vocoder_state["generator"] = half_weights(vocoder_state["generator"])
    staging = out.parent / f".{out.name}.packing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        save_checkpoint(staging / ACOUSTIC_FILE, acoustic_state)
        save_checkpoint(staging / VOCODER_FILE, vocoder_state)
        (staging / VOICE_FILE).write_text(json.dumps(card, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        (staging / CARD_FILE).write_text(model_card(card), encoding="utf-8")
        if out.is_dir():
            out.rmdir()  # empty, checked above
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return read_voice(out)
