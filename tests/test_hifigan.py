"""HiFi-GAN generator, fast inference path, discriminators and jik876/hifi-gan checkpoint interop."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn
from torch.nn import functional as F
from typer.testing import CliRunner

from ttskit.checkpoints import jik876
from ttskit.checkpoints.vocoder import load_vocoder
from ttskit.cli import app
from ttskit.config import AudioConfig
from ttskit.models.discriminators import (
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    adversarial_loss,
    discriminator_loss,
    feature_matching_loss,
)
from ttskit.models.hifigan import PRESETS, Generator, HiFiGANConfig
from ttskit.models.hifigan_inference import FastGenerator, polyphase_weights
from ttskit.models.vocoder import VocoderError

runner = CliRunner()


@pytest.mark.parametrize("name", list(PRESETS))
def test_generator_upsamples_by_the_hop(name):
    generator = Generator(PRESETS[name])
    assert generator.hop_length == 256
    wave = generator(torch.randn(2, 80, 7))
    assert wave.shape == (2, 1, 7 * 256) and wave.abs().max() <= 1


def test_removing_weight_norm_keeps_the_output():
    torch.manual_seed(0)
    generator = Generator(PRESETS["hifigan-v2"]).eval()
    mel = torch.randn(1, 80, 20)
    with torch.no_grad():
        before = generator(mel)
        generator.remove_weight_norm()
        after = generator(mel)
    assert not any(hasattr(m, "parametrizations") for m in generator.modules())
    assert torch.allclose(before, after, atol=1e-6)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("frames,batch", [(31, 1), (16, 2)])
def test_fast_generator_matches_the_reference_computation(name, frames, batch):
    torch.manual_seed(1)
    generator = Generator(PRESETS[name]).eval()
    mel = torch.randn(batch, 80, frames) * 3
    with torch.no_grad():
        expected = generator(mel)
    fast = FastGenerator(generator)  # copies and folds weight norm itself
    got = fast(mel)
    assert got.shape == expected.shape
    assert expected.std() > 1e-3
    assert torch.allclose(got, expected, atol=1e-6), (got - expected).abs().max()


@pytest.mark.parametrize("c_in,c_out,kernel,stride", [(16, 8, 16, 8), (8, 4, 4, 2), (6, 3, 8, 4), (5, 3, 7, 3)])
def test_polyphase_form_equals_the_transposed_convolution(c_in, c_out, kernel, stride):
    torch.manual_seed(2)
    transposed = nn.ConvTranspose1d(c_in, c_out, kernel, stride, padding=(kernel - stride) // 2)
    weight, bias, left, right = polyphase_weights(transposed)
    x = torch.randn(2, c_in, 13)
    with torch.no_grad():
        expected = transposed(x)
        blocks = F.conv1d(F.pad(x, (left, right)), weight, bias)
    got = blocks.view(2, stride, c_out, -1).permute(0, 2, 3, 1).reshape(2, c_out, -1)[..., :expected.shape[-1]]
    assert torch.allclose(got, expected, atol=1e-5)


def test_discriminators_and_losses():
    torch.manual_seed(3)
    real, fake = torch.randn(2, 1, 2000) * 0.1, torch.randn(2, 1, 2000) * 0.1
    for discriminator, count in ((MultiPeriodDiscriminator(), 5), (MultiScaleDiscriminator(), 3)):
        scores_r, maps_r = discriminator(real)
        scores_f, maps_f = discriminator(fake)
        assert len(scores_r) == count and all(s.shape[0] == 2 for s in scores_r)
        assert discriminator_loss(scores_r, scores_f) > 0 and adversarial_loss(scores_f) > 0
        assert feature_matching_loss(maps_r, maps_f) > 0
        assert feature_matching_loss(maps_r, maps_r) == 0
    # The least-squares terms at their optimum: real scored 1, generated 0.
    assert discriminator_loss([torch.ones(3)], [torch.zeros(3)]) == 0
    assert adversarial_loss([torch.ones(3)]) == 0


# --- jik876/hifi-gan interop -------------------------------------------------------------------
# The checkpoint below is written key by key in the reference implementation's layout (old-style
# weight norm: weight_g, weight_v), and `reference_forward` computes its output from those raw
# tensors, following the reference code's forward pass; neither uses ttskit's model code.

SMALL = {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
         "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 2], [2, 6]],
         "num_mels": 80, "num_freq": 513, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050,
         "fmin": 0, "fmax": 8000, "fmax_for_loss": None, "batch_size": 16, "learning_rate": 0.0002}


def jik876_state(h: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, shape: tuple[int, ...], bias: int) -> None:
        state[f"{name}.bias"] = torch.randn(bias, generator=g) * 0.1
        state[f"{name}.weight_g"] = torch.rand(shape[0], 1, 1, generator=g) + 0.5
        state[f"{name}.weight_v"] = torch.randn(*shape, generator=g)

    ch = h["upsample_initial_channel"]
    conv("conv_pre", (ch, h["num_mels"], 7), ch)
    for i, (_rate, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"])):
        conv(f"ups.{i}", (ch // 2 ** i, ch // 2 ** (i + 1), k), ch // 2 ** (i + 1))
    n = 0
    for i in range(len(h["upsample_rates"])):
        c = ch // 2 ** (i + 1)
        for k, dilations in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"]):
            for j in range(len(dilations)):
                if h["resblock"] == "1":
                    conv(f"resblocks.{n}.convs1.{j}", (c, c, k), c)
                    conv(f"resblocks.{n}.convs2.{j}", (c, c, k), c)
                else:
                    conv(f"resblocks.{n}.convs.{j}", (c, c, k), c)
            n += 1
    conv("conv_post", (1, ch // 2 ** len(h["upsample_rates"]), 7), 1)
    return state


def reference_forward(state: dict[str, torch.Tensor], h: dict, mel: torch.Tensor) -> torch.Tensor:
    def w(name: str) -> torch.Tensor:
        v, g = state[f"{name}.weight_v"], state[f"{name}.weight_g"]
        return g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1)

    def conv(name: str, x: torch.Tensor, dilation: int = 1) -> torch.Tensor:
        k = state[f"{name}.weight_v"].shape[-1]
        return F.conv1d(x, w(name), state[f"{name}.bias"], padding=(k * dilation - dilation) // 2, dilation=dilation)

    x = conv("conv_pre", mel)
    kernels = len(h["resblock_kernel_sizes"])
    for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"])):
        x = F.conv_transpose1d(F.leaky_relu(x, 0.1), w(f"ups.{i}"), state[f"ups.{i}.bias"], stride=u,
                               padding=(k - u) // 2)
        total = 0
        for j, dilations in enumerate(h["resblock_dilation_sizes"]):
            n, y = i * kernels + j, x
            for m, d in enumerate(dilations):
                if h["resblock"] == "1":
                    t = conv(f"resblocks.{n}.convs1.{m}", F.leaky_relu(y, 0.1), d)
                    y = conv(f"resblocks.{n}.convs2.{m}", F.leaky_relu(t, 0.1)) + y
                else:
                    y = conv(f"resblocks.{n}.convs.{m}", F.leaky_relu(y, 0.1), d) + y
            total = total + y
        x = total / kernels
    return torch.tanh(conv("conv_post", F.leaky_relu(x)))  # default slope here, as in the reference


@pytest.fixture
def jik876_checkpoint(tmp_path):
    folder = tmp_path / "LJ_V3"
    folder.mkdir()
    state = jik876_state(SMALL)
    torch.save({"generator": state}, folder / "g_00000042")
    (folder / "config.json").write_text(json.dumps(SMALL))
    return folder / "g_00000042", state


def test_jik876_checkpoint_reproduces_the_reference_output(jik876_checkpoint):
    path, state = jik876_checkpoint
    mel = torch.randn(1, 80, 25, generator=torch.Generator().manual_seed(5)) - 4
    with torch.no_grad():
        expected = reference_forward(state, SMALL, mel)[:, 0]
    assert expected.std() > 1e-3
    for device_path in (path, path.parent):  # the file, or the folder's newest g_ file
        vocoder = load_vocoder(device_path, "cpu")
        assert vocoder.audio == AudioConfig(fmax=8000.0)
        assert torch.allclose(vocoder(mel), expected, atol=1e-5)
    generator, _ = jik876.load_generator(path)
    with torch.no_grad():
        assert torch.allclose(generator(mel)[:, 0], expected, atol=1e-5)  # also with weight norm in place


def test_jik876_checkpoint_round_trips(jik876_checkpoint, tmp_path):
    path, state = jik876_checkpoint
    generator, audio = jik876.load_generator(path)
    out = tmp_path / "export" / "g_00000001"
    jik876.save_generator(generator, out, audio)
    saved = torch.load(out, weights_only=True)["generator"]
    assert saved.keys() == state.keys()
    assert all(torch.equal(saved[k], state[k]) for k in state)
    model, audio_back = jik876.read_config(out.parent / "config.json")
    assert model == generator.config and audio_back == audio


def test_jik876_errors_name_the_file(tmp_path, jik876_checkpoint):
    path, _ = jik876_checkpoint
    (path.parent / "config.json").unlink()
    with pytest.raises(VocoderError, match="needs its config.json"):
        load_vocoder(path, "cpu")
    bad = dict(SMALL, upsample_initial_channel=64)
    (path.parent / "config.json").write_text(json.dumps(bad))
    with pytest.raises(VocoderError, match="do not fit"):
        load_vocoder(path, "cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(VocoderError, match="junk.pt"):
        load_vocoder(tmp_path / "junk.pt", "cpu")


def test_vocode_cli_from_wav_and_npy(jik876_checkpoint, tmp_path, speech_clip):
    path, state = jik876_checkpoint
    wave, rate = speech_clip
    sf.write(tmp_path / "in.wav", wave, rate)
    result = runner.invoke(app, ["vocode", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav"),
                                 "--vocoder", str(path)])
    assert result.exit_code == 0, result.output
    copy, copy_rate = sf.read(tmp_path / "out.wav")
    assert copy_rate == rate and len(copy) == len(wave) // 256 * 256
    assert "real time" in result.stderr
    # A stored mel: the output is the reference computation's, to 16-bit PCM resolution.
    mel = np.random.default_rng(0).normal(-4, 1, (80, 30)).astype(np.float32)
    work = tmp_path / "work"
    (work / "mel").mkdir(parents=True)
    np.save(work / "mel" / "u1.npy", mel)
    (work / "config.yaml").write_text("audio:\n  fmax: 8000\n")
    result = runner.invoke(app, ["vocode", str(work / "mel" / "u1.npy"), "-o", str(tmp_path / "u1.wav"),
                                 "--vocoder", str(path)])
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        expected = reference_forward(state, SMALL, torch.from_numpy(mel)[None])[0, 0].numpy()
    written, _ = sf.read(tmp_path / "u1.wav")
    assert np.abs(written - expected).max() <= 1.5 / 32768
    # The same mel claimed to come from other settings: refused, naming both values, nothing written.
    (work / "config.yaml").write_text("audio:\n  fmax: 11025\n  hop_length: 200\n")
    result = runner.invoke(app, ["vocode", str(work / "mel" / "u1.npy"), "-o", str(tmp_path / "u2.wav"),
                                 "--vocoder", str(path)])
    assert result.exit_code == 2
    assert "audio.hop_length 200 vs 256" in result.stderr and "audio.fmax 11025.0 vs 8000.0" in result.stderr
    assert not (tmp_path / "u2.wav").exists()
    # A folder of inputs, a mel outside any WORK folder checked through --mel-config.
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(tmp_path / "in.wav", batch / "a.wav")
    np.save(batch / "b.npy", mel)
    (tmp_path / "good.yaml").write_text("audio:\n  fmax: 8000\n")
    result = runner.invoke(app, ["vocode", str(batch), "-o", str(tmp_path / "copies"), "--vocoder", str(path),
                                 "--mel-config", str(tmp_path / "good.yaml")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "copies").iterdir()) == ["a.wav", "b.wav"]
    assert "could not be checked" not in result.stderr
    result = runner.invoke(app, ["vocode", str(batch / "b.npy"), "-o", str(tmp_path / "b.wav"), "--vocoder", str(path),
                                 "--mel-config", str(work / "config.yaml")])
    assert result.exit_code == 2 and "audio.hop_length 200 vs 256" in result.stderr
    result = runner.invoke(app, ["vocode", str(batch / "b.npy"), "-o", str(tmp_path / "b.wav"), "--vocoder", str(path)])
    assert result.exit_code == 0 and "could not be checked" in result.stderr
    result = runner.invoke(app, ["vocode", str(tmp_path / "in.wav"), "-o", str(tmp_path / "x.wav"),
                                 "--vocoder", str(tmp_path)])
    assert result.exit_code == 2 and "no vocoder checkpoint" in result.stderr


def test_bf16_inference_stays_close_to_float32(jik876_checkpoint, tmp_path, speech_clip):
    """--precision bf16 really computes in bfloat16 (the output moves) and stays within ~25 dB
    SNR of the float32 reference; unknown precisions are refused, on the CLI too."""
    path, state = jik876_checkpoint
    mel = torch.randn(1, 80, 40, generator=torch.Generator().manual_seed(3)) - 4
    with torch.no_grad():
        expected = reference_forward(state, SMALL, mel)[:, 0]
    bf16 = load_vocoder(path, "cpu", precision="bf16")
    wave = bf16(mel)
    assert wave.dtype == torch.float32 and wave.shape == expected.shape
    noise = (wave - expected).pow(2).mean()
    assert noise > 0  # not silently float32
    assert 10 * torch.log10(expected.pow(2).mean() / noise) > 25
    with pytest.raises(VocoderError, match="unknown precision 'fp16'"):
        load_vocoder(path, "cpu", precision="fp16")
    wave_in, rate = speech_clip
    sf.write(tmp_path / "in.wav", wave_in, rate)
    result = runner.invoke(app, ["vocode", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav"),
                                 "--vocoder", str(path), "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    assert "bf16" in result.stderr and len(sf.read(tmp_path / "out.wav")[0]) == len(wave_in) // 256 * 256
    result = runner.invoke(app, ["vocode", str(tmp_path / "in.wav"), "-o", str(tmp_path / "x.wav"),
                                 "--vocoder", str(path), "--precision", "fp16"])
    assert result.exit_code == 2 and not (tmp_path / "x.wav").exists()


def test_unknown_config_values_are_refused():
    with pytest.raises(Exception, match="even number"):
        HiFiGANConfig(upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(16, 15, 4, 4))
