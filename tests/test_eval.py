"""`ttskit eval` and its metrics: zero for identical audio, growing with known distortions."""

from __future__ import annotations

import json
import shutil

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from ttskit.cli import app
from ttskit.evaluation.intelligibility import Recognizer, spoken_words
from ttskit.evaluation.metrics import character_errors, distances
from ttskit.text.distance import edit_distance

runner = CliRunner()


def clip(mini_corpus, uid: str) -> np.ndarray:
    wave, _ = sf.read(mini_corpus / "wavs" / f"{uid}.flac", dtype="float32")
    return wave


def test_identical_audio_scores_zero(mini_corpus):
    wave = clip(mini_corpus, "SY01-00013")
    d = distances(wave, wave)
    assert d.mcd_db == 0 and d.log_f0_rmse_cents == 0 and d.voicing_error == 0 and d.duration_ratio == 1


def test_distances_grow_with_known_distortions(mini_corpus):
    wave = clip(mini_corpus, "SY01-00013")
    rng = np.random.default_rng(0)
    mcd = [distances(wave, wave + level * rng.standard_normal(len(wave)).astype(np.float32)).mcd_db
           for level in (0.003, 0.03)]
    assert 0 < mcd[0] < mcd[1]
    shifted = librosa.effects.pitch_shift(wave, sr=22050, n_steps=2.0)
    d = distances(wave, shifted)
    assert d.log_f0_rmse_cents == pytest.approx(200, abs=40)  # two semitones
    slower = librosa.effects.time_stretch(wave, rate=0.8)
    d = distances(wave, slower)
    assert d.duration_ratio == pytest.approx(1.25, abs=0.05)
    assert d.mcd_db < distances(wave, wave[::-1].copy()).mcd_db  # DTW absorbs the rate, not a different signal


def test_error_rates_match_hand_counts(mini_corpus):
    truth, heard = spoken_words("The cat sat on the mat."), spoken_words("the cat sat on mat")
    assert edit_distance(truth, heard) == 1 and len(truth) == 6  # WER 1/6: one deletion
    assert character_errors("the cat", "the bat") == (1, 7)  # one substitution in 7 characters
    assert spoken_words("Dr. Smith paid $3.") == ["doctor", "smith", "paid", "three", "dollars"]
    errors, words = Recognizer().word_errors(clip(mini_corpus, "SY01-00007"), 22050, "Do as I say, not as I do.")
    assert (errors, words) == (0, 8)


def test_cli_scores_pairs_by_id(mini_corpus, tmp_path):
    ref = tmp_path / "ref"
    (ref / "wavs").mkdir(parents=True)
    rows = {line.split("|")[0]: line for line in (mini_corpus / "metadata.csv").read_text().splitlines()}
    ids = ["SY01-00007", "SY01-00014"]
    for uid in ids:
        shutil.copy(mini_corpus / "wavs" / f"{uid}.flac", ref / "wavs")
    (ref / "metadata.csv").write_text("".join(rows[uid] + "\n" for uid in ids))
    hyp = tmp_path / "hyp"
    hyp.mkdir()
    shutil.copy(mini_corpus / "wavs" / "SY01-00007.flac", hyp)
    noisy = clip(mini_corpus, "SY01-00014") + 0.05 * np.random.default_rng(1).standard_normal(1).astype(np.float32)
    sf.write(hyp / "SY01-00014.wav", noisy + 0.02 * np.random.default_rng(2).standard_normal(len(noisy)), 22050)
    sf.write(hyp / "unpaired.wav", noisy, 22050)
    result = runner.invoke(app, ["eval", "--ref", str(ref / "metadata.csv"), "--hyp", str(hyp), "--json",
                                 str(tmp_path / "scores.json"), "--jobs", "2", "--per-utterance"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "scores.json").read_text())
    by_id = {row["id"]: row for row in data["utterances"]}
    assert sorted(by_id) == ids  # paired by id; the unpaired file is left out
    assert by_id["SY01-00007"]["mcd_db"] == 0 and by_id["SY01-00007"]["word_errors"] == 0
    assert by_id["SY01-00014"]["mcd_db"] > 0
    assert data["summary"]["utterances"] == 2 and data["summary"]["wer"] is not None
    assert "MCD" in result.stderr and "mean" in result.stderr
    result = runner.invoke(app, ["eval", "--ref", str(ref / "metadata.csv"), "--hyp", str(hyp), "--no-asr", "-j", "1",
                                 "--json", str(tmp_path / "fast.json")])
    assert result.exit_code == 0, result.output
    fast = json.loads((tmp_path / "fast.json").read_text())
    assert fast["summary"]["wer"] is None and fast["summary"]["mcd_db"] == data["summary"]["mcd_db"]
    result = runner.invoke(app, ["eval", "--ref", str(ref / "metadata.csv"), "--hyp", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no such folder" in result.stderr


@pytest.fixture(scope="module")
def two_utterances(mini_corpus, tmp_path_factory):
    """An LJSpeech-style metadata file with two of the embedded corpus's recordings."""
    ref = tmp_path_factory.mktemp("ref")
    (ref / "wavs").mkdir()
    rows = {line.split("|")[0]: line for line in (mini_corpus / "metadata.csv").read_text().splitlines()}
    ids = ["SY01-00007", "SY01-00014"]
    for uid in ids:
        shutil.copy(mini_corpus / "wavs" / f"{uid}.flac", ref / "wavs")
    (ref / "metadata.csv").write_text("".join(rows[uid] + "\n" for uid in ids))
    return ref / "metadata.csv", ids


def test_cli_synthesises_and_scores_a_metadata_file(mini_work, two_utterances, tmp_path):
    from conftest import tiny_acoustic_run

    run = tiny_acoustic_run(mini_work, tmp_path / "acoustic", frames_per_phoneme=6)
    metadata, ids = two_utterances
    out = tmp_path / "made"
    result = runner.invoke(app, ["eval", "--synth", "--acoustic", str(run), str(metadata), "-o", str(out),
                                 "--json", str(tmp_path / "synth.json"), "-j", "1", "--per-utterance",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "synth.json").read_text())
    assert [row["id"] for row in data["utterances"]] == ids
    for row in data["utterances"]:
        assert row["mcd_db"] > 0 and row["words"] > 0  # scored against the transcript, too
        wave, rate = sf.read(out / f"{row['id']}.wav")  # the model's own speech, kept with -o
        assert rate == 22050 and len(wave) > 0
    # Free-running synthesis: 6 frames a phoneme, so the spoken length is the duration predictor's.
    assert data["summary"]["duration_ratio"] != pytest.approx(1.0, abs=0.01)
    assert "synthesised by" in result.stderr and "mean" in result.stderr
    limited = runner.invoke(app, ["eval", "--synth", "--acoustic", str(run), str(metadata), "--limit", "1",
                                  "--no-asr", "--json", str(tmp_path / "one.json")])
    assert limited.exit_code == 0, limited.output
    assert json.loads((tmp_path / "one.json").read_text())["summary"]["utterances"] == 1
    unknown = runner.invoke(app, ["eval", "--synth", "--acoustic", str(run), str(metadata), "--speaker", "nobody"])
    assert unknown.exit_code == 2 and "unknown speaker 'nobody'" in unknown.stderr


def test_cli_scores_copy_synthesis_of_the_vocoder_alone(two_utterances, tmp_path):
    from ttskit.checkpoints import jik876
    from ttskit.config import AudioConfig
    from ttskit.models.hifigan import PRESETS, Generator

    torch.manual_seed(0)
    jik876.save_generator(Generator(PRESETS["hifigan-v3"]), tmp_path / "voc" / "g_00000001", AudioConfig())
    metadata, ids = two_utterances
    out = tmp_path / "vocoded"
    result = runner.invoke(app, ["eval", "--vocoder-only", "--vocoder", str(tmp_path / "voc"), str(metadata),
                                 "-o", str(out), "--no-asr", "--json", str(tmp_path / "voc.json"), "-j", "2",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "voc.json").read_text())
    assert [row["id"] for row in data["utterances"]] == ids
    for uid in ids:
        recorded = sf.read(metadata.parent / "wavs" / f"{uid}.flac")[0]
        vocoded = sf.read(out / f"{uid}.wav")[0]
        assert len(vocoded) == len(recorded) // 256 * 256  # every frame of the recording, vocoded
    assert all(row["mcd_db"] > 1 for row in data["utterances"])  # an untrained vocoder is far off
    # --precision bf16 reaches the vocoder: the same frames, slightly different samples.
    result = runner.invoke(app, ["eval", "--vocoder-only", "--vocoder", str(tmp_path / "voc"), str(metadata),
                                 "-o", str(tmp_path / "bf16"), "--no-asr", "--device", "cpu", "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    for uid in ids:
        fp32, bf16 = sf.read(out / f"{uid}.wav")[0], sf.read(tmp_path / "bf16" / f"{uid}.wav")[0]
        assert fp32.shape == bf16.shape and not np.array_equal(fp32, bf16)


def test_unmeasurable_audio_is_reported_and_the_rest_scored(two_utterances, tmp_path):
    from ttskit.evaluation.evaluate import evaluate, pair, read_side, summarise

    metadata, ids = two_utterances
    hyp = tmp_path / "hyp"
    hyp.mkdir()
    shutil.copy(metadata.parent / "wavs" / f"{ids[0]}.flac", hyp)
    sf.write(hyp / f"{ids[1]}.wav", np.zeros(400, dtype=np.float32), 22050)  # a model that said nothing
    rows = evaluate(pair(read_side(metadata), read_side(hyp)), jobs=1)
    assert rows[0].mcd_db == 0 and not rows[0].problem
    assert rows[1].mcd_db is None and "no speech long enough" in rows[1].problem and str(hyp) in rows[1].problem
    assert rows[1].word_errors == rows[1].words > 0  # nothing heard: every word deleted
    summary = summarise(rows)
    assert summary["unmeasured"] == 1 and summary["mcd_db"] == 0 and summary["wer"] > 0


def test_cli_rejects_incomplete_or_mixed_requests(two_utterances, tmp_path):
    metadata, _ = two_utterances
    cases = [(["--synth", str(metadata)], "--synth needs --acoustic"),
             (["--vocoder-only", str(metadata)], "--vocoder-only needs --vocoder"),
             (["--synth", "--vocoder-only", "--vocoder", "x", str(metadata)], "give one"),
             (["--synth", "--acoustic", str(tmp_path)], "needs the METADATA"),
             (["--ref", str(metadata)], "give --ref REF --hyp HYP"),
             (["--ref", str(metadata), "--hyp", str(metadata), "--precision", "bf16"], "--precision is for the audio"),
             (["--vocoder-only", "--vocoder", str(tmp_path / "none"), str(metadata)], str(tmp_path / "none"))]
    for args, message in cases:
        result = runner.invoke(app, ["eval", *args])
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
    assert not any(tmp_path.iterdir())  # nothing written by a refused request


def test_a_work_manifest_is_a_reference_with_speakers(mini_work):
    from ttskit.evaluation.evaluate import EvaluationError, read_side

    items = read_side(mini_work / "train.jsonl")
    assert len(items) >= 5
    for item in items.values():
        assert item.audio.is_file() and item.text and item.speaker == "ljspeech"
    broken = mini_work.parent / "broken.jsonl"
    broken.write_text('{"id": "x"}\n')
    with pytest.raises(EvaluationError, match="broken.jsonl:1: not a WORK manifest line"):
        read_side(broken)


def test_predicted_mos_rates_speech_above_noise(speech_clip, tmp_path):
    """DistillMOS (installed without torchaudio by the README's test command) gives recordings a
    higher predicted MOS than the same clip buried in noise; the CLI shows the column."""
    from ttskit.evaluation.naturalness import load_mos_model, predict_mos

    model = load_mos_model()
    if model is None:
        pytest.skip("DistillMOS is not installed (pip install --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0)")
    wave, rate = speech_clip
    noisy = wave + 0.3 * np.random.default_rng(0).standard_normal(len(wave)).astype(np.float32)
    clean_mos, noisy_mos = predict_mos(model, wave, rate), predict_mos(model, noisy, rate)
    assert 1 <= noisy_mos < clean_mos <= 5.5 and clean_mos - noisy_mos > 0.5
    (tmp_path / "ref").mkdir()
    (tmp_path / "hyp").mkdir()
    sf.write(tmp_path / "ref" / "a.wav", wave, rate)
    sf.write(tmp_path / "hyp" / "a.wav", noisy, rate)
    result = runner.invoke(app, ["eval", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"), "--no-asr",
                                 "-j", "1", "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "MOS" in result.output and "skipped" not in result.output  # the column (rich may wrap its title)
    assert json.loads((tmp_path / "s.json").read_text())["summary"]["mos"] == pytest.approx(noisy_mos, abs=0.05)


def test_eval_without_distillmos_says_so(speech_clip, tmp_path, monkeypatch):
    import ttskit.evaluation.evaluate as evaluate
    import ttskit.evaluation.naturalness as naturalness

    monkeypatch.setattr(naturalness, "load_mos_model", lambda: None)
    monkeypatch.setattr(evaluate, "_mos_model", None)  # a model an earlier test loaded in this process
    wave, rate = speech_clip
    for side in ("ref", "hyp"):
        (tmp_path / side).mkdir()
        sf.write(tmp_path / side / "a.wav", wave, rate)
    result = runner.invoke(app, ["eval", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"), "--no-asr",
                                 "-j", "1", "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "predicted MOS: skipped" in result.output and "pip install --no-deps distillmos" in result.output
    assert json.loads((tmp_path / "s.json").read_text())["summary"]["mos"] is None


@pytest.mark.parametrize("kind", ["mb-melgan", "waveglow"])
def test_copy_synthesis_scores_the_seed_vocoders(two_utterances, tmp_path, kind):
    """`eval --vocoder-only` takes the new vocoders (here published formats: ParallelWaveGAN's
    multi-band MelGAN with its config and stats, NVIDIA's pickled WaveGlow) like any other."""
    import dataclasses

    from test_melgan_checkpoints import kan_bayashi_folder
    from test_waveglow import nvidia_pickle, untrained

    from ttskit.models.melgan import PRESETS, MelGANGenerator

    metadata, ids = two_utterances
    if kind == "mb-melgan":
        torch.manual_seed(0)
        vocoder = kan_bayashi_folder(tmp_path / "pwg", MelGANGenerator(
            dataclasses.replace(PRESETS["mb-melgan"], channels=64, stacks=1), 80), None, fmin=0, fmax=8000)
    else:
        vocoder = tmp_path / "waveglow.pt"
        nvidia_pickle(vocoder, untrained())
    result = runner.invoke(app, ["eval", "--vocoder-only", "--vocoder", str(vocoder), str(metadata), "--no-asr",
                                 "-o", str(tmp_path / "out"), "--json", str(tmp_path / "s.json"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "s.json").read_text())["utterances"]
    assert [row["id"] for row in rows] == ids and all(np.isfinite(row["mcd_db"]) for row in rows)
