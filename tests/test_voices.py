"""Voices: the shipped default voice speaks intelligibly with no model options (CLI and API), every
control works with it, `ttskit voices` lists it, `ttskit pack-voice` makes a voice folder, and
`--init default` fine-tunes from the shipped vocoder."""

from __future__ import annotations

import json
import shutil
import wave

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from ttskit.audio.mel import MelSpectrogram
from ttskit.checkpoints.store import load_checkpoint
from ttskit.cli import app
from ttskit.evaluation.intelligibility import Recognizer
from ttskit.synthesis import Synthesizer
from ttskit.synthesis.voices import DEFAULT_VOICE, SHIPPED, find_voice, shipped_voices

runner = CliRunner()
# Held-out lines (sentences.txt 10,001 onward: never trained on) whose recordings by the corpus
# voice pocketsphinx gets entirely right (joe_heldout: SY01-10002, -10016, -10022, -10023, -10031, -10053).
HELD_OUT = [
    "Revenge is a meal best served cold.",
    "He thinks by infection, catching an opinion like a cold.",
    "I have a switch in my apartment that doesn't do anything.",
    "I'm proud to be paying taxes in the United States.",
    "No, I said he was shot in the lumbar region.",
    "Washing your car to make it rain doesn't work.",
]
# Word errors in these 57 words, measured in three runs each (the noise branch draws new noise each
# time): joe 4-7, slt 7-10 (2026-12-07, each with its sharpening over 9 frames and 15 bands; joe 3-7
# with the first form, 4-8 unsharpened; slt 10-11 with the first form). Each bound leaves room for
# 12 more; a broken front end or mismatched weights gives 60-100 %.
WER_BOUNDS = {"joe": 0.35, "slt": 0.40}
SECOND_VOICE = "slt"


@pytest.fixture(scope="module")
def default_voice() -> Synthesizer:
    return Synthesizer.default("cpu")


def test_the_default_voice_is_shipped_and_listed():
    voice = find_voice()
    assert voice.name == DEFAULT_VOICE and voice.folder.parent == SHIPPED
    assert voice.size_bytes < 30e6  # the budget for everything the voices add to the wheel
    assert sum(v.size_bytes for v in shipped_voices()) < 30e6
    card = voice.card
    for key in ("licence", "data", "training", "scores", "speakers", "sample_rate"):
        assert card.get(key), key
    assert (voice.folder / "MODEL_CARD.md").read_text().startswith(f"# Voice `{DEFAULT_VOICE}`")
    # Shipped inference files only: no optimiser state in the package.
    assert "optimizer" not in load_checkpoint(voice.acoustic)
    result = runner.invoke(app, ["voices"])
    assert result.exit_code == 0, result.output
    assert f"{DEFAULT_VOICE} (default)" in result.output and "CC0" in result.output and "22050 Hz" in result.output


@pytest.mark.parametrize("name", sorted(WER_BOUNDS))
def test_the_shipped_voice_is_intelligible(name):
    """A guard against a broken front end, mismatched weights or a vocoder regression: the offline
    recogniser understands each shipped voice on held-out sentences."""
    voice = Synthesizer.from_voice(name, device="cpu")
    recognizer = Recognizer()
    errors = words = 0
    for sentence in HELD_OUT:
        audio = voice.tts(sentence)
        assert np.isfinite(audio).all() and 0.05 < np.abs(audio).max() <= 1.0
        wrong, total = recognizer.word_errors(audio, voice.sample_rate, sentence)
        errors, words = errors + wrong, words + total
    assert errors / words <= WER_BOUNDS[name], (errors, words)


def test_the_second_voice_is_listed_and_speaks_from_the_cli(tmp_path):
    """`slt`, fine-tuned from joe (recipes/slt-voice), ships in float16 with its mel sharpening."""
    voice = find_voice(SECOND_VOICE)
    assert voice.card["weights"] == "float16" and voice.sharpen == 1.1
    assert {t.dtype for t in load_checkpoint(voice.vocoder)["generator"].values()} == {torch.float16}
    for key in ("licence", "data", "training", "scores"):
        assert voice.card.get(key), key
    listed = runner.invoke(app, ["voices"])
    assert listed.exit_code == 0 and SECOND_VOICE in listed.output and "9.9 MB" in listed.output
    out = tmp_path / "slt.wav"
    result = runner.invoke(app, ["synth", "Good morning.", "-o", str(out), "--voice", SECOND_VOICE, "--verbose"])
    assert result.exit_code == 0, result.output
    assert f"voice '{SECOND_VOICE}'" in result.output and sf.info(str(out)).samplerate == 22050


def test_synth_with_no_model_options_uses_the_default_voice(tmp_path):
    out = tmp_path / "hello.wav"
    result = runner.invoke(app, ["synth", "Hello there, how are you today?", "-o", str(out), "--device", "cpu",
                                 "--verbose"])
    assert result.exit_code == 0, result.output
    assert f"voice '{DEFAULT_VOICE}'" in result.output
    audio, rate = sf.read(str(out))
    assert rate == find_voice().card["sample_rate"] and 1.0 < len(audio) / rate < 5.0
    named = tmp_path / "named.wav"
    assert runner.invoke(app, ["synth", "Hello there.", "-o", str(named), "--voice", DEFAULT_VOICE]).exit_code == 0
    bad = runner.invoke(app, ["synth", "Hi.", "-o", str(tmp_path / "x.wav"), "--voice", "nobody"])
    assert bad.exit_code != 0 and "no voice 'nobody'" in bad.output and not (tmp_path / "x.wav").exists()
    both = runner.invoke(app, ["synth", "Hi.", "-o", str(tmp_path / "x.wav"), "--voice", DEFAULT_VOICE,
                               "--vocoder", "griffin-lim"])
    assert both.exit_code != 0 and "not both" in both.output


def test_every_control_works_with_the_default_voice(default_voice, tmp_path):
    text = "The children played in the park."
    plain = default_voice.tts(text)
    slow = default_voice.tts(text, speed=0.7)
    assert 1.25 < len(slow) / len(plain) < 1.6
    assert default_voice.tts(text, pitch=4.0).shape[0] == pytest.approx(len(plain), rel=0.02)
    loud = default_voice.tts(text, energy=1.5)
    assert np.isfinite(loud).all()
    # Long-form and streaming: the same audio, sentence by sentence.
    long_text = " ".join(HELD_OUT[:3])
    pieces = list(default_voice.stream(long_text))
    assert len(pieces) == 3 and abs(sum(len(p) for p in pieces) - len(default_voice.tts(long_text))) < 10
    streamed = runner.invoke(app, ["synth", long_text, "-o", "-"])
    assert streamed.exit_code == 0
    lines = tmp_path / "lines.txt"
    lines.write_text("a|Good morning.\nb|See you later.\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["synth", "--text-file", str(lines), "-o", str(out), "--pitch", "-2",
                                 "--speed", "1.2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav"]
    with wave.open(str(out / "a.wav")) as handle:
        assert handle.getframerate() == default_voice.sample_rate


def test_pack_voice_makes_a_voice_folder(tmp_path):
    """From a run-like pair (here the shipped voice's own files) to a folder `--voice` speaks with;
    an existing folder is never replaced."""
    voice = find_voice()
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(voice.acoustic, runs / "acoustic.pt")
    shutil.copy(voice.vocoder, runs / "generator_best.pt")
    scores = tmp_path / "eval.json"
    scores.write_text(json.dumps({"summary": {"utterances": 5, "wer": 0.25, "cer": 0.1, "mcd_db": 3.0,
                                              "log_f0_rmse_cents": 50.0, "voicing_error": 0.08}}))
    folder = tmp_path / "mine"
    result = runner.invoke(app, ["pack-voice", str(runs / "acoustic.pt"), str(runs / "generator_best.pt"), "-o",
                                 str(folder), "--name", "mine", "--licence", "CC-BY-4.0", "--scores",
                                 f"voice={scores}"])
    assert result.exit_code == 0, result.output
    card = json.loads((folder / "voice.json").read_text())
    assert card["name"] == "mine" and card["licence"] == "CC-BY-4.0" and card["scores"]["voice"]["WER"] == 0.25
    assert "| voice | 5 |" in (folder / "MODEL_CARD.md").read_text() or "| voice |" in (folder / "MODEL_CARD.md").read_text()
    out = tmp_path / "x.wav"
    assert runner.invoke(app, ["synth", "Hello.", "-o", str(out), "--voice", str(folder)]).exit_code == 0
    assert out.is_file()
    again = runner.invoke(app, ["pack-voice", str(runs / "acoustic.pt"), str(runs / "generator_best.pt"), "-o",
                                str(folder), "--name", "mine"])
    assert again.exit_code != 0 and "replaces nothing" in again.output
    assert json.loads((folder / "voice.json").read_text())["licence"] == "CC-BY-4.0"
    wrong = runner.invoke(app, ["pack-voice", str(runs / "generator_best.pt"), str(runs / "generator_best.pt"),
                                "-o", str(tmp_path / "wrong"), "--name", "w"])
    assert wrong.exit_code != 0 and "not an acoustic-model checkpoint" in wrong.output
    assert not (tmp_path / "wrong").exists()


def test_pack_voice_half_stores_float16_weights_that_speak_as_trained(tmp_path):
    """`pack-voice --half`: the weights on disk are float16 (half the size), the models that load
    them are float32, and the voice says the same thing: with the same noise draw its log-mel lies
    within float16 rounding of the float32 voice's (measured: 0.05 mean absolute difference, where a
    new noise draw alone moves it 0.25-0.28; the waves themselves drift apart, since the harmonics'
    phase is a running sum of F0)."""
    voice = find_voice()
    folder = tmp_path / "half"
    result = runner.invoke(app, ["pack-voice", str(voice.acoustic), str(voice.vocoder), "-o", str(folder),
                                 "--name", "half", "--half", "--sharpen", str(voice.sharpen)])
    assert result.exit_code == 0, result.output
    assert json.loads((folder / "voice.json").read_text())["weights"] == "float16"
    acoustic, vocoder = load_checkpoint(folder / "acoustic.pt"), load_checkpoint(folder / "vocoder.pt")
    assert {t.dtype for t in acoustic["model"].values() if t.is_floating_point()} == {torch.float16}
    assert {t.dtype for t in vocoder["generator"].values() if t.is_floating_point()} == {torch.float16}
    for part in ("acoustic.pt", "vocoder.pt"):
        assert (folder / part).stat().st_size < 0.55 * (voice.folder / part).stat().st_size
    full, half = Synthesizer.from_voice(device="cpu"), Synthesizer.from_voice(folder, device="cpu")
    assert {p.dtype for p in half.acoustic.model.parameters()} == {torch.float32} and half.sharpen == full.sharpen
    text = "The children played in the park."
    waves = []
    for synthesizer, seed in ((full, 0), (half, 0), (full, 1)):
        torch.manual_seed(seed)
        waves.append(torch.from_numpy(synthesizer.tts(text)).float()[None])
    mel = MelSpectrogram(full.acoustic.audio)
    reference, rounded, redrawn = (mel(wave) for wave in waves)
    assert rounded.shape == reference.shape
    rounding, new_noise = (reference - rounded).abs().mean(), (reference - redrawn).abs().mean()
    assert rounding < 0.1 and rounding < new_noise / 3, (rounding, new_noise)


def test_vocoder_fine_tuning_from_the_shipped_voice(mini_work, tmp_path):
    run = tmp_path / "tuned"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--init", "default",
                                 "--max-steps", "2", "--device", "cpu", "--set", "train.segment_samples=2048",
                                 "--set", "train.batch_size=2", "--set", "train.val_every=2", "--set",
                                 "train.checkpoint_every=2", "--set", "train.val_utterances=1", "--set",
                                 "train.num_workers=0", "--set", "train.log_every=1"])
    assert result.exit_code == 0, result.output
    assert "fine-tuning" in result.output
    assert "mel_loss_weight: 1.0" in (run / "config.yaml").read_text()  # fine-tuning weighs the mel loss
    start = load_checkpoint(find_voice().vocoder)["generator"]
    tuned = load_checkpoint(run / "checkpoints" / "generator_00000002.pt")
    assert tuned["architecture"] == "harmonic-noise"
    moved = [k for k in start if not np.allclose(start[k].numpy(), tuned["generator"][k].numpy())]
    assert moved and len(moved) < len(start) + 1
    out = tmp_path / "tuned.wav"
    result = runner.invoke(app, ["synth", "Hello there.", "-o", str(out), "--acoustic", str(find_voice().acoustic),
                                 "--vocoder", str(run)])
    assert result.exit_code == 0, result.output
    assert sf.info(str(out)).duration > 0.5


def test_acoustic_fine_tuning_from_the_shipped_voice(mini_work, tmp_path):
    """--init default: the shipped voice's weights carry over (its first loss is a fraction of a fresh
    model's on the same data), and the tuned checkpoint speaks through the shipped vocoder."""
    quick = ["--max-steps", "1", "--device", "cpu", "--set", "train.max_frames_per_batch=1500", "--set",
             "train.log_every=1", "--set", "train.val_every=1", "--set", "train.checkpoint_every=1"]
    tuned, fresh = tmp_path / "tuned", tmp_path / "fresh"
    result = runner.invoke(app, ["train-acoustic", str(mini_work), "-o", str(tuned), "--init", "default", *quick])
    assert result.exit_code == 0, result.output
    assert "fine-tuning" in result.output
    assert runner.invoke(app, ["train-acoustic", str(mini_work), "-o", str(fresh), *quick]).exit_code == 0

    def first_mel_l1(run):
        return next(json.loads(line)["mel_l1"] for line in (run / "metrics.jsonl").read_text().splitlines()
                    if '"mel_l1"' in line)

    assert first_mel_l1(tuned) < 0.5 * first_mel_l1(fresh)
    assert "learning_rate: 0.001\n" in (tuned / "config.yaml").read_text()
    out = tmp_path / "tuned.wav"
    result = runner.invoke(app, ["synth", "Hello there.", "-o", str(out), "--acoustic", str(tuned), "--vocoder",
                                 str(find_voice().vocoder)])
    assert result.exit_code == 0, result.output
    refused = runner.invoke(app, ["train-acoustic", str(mini_work), "-o", str(tmp_path / "x"), "--init", "default",
                                  "--preset", "base"])
    assert refused.exit_code != 0 and "leave --preset and --model out" in refused.output


def test_transfer_weights_maps_symbols_and_speakers():
    from ttskit.models.fastspeech2 import PRESETS, FastSpeech2
    from ttskit.train.fine_tune import transfer_weights

    torch.manual_seed(0)
    old = FastSpeech2(PRESETS["small"], 4, 80, 2)
    state = {"model": old.state_dict(), "vocab": ["<pad>", "a", "b", "c"], "speakers": {"x": 0, "y": 1}}
    new = FastSpeech2(PRESETS["small"], 4, 80, 2)
    fresh = transfer_weights(new, state, ["<pad>", "c", "a", "z"], {"y": 0, "new": 1})
    assert fresh == []
    embedding, speakers = new.embedding.weight, new.speaker_embedding.weight
    assert torch.equal(embedding[1], old.embedding.weight[3]) and torch.equal(embedding[2], old.embedding.weight[1])
    assert not torch.equal(embedding[3], old.embedding.weight[2])  # z is new: left as initialised
    assert torch.equal(speakers[0], old.speaker_embedding.weight[1])
    assert torch.allclose(speakers[1], old.speaker_embedding.weight.mean(0))
    assert all(torch.equal(a, b) for a, b in zip(new.decoder.parameters(), old.decoder.parameters()))
