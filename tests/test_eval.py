"""`ttskit eval` and its metrics: zero for identical audio, growing with known distortions."""

from __future__ import annotations

import json
import shutil

import librosa
import numpy as np
import pytest
import soundfile as sf
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
