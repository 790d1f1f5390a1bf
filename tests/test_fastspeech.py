"""FastSpeech (`train-acoustic --model fastspeech`): FastSpeech2's feed-forward transformer with a
duration predictor and the length regulator, no pitch or energy predictors, no postnet in its
presets. Trained, resumed, exported for the vocoder (GTA), synthesised through the CLI and ONNX,
and refused where its input cannot serve."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import assert_same_run, private_work
from test_train_acoustic import TINY
from typer.testing import CliRunner

from ttskit.checkpoints.acoustic import load_acoustic
from ttskit.checkpoints.store import load_checkpoint, save_checkpoint
from ttskit.cli import app
from ttskit.data.dataset import WorkDataset, collate
from ttskit.models.fastspeech2 import FASTSPEECH_PRESETS, FastSpeech2, VarianceTargets
from ttskit.models.losses import fastspeech2_loss
from ttskit.synthesis import Synthesizer
from ttskit.train.acoustic import TrainingError, prepare_run, train_acoustic

runner = CliRunner()
FASTSPEECH_TINY = [t for t in TINY if not t.startswith("model.postnet")] + ["model.postnet_layers=0"]


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def sets(values):
    return sum((["--set", v] for v in values), [])


@pytest.fixture(scope="module")
def own_work(mini_work, tmp_path_factory):
    return private_work(mini_work, tmp_path_factory.mktemp("fastspeech-work"))  # --export-gta writes into it


@pytest.fixture(scope="module")
def fastspeech_run(own_work, tmp_path_factory):
    run = tmp_path_factory.mktemp("fastspeech") / "run"
    result = runner.invoke(app, ["train-acoustic", str(own_work), "-o", str(run), "--model", "fastspeech",
                                 "--max-steps", "3", "--export-gta", *sets(FASTSPEECH_TINY)])
    assert result.exit_code == 0, result.output
    return run


def test_presets_are_fastspeech_as_published():
    base = FASTSPEECH_PRESETS["base"]
    assert (base.hidden, base.encoder_layers, base.decoder_layers, base.heads, base.conv_filter) == (384, 6, 6, 2, 1536)
    assert base.conv_kernels == (3, 3) and base.postnet_layers == 0 and not base.variance_predictors
    model = FastSpeech2(base, 80, 80)
    names = {n for n, _ in model.named_parameters()}
    assert not any(n.startswith(("pitch_", "energy_", "postnet")) for n in names)
    assert any(n.startswith("duration_predictor") for n in names)


def test_cli_trains_without_pitch_or_energy_terms_and_exports_gta(fastspeech_run, own_work):
    steps = [m for m in metrics(fastspeech_run) if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3]
    assert all({"mel_l1", "duration_mse"} <= set(m) for m in steps)
    assert not any(k in m for m in steps for k in ("pitch_mse", "energy_mse", "postnet_l1"))
    for m in steps:  # the loss is the two terms
        assert m["loss"] == pytest.approx(m["mel_l1"] + m["duration_mse"], rel=1e-4)
    state = load_checkpoint(fastspeech_run / "checkpoints" / "step_00000003.pt")
    assert state["run_config"]["model"]["variance_predictors"] is False
    assert not any(k.startswith(("pitch_", "energy_")) for k in state["model"])
    gta = sorted((own_work / "gta").glob("*.npy"))
    assert gta and np.load(gta[0]).shape == np.load(own_work / "mel" / gta[0].name).shape


def test_loss_falls_on_a_repeated_batch(mini_work):
    torch.manual_seed(0)
    data = WorkDataset(mini_work, "train")
    batch = collate([data[i] for i in range(2)])
    model = FastSpeech2(FASTSPEECH_PRESETS["small"], len(data.vocab), 80, len(data.speakers))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        out = model(batch.phonemes, batch.phoneme_lengths, batch.speakers,
                    targets=VarianceTargets(batch.durations, batch.pitch, batch.energy), max_frames=batch.mels.shape[1])
        loss = fastspeech2_loss(out, batch.mels, batch.durations, batch.pitch, batch.energy, postnet=False,
                                variance_predictors=False)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_resume_continues_exactly(mini_work, tmp_path):
    straight = prepare_run(mini_work, tmp_path / "a", model="fastspeech", overrides=FASTSPEECH_TINY, max_steps=4)
    train_acoustic(straight, device="cpu")
    train_acoustic(prepare_run(mini_work, tmp_path / "b", model="fastspeech", overrides=FASTSPEECH_TINY,
                               max_steps=2), device="cpu")
    resumed = prepare_run(mini_work, tmp_path / "b", overrides=FASTSPEECH_TINY, max_steps=4, resume=True)
    assert not resumed.config.model.variance_predictors  # resuming keeps the run's model
    train_acoustic(resumed, device="cpu")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000004.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000004.pt")
    assert_same_run(a["model"], b["model"])
    with pytest.raises(TrainingError, match="another model"):
        prepare_run(mini_work, tmp_path / "b", model="fastspeech2", overrides=FASTSPEECH_TINY, max_steps=6,
                    resume=True)


def test_synthesis_and_speed_through_the_cli_and_onnx(fastspeech_run, tmp_path):
    path = fastspeech_run / "checkpoints" / "step_00000003.pt"
    state = load_checkpoint(path)  # every phoneme 6 frames: lengths known exactly
    state["model"]["duration_predictor.output.weight"].zero_()
    state["model"]["duration_predictor.output.bias"].fill_(math.log(1 + 6))
    fixed = tmp_path / "fixed.pt"
    save_checkpoint(fixed, state)
    wavs = {}
    for speed in ("1", "2"):
        wavs[speed] = tmp_path / f"s{speed}.wav"
        result = runner.invoke(app, ["synth", "Cats sat on the mat.", "-o", str(wavs[speed]), "--acoustic", str(fixed),
                                     "--speed", speed, "--device", "cpu"])
        assert result.exit_code == 0, result.output
    normal, fast = (len(sf.read(str(wavs[s]))[0]) for s in ("1", "2"))
    assert fast == normal // 2
    synth = Synthesizer.from_checkpoints(fixed, device="cpu")
    sentence = synth.sentences(["Cats sat on the mat."])[0]
    out = synth.engine(np.array([sentence.ids]), np.array([len(sentence.ids)]), np.zeros(1, np.int64),
                       np.ones(1, np.float32), np.zeros(1, np.float32), np.ones(1, np.float32))
    assert out.frames == [6 * len(sentence.ids)] and torch.all(out.f0 == 0)  # no pitch: the vocoder finds it
    assert load_acoustic(fixed, torch.device("cpu")).model.postnet is None


def test_a_harmonic_noise_vocoder_finds_f0_itself_where_none_is_given():
    from ttskit.models.harmonic_noise import HarmonicNoiseConfig, HarmonicNoiseGenerator
    from ttskit.models.inference_graph import HarmonicNoiseGraph

    torch.manual_seed(0)
    config = HarmonicNoiseConfig(channels=32, layers=2, harmonics=40, pitch_channels=16, pitch_layers=1)
    generator = HarmonicNoiseGenerator(config, 80, 22050, 256).eval()
    mel = torch.randn(1, 80, 20) - 4
    with torch.inference_mode():
        torch.manual_seed(1)
        estimated = generator(mel)
        torch.manual_seed(1)
        zeros = generator(mel, torch.zeros(1, 20))
        torch.manual_seed(1)
        white = torch.rand(1, 20 * 256) * 2 - 1
        graph = HarmonicNoiseGraph(generator)(mel, torch.zeros(1, 20),
                                              torch.nn.functional.pad(white[:, None], (512, 512), mode="reflect")[:, 0])
    assert torch.allclose(estimated, zeros, atol=1e-6)
    assert torch.allclose(estimated[:, 0], graph, atol=1e-4)


def test_refusals_name_the_fix(mini_work, tmp_path):
    with pytest.raises(TrainingError, match="unknown model 'tacotron3'"):
        prepare_run(mini_work, tmp_path / "x", model="tacotron3")
    with pytest.raises(TrainingError, match="leave --preset and --model out"):
        prepare_run(mini_work, tmp_path / "x", model="fastspeech", init=tmp_path / "whatever.pt")
    work = tmp_path / "work"
    shutil.copytree(mini_work, work)
    shutil.rmtree(work / "duration")
    result = runner.invoke(app, ["train-acoustic", str(work), "-o", str(tmp_path / "run"), "--model", "fastspeech",
                                 "--max-steps", "1"])
    assert result.exit_code == 2
    assert "duration" in result.output and "ttskit preprocess" in result.output
    assert not (tmp_path / "run").exists()
