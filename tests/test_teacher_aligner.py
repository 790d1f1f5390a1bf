"""Issue 19's FastSpeech pipeline without a forced aligner: `preprocess --aligner none` (a WORK
folder without durations, which Tacotron 2 trains on and FastSpeech refuses), `preprocess
--aligner tacotron2 --teacher RUN` (durations from the teacher's attention: monotonic, summing to
the frames, refused while the teacher has not aligned, nothing lost), and `--init` from an NVIDIA
Tacotron 2 checkpoint on a WORK folder made with NVIDIA's front end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import mini_subset
from test_tacotron2 import T2_TINY
from typer.testing import CliRunner

from ttskit.cli import app

CLIPS = ("SY01-00000", "SY01-00001", "SY01-00002", "SY01-00005", "SY01-00006", "SY01-00009")
FS_TINY = ["model.hidden=32", "model.encoder_layers=1", "model.decoder_layers=1", "model.conv_filter=64",
           "model.variance_filter=32", "train.max_frames_per_batch=900", "train.checkpoint_every=2",
           "train.val_every=2"]


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def sets(values: list[str]) -> list[str]:
    return sum((["--set", v] for v in values), [])


@pytest.fixture(scope="module")
def unaligned(tmp_path_factory):
    """(corpus, WORK made with --aligner none, a tiny Tacotron 2 trained 2 steps on it)."""
    root = tmp_path_factory.mktemp("teacher")
    corpus = mini_subset(root / "lj", CLIPS)
    work = root / "none"
    result = invoke("preprocess", "ljspeech", corpus, "-o", work, "--aligner", "none", "-j", "1")
    assert result.exit_code == 0, result.output
    run = root / "t2"
    result = invoke("train-acoustic", work, "-o", run, "--model", "tacotron2", "--max-steps", "2", *sets(T2_TINY))
    assert result.exit_code == 0, result.output
    return corpus, work, run


def test_a_work_folder_without_durations(unaligned, tmp_path):
    _, work, _ = unaligned
    from ttskit.text.frontend import build_frontend
    from ttskit.work import load_work_config

    assert not (work / "duration").exists()
    stats = json.loads((work / "stats.json").read_text())
    assert stats["feature_level"] == "frame"  # --aligner none chose it: nothing to average over
    frontend = build_frontend(load_work_config(work).text)
    rows = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    for row in rows:  # what synthesis feeds the model, no silence symbols added
        assert row["phonemes"] == frontend.analyze(row["text"]).symbols
        assert np.load(work / "pitch" / f"{row['id']}.npy").shape == (row["n_frames"],)
    assert "Data report" in (work / "report.md").read_text()
    for model in ("fastspeech", "fastspeech2"):
        refused = invoke("train-acoustic", work, "-o", tmp_path / model, "--model", model, "--max-steps", "1")
        assert refused.exit_code == 2 and "--aligner tacotron2 --teacher RUN" in refused.output, refused.output
        assert not (tmp_path / model).exists()


def test_the_aligner_settings_are_checked(unaligned, tmp_path):
    corpus, work, run = unaligned
    result = invoke("preprocess", "ljspeech", corpus, "-o", tmp_path / "a", "--teacher", run)
    assert result.exit_code == 2 and "needs --aligner tacotron2" in result.output
    result = invoke("preprocess", "ljspeech", corpus, "-o", tmp_path / "b", "--aligner", "none", "--level", "phoneme")
    assert result.exit_code == 2 and "--level frame" in result.output
    result = invoke("preprocess", "ljspeech", corpus, "-o", tmp_path / "c", "--aligner", "tacotron2", "--teacher",
                    work / "config.yaml")
    assert result.exit_code == 2 and "--teacher" in result.output


def test_an_unaligned_teacher_is_refused_and_then_the_merge_finishes(unaligned, tmp_path, monkeypatch):
    from ttskit.align import tacotron2_teacher
    from ttskit.text.frontend import SENTENCE_ENDS

    corpus, none_work, run = unaligned
    work = tmp_path / "taught"
    # Two steps of training: attention spread over the text, so the teacher is refused.
    result = invoke("preprocess", "ljspeech", corpus, "-o", work, "--aligner", "tacotron2", "--teacher", run, "-j", "1")
    assert result.exit_code == 2 and "has not learned to align" in result.output, result.output
    metas = [json.loads(p.read_text()) for p in (work / "meta").glob("*.json")]
    assert len(metas) == len(CLIPS) and {m["status"] for m in metas} == {"unaligned"}
    assert len(list((work / "unaligned" / "mel").glob("*.npy"))) == len(CLIPS)  # nothing lost
    assert not (work / "duration").exists()
    # With the bar lowered, the merge finishes what was staged (as a rerun with a trained teacher would).
    monkeypatch.setattr(tacotron2_teacher, "MIN_FOCUS", 0.0)
    monkeypatch.setattr(tacotron2_teacher, "implausible", lambda *a: None)  # an untrained teacher's lengths
    result = invoke("preprocess", "merge", work)
    assert result.exit_code == 0, result.output
    assert "durations from the teacher" in result.output
    assert not (work / "unaligned").exists()
    rows = [json.loads(line) for name in ("train.jsonl", "val.jsonl")
            for line in (work / name).read_text().splitlines()]
    assert len(rows) == len(CLIPS)
    for row in rows:
        durations = np.load(work / "duration" / f"{row['id']}.npy")
        assert durations.sum() == row["n_frames"] == np.load(work / "mel" / f"{row['id']}.npy").shape[1]
        assert durations.min() >= 1 and len(durations) == len(row["phonemes"])
        # The same utterances and symbols as the folder the teacher trained on.
        twin = json.loads((none_work / "meta" / f"{row['id']}.json").read_text())
        assert row["phonemes"] == twin["phonemes"] and row["n_frames"] == twin["n_frames"]
        meta = json.loads((work / "meta" / f"{row['id']}.json").read_text())
        assert meta["aligner"] == "tacotron2" and 0 < meta["teacher_focus"] <= 1
        assert row["phonemes"][-1] in SENTENCE_ENDS
    # FastSpeech trains on the teacher's durations.
    result = invoke("train-acoustic", work, "-o", tmp_path / "fs", "--model", "fastspeech", "--max-steps", "2",
                    *sets(FS_TINY))
    assert result.exit_code == 0, result.output


def test_teacher_durations_follow_a_diagonal_attention():
    """The attention -> durations step on its own: a teacher attending symbol k for steps
    [k * 3, k * 3 + 3) with reduction 2 gives each symbol 6 frames."""
    from ttskit.align.mas import maximum_path

    symbols, steps, r = 5, 15, 2
    attention = torch.full((1, steps, symbols), 0.01)
    for step in range(steps):
        attention[0, step, step // 3] = 0.96
    frames = torch.tensor([steps * r - 1])  # the last step's second frame is padding
    expanded = attention.repeat_interleave(r, dim=1)[:, :int(frames[0])]
    durations = maximum_path(torch.log(expanded).numpy(), frames.numpy(), np.array([symbols]))
    assert durations[0].tolist() == [6, 6, 6, 6, 5]


def test_a_fastspeech2_run_is_no_teacher(mini_work, tmp_path):
    from conftest import tiny_acoustic_run

    from ttskit.align.tacotron2_teacher import TeacherError, load_teacher
    from ttskit.work import load_work_config

    run = tiny_acoustic_run(mini_work, tmp_path / "fs2", 3)
    with pytest.raises(TeacherError, match="not a Tacotron 2"):
        load_teacher(run, load_work_config(mini_work), torch.device("cpu"))


def nvidia_checkpoint(path, tiny) -> dict[str, torch.Tensor]:
    """A tiny model in NVIDIA/tacotron2's checkpoint layout (the parameter names are the same;
    DeepLearningExamples' "module." prefixes), 148 symbols and 80 mels as theirs."""
    from ttskit.models.tacotron2 import Tacotron2
    from ttskit.text.nvidia_chars import SYMBOLS

    torch.manual_seed(3)
    model = Tacotron2(tiny, len(SYMBOLS), 80)
    weights = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": weights, "epoch": 7, "config": {}}, path)
    return model.state_dict()


def test_init_from_an_nvidia_checkpoint(unaligned, tmp_path):
    from test_tacotron2 import TINY

    from ttskit.skeleton.distributed import Rank
    from ttskit.skeleton.loop import RunPrecision
    from ttskit.text.nvidia_chars import SYMBOLS
    from ttskit.train.acoustic import AcousticTrainer, prepare_run

    corpus, english_work, _ = unaligned
    source = nvidia_checkpoint(tmp_path / "tacotron2_statedict.pt", TINY)
    refused = invoke("train-acoustic", english_work, "-o", tmp_path / "r0", "--init", tmp_path / "tacotron2_statedict.pt")
    assert refused.exit_code == 2 and "text.frontend=nvidia-chars" in refused.output, refused.output
    work = tmp_path / "nv"
    result = invoke("preprocess", "ljspeech", corpus, "-o", work, "--aligner", "none", "-j", "1",
                    "--set", "text.frontend=nvidia-chars")
    assert result.exit_code == 0, result.output
    row = json.loads((work / "train.jsonl").read_text().splitlines()[0])
    assert set(row["phonemes"]) <= set(SYMBOLS) and "a" in row["phonemes"]  # NVIDIA's characters
    job = prepare_run(work, tmp_path / "r1", init=tmp_path / "tacotron2_statedict.pt", max_steps=1,
                      overrides=["train.max_frames_per_batch=900"])
    trainer = AcousticTrainer(job)
    trainer.build(Rank(0, 1, 0, torch.device("cpu")), RunPrecision(None, torch.amp.GradScaler("cpu", enabled=False)))
    trainer.initialise()
    vocab = json.loads((work / "vocab.json").read_text())["symbols"]
    tuned = trainer.model.state_dict()
    for symbol in ("a", "z", ",", "@AA1"):  # rows follow the symbols, whatever the WORK folder's order
        assert torch.equal(tuned["embedding.weight"][vocab.index(symbol)],
                           source["embedding.weight"][SYMBOLS.index(symbol)])
    assert torch.equal(tuned["decoder.attention_rnn.weight_ih"], source["decoder.attention_rnn.weight_ih"])
    result = invoke("train-acoustic", work, "-o", tmp_path / "r2", "--init", tmp_path / "tacotron2_statedict.pt",
                    "--max-steps", "1", "--set", "train.max_frames_per_batch=900")
    assert result.exit_code == 0, result.output
