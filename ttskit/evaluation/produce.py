"""The hypothesis side of `ttskit eval --synth` and `--vocoder-only`: audio made for the reference's
utterances, written as `<out>/<id>.wav` so the ordinary by-id scoring applies to it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ttskit.audio.io import save_wav
from ttskit.evaluation.evaluate import EvaluationError, Item
from ttskit.runtime import InferencePrecision, default_device

Progress = Callable[[int], None]  # called with how many utterances were just finished


def synthesize_items(items: list[Item], out: Path, acoustic: Path, vocoder: str, speaker: str | None = None,
                     device: str | None = None, on_done: Progress | None = None,
                     precision: InferencePrecision = "fp32", sharpen: float = 1.0
                     ) -> tuple[dict[str, Item], list[str]]:
    """Speak each item's transcript free-running (durations, pitch and energy all predicted), as a
    user would hear it (`sharpen`: `Synthesizer.sharpen`). Returns the written items and the
    synthesiser's warnings."""
    from ttskit.synthesis import Synthesizer

    missing = [item.id for item in items if not item.text]
    if missing:
        raise EvaluationError(f"--synth needs transcripts; none for {', '.join(missing[:5])} (a metadata file gives them)")
    synth = Synthesizer.from_checkpoints(acoustic, vocoder, device, precision, sharpen)
    written: dict[str, Item] = {}
    warnings: list[str] = []
    # Each utterance in its own speaker's voice when the model knows it (a multi-speaker WORK
    # manifest), unless --speaker says otherwise.
    known = set(synth.speakers)
    voices: dict[str | None, list[Item]] = {}
    for item in items:
        voices.setdefault(speaker if speaker is not None else (item.speaker if item.speaker in known else None),
                          []).append(item)
    # Chunks keep the progress bar moving; within a chunk the synthesiser batches by length.
    chunk = 16
    for voice, group in voices.items():
        for start in range(0, len(group), chunk):
            part = group[start:start + chunk]
            waves = synth.tts_many([item.text or "" for item in part], voice, skip_unspeakable=True)
            warnings += synth.warnings
            for item, wave in zip(part, waves):
                if wave is not None:
                    path = out / f"{item.id}.wav"
                    save_wav(path, wave, synth.sample_rate)
                    written[item.id] = Item(item.id, path, item.text, item.speaker)
            if on_done:
                on_done(len(part))
    return written, warnings


def vocode_items(items: list[Item], out: Path, vocoder: Path, device: str | None = None,
                 on_done: Progress | None = None, precision: InferencePrecision = "fp32") -> dict[str, Item]:
    """Copy-synthesis: each recording analysed with the vocoder's own mel settings and vocoded back,
    so the scores measure the vocoder alone."""
    from ttskit.checkpoints.vocoder import load_vocoder
    from ttskit.models.vocoder import VocoderError
    from ttskit.synthesis.copy_synthesis import vocode_file

    model = load_vocoder(vocoder, default_device(device), precision)
    written: dict[str, Item] = {}
    for item in items:
        try:
            vocode_file(item.audio, out / f"{item.id}.wav", model)  # an AudioError names the file already
        except VocoderError as err:
            raise EvaluationError(f"{item.audio}: {err}") from None
        written[item.id] = Item(item.id, out / f"{item.id}.wav", item.text)
        if on_done:
            on_done(1)
    return written
