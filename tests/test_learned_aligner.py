"""The learned aligner: MAS against a brute-force search, the prior, training resume after a kill,
`ttskit preprocess --aligner learned` end to end (ARPAbet and chars), and agreement with the
forced aligner on the mini corpus."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_same_run
from typer.testing import CliRunner

from ttskit.align.learned.model import beta_binomial_log_prior
from ttskit.align.learned.training import CHECKPOINT, AlignerItem, AlignerTrainingError, train_aligner
from ttskit.align.mas import maximum_path, maximum_path_reference
from ttskit.assets import MINI_LJSPEECH
from ttskit.cli import app
from ttskit.config import LearnedAlignerConfig
from ttskit.work import read_jsonl

runner = CliRunner()


def brute_force(logp: np.ndarray) -> np.ndarray:
    """Every way to give N symbols >= 1 of T frames in order; the best one's durations."""
    n_frames, n_symbols = logp.shape
    best, best_durations = -np.inf, None
    for cuts in itertools.combinations(range(1, n_frames), n_symbols - 1):
        durations = np.diff([0, *cuts, n_frames])
        score = logp[np.arange(n_frames), np.repeat(np.arange(n_symbols), durations)].astype(np.float64).sum()
        if score > best:
            best, best_durations = score, durations
    return best_durations


def test_mas_finds_the_best_monotonic_path():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n_frames = int(rng.integers(1, 10))
        n_symbols = int(rng.integers(1, n_frames + 1))
        logp = rng.standard_normal((n_frames, n_symbols)).astype(np.float32)
        expected = brute_force(logp)
        assert np.array_equal(maximum_path(logp[None], [n_frames], [n_symbols])[0], expected)
        assert np.array_equal(maximum_path_reference(logp), expected)


def test_mas_batches_ignore_padding_and_sum_to_frames():
    rng = np.random.default_rng(1)
    frames, symbols = np.array([40, 7, 25]), np.array([9, 7, 3])
    logp = rng.standard_normal((3, 40, 9)).astype(np.float32) * 5  # padding cells hold noise too
    durations = maximum_path(logp, frames, symbols)
    for row in range(3):
        assert durations[row].sum() == frames[row] and (durations[row, :symbols[row]] >= 1).all()
        assert not durations[row, symbols[row]:].any()
        alone = maximum_path_reference(logp[row, :frames[row], :symbols[row]])
        assert np.array_equal(durations[row, :symbols[row]], alone)
    with pytest.raises(ValueError, match="cannot give each of its 5 symbols a frame"):
        maximum_path(np.zeros((1, 4, 5), np.float32), [4], [5])


def test_prior_is_a_distribution_along_the_diagonal():
    prior = beta_binomial_log_prior(60, 12).exp()
    assert torch.allclose(prior.sum(1), torch.ones(60), atol=1e-5)
    peaks = prior.argmax(1)
    assert peaks[0] == 0 and peaks[-1] == 11 and bool((peaks[1:] >= peaks[:-1]).all())


def _items(work) -> list[AlignerItem]:
    rows = read_jsonl(work / "train.jsonl") + read_jsonl(work / "val.jsonl")
    return [AlignerItem(r["id"], r["phonemes"], work / "mel" / f"{r['id']}.npy") for r in rows]


def test_training_resumes_where_a_killed_run_stopped(mini_work, tmp_path):
    config = LearnedAlignerConfig(channels=32, max_steps=6, min_steps=6, checkpoint_every=2, window_steps=2,
                                  binarization_start_step=3, batch_frames=3000)
    items = _items(mini_work)
    straight = train_aligner(items, 80, config, tmp_path / "straight", torch.device("cpu"))
    assert straight.progress.step == 6 and straight.progress.finished and len(straight.progress.history) == 3

    class Killed(Exception):
        pass

    def kill_at_3(step: int, max_steps: int, loss: float) -> None:
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        train_aligner(items, 80, config, tmp_path / "killed", torch.device("cpu"), kill_at_3)
    saved = torch.load(tmp_path / "killed" / CHECKPOINT, weights_only=True)
    assert saved["progress"]["step"] == 2 and not saved["progress"]["finished"]
    steps = []
    resumed = train_aligner(items, 80, config, tmp_path / "killed", torch.device("cpu"),
                            lambda step, most, loss: steps.append(step))
    assert steps == [3, 4, 5, 6]  # from its last checkpoint, not from the start
    assert_same_run(straight.model.state_dict(), resumed.model.state_dict())
    assert resumed.progress.history == pytest.approx(straight.progress.history, rel=1e-4)
    again = train_aligner(items, 80, config, tmp_path / "killed", torch.device("cpu"),
                          lambda *_: pytest.fail("a finished aligner is reused, not trained again"))
    assert again.progress.step == 6
    changed = dataclasses.replace(config, channels=64)
    with pytest.raises(AlignerTrainingError, match="channels=32, the config now says 64"):
        train_aligner(items, 80, changed, tmp_path / "killed", torch.device("cpu"))


def _corpus(tmp_path, clips: list[str]):
    corpus = tmp_path / "lj"
    (corpus / "wavs").mkdir(parents=True, exist_ok=True)
    rows = {line.split("|")[0]: line for line in (MINI_LJSPEECH / "metadata.csv").read_text().splitlines()}
    for clip in clips:
        shutil.copy(MINI_LJSPEECH / "wavs" / f"{clip}.flac", corpus / "wavs")
    (corpus / "metadata.csv").write_text("".join(rows[c] + "\n" for c in clips))
    return corpus


@pytest.mark.parametrize("frontend", ["english", "chars"])
def test_preprocess_with_the_learned_aligner(tmp_path, frontend):
    clips = [f"SY01-{n:05d}" for n in (0, 1, 2, 5, 6, 9, 13, 14, 20, 22)]
    corpus = _corpus(tmp_path, clips)
    work = tmp_path / "work"
    settings = ["--set", f"text.frontend={frontend}", "--set", "preprocess.learned_aligner.max_steps=30",
                "--set", "preprocess.learned_aligner.channels=64", "--set", "preprocess.learned_aligner.min_steps=30"]
    args = ["preprocess", "ljspeech", str(corpus), "-o", str(work), "-j", "2", "--aligner", "learned", *settings]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "aligner trained to step 30" in result.stderr
    rows = read_jsonl(work / "train.jsonl") + read_jsonl(work / "val.jsonl")
    assert len(rows) >= 8
    for row in rows:
        durations = np.load(work / "duration" / f"{row['id']}.npy")
        mel = np.load(work / "mel" / f"{row['id']}.npy")
        assert durations.sum() == mel.shape[1] == row["n_frames"] and (durations >= 1).all()
        assert len(durations) == len(row["phonemes"]) == len(np.load(work / "pitch" / f"{row['id']}.npy"))
        import soundfile as sf

        assert sf.info(str(work / row["wav"])).frames == mel.shape[1] * 256
    vocab = json.loads((work / "vocab.json").read_text())
    assert ("h" in json.dumps(vocab)) == (frontend == "chars")
    assert not (work / "unaligned").exists()  # staging removed once every utterance was finished
    assert (work / "aligner" / CHECKPOINT).is_file()
    if frontend == "chars":
        return
    # A corpus that grows later: the new utterances are aligned by the kept aligner, not a new one.
    corpus = _corpus(tmp_path, [*clips, "SY01-00030", "SY01-00031"])
    more = runner.invoke(app, args)
    assert more.exit_code == 0, more.output
    assert "2 utterances" in more.stderr and "aligner trained to step 30" in more.stderr
    ids = {r["id"] for r in read_jsonl(work / "train.jsonl") + read_jsonl(work / "val.jsonl")}
    assert {"SY01-00030", "SY01-00031"} <= ids


def test_learned_boundaries_agree_with_the_forced_aligner(tmp_path):
    """The whole mini corpus (100 clips, 6.6 min): a briefly trained aligner (300 steps, ~25 s)
    already places phoneme ends within a few frames of pocketsphinx's, with no model of English."""
    from ttskit.data.compare_alignments import compare_alignments

    forced, learned = tmp_path / "forced", tmp_path / "learned"
    assert runner.invoke(app, ["preprocess", "ljspeech", str(MINI_LJSPEECH), "-o", str(forced), "-j", "2"]).exit_code == 0
    brief = {"max_steps": 300, "channels": 128, "batch_frames": 6000, "binarization_start_step": 150}
    settings = [arg for key, value in brief.items() for arg in ("--set", f"preprocess.learned_aligner.{key}={value}")]
    result = runner.invoke(app, ["preprocess", "ljspeech", str(MINI_LJSPEECH), "-o", str(learned), "-j", "2",
                                 "--aligner", "learned", *settings])
    assert result.exit_code == 0, result.output
    comparison = compare_alignments(forced, learned, hop=256)
    # Measured: 2.8 frames, +1.4 signed (the default settings' full run: 2.6 frames, docs/benchmarks.md).
    assert comparison.utterances >= 90
    assert comparison.mean_absolute < 3.5, comparison.summary()
    assert abs(float(comparison.differences.mean())) < 2.0, comparison.summary()


KILLED_RUN = """
import sys, time
from pathlib import Path
import torch
sys.path.insert(0, {tests!r})
from test_learned_aligner import KILL_CONFIG, _items
from ttskit.align.learned.training import train_aligner
# One step every 0.1 s at least, so the parent can kill it mid-run.
train_aligner(_items(Path({work!r})), 80, KILL_CONFIG, Path({folder!r}), torch.device("cpu"),
              lambda *_: time.sleep(0.1))
"""
KILL_CONFIG = LearnedAlignerConfig(channels=32, max_steps=12, min_steps=12, checkpoint_every=1, window_steps=2,
                                   binarization_start_step=3, batch_frames=3000)


def test_a_sigkilled_aligner_resumes_from_its_last_checkpoint(mini_work, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "aligner"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), work=str(mini_work), folder=str(folder))
    process = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    saved_step = 0
    while time.time() < deadline and process.poll() is None:
        if (folder / CHECKPOINT).is_file():
            try:
                saved_step = torch.load(folder / CHECKPOINT, weights_only=True)["progress"]["step"]
            except Exception:
                pytest.fail("a torn aligner checkpoint was readable")
            if saved_step >= 4:
                break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 4 <= saved_step < 12, "the run was not killed mid-way"
    at_kill = torch.load(folder / CHECKPOINT, weights_only=True)["progress"]["step"]
    steps = []
    resumed = train_aligner(_items(mini_work), 80, KILL_CONFIG, folder, torch.device("cpu"),
                            lambda step, most, loss: steps.append(step))
    assert steps[0] == at_kill + 1 and steps[-1] == 12 and resumed.progress.finished
