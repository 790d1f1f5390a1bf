"""`ttskit synthesize` (alias `synth`): text -> wav with an acoustic model and a vocoder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ttskit.cli.common import DeviceOption, PrecisionOption, UserError, err_console, user_errors, warn_about_precision


def read_text_file(path: Path) -> list[tuple[str, str]]:
    """(id, text) per non-blank line: `id|text`, LJSpeech's `id|text|normalized text` (the normalized
    text, when not empty, as the corpus reader and `ttskit eval` take it), or bare text numbered by
    its line."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) > 3:
            raise UserError(f"{path}:{number}: expected `id|text`, `id|text|normalized text` or bare text, "
                            f"got {len(fields)} fields")
        if len(fields) == 1 or not fields[0].strip():
            items.append((f"{number:04d}", line))
            continue
        said = fields[2] if len(fields) == 3 and fields[2].strip() else fields[1]
        items.append((fields[0].strip(), said))
    if not items:
        raise UserError(f"{path}: no text in it")
    seen: set[str] = set()
    for uid, _ in items:
        if uid in seen or "/" in uid:
            raise UserError(f"{path}: id {uid!r} is repeated or not a file name")
        seen.add(uid)
    return items


def synthesize(
    text: Annotated[Optional[str], typer.Argument(help="What to say (any length; split into sentences).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .wav; `-` streams to stdout; a folder with "
                                                                "--text-file.")] = Path("out.wav"),
    voice: Annotated[Optional[str], typer.Option(
        "--voice", help="A shipped voice (`ttskit voices`), a voice folder from `ttskit pack-voice`, or one from "
                        "`ttskit export` (ONNX Runtime); the default voice when neither this nor --acoustic is "
                        "given.")] = None,
    backend: Annotated[str, typer.Option(
        help="With --voice: torch, onnx (an exported folder; pip install \"ttskit[onnx]\"), or auto (what the "
             "folder has; torch where it has both).")] = "auto",
    acoustic: Annotated[Optional[Path], typer.Option("--acoustic", "-a", exists=True,
                                                     help="train-acoustic run folder or checkpoint (instead of a "
                                                          "voice).")] = None,
    vocoder: Annotated[Optional[str], typer.Option(
        "--vocoder", "-v", help="With --acoustic: a train-vocoder run folder or checkpoint, a jik876/hifi-gan g_ "
                                "file, or griffin-lim (the default: no trained vocoder needed).")] = None,
    speaker: Annotated[Optional[str], typer.Option(help="Speaker name or id (default: the first).")] = None,
    speed: Annotated[float, typer.Option(help="x faster (2 = twice as fast, about half the frames).")] = 1.0,
    pitch: Annotated[float, typer.Option(help="Pitch shift in semitones (+ higher).")] = 0.0,
    energy: Annotated[float, typer.Option(help="x the frame energy (> 1 louder, more emphatic).")] = 1.0,
    sharpen: Annotated[Optional[float], typer.Option(
        help="Mel sharpening before the vocoder: x the mel's fine detail over frames and bands, each frame's "
             "loudness kept (1: as predicted; default: the voice's own setting, else 1).")] = None,
    text_file: Annotated[Optional[Path], typer.Option(
        "--text-file", exists=True, dir_okay=False, help="One utterance per line (`id|text`, LJSpeech's "
                                                         "`id|text|normalized text`, or text); "
                                                         "writes -o DIR/<id>.wav, in length-sorted batches.")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="With -o -: raw 16-bit PCM, no WAV header.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Per-stage times and time to first audio.")] = False,
    device: DeviceOption = None,
    precision: PrecisionOption = "fp32",
) -> None:
    """Speak text: with the shipped default voice, a voice by name, or your own trained models.

    Examples:
      ttskit synth "Hello there." -o hello.wav
      ttskit synth "Hello there." -o hello.wav --acoustic runs/lj --vocoder runs/lj-vocoder
      ttskit synth "Hello there." -o hello.wav --voice joe-onnx        # made by `ttskit export -o joe-onnx`
      ttskit synth "$(cat chapter.txt)" -o - --acoustic runs/lj | aplay
      ttskit synth --text-file lines.txt -o out/ --acoustic runs/vctk --speaker p225 --speed 1.1
    """
    from ttskit.audio.io import check_output, check_output_folder, save_wav
    from ttskit.synthesis import Synthesizer
    from ttskit.synthesis.postfilter import check_sharpening

    with user_errors():
        if sharpen is not None:
            check_sharpening(sharpen)  # before any model is loaded
        if (text is None) == (text_file is None):
            raise UserError("give the text to say, or --text-file FILE (not both)")
        # Checked before any model is loaded: a bad -o costs nothing and replaces nothing.
        if text_file is not None:
            if output.suffix:
                raise UserError(f"--text-file writes one wav per line into a folder; -o {output} looks like a file")
            check_output_folder(output)
            items = read_text_file(text_file)
            for uid, _ in items:
                check_output(output / f"{uid}.wav")
        elif str(output) != "-":
            if output.suffix.lower() != ".wav":
                raise UserError(f"-o {output}: synth writes WAV files; give a name ending in .wav (or - for stdout)")
            check_output(output)
        if voice is not None and (acoustic is not None or vocoder is not None):
            raise UserError("--voice brings its own acoustic model and vocoder: give --voice, or --acoustic "
                            "(and --vocoder), not both")
        if vocoder is not None and acoustic is None:
            raise UserError("--vocoder goes with --acoustic RUN; a voice brings its own vocoder")
        if backend != "auto" and acoustic is not None:
            raise UserError("--backend picks how a voice folder runs; --acoustic RUN runs in torch")
        synth = (Synthesizer.from_voice(voice, device, precision, backend, sharpen) if acoustic is None
                 else Synthesizer.from_checkpoints(acoustic, vocoder or "griffin-lim", device, precision,
                                                   1.0 if sharpen is None else sharpen))
        warn_about_precision(precision, synth.device)
        for note in synth.vocoder.notes:
            err_console.print(f"[dim]note:[/] {note}", highlight=False, soft_wrap=True)
        if verbose:
            named = f"voice {synth.voice.name!r}: " if synth.voice is not None else ""
            err_console.print(f"{named}acoustic {synth.acoustic.source}, vocoder {synth.vocoder.source}, "
                              f"on {synth.device} ({synth.backend})", highlight=False, soft_wrap=True)
        if text_file is not None:
            waves = synth.tts_many([t for _, t in items], speaker, speed, pitch, energy, skip_unspeakable=True)
            for (uid, _), wave in zip(items, waves):
                if wave is not None:
                    save_wav(output / f"{uid}.wav", wave, synth.sample_rate)
            written = sum(w is not None for w in waves)
            where = f"{written} wav files in {output}"
        elif text is None:
            raise UserError("give the text to say")  # unreachable: checked above; narrows the type
        elif str(output) == "-":
            from ttskit.synthesis.wav_stream import wav_header, write_chunk

            stdout = sys.stdout.buffer
            if not raw:
                stdout.write(wav_header(synth.sample_rate))
            for piece in synth.stream(text, speaker, speed, pitch, energy):
                write_chunk(stdout, piece)
            where = "stdout"
        else:
            save_wav(output, synth.tts(text, speaker, speed, pitch, energy), synth.sample_rate)
            where = str(output)
        for warning in synth.warnings:
            err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        t = synth.timing
        err_console.print(f"[green]{t.audio_s:.2f} s of audio[/] -> {where}; real-time factor {t.real_time_factor:.3f} "
                          f"({1 / max(t.real_time_factor, 1e-9):.1f}x real time)", highlight=False, soft_wrap=True)
        if verbose:
            first = f", first audio after {t.first_audio_s * 1000:.0f} ms" if t.first_audio_s is not None else ""
            err_console.print(f"text {t.text_s:.3f} s, acoustic {t.acoustic_s:.3f} s, vocoder {t.vocoder_s:.3f} s"
                              f"{first}", highlight=False, soft_wrap=True)
