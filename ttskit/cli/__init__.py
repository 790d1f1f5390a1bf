"""The `ttskit` command: one Typer app; each command lives in its own module and stays thin."""

from __future__ import annotations

import typer

from ttskit.cli import (
    demo_cmd,
    download_cmd,
    eval_cmd,
    export_cmd,
    preprocess_cmd,
    serve_cmd,
    synth_cmd,
    text_cmd,
    train_acoustic_cmd,
    train_vocoder_cmd,
    version_cmd,
    vocode_cmd,
    voices_cmd,
)

app = typer.Typer(
    name="ttskit",
    help="Turn a speech corpus into a neural voice.\n\n"
         "Start with `ttskit text \"Hello there.\"` to see what the text front end makes of a sentence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("text")(text_cmd.text)
app.command("version")(version_cmd.version)
app.add_typer(preprocess_cmd.app, name="preprocess")
app.command("train-acoustic")(train_acoustic_cmd.train_acoustic)
app.command("train-vocoder")(train_vocoder_cmd.train_vocoder)
app.command("vocode")(vocode_cmd.vocode)
app.command("synthesize")(synth_cmd.synthesize)
app.command("demo")(demo_cmd.demo)
app.command("download")(download_cmd.download)
app.command("eval")(eval_cmd.evaluate)
app.command("voices")(voices_cmd.voices)
app.command("pack-voice")(voices_cmd.pack_voice)
app.command("export")(export_cmd.export)
app.command("serve")(serve_cmd.serve)
app.command("synth", help="Alias of `synthesize`: speak text with a trained voice.")(synth_cmd.synthesize)


def main() -> None:
    app()
