"""`ttskit train-vocoder`: GAN steps, checkpoints, exact resume, DDP on gloo, GTA, --init, errors."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import assert_same_run, private_work
from typer.testing import CliRunner

from ttskit.checkpoints import jik876
from ttskit.checkpoints.store import load_checkpoint
from ttskit.checkpoints.vocoder import load_vocoder
from ttskit.cli import app
from ttskit.config import ConfigError
from ttskit.models.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from ttskit.skeleton.pieces import TrainingError
from ttskit.train.vocoder import prepare_vocoder_run, train_vocoder

runner = CliRunner()
# A narrow V3-shaped generator, short segments and batches of 2 keep a GAN step near a second on a CPU.
# Discriminators at 1/8 of the paper's width (~1.1M parameters instead of ~71M): the trainer's
# paths are the same, at a fraction of the time and checkpoint size; the CLI test trains the paper's.
TINY = ["model.upsample_initial_channel=32", "train.segment_samples=2048", "train.batch_size=2",
        "train.log_every=1", "train.val_every=2", "train.checkpoint_every=2", "train.val_utterances=1",
        "train.num_workers=0", "train.discriminator_width=0.125"]


def sets(values):
    return sum((["--set", v] for v in values), [])


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_cli_trains_checkpoints_and_vocodes(mini_work, tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "vocoder.yaml"
    config.write_text("train:\n  keep_last: 1\n  grad_clip: 5.0\n")  # --set below overrides nothing of these
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--model", "hifigan-v3",
                                 "--max-steps", "3", "--config", str(config),
                                 *sets([*TINY, "train.discriminator_start_step=1", "train.discriminator_width=1"])])
    assert result.exit_code == 0, result.output
    assert "keep_last: 1" in (run / "config.yaml").read_text() and "grad_clip: 5.0" in (run / "config.yaml").read_text()
    steps = [m for m in metrics(run) if "loss_g" in m]
    assert [m["step"] for m in steps] == [1, 2, 3]
    # Step 1 is the mel-loss warm-up: no discriminator yet; then the GAN terms join.
    assert steps[0]["loss_d"] == 0 and steps[0]["adversarial"] == 0 and steps[0]["loss_g"] == pytest.approx(45 * steps[0]["mel_l1"], rel=1e-4)
    assert steps[1]["loss_d"] > 0 and steps[1]["adversarial"] > 0 and steps[1]["feature_matching"] > 0
    for key in ("loss_g", "loss_d", "mel_l1", "adversarial", "feature_matching", "lr", "audio_s_per_s"):
        assert all(np.isfinite(m[key]) for m in steps), key
    assert [m["step"] for m in metrics(run) if "val_mel_l1" in m] == [2, 3]
    folder = run / "checkpoints"
    full = load_checkpoint(folder / "step_00000003.pt")
    for key in ("generator", "mpd", "msd", "optim_g", "optim_d", "sched_g", "sched_d", "scaler", "rng", "run_config",
                "audio", "epoch", "batch_in_epoch"):
        assert key in full, key
    # keep_last 1: only the newest of each kind is left (steps 2 and 3 were saved).
    assert sorted(p.name for p in folder.glob("*_0*.pt")) == ["generator_00000003.pt", "step_00000003.pt"]
    light = folder / "generator_00000003.pt"
    assert light.stat().st_size < (folder / "step_00000003.pt").stat().st_size / 5
    assert (folder / "generator_best.pt").is_file()
    # The run folder is a vocoder: copy-synthesis from a WORK mel, whose settings are checked.
    mel_file = next((mini_work / "mel").glob("*.npy"))
    result = runner.invoke(app, ["vocode", str(mel_file), "-o", str(tmp_path / "copy.wav"), "--vocoder", str(run)])
    assert result.exit_code == 0, result.output
    vocoder = load_vocoder(run, "cpu")
    assert vocoder.source.endswith("generator_best.pt")
    again = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), *sets(TINY)])
    assert again.exit_code == 2 and "--resume" in again.stderr


def test_resume_continues_exactly(mini_work, tmp_path):
    straight = prepare_vocoder_run(mini_work, tmp_path / "a", model="hifigan-v3", overrides=TINY, max_steps=4)
    train_vocoder(straight, device="cpu")
    first = prepare_vocoder_run(mini_work, tmp_path / "b", model="hifigan-v3", overrides=TINY, max_steps=2)
    train_vocoder(first, device="cpu")
    # What a run killed between checkpoints logged after its last save: forgotten on resume.
    with open(tmp_path / "b" / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"step": 3, "loss_g": 1.0}) + "\n")
    resumed = prepare_vocoder_run(mini_work, tmp_path / "b", overrides=TINY, max_steps=4, resume=True)
    assert resumed.resume_from.name == "step_00000002.pt"
    train_vocoder(resumed, device="cpu")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000004.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000004.pt")
    assert (a["step"], a["epoch"], a["batch_in_epoch"]) == (b["step"], b["epoch"], b["batch_in_epoch"])
    for part in ("generator", "mpd", "msd"):
        assert_same_run(a[part], b[part])
    assert torch.allclose(a["optim_d"]["state"][0]["exp_avg"], b["optim_d"]["state"][0]["exp_avg"], atol=1e-5)
    logged = [m["step"] for m in metrics(tmp_path / "b") if "loss_g" in m]
    assert logged == [1, 2, 3, 4] and [m["step"] for m in metrics(tmp_path / "a") if "loss_g" in m] == logged
    mel = [[m["mel_l1"] for m in metrics(run) if "loss_g" in m] for run in (tmp_path / "a", tmp_path / "b")]
    assert np.allclose(mel[0], mel[1], rtol=1e-3)  # the same segments, in the same order
    # The discriminators' width is pinned (their optimiser state is saved), and must keep whole groups.
    with pytest.raises(TrainingError, match="train.discriminator_width cannot change"):
        prepare_vocoder_run(mini_work, tmp_path / "b", overrides=[*TINY, "train.discriminator_width=0.25"],
                            max_steps=6, resume=True)
    with pytest.raises(ConfigError, match="train.discriminator_width: must be one of 0.125, 0.25, 0.5, 1.0"):
        prepare_vocoder_run(mini_work, tmp_path / "c", model="hifigan-v3", overrides=[*TINY, "train.discriminator_width=0.3"])
    assert sum(p.numel() for p in MultiPeriodDiscriminator(width=0.125).parameters()) < 1e6


def test_two_gloo_ranks_stay_in_sync_on_disjoint_data(mini_work, tmp_path):
    job = prepare_vocoder_run(mini_work, tmp_path / "ddp", model="hifigan-v3", overrides=TINY, max_steps=2)
    summary = train_vocoder(job, gpus=2, device="cpu")
    assert summary["world_size"] == 2 and summary["step"] == 2
    assert summary["ranks_in_sync"] is True and summary["ranks_data_disjoint"] is True
    with pytest.raises(TrainingError, match="split evenly"):
        train_vocoder(prepare_vocoder_run(mini_work, tmp_path / "odd", model="hifigan-v3",
                                          overrides=[*TINY, "train.batch_size=3"], max_steps=1), gpus=2, device="cpu")


def add_stand_in_gta(work):
    """WORK/gta as `--export-gta` would leave it, with stand-in teacher-forced mels: the recorded ones, shifted."""
    (work / "gta").mkdir()
    for mel in (work / "mel").glob("*.npy"):
        np.save(work / "gta" / mel.name, np.load(mel) + 0.1)
    return work


COMMON_TINY = ["train.segment_samples=2048", "train.batch_size=2", "train.log_every=1", "train.checkpoint_every=2",
               "train.val_every=2", "train.val_utterances=1", "train.num_workers=0"]
FAMILY_TINY = {
    "mb-melgan": ["model.channels=32", "model.stacks=1", "train.discriminator_max_channels=32",
                  "train.discriminator_start_step=1"],
    "waveglow": ["model.flows=4", "model.early_every=2", "model.layers=2", "model.channels=16"],
    "harmonic-noise": ["model.channels=32", "model.layers=2", "model.harmonics=40", "model.pitch_channels=16",
                       "model.pitch_layers=1", "train.adversarial_weight=1", "train.discriminator_channels=4",
                       "train.discriminator_segment_samples=2048"],
}


@pytest.mark.parametrize("model", sorted(FAMILY_TINY))
def test_every_family_trains_on_gta_mels_over_two_gloo_ranks(mini_work, tmp_path, model):
    """The skeleton's options reach the later families too: --gta and --gpus 2 (gloo on the CPU),
    with the discriminators (multi-band MelGAN's from step 1, harmonic-noise's spectrogram one)."""
    work = add_stand_in_gta(private_work(mini_work, tmp_path))
    job = prepare_vocoder_run(work, tmp_path / "run", model=model, overrides=[*COMMON_TINY, *FAMILY_TINY[model]],
                              max_steps=2, gta=True)
    summary = train_vocoder(job, gpus=2, device="cpu")
    assert summary["world_size"] == 2 and summary["step"] == 2 and summary["ranks_in_sync"] is True
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "generator_00000002.pt")["gta"] is True
    if model != "waveglow":
        assert {"discriminator", "optim_d"} <= set(load_checkpoint(tmp_path / "run" / "checkpoints" /
                                                                   "step_00000002.pt"))


def test_gta_fine_tuning_from_a_jik876_checkpoint(mini_work, tmp_path):
    work = private_work(mini_work, tmp_path)
    with pytest.raises(TrainingError, match="--export-gta"):
        prepare_vocoder_run(work, tmp_path / "r0", model="hifigan-v3", overrides=TINY, gta=True)
    add_stand_in_gta(work)
    # A published-style pair: g_ (generator) and do_ (discriminators) in the reference layout.
    job = prepare_vocoder_run(work, tmp_path / "base", model="hifigan-v3", overrides=TINY, max_steps=1)
    train_vocoder(job, device="cpu")
    vocoder_state = load_checkpoint(tmp_path / "base" / "checkpoints" / "step_00000001.pt")
    from ttskit.models.hifigan import Generator

    generator = Generator(job.config.model)
    generator.load_state_dict(vocoder_state["generator"])
    jik876.save_generator(generator, tmp_path / "pub" / "g_00100000", job.audio)
    torch.save({k: jik876.to_jik876_keys(vocoder_state[k]) for k in ("mpd", "msd")}, tmp_path / "pub" / "do_00100000")
    # Also the autocast path (bf16 on CPU here; on CUDA it is the default).
    tuned = prepare_vocoder_run(work, tmp_path / "tuned", model="hifigan-v3", overrides=[*TINY, "train.precision=bf16"],
                                max_steps=1, gta=True, init=tmp_path / "pub" / "g_00100000")
    assert tuned.gta and tuned.init_from is not None
    # Started exactly from the published weights: check before any step is taken.
    from ttskit.train.vocoder import _build, _initialise

    nets = _build(tuned, torch.device("cpu"))
    _initialise(nets, tuned.init_from)
    for name, tensor in vocoder_state["mpd"].items():
        assert torch.equal(nets.mpd.state_dict()[name], tensor), name
    wider = prepare_vocoder_run(work, tmp_path / "wider", model="hifigan-v3", max_steps=1, gta=True,
                                overrides=[*TINY, "train.discriminator_width=0.25"], init=tmp_path / "pub" / "g_00100000")
    with pytest.raises(TrainingError, match="another width than train.discriminator_width"):
        _initialise(_build(wider, torch.device("cpu")), wider.init_from)
    train_vocoder(tuned, device="cpu")
    assert load_checkpoint(tmp_path / "tuned" / "checkpoints" / "generator_00000001.pt")["gta"] is True
    assert all(np.isfinite(m["loss_g"]) for m in metrics(tmp_path / "tuned") if "loss_g" in m)
    # --init of another architecture is refused before anything runs.
    with pytest.raises(TrainingError, match="different generator"):
        prepare_vocoder_run(work, tmp_path / "v1", model="hifigan-v1", overrides=TINY[1:], max_steps=1,
                            init=tmp_path / "pub" / "g_00100000")


def test_bad_requests_are_clear(mini_work, tmp_path):
    with pytest.raises(TrainingError, match="upsamples by 128"):
        prepare_vocoder_run(mini_work, tmp_path / "a", model="hifigan-v3",
                            overrides=[*TINY, "model.upsample_rates=[8,4,4]", "model.upsample_kernel_sizes=[16,8,8]"])
    with pytest.raises(TrainingError, match="not a multiple of the hop"):
        prepare_vocoder_run(mini_work, tmp_path / "b", overrides=["train.segment_samples=1000"])
    with pytest.raises(TrainingError, match="no checkpoint to resume"):
        prepare_vocoder_run(mini_work, tmp_path / "c", resume=True)
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(tmp_path / "d"), "--model", "wavenet"])
    assert result.exit_code == 2 and "hifigan-v1" in result.stderr
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(tmp_path / "e"), "--gpus", "2",
                                 "--device", "cuda"])
    assert result.exit_code == 2 and "CUDA device(s) are visible" in result.stderr


def test_discriminator_checkpoints_in_the_reference_layout_load():
    # Spectral-norm layers keep their own weight_v (a power-iteration vector): not renamed.
    msd = MultiScaleDiscriminator()
    state = jik876.to_jik876_keys(msd.state_dict())
    assert "discriminators.0.convs.0.weight_orig" in state and "discriminators.1.convs.0.weight_g" in state
    MultiScaleDiscriminator().load_state_dict(jik876.from_jik876_keys(state))
    MultiPeriodDiscriminator().load_state_dict(jik876.from_jik876_keys(
        jik876.to_jik876_keys(MultiPeriodDiscriminator().state_dict())))


def test_acoustic_validation_audio_through_a_vocoder(mini_work, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from test_train_acoustic import TINY as ACOUSTIC_TINY

    from ttskit.config import AudioConfig
    from ttskit.models.hifigan import PRESETS, Generator
    from ttskit.train.acoustic import prepare_run, train_acoustic

    small = dataclasses.replace(PRESETS["hifigan-v3"], upsample_initial_channel=32)
    jik876.save_generator(Generator(small), tmp_path / "voc" / "g_00000001", AudioConfig())
    job = prepare_run(mini_work, tmp_path / "run", overrides=ACOUSTIC_TINY, max_steps=3, vocoder=tmp_path / "voc")
    train_acoustic(job, device="cpu")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"audio": 0})
    events.Reload()
    assert "val/vocoder" in events.Tags()["audio"] and "val/griffin_lim" not in events.Tags()["audio"]
    jik876.save_generator(Generator(small), tmp_path / "other" / "g_00000001", AudioConfig(fmax=7600.0))
    with pytest.raises(TrainingError, match="audio.fmax: 8000.0 here vs 7600.0"):
        prepare_run(mini_work, tmp_path / "run2", overrides=ACOUSTIC_TINY, max_steps=3, vocoder=tmp_path / "other")


def test_vocoder_tensorboard_and_nan_guard(mini_work, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work = tmp_path / "work"
    shutil.copytree(mini_work, work)
    for mel in (work / "mel").glob("*.npy"):  # every input poisoned: every step is non-finite
        np.save(mel, np.full_like(np.load(mel), np.nan))
    job = prepare_vocoder_run(work, tmp_path / "nan", model="hifigan-v3", max_steps=2,
                              overrides=[*TINY, "train.nan_patience=3"])
    with pytest.raises(TrainingError, match="no checkpoint to go back to"):
        train_vocoder(job, device="cpu")
    events = [m for m in metrics(tmp_path / "nan") if "event" in m]
    assert len(events) == 3 and all("skipped" in e["event"] for e in events)
    job = prepare_vocoder_run(mini_work, tmp_path / "tb", model="hifigan-v3", overrides=TINY, max_steps=2)
    train_vocoder(job, device="cpu")
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"images": 0, "audio": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss_g", "train/loss_d", "train/mel_l1"} <= set(tags["scalars"])
    assert "val/0/mel" in tags["images"] and "val/0/audio" in tags["audio"]


def test_fp16_overflows_are_left_to_the_scaler_and_nan_still_trips_the_guard(mini_work, tmp_path):
    """fp16 + GradScaler on the CPU: from a loss scale far beyond float16's range the gradients
    overflow; those steps are skipped and logged while the scale halves, and are not counted by
    the NaN guard (patience 3). A NaN input still is. (float16 convolutions are slow on a CPU:
    the overflows happen in the mel-only warm-up, one adversarial step follows.)"""
    fp16 = [*TINY, "train.precision=fp16", f"train.fp16_initial_scale={2.0 ** 30}", "train.nan_patience=3",
            "train.segment_samples=1024", "train.discriminator_start_step=1"]
    train_vocoder(prepare_vocoder_run(mini_work, tmp_path / "run", model="hifigan-v3", overrides=fp16, max_steps=2),
                  device="cpu")
    records = metrics(tmp_path / "run")
    overflows = [m for m in records if m.get("event", "").startswith("fp16 gradient overflow")]
    assert len(overflows) > 3 and not any("non-finite" in m.get("event", "") for m in records)
    assert [m["step"] for m in records if "loss_g" in m] == [1, 2]
    assert all(np.isfinite(m[k]) for m in records if "loss_g" in m for k in ("loss_g", "loss_d", "mel_l1"))
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000002.pt")
    assert state["scaler"]["scale"] <= overflows[-1]["loss_scale"] < 2.0 ** 30
    work = tmp_path / "work"
    shutil.copytree(mini_work, work)
    for mel in (work / "mel").glob("*.npy"):
        np.save(mel, np.full_like(np.load(mel), np.nan))
    with pytest.raises(TrainingError, match="no checkpoint to go back to"):
        train_vocoder(prepare_vocoder_run(work, tmp_path / "nan", model="hifigan-v3", overrides=fp16, max_steps=2),
                      device="cpu")
    assert sum("non-finite" in m.get("event", "") for m in metrics(tmp_path / "nan")) == 3


def test_sigterm_to_the_whole_process_group_saves_then_exits(mini_work, tmp_path):
    """As a scheduler does it: every process of the job, data-loader workers included, gets SIGTERM."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    settings = [*TINY, "train.num_workers=1", "train.checkpoint_every=100000", "train.val_every=100000"]
    command = [sys.executable, "-m", "ttskit", "train-vocoder", str(mini_work), "-o", str(run), "--model",
               "hifigan-v3", "--max-steps", "100000", "--device", "cpu", *sets(settings)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "metrics.jsonl").is_file():
        time.sleep(0.1)
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by_signal"] is True and summary["step"] > 0
    assert (run / "checkpoints" / f"step_{summary['step']:08d}.pt").is_file()
    assert (run / "checkpoints" / f"generator_{summary['step']:08d}.pt").is_file()
