from __future__ import annotations

import atexit
import json
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import assert_same_run
from typer.testing import CliRunner

from ttskit.checkpoints.store import load_checkpoint
from ttskit.cli import app
from ttskit.train.acoustic import TrainingError, prepare_run, train_acoustic

runner = CliRunner()
# A tiny model and batches of ~2 utterances keep each step well under a second on a CPU.
TINY = ["model.hidden=32", "model.encoder_layers=1", "model.decoder_layers=1", "model.conv_filter=64",
        "model.variance_filter=32", "model.postnet_layers=2", "model.postnet_channels=32",
        "train.max_frames_per_batch=900", "train.log_every=1", "train.checkpoint_every=3", "train.val_every=3",
        "train.warmup_steps=10"]


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_cli_trains_logs_and_checkpoints(mini_work, tmp_path):
    run = tmp_path / "run"
    args = ["train-acoustic", str(mini_work), "-o", str(run), "--max-steps", "4", *sum((["--set", s] for s in TINY), [])]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    steps = [m for m in metrics(run) if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4]
    for key in ("loss", "mel_l1", "postnet_l1", "duration_mse", "pitch_mse", "energy_mse", "lr", "frames_per_s"):
        assert all(np.isfinite(m[key]) for m in steps), key
    assert any("val_loss" in m for m in metrics(run))
    state = load_checkpoint(run / "checkpoints" / "step_00000004.pt")
    # The checkpoint alone rebuilds and uses the model: configs, vocabulary, speakers and stats are inside.
    for key in ("model", "optimizer", "scheduler", "scaler", "rng", "run_config", "audio", "text", "vocab", "speakers",
                "stats"):
        assert key in state, key
    assert state["step"] == 4 and (run / "checkpoints" / "best.pt").is_file()
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.stderr  # never silently overwrites a run


def test_resume_continues_exactly(mini_work, tmp_path):
    straight = prepare_run(mini_work, tmp_path / "a", overrides=TINY, max_steps=6)
    train_acoustic(straight, device="cpu")
    first = prepare_run(mini_work, tmp_path / "b", overrides=TINY, max_steps=3)
    train_acoustic(first, device="cpu")
    resumed = prepare_run(mini_work, tmp_path / "b", overrides=TINY, max_steps=6, resume=True)
    assert resumed.resume_from.name == "step_00000003.pt"
    train_acoustic(resumed, device="cpu")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000006.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000006.pt")
    assert (a["step"], a["epoch"], a["batch_in_epoch"]) == (b["step"], b["epoch"], b["batch_in_epoch"])
    assert_same_run(a["model"], b["model"])
    assert torch.allclose(a["optimizer"]["state"][0]["exp_avg"], b["optimizer"]["state"][0]["exp_avg"], atol=1e-5)
    losses = [[m["loss"] for m in metrics(run) if "loss" in m] for run in (tmp_path / "a", tmp_path / "b")]
    assert len(losses[0]) == len(losses[1]) == 6
    assert np.allclose(losses[0], losses[1], rtol=1e-3)  # the same batches, in the same order


def test_fp16_overflows_are_the_scalers_and_resume_restores_it(mini_work, tmp_path):
    """fp16 with its GradScaler, on the CPU: a loss scale far beyond float16's range overflows
    every gradient at first. Each such step is skipped and logged while the scale halves, the
    NaN guard does not count them (14 in a row > nan_patience), and --resume restores the scale."""
    fp16 = [*TINY, "train.precision=fp16", f"train.fp16_initial_scale={2.0 ** 30}", "train.nan_patience=5"]
    straight = prepare_run(mini_work, tmp_path / "a", overrides=fp16, max_steps=6)
    train_acoustic(straight, device="cpu")
    records = metrics(tmp_path / "a")
    overflows = [m for m in records if m.get("event", "").startswith("fp16 gradient overflow")]
    assert len(overflows) > 5  # more than nan_patience, yet no restore and no bad-step event
    assert [m["loss_scale"] for m in overflows] == sorted((m["loss_scale"] for m in overflows), reverse=True)
    assert not any("non-finite" in m.get("event", "") for m in records)
    assert [m["step"] for m in records if "loss" in m] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(m["loss"]) for m in records if "loss" in m)
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000006.pt")
    assert a["scaler"]["scale"] <= overflows[-1]["loss_scale"] < 2.0 ** 30
    first = prepare_run(mini_work, tmp_path / "b", overrides=fp16, max_steps=3)
    train_acoustic(first, device="cpu")
    train_acoustic(prepare_run(mini_work, tmp_path / "b", overrides=fp16, max_steps=6, resume=True), device="cpu")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000006.pt")
    assert a["scaler"] == b["scaler"]  # a resumed run that forgot the scale would overflow 14 times again
    assert_same_run(a["model"], b["model"])
    losses = [[m["loss"] for m in metrics(run) if "loss" in m] for run in (tmp_path / "a", tmp_path / "b")]
    assert np.allclose(losses[0], losses[1], rtol=1e-3)


def test_two_gloo_ranks_stay_in_sync_on_disjoint_data(mini_work, tmp_path):
    job = prepare_run(mini_work, tmp_path / "ddp", overrides=[*TINY, "train.max_frames_per_batch=500"], max_steps=3)
    summary = train_acoustic(job, gpus=2, device="cpu")
    assert summary["world_size"] == 2 and summary["step"] == 3
    assert summary["ranks_in_sync"] is True and summary["ranks_data_disjoint"] is True



def _abort_rank_1_as_it_exits(rank):
    if rank.rank == 1:
        atexit.register(os.abort)  # after its work, the barrier and its mark: in the teardown


def _abort_rank_1_at_once(rank):
    if rank.rank == 1:
        os.abort()


def test_a_rank_that_aborts_in_its_teardown_after_the_work_is_done_only_warns():
    """gloo can abort a rank as it leaves the group (std::terminate in its threads); when every
    rank had finished its work that is a warning, while a rank that dies before is an error."""
    from torch.multiprocessing import ProcessExitedException

    from ttskit.skeleton.distributed import launch

    with pytest.warns(RuntimeWarning, match="after every rank's work was done"):
        launch(_abort_rank_1_as_it_exits, (), 2, "cpu")
    with pytest.raises(ProcessExitedException):
        launch(_abort_rank_1_at_once, (), 2, "cpu")

def test_poisoned_batch_trips_the_nan_guard(mini_work, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(mini_work, work)
    victim = json.loads((work / "train.jsonl").read_text().splitlines()[0])["id"]
    mel = np.load(work / "mel" / f"{victim}.npy")
    mel[:, 5] = np.nan
    np.save(work / "mel" / f"{victim}.npy", mel)
    job = prepare_run(work, tmp_path / "run", overrides=TINY, max_steps=8)
    train_acoustic(job, device="cpu")
    events = [m for m in metrics(tmp_path / "run") if "event" in m]
    assert events and victim in events[0]["ids"] and "skipped" in events[0]["event"]
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000008.pt")
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


def test_incompatible_work_and_bad_requests_are_clear(mini_work, tmp_path):
    job = prepare_run(mini_work, tmp_path / "run", overrides=TINY, max_steps=1)
    train_acoustic(job, device="cpu")
    other = tmp_path / "other"
    shutil.copytree(mini_work, other)
    vocab = json.loads((other / "vocab.json").read_text())
    vocab["symbols"].append("ZZ")
    (other / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(TrainingError, match="different vocab"):
        prepare_run(other, tmp_path / "run", overrides=TINY, max_steps=2, resume=True)
    with pytest.raises(TrainingError, match="model config differs"):
        prepare_run(mini_work, tmp_path / "run", overrides=[*TINY, "model.hidden=64"], max_steps=2, resume=True)
    with pytest.raises(TrainingError, match="no checkpoint to resume"):
        prepare_run(mini_work, tmp_path / "fresh", overrides=TINY, max_steps=2, resume=True)
    result = runner.invoke(app, ["train-acoustic", str(tmp_path), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "run `ttskit preprocess`" in result.stderr
    result = runner.invoke(app, ["train-acoustic", str(mini_work), "-o", str(tmp_path / "y"), "--gpus", "2",
                                 "--device", "cuda"])
    assert result.exit_code == 2 and "CUDA device(s) are visible" in result.stderr


def test_export_gta_matches_ground_truth_frames(mini_work, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(mini_work, work)
    run = tmp_path / "run"
    args = ["train-acoustic", str(work), "-o", str(run), "--max-steps", "2", "--export-gta",
            *sum((["--set", s] for s in TINY), [])]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for split in ("train", "val") for line in (work / f"{split}.jsonl").read_text().splitlines()]
    assert len(list((work / "gta").glob("*.npy"))) == len(rows)
    for row in rows:
        gta = np.load(work / "gta" / f"{row['id']}.npy")
        assert gta.shape == np.load(work / "mel" / f"{row['id']}.npy").shape and np.isfinite(gta).all()


def test_tensorboard_gets_scalars_plots_and_audio(mini_work, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job = prepare_run(mini_work, tmp_path / "run", overrides=TINY, max_steps=3)
    train_acoustic(job, device="cpu")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "audio": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/mel_l1", "train/lr", "val/loss"} <= set(tags["scalars"])
    assert {"val/mel", "val/pitch"} <= set(tags["images"])
    assert "val/griffin_lim" in tags["audio"]
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]


def test_under_torchrun_the_ranks_join_its_group(mini_work, tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "ttskit", "train-acoustic", str(mini_work), "-o", str(run), "--max-steps", "2",
               "--device", "cpu", *sum((["--set", s] for s in [*TINY, "train.max_frames_per_batch=500"]), [])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] and summary["ranks_data_disjoint"]


def test_sigterm_saves_a_checkpoint_then_exits(mini_work, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    command = [sys.executable, "-m", "ttskit", "train-acoustic", str(mini_work), "-o", str(run), "--max-steps",
               "100000", "--device", "cpu", *sum((["--set", s] for s in [*TINY, "train.checkpoint_every=100000",
                                                                          "train.val_every=100000"]), [])]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "metrics.jsonl").is_file():
        time.sleep(0.1)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by_signal"] is True and summary["step"] > 0
    assert (run / "checkpoints" / f"step_{summary['step']:08d}.pt").is_file()
    assert "stopped by signal" in stderr
