"""`ttskit synth` and the Synthesizer: controls, batches, long-form, streaming, errors, the demo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_acoustic_run
from typer.testing import CliRunner

from ttskit.cli import app
from ttskit.config import AudioConfig
from ttskit.synthesis import Synthesizer
from ttskit.synthesis.joining import Joiner, speech_level
from ttskit.synthesis.sentences import split_sentences

runner = CliRunner()
FRAMES_PER_PHONEME = 6


@pytest.fixture(scope="module")
def acoustic(mini_work, tmp_path_factory):
    """Every phoneme said in exactly 6 frames, so frame counts under --speed are known exactly."""
    return tiny_acoustic_run(mini_work, tmp_path_factory.mktemp("acoustic") / "run", FRAMES_PER_PHONEME)


def test_speed_scales_the_frames_and_controls_change_the_output(acoustic):
    synth = Synthesizer.from_checkpoints(acoustic, device="cpu")
    hop = synth.acoustic.audio.hop_length
    text = "Cats sat."
    ids = synth.sentences([text])[0].ids
    normal = synth.tts(text)
    assert len(normal) == len(ids) * FRAMES_PER_PHONEME * hop
    fast = synth.tts(text, speed=2.0)
    assert len(fast) == len(ids) * FRAMES_PER_PHONEME // 2 * hop  # exactly half the frames
    slow = synth.tts(text, speed=0.5)
    assert len(slow) == len(ids) * FRAMES_PER_PHONEME * 2 * hop
    assert not np.allclose(synth.tts(text, pitch=7.0), normal, atol=1e-4)
    assert not np.allclose(synth.tts(text, energy=1.5), normal, atol=1e-4)
    # --pitch in semitones is a ratio in Hz: the acoustic graph's F0 doubles at +12, frame for frame.
    ids_batch = np.array([ids]), np.array([len(ids)]), np.zeros(1, np.int64), np.ones(1, np.float32)
    plain = synth.engine(*ids_batch, np.zeros(1, np.float32), np.ones(1, np.float32))
    octave = synth.engine(*ids_batch, np.full(1, 12.0, np.float32), np.ones(1, np.float32))
    assert plain.frames == octave.frames
    assert torch.allclose(octave.f0, 2 * plain.f0, rtol=1e-4)


def test_long_form_is_split_joined_and_streams_identically(acoustic):
    synth = Synthesizer.from_checkpoints(acoustic, device="cpu")
    text = "Dr. Smith arrived at noon. He was late!\n\nWas anyone waiting? Nobody was."
    assert split_sentences(text) == ["Dr. Smith arrived at noon.", "He was late!", "Was anyone waiting?",
                                     "Nobody was."]
    whole = synth.tts(text)
    pieces = list(synth.stream(text))
    assert len(pieces) == 4
    # tts batches sentences, stream renders them one by one: the same mels up to float rounding
    # (~1e-6), which Griffin-Lim's iterations amplify to a few 1e-3 in a sample: far below hearing.
    streamed = np.concatenate(pieces)
    assert streamed.shape == whole.shape
    error = np.sum((streamed - whole) ** 2)
    assert 10 * np.log10(np.sum(whole ** 2) / error) > 30
    assert synth.timing.first_audio_s is not None and synth.timing.first_audio_s > 0
    # Each sentence is followed by its pause (silence), the last by none.
    single = [synth.tts(s) for s in split_sentences(text)]
    expected = sum(len(w) for w in single) + int(0.30 * 22050) * 2 + int(0.35 * 22050)
    assert len(whole) == expected


def test_joiner_fades_and_levels():
    rate = 22050
    t = np.arange(rate) / rate
    loud, soft = 0.8 * np.sin(2 * np.pi * 220 * t), 0.1 * np.sin(2 * np.pi * 220 * t + 1)
    joiner = Joiner(rate)
    first, second = joiner.piece(loud, "One.", False), joiner.piece(soft, "Two.", True)
    assert abs(first[0]) < 1e-6 and abs(second[-1]) < 1e-3  # faded ends: no click at a join
    assert np.all(first[rate:] == 0) and len(first) == rate + int(0.3 * rate)
    # 18 dB quieter; lifted by the 6 dB the leveller allows.
    gain = speech_level(second, rate) / speech_level(soft, rate)
    assert gain == pytest.approx(2.0, rel=0.02)
    # A sentence that would pass full scale (here levelled up by 6 dB) is scaled down, not clipped.
    hot = Joiner(rate)
    hot.piece(loud, "One.", False)
    peaky = 0.4 * np.sin(2 * np.pi * 220 * t)
    peaky[rate // 2] = 0.9  # one spike: levelled x2 it would reach 1.8
    limited = hot.piece(peaky, "Two.", True)
    assert np.abs(limited).max() == pytest.approx(0.99, abs=1e-6)
    assert limited[1000] / peaky[1000] == pytest.approx(limited[rate // 2] / peaky[rate // 2], rel=1e-5)  # one gain


def test_sentence_splitting_keeps_abbreviations_and_cuts_long_sentences():
    assert split_sentences("Mr. J. Doe met Mrs. Roe, e.g. at 5 p.m. yesterday. Then \"Go!\" She went.") == [
        "Mr. J. Doe met Mrs. Roe, e.g. at 5 p.m. yesterday.", "Then \"Go!\"", "She went."]
    long = ", ".join(f"clause number {i} of a very long sentence" for i in range(30)) + "."
    pieces = split_sentences(long, max_chars=120)
    assert len(pieces) > 5 and all(len(p) <= 120 for p in pieces)
    assert " ".join(pieces) == long
    assert split_sentences("   ") == []


def test_text_file_reads_ljspeech_metadata_saying_each_line_once(tmp_path):
    from ttskit.cli.common import UserError
    from ttskit.cli.synth_cmd import read_text_file

    lines = tmp_path / "metadata.csv"
    lines.write_text("LJ001-0001|Printing, in 1850.|Printing, in eighteen fifty.\nLJ001-0002|In being.|\n"
                     "plain|Just text.\nNo id at all.\n", encoding="utf-8")
    assert read_text_file(lines) == [("LJ001-0001", "Printing, in eighteen fifty."), ("LJ001-0002", "In being."),
                                     ("plain", "Just text."), ("0004", "No id at all.")]
    lines.write_text("a|b|c|d\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"metadata.csv:1: .*4 fields"):
        read_text_file(lines)


def test_cli_file_batch_and_stdout(acoustic, tmp_path):
    result = runner.invoke(app, ["synth", "Hello there. How are you?", "-o", str(tmp_path / "a.wav"),
                                 "--acoustic", str(acoustic), "--verbose"])
    assert result.exit_code == 0, result.output
    wave, rate = sf.read(tmp_path / "a.wav")
    assert rate == 22050 and len(wave) > 0
    assert "real-time factor" in result.stderr and "acoustic" in result.stderr
    lines = tmp_path / "lines.txt"
    lines.write_text("greet|Hello there.\nA second line, without an id.\n\nbad|...!\n")
    result = runner.invoke(app, ["synthesize", "--text-file", str(lines), "-o", str(tmp_path / "out"),
                                 "--acoustic", str(acoustic)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0002.wav", "greet.wav"]
    assert "skipped" in result.stderr and "nothing to pronounce" in result.stderr
    result = runner.invoke(app, ["synth", "One sentence. And another one.", "-o", "-", "--acoustic", str(acoustic)])
    assert result.exit_code == 0, result.stderr
    data = result.stdout_bytes
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt " and data[36:40] == b"data"
    samples = np.frombuffer(data[44:], dtype="<i2")
    expected = Synthesizer.from_checkpoints(acoustic, device="cpu").tts("One sentence. And another one.")
    assert len(samples) == len(expected)
    # The controls through the command line: --speed 2 halves the frames, as in the API.
    args = ["synth", "Cats sat.", "--acoustic", str(acoustic), "--speaker", Synthesizer.from_checkpoints(
        acoustic, device="cpu").speakers[0]]
    assert runner.invoke(app, [*args, "-o", str(tmp_path / "n.wav")]).exit_code == 0
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "f.wav"), "--speed", "2", "--pitch", "3", "--energy",
                                 "1.2", "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    assert len(sf.read(tmp_path / "f.wav")[0]) * 2 == len(sf.read(tmp_path / "n.wav")[0])
    result = runner.invoke(app, ["synth", "One sentence.", "-o", "-", "--raw", "--acoustic", str(acoustic)])
    assert result.exit_code == 0 and result.stdout_bytes[:4] != b"RIFF" and len(result.stdout_bytes) % 2 == 0


def test_bad_requests_are_clear_and_write_nothing(acoustic, tmp_path):
    from ttskit.checkpoints import jik876
    from ttskit.models.hifigan import PRESETS, Generator

    def synth(*args):
        return runner.invoke(app, ["synth", *args, "--acoustic", str(acoustic), "-o", str(tmp_path / "x.wav")])

    for args, message in ((["   "], "empty text"), (["?!..."], "nothing to pronounce"),
                          (["Hi.", "--speaker", "nobody"], "unknown speaker 'nobody'"),
                          (["Hi.", "--speed", "0"], "outside 0.1-10"), ([], "give the text to say")):
        result = synth(*args)
        assert result.exit_code == 2 and message in result.stderr, (args, result.stderr)
    generator = Generator(PRESETS["hifigan-v3"])
    jik876.save_generator(generator, tmp_path / "v16k" / "g_00000001", AudioConfig(sample_rate=16000, fmax=8000.0))
    result = synth("Hi.", "--vocoder", str(tmp_path / "v16k"))
    assert result.exit_code == 2 and "audio.sample_rate 22050 vs 16000" in result.stderr
    result = synth("Hi.", "--vocoder", str(acoustic))
    assert result.exit_code == 2 and "no vocoder checkpoint in it" in result.stderr
    result = synth("Hi.", "--vocoder", str(acoustic / "checkpoints" / "step_00000002.pt"))
    assert result.exit_code == 2 and "not a vocoder checkpoint" in result.stderr
    assert not (tmp_path / "x.wav").exists()
    result = synth("Hi § there.")
    assert result.exit_code == 0 and "warning" in result.stderr and "§" in result.stderr


def test_synthesis_through_a_trained_vocoder(acoustic, mini_work, tmp_path):
    from ttskit.checkpoints import jik876
    from ttskit.models.hifigan import PRESETS, Generator

    jik876.save_generator(Generator(PRESETS["hifigan-v2"]), tmp_path / "voc" / "g_00000001", AudioConfig())
    synth = Synthesizer.from_checkpoints(acoustic, tmp_path / "voc", device="cpu")
    wave = synth.tts("Cats sat.")
    assert synth.sample_rate == 22050 and wave.dtype == np.float32 and len(wave) > 0
    assert synth.timing.vocoder_s > 0 and synth.timing.real_time_factor > 0
    # bf16 vocoder: the same frames from the float32 acoustic model, so the same length, nearly the same audio.
    fast = Synthesizer.from_checkpoints(acoustic, tmp_path / "voc", device="cpu", precision="bf16")
    assert fast.vocoder.precision == "bf16"
    again = fast.tts("Cats sat.")
    assert again.shape == wave.shape and not np.array_equal(again, wave)
    assert np.mean((again - wave) ** 2) < 0.01 * np.mean(wave ** 2)
    result = runner.invoke(app, ["synth", "Cats sat.", "--acoustic", str(acoustic), "-o", str(tmp_path / "b.wav"),
                                 "--vocoder", str(tmp_path / "voc"), "--precision", "bf16"])
    assert result.exit_code == 0 and (tmp_path / "b.wav").is_file(), result.output
    result = runner.invoke(app, ["synth", "Cats sat.", "--acoustic", str(acoustic), "-o", str(tmp_path / "g.wav"),
                                 "--precision", "bf16"])
    assert result.exit_code == 2 and "Griffin-Lim runs in float32" in result.stderr
    assert not (tmp_path / "g.wav").exists()


def test_demo_runs_the_whole_pipeline(tmp_path):
    from ttskit.checkpoints import jik876
    from ttskit.models.hifigan import PRESETS, Generator

    jik876.save_generator(Generator(PRESETS["hifigan-v3"]), tmp_path / "voc" / "g_00000001", AudioConfig())
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "-o", str(out), "--clips", "6", "--steps", "2", "--vocoder",
                                 str(tmp_path / "voc")])
    assert result.exit_code == 0, result.output
    assert sf.info(str(out / "shipped_voice.wav")).duration > 2  # the demo leads with the shipped voice
    wave, rate = sf.read(out / "demo.wav")
    assert rate == 22050 and len(wave) > 0
    assert len(sf.read(out / "demo_vocoder.wav")[0]) == len(wave)  # the same mel, through the vocoder
    assert json.loads((out / "run" / "summary.json").read_text())["step"] == 2
    again = runner.invoke(app, ["demo", "-o", str(out), "--clips", "6", "--steps", "2", "--text", "Two words."])
    assert again.exit_code == 0 and "training skipped" in again.stderr
    assert len(sf.read(out / "demo.wav")[0]) != len(wave)  # the new text, spoken by the same model
