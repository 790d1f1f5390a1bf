"""WaveGlow (issue 20): the flow's inverse reproduces its input, its log-likelihood falls on a
repeated batch and stays float32 under autocast, `train-vocoder --model waveglow` trains, resumes
and vocodes; NVIDIA/waveglow's pickled-module checkpoints load without running anything from the
file (a pickle naming other code is refused), DeepLearningExamples' per-layer conditioning merges
exactly; and, given a checkout (TTSKIT_NVIDIA_WAVEGLOW), the same flow as NVIDIA's own code."""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn
from typer.testing import CliRunner

from ttskit.checkpoints.jik876 import to_jik876_keys
from ttskit.checkpoints.vocoder import load_generator, load_vocoder
from ttskit.cli import app
from ttskit.models.vocoder import VocoderError
from ttskit.models.waveglow import WaveGlow, WaveGlowConfig, WaveGlowDenoiser, waveglow_loss
from ttskit.work import read_manifest

TINY = WaveGlowConfig(flows=4, early_every=2, early_size=2, layers=2, channels=16)
TINY_SET = ["model.flows=4", "model.early_every=2", "model.layers=2", "model.channels=16", "train.batch_size=2",
            "train.segment_samples=2048", "train.log_every=1", "train.checkpoint_every=2", "train.val_every=2",
            "train.val_utterances=1", "train.num_workers=0"]
NVIDIA_WAVEGLOW = os.environ.get("TTSKIT_NVIDIA_WAVEGLOW")
runner = CliRunner()


def untrained(seed: int = 0) -> WaveGlow:
    """A tiny WaveGlow whose couplings do something (their last layers start at zero)."""
    torch.manual_seed(seed)
    model = WaveGlow(TINY, 80, 256)
    with torch.no_grad():
        for wn in model.WN:
            wn.end.weight.normal_(0, 0.05)
            wn.end.bias.normal_(0, 0.05)
    return model


def test_the_inverse_reproduces_the_input():
    model = untrained().eval()
    mel, audio = torch.randn(2, 80, 6) - 4, torch.randn(2, 6 * 256) * 0.1
    with torch.no_grad():
        z, log_scales, log_dets = model(mel, audio)
        assert z.shape == (2, 8, 6 * 256 // 8) and len(log_scales) == len(log_dets) == 4
        back = model.inverse(mel, z)
    assert torch.allclose(back, audio, atol=1e-4), (back - audio).abs().max()
    assert model.infer(mel, sigma=0.6).shape == (2, 6 * 256)


def test_the_likelihood_falls_on_a_repeated_batch_and_is_float32():
    model = untrained(1)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    mel, audio = torch.randn(2, 80, 8) - 4, torch.sin(torch.arange(8 * 256) / 7.0)[None].repeat(2, 1) * 0.3
    losses = []
    for _ in range(30):
        loss = waveglow_loss(*model(mel, audio))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.5, losses
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, log_scales, log_dets = model(mel, audio)
    assert waveglow_loss(z, log_scales, log_dets).dtype == torch.float32
    assert all(d.dtype == torch.float32 for d in log_dets)  # the log-determinant never in half precision


def test_cli_trains_resumes_and_vocodes(mini_work, tmp_path):
    run = tmp_path / "wg"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--model", "waveglow",
                                 "--max-steps", "2", "--device", "cpu", *sum((["--set", v] for v in TINY_SET), [])])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in records if "nll" in m] == [1, 2] and any("val_mel_l1" in m for m in records)
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--max-steps", "3", "--resume",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    wav = mini_work / "wav" / f"{read_manifest(mini_work, 'val')[0]['id']}.wav"
    result = runner.invoke(app, ["vocode", str(wav), "-o", str(tmp_path / "c.wav"), "--vocoder", str(run),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    made, rate = sf.read(str(tmp_path / "c.wav"))
    assert rate == 22050 and abs(len(made) - len(sf.read(str(wav))[0])) <= 256 and np.isfinite(made).all()


def test_a_denoiser_strength_in_the_run_is_applied_at_inference(mini_work, tmp_path):
    run = tmp_path / "wg"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--model", "waveglow",
                                 "--max-steps", "1", "--device", "cpu", "--set", "model.denoiser_strength=0.5",
                                 *sum((["--set", v] for v in TINY_SET), [])])
    assert result.exit_code == 0, result.output
    vocoder = load_vocoder(run, "cpu")
    synthesis = vocoder.generator
    assert synthesis.denoiser is not None
    mel = torch.randn(1, 80, 30) - 4
    torch.manual_seed(1)
    made = vocoder(mel)
    torch.manual_seed(1)
    with torch.no_grad():
        raw = synthesis.waveglow.infer(mel)
        expected = synthesis.denoiser(raw, 0.5)
    assert torch.allclose(made, expected, atol=1e-6) and not torch.allclose(made, raw, atol=1e-4)


def nvidia_pickle(path, model: WaveGlow) -> None:
    """`model` saved as NVIDIA/waveglow's train.py saves: {"model": <its glow.WaveGlow module>}, built
    here from stand-in classes named like theirs (old-style weight norm, as their code uses)."""
    glow = types.ModuleType("glow")
    for name in ("WaveGlow", "WN", "Invertible1x1Conv"):
        setattr(glow, name, type(name, (nn.Module,), {"__module__": "glow"}))
    sys.modules["glow"] = glow
    try:
        old = torch.nn.utils.weight_norm
        fake = glow.WaveGlow()
        fake.upsample = nn.ConvTranspose1d(80, 80, 1024, stride=256)
        fake.WN, fake.convinv = nn.ModuleList(), nn.ModuleList()
        for k, wn in enumerate(model.WN):
            w = glow.WN()
            w.start = old(nn.Conv1d(wn.start.in_channels, wn.start.out_channels, 1))
            w.end = nn.Conv1d(wn.end.in_channels, wn.end.out_channels, 1)
            w.cond_layer = old(nn.Conv1d(wn.cond_layer.in_channels, wn.cond_layer.out_channels, 1))
            w.in_layers = nn.ModuleList(old(nn.Conv1d(c.in_channels, c.out_channels, c.kernel_size[0],
                                                      dilation=c.dilation[0], padding=c.padding[0]))
                                        for c in wn.in_layers)
            w.res_skip_layers = nn.ModuleList(old(nn.Conv1d(c.in_channels, c.out_channels, 1))
                                              for c in wn.res_skip_layers)
            fake.WN.append(w)
            inv = glow.Invertible1x1Conv()
            inv.conv = nn.Conv1d(model.convinv[k].conv.in_channels, model.convinv[k].conv.in_channels, 1, bias=False)
            fake.convinv.append(inv)
        fake.n_flows, fake.n_group = TINY.flows, TINY.group
        fake.load_state_dict(to_jik876_keys(model.state_dict()))
        torch.save({"model": fake, "iteration": 580000}, path)
    finally:
        del sys.modules["glow"]


def test_nvidias_pickled_module_loads_without_its_code(tmp_path):
    model = untrained(2).eval()
    nvidia_pickle(tmp_path / "waveglow_256channels_universal_v5.pt", model)
    assert "glow" not in sys.modules
    loaded, audio, _ = load_generator(tmp_path / "waveglow_256channels_universal_v5.pt")
    assert loaded.config == TINY and audio.fmax == 8000
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    vocoder = load_vocoder(tmp_path / "waveglow_256channels_universal_v5.pt", "cpu")
    assert vocoder(torch.randn(80, 5) - 4).shape == (1, 5 * 256)


def test_a_pickle_that_names_other_code_is_refused(tmp_path):
    model = untrained(3)
    nvidia_pickle(tmp_path / "wg.pt", model)
    import pickle
    import zipfile

    # The same archive with its pickle rewritten to call os.system while loading.
    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    with zipfile.ZipFile(tmp_path / "wg.pt") as source, zipfile.ZipFile(tmp_path / "evil.pt", "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps({"model": Exploit(), "glow": "glow WaveGlow"}, protocol=2)
            target.writestr(item, data)
    with pytest.raises(VocoderError):
        load_vocoder(tmp_path / "evil.pt", "cpu")
    assert not (tmp_path / "ran").exists()


def test_per_layer_conditioning_merges_exactly(tmp_path):
    """DeepLearningExamples' layout: `cond_layers.i` per WaveNet layer, "module." names, fp16."""
    model = untrained(4).eval()
    state = {}
    for key, value in to_jik876_keys(model.state_dict()).items():
        if ".cond_layer." in key:
            k, part = key.split(".")[1], key.rsplit(".", 1)[1]
            for i, chunk in enumerate(value.chunk(TINY.layers)):
                state[f"module.WN.{k}.cond_layers.{i}.{part}"] = chunk.half()
        else:
            state["module." + key] = value.half()
    torch.save({"state_dict": state, "epoch": 1000, "config": {}}, tmp_path / "dle.pt")
    loaded, _, _ = load_generator(tmp_path / "dle.pt")
    mel, audio = torch.randn(1, 80, 4) - 4, torch.randn(1, 4 * 256) * 0.1
    with torch.no_grad():
        reference = WaveGlow(TINY, 80, 256)
        reference.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
        assert torch.allclose(loaded(mel, audio)[0], reference(mel, audio)[0], atol=1e-5)


def test_the_denoiser_removes_the_models_constant_hiss():
    model = untrained(5).eval()
    denoiser = WaveGlowDenoiser(model)
    with torch.no_grad():
        hiss = model.infer(torch.zeros(1, 80, 40), sigma=0.0)
    assert torch.allclose(denoiser(hiss, strength=0.0), hiss, atol=1e-5)  # STFT and back, nothing taken
    cleaned = denoiser(hiss, strength=1.0)
    assert cleaned.shape == hiss.shape and cleaned.pow(2).mean() < 0.3 * hiss.pow(2).mean()


@pytest.mark.skipif(not NVIDIA_WAVEGLOW, reason="set TTSKIT_NVIDIA_WAVEGLOW to an NVIDIA/waveglow checkout")
def test_against_nvidias_own_code(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(NVIDIA_WAVEGLOW)
    import glow  # NVIDIA/waveglow/glow.py

    torch.manual_seed(6)
    theirs = glow.WaveGlow(80, 4, 8, 2, 2, {"n_layers": 2, "n_channels": 16, "kernel_size": 3}).eval()
    with torch.no_grad():
        for wn in theirs.WN:
            wn.end.weight.normal_(0, 0.05)
    torch.save({"model": theirs, "iteration": 1}, tmp_path / "waveglow.pt")
    monkeypatch.delitem(sys.modules, "glow")
    ours, _, _ = load_generator(tmp_path / "waveglow.pt")
    mel, audio = torch.randn(1, 80, 5) - 4, torch.randn(1, 5 * 256) * 0.1
    with torch.no_grad():
        z, log_s, log_det = theirs((mel, audio))
        our_z, our_log_s, our_log_det = ours.eval()(mel, audio)
        assert torch.allclose(our_z, z, atol=1e-5)
        assert torch.allclose(sum(d for d in our_log_det), sum(d for d in log_det), atol=1e-3)
        assert torch.allclose(ours.inverse(mel, z), audio, atol=1e-4)  # back through theirs' latent


def test_init_from_nvidias_pickled_checkpoint(mini_work, tmp_path):
    model = untrained(7)
    nvidia_pickle(tmp_path / "waveglow_256channels.pt", model)
    run = tmp_path / "tuned"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--init",
                                 str(tmp_path / "waveglow_256channels.pt"), "--max-steps", "1", "--device", "cpu",
                                 *sum((["--set", v] for v in TINY_SET), [])])
    assert result.exit_code == 0, result.output  # the family (waveglow) taken from the checkpoint
    from ttskit.checkpoints.store import load_checkpoint

    state = load_checkpoint(run / "checkpoints" / "step_00000001.pt")
    assert state["architecture"] == "waveglow"
    key = "WN.0.in_layers.0.parametrizations.weight.original1"
    start = model.state_dict()[key]
    assert (state["generator"][key] - start).abs().max() < 0.05 * start.abs().max()  # one step from NVIDIA's
