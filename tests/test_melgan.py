"""MelGAN and multi-band MelGAN (issue 20): PQMF analysis + synthesis reconstructs speech, the
generators' shapes, `ttskit train-vocoder --model melgan|mb-melgan` (the STFT warm-up and the
adversarial phase), exact resume, --init, and synthesis and copy-synthesis through the result."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import assert_same_run
from typer.testing import CliRunner

from ttskit.checkpoints.store import load_checkpoint
from ttskit.checkpoints.vocoder import load_vocoder
from ttskit.cli import app
from ttskit.models.melgan import PRESETS, MelGANGenerator
from ttskit.models.pqmf import PQMF
from ttskit.models.vocoder import NeuralVocoder
from ttskit.train.vocoder import prepare_vocoder_run, train_vocoder
from ttskit.work import read_manifest

runner = CliRunner()
TINY = ["model.channels=32", "model.stacks=1", "train.segment_samples=2048", "train.batch_size=2",
        "train.discriminator_max_channels=32", "train.log_every=1", "train.checkpoint_every=2", "train.val_every=2",
        "train.val_utterances=1", "train.num_workers=0"]
MB_TINY = [*TINY, "train.discriminator_start_step=2"]  # two warm-up steps, then adversarial


def sets(values: list[str]) -> list[str]:
    return sum((["--set", v] for v in values), [])


def metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_pqmf_reconstructs_speech_nearly_perfectly(speech_clip):
    wave, _ = speech_clip
    pqmf = PQMF()
    x = torch.from_numpy(wave[:len(wave) // 4 * 4])[None, None]
    bands = pqmf.analysis(x)
    assert bands.shape == (1, 4, x.shape[-1] // 4)
    back = pqmf.synthesis(bands)
    noise = (back - x)[..., 100:-100]  # the edges see the zero padding
    snr = 10 * torch.log10(x[..., 100:-100].pow(2).sum() / noise.pow(2).sum())
    assert snr > 30, snr
    # Each band holds its quarter of the spectrum: a 600 Hz tone lands in band 0, 9 kHz in band 3.
    t = torch.arange(22050) / 22050
    for hz, band in ((600.0, 0), (9000.0, 3)):
        energy = pqmf.analysis(torch.sin(2 * torch.pi * hz * t)[None, None]).pow(2).mean(-1)[0]
        assert int(energy.argmax()) == band and energy[band] > 20 * (energy.sum() - energy[band])


@pytest.mark.parametrize("name", ["melgan", "mb-melgan"])
def test_generators_make_hop_samples_per_frame(name):
    config = PRESETS[name]
    generator = MelGANGenerator(config, 80)
    assert config.hop_length == 256
    with torch.no_grad():
        wave = generator(torch.randn(2, 80, 12) - 5)
    assert wave.shape == (2, 1, 12 * 256) and wave.abs().max() <= 1.0 * config.subbands + 1e-4
    if config.subbands > 1:
        assert generator.bands(torch.randn(1, 80, 12)).shape == (1, 4, 12 * 64)
        assert not any("pqmf" in key for key in generator.state_dict())  # derived, not stored


@pytest.mark.parametrize("name", ["melgan", "mb-melgan"])
@pytest.mark.parametrize("frames", [4, 7, 31])  # reflection padding needs 4 frames, in theirs too
def test_the_cpu_inference_path_equals_the_generator(name, frames):
    from ttskit.models.melgan_inference import FastMelGAN

    torch.manual_seed(frames)
    generator = MelGANGenerator(dataclasses.replace(PRESETS[name], channels=64), 80).eval()
    mel = torch.randn(2, 80, frames) - 5
    with torch.no_grad():
        expected = generator(mel)
    fast = FastMelGAN(generator)
    assert torch.allclose(fast(mel), expected, atol=1e-5)
    # bfloat16 from end to end (--precision bf16): its 8-bit mantissa costs some accuracy, not the signal.
    rough = FastMelGAN(generator, torch.bfloat16)(mel)
    assert rough.dtype == torch.float32
    assert 10 * torch.log10(expected.pow(2).sum() / (rough - expected).pow(2).sum()) > 30
    with torch.no_grad():  # building the fast copies folded the weight norm of copies only
        assert torch.equal(generator(mel), expected)


def test_melgan_trains_adversarially_resumes_and_vocodes(mini_work, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--model", "melgan",
                                 "--max-steps", "2", "--device", "cpu", *sets(TINY)])
    assert result.exit_code == 0, result.output
    steps = [m for m in metrics(run) if "loss_g" in m]
    assert [m["step"] for m in steps] == [1, 2]
    assert all(m["loss_d"] > 0 and m["adversarial"] != 0 and m["feature_matching"] > 0 for m in steps)
    assert all(m["stft"] == 0 for m in steps)  # the paper's MelGAN: no spectral loss
    state = load_checkpoint(run / "checkpoints" / "step_00000002.pt")
    assert state["architecture"] == "melgan" and {"discriminator", "optim_d"} <= set(state)
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--max-steps", "3", "--resume",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output  # its own family without --model
    vocoder = load_vocoder(run, "cpu")
    assert isinstance(vocoder, NeuralVocoder)
    rough = load_vocoder(run, "cpu", "bf16")  # --precision bf16: the fast path in bfloat16 throughout
    assert rough.generator.dtype == torch.bfloat16
    mel = torch.from_numpy(np.load(mini_work / "mel" / f"{read_manifest(mini_work, 'val')[0]['id']}.npy"))
    exact, approximate = vocoder(mel), rough(mel)
    assert approximate.dtype == torch.float32 and 10 * torch.log10(exact.pow(2).sum() / (approximate - exact).pow(2).sum()) > 30
    wav = mini_work / "wav" / f"{read_manifest(mini_work, 'val')[0]['id']}.wav"
    out = tmp_path / "copy.wav"
    result = runner.invoke(app, ["vocode", str(wav), "-o", str(out), "--vocoder", str(run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    made, rate = sf.read(str(out))
    assert rate == 22050 and abs(len(made) - len(sf.read(str(wav))[0])) <= 256 and np.isfinite(made).all()


def test_mb_melgan_warms_up_on_stft_losses_then_turns_adversarial(mini_work, tmp_path):
    run = tmp_path / "mb"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--model", "mb-melgan",
                                 "--max-steps", "4", "--device", "cpu", *sets(MB_TINY)])
    assert result.exit_code == 0, result.output
    steps = {m["step"]: m for m in metrics(run) if "loss_g" in m}
    for step in (1, 2):  # warm-up: full-band and sub-band STFT losses, no discriminator
        assert steps[step]["stft"] > 0 and steps[step]["subband_stft"] > 0
        assert steps[step]["loss_d"] == 0 and steps[step]["adversarial"] == 0
    for step in (3, 4):
        assert steps[step]["loss_d"] > 0 and steps[step]["adversarial"] > 0
    generator = load_checkpoint(run / "checkpoints" / "generator_00000004.pt")
    assert generator["architecture"] == "melgan" and generator["model"]["subbands"] == 4
    # --init from it: a new run of the same family starts from its generator and discriminator.
    job = prepare_vocoder_run(mini_work, tmp_path / "tuned", init=run / "checkpoints" / "step_00000004.pt",
                              overrides=MB_TINY, max_steps=1)
    assert job.config.model.subbands == 4
    train_vocoder(job, device="cpu")
    start = load_checkpoint(run / "checkpoints" / "step_00000004.pt")
    tuned = load_checkpoint(tmp_path / "tuned" / "checkpoints" / "step_00000001.pt")
    # One STFT-only step moved the generator a little; the discriminator, not trained yet, not at all.
    assert_same_run(start["discriminator"], tuned["discriminator"], atol=0)


def test_mb_melgan_stft_loss_falls_on_a_repeated_batch(mini_work):
    from ttskit.train.melgan import MelGANTrainer

    job = prepare_vocoder_run(mini_work, mini_work.parent / "mb-repeat", model="mb-melgan",
                              overrides=[*TINY, "train.learning_rate=3e-3"], max_steps=30)
    trainer = MelGANTrainer(job)
    from ttskit.skeleton.distributed import Rank
    from ttskit.skeleton.loop import RunPrecision

    torch.manual_seed(0)
    trainer.build(Rank(0, 1, 0, torch.device("cpu")), RunPrecision(None, torch.amp.GradScaler("cpu", enabled=False)))
    batch = next(iter(torch.utils.data.DataLoader(trainer.train_set, batch_sampler=trainer.sampler,
                                                  collate_fn=trainer.collate)))
    losses = []
    for step in range(25):
        result = trainer.step(batch, step)
        trainer.apply()
        losses.append(float(result.terms["loss_g"]))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_a_hop_the_generator_cannot_make_is_refused(mini_work, tmp_path):
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(tmp_path / "r"), "--model", "mb-melgan",
                                 "--set", "model.upsample_rates=[8,4,4]"])
    assert result.exit_code == 2 and "x 4 sub-bands" in result.output and "audio.hop_length 256" in result.output


def test_mb_melgan_resumes_exactly_across_the_adversarial_switch(mini_work, tmp_path):
    straight = prepare_vocoder_run(mini_work, tmp_path / "a", model="mb-melgan", overrides=MB_TINY, max_steps=4)
    train_vocoder(straight, device="cpu")
    first = prepare_vocoder_run(mini_work, tmp_path / "b", model="mb-melgan", overrides=MB_TINY, max_steps=2)
    train_vocoder(first, device="cpu")
    resumed = prepare_vocoder_run(mini_work, tmp_path / "b", overrides=MB_TINY, max_steps=4, resume=True)
    assert resumed.resume_from.name == "step_00000002.pt" and resumed.config.model.subbands == 4
    train_vocoder(resumed, device="cpu")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000004.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000004.pt")
    for part in ("generator", "discriminator"):
        assert_same_run(a[part], b[part])
    losses = [[m["loss_d"] for m in metrics(run) if "loss_g" in m] for run in (tmp_path / "a", tmp_path / "b")]
    assert np.allclose(losses[0], losses[1], rtol=1e-3) and losses[0][2] > 0


def test_init_from_a_descript_generator(tmp_path, mini_corpus):
    from conftest import mini_subset
    from test_melgan_checkpoints import descript_file

    torch.manual_seed(3)
    source = descript_file(tmp_path / "netG.pt", MelGANGenerator(dataclasses.replace(PRESETS["melgan"], channels=64,
                                                                                     stacks=1), 80))
    corpus = mini_subset(tmp_path / "lj", ("SY01-00000", "SY01-00001", "SY01-00002", "SY01-00005"))
    work = tmp_path / "work"  # descript's filterbank: up to Nyquist
    result = runner.invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(work), "-j", "1", "--set",
                                 "audio.fmax=11025"])
    assert result.exit_code == 0, result.output
    refused = runner.invoke(app, ["train-vocoder", str(work), "-o", str(tmp_path / "r0"), "--init",
                                  str(source), "--device", "cpu", "--set", "model.channels=32"])
    assert refused.exit_code == 2 and "different generator" in refused.output
    result = runner.invoke(app, ["train-vocoder", str(work), "-o", str(tmp_path / "r"), "--init", str(source),
                                 "--max-steps", "1", "--device", "cpu", *sets([*TINY[1:], "model.channels=64"])])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(tmp_path / "r" / "checkpoints" / "step_00000001.pt")
    assert state["architecture"] == "melgan" and state["run_config"]["model"]["subbands"] == 1
