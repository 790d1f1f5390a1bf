"""Public MelGAN checkpoints in ttskit (issue 20): descript's melgan-neurips generator and
kan-bayashi's ParallelWaveGAN MelGAN / multi-band MelGAN load with weights_only, their log10 and
normalised mels met exactly from ttskit's natural-log ones (folded into the first layer, said in a
note), another filterbank refused naming the settings, --init from them; and, given checkouts of
the reference code (TTSKIT_MELGAN_NEURIPS, TTSKIT_PARALLEL_WAVEGAN), the same output as theirs."""

from __future__ import annotations

import dataclasses
import math
import os
import sys

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from ttskit.checkpoints.melgan_checkpoints import reference_names
from ttskit.checkpoints.vocoder import load_generator, load_vocoder
from ttskit.cli import app
from ttskit.models.melgan import PRESETS, MelGANConfig, MelGANGenerator
from ttskit.models.vocoder import VocoderError

SMALL = MelGANConfig(channels=64, stacks=2)
SMALL_MB = MelGANConfig(channels=64, upsample_rates=(8, 4, 2), stacks=2, subbands=4)
MELGAN_NEURIPS = os.environ.get("TTSKIT_MELGAN_NEURIPS")
PARALLEL_WAVEGAN = os.environ.get("TTSKIT_PARALLEL_WAVEGAN")


def descript_file(path, generator: MelGANGenerator):
    torch.save(reference_names(generator, "descript"), path)
    return path


def kan_bayashi_folder(folder, generator: MelGANGenerator, stats: np.ndarray | None, **config):
    folder.mkdir(parents=True, exist_ok=True)
    c = generator.config
    params = {"in_channels": 80, "out_channels": c.subbands, "kernel_size": c.kernel, "channels": c.channels,
              "upsample_scales": list(c.upsample_rates), "stack_kernel_size": c.stack_kernel, "stacks": c.stacks,
              "use_weight_norm": True, "use_causal_conv": False}
    settings = {"sampling_rate": 22050, "fft_size": 1024, "hop_size": 256, "win_length": None, "window": "hann",
                "num_mels": 80, "fmin": 80, "fmax": 7600, "format": "npy", "generator_type": "MelGANGenerator",
                "generator_params": params, "version": "0.5.4", **config}
    (folder / "config.yml").write_text(yaml.safe_dump(settings))
    if stats is not None:
        np.save(folder / "stats.npy", stats)
    path = folder / "checkpoint-400000steps.pkl"
    torch.save({"model": {"generator": reference_names(generator, "kan-bayashi"),
                          "discriminator": {}}, "steps": 400000, "epochs": 100}, path)
    return path


def test_descript_generators_take_ttskit_mels(tmp_path):
    torch.manual_seed(0)
    original = MelGANGenerator(SMALL, 80).eval()
    vocoder = load_vocoder(descript_file(tmp_path / "linda_johnson.pt", original), "cpu")
    assert vocoder.audio.fmax == 11025 and vocoder.audio.fmin == 0 and "log10" in vocoder.notes[0]
    ln_mel = torch.randn(1, 80, 20) - 5
    with torch.no_grad():
        expected = original(ln_mel / math.log(10)).squeeze(1)
    assert torch.allclose(vocoder(ln_mel), expected, atol=1e-5)


def test_kan_bayashi_multi_band_takes_ttskit_mels(tmp_path):
    torch.manual_seed(1)
    original = MelGANGenerator(SMALL_MB, 80).eval()
    stats = np.stack([np.linspace(-4, -2, 80), np.linspace(0.5, 1.5, 80)]).astype(np.float32)
    vocoder = load_vocoder(kan_bayashi_folder(tmp_path / "mb", original, stats), "cpu")
    assert (vocoder.audio.fmin, vocoder.audio.fmax, vocoder.audio.mel_floor) == (80, 7600, 1e-10)
    assert any("normalised by its stats" in n for n in vocoder.notes) and any("centred" in n for n in vocoder.notes)
    ln_mel = torch.randn(2, 80, 16) - 5
    normalised = (ln_mel / math.log(10) - torch.from_numpy(stats[0])[:, None]) / torch.from_numpy(stats[1])[:, None]
    with torch.no_grad():
        expected = original(normalised).squeeze(1)
    assert vocoder(ln_mel).shape == (2, 16 * 256)
    assert torch.allclose(vocoder(ln_mel), expected, atol=1e-5)


def test_what_cannot_be_read_is_refused(tmp_path):
    generator = MelGANGenerator(SMALL, 80)
    path = kan_bayashi_folder(tmp_path / "pwg", generator, None, generator_type="ParallelWaveGANGenerator")
    with pytest.raises(VocoderError, match="ParallelWaveGANGenerator"):
        load_vocoder(path, "cpu")
    (tmp_path / "pwg" / "config.yml").unlink()
    with pytest.raises(VocoderError, match="needs its config.yml"):
        load_vocoder(path, "cpu")
    # A pickle that would run code is refused by weights_only before anything else reads it.
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "ran"),))

    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump({"model": {"generator": Exploit()}}, handle)
    with pytest.raises(VocoderError, match="not a readable"):
        load_vocoder(tmp_path / "evil.pkl", "cpu")
    assert not (tmp_path / "ran").exists()


def test_another_filterbank_is_refused_naming_the_settings(tmp_path, mini_work):
    from conftest import tiny_acoustic_run

    from ttskit.synthesis import Synthesizer

    original = MelGANGenerator(SMALL_MB, 80)
    vocoder = kan_bayashi_folder(tmp_path / "mb", original, None)
    acoustic = tiny_acoustic_run(mini_work, tmp_path / "acoustic", 3)
    with pytest.raises(VocoderError) as refused:
        Synthesizer.from_checkpoints(acoustic, vocoder, device="cpu")
    assert "--set audio.fmin=80.0 --set audio.fmax=7600.0 --set audio.mel_floor=1e-10" in str(refused.value)
    result = CliRunner().invoke(app, ["synth", "Hi there.", "-o", str(tmp_path / "x.wav"), "--acoustic",
                                      str(acoustic), "--vocoder", str(vocoder)])
    assert result.exit_code == 2 and "audio.fmin" in result.output and not (tmp_path / "x.wav").exists()


def test_copy_synthesis_and_init_from_a_kan_bayashi_checkpoint(tmp_path, mini_corpus):
    from conftest import mini_subset

    from ttskit.checkpoints.store import load_checkpoint

    torch.manual_seed(2)
    original = MelGANGenerator(SMALL_MB, 80)
    checkpoint = kan_bayashi_folder(tmp_path / "mb", original, None)
    wav = mini_corpus / "wavs" / "SY01-00002.flac"
    result = CliRunner().invoke(app, ["vocode", str(wav), "-o", str(tmp_path / "copy.wav"), "--vocoder",
                                      str(checkpoint), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "note:" in result.output and (tmp_path / "copy.wav").is_file()
    corpus = mini_subset(tmp_path / "lj", ("SY01-00000", "SY01-00001", "SY01-00002", "SY01-00005"))
    work = tmp_path / "work"  # its mels made with the checkpoint's filterbank
    result = CliRunner().invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(work), "-j", "1", "--set",
                                      "audio.fmin=80", "--set", "audio.fmax=7600", "--set", "audio.mel_floor=1e-10"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "tuned"
    sizes = ["model.channels=64", "model.stacks=2", "train.segment_samples=2048", "train.batch_size=2",
             "train.val_utterances=1", "train.num_workers=0", "train.checkpoint_every=1"]
    result = CliRunner().invoke(app, ["train-vocoder", str(work), "-o", str(run), "--init", str(checkpoint),
                                      "--max-steps", "1", "--device", "cpu", *sum((["--set", s] for s in sizes), [])])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "checkpoints" / "step_00000001.pt")["run_config"]["model"]["subbands"] == 4
    start, _, _ = load_generator(checkpoint)
    tuned, _, _ = load_generator(run)
    # Its convolutions after the first start where the checkpoint's are (one step moved them a little).
    a, b = start.state_dict(), tuned.state_dict()
    key = "layers.3.parametrizations.weight.original1"
    assert (a[key] - b[key]).abs().max() < 0.05 * a[key].abs().max()


# -- against the reference implementations (checkouts given at run time) --------------------------

@pytest.mark.skipif(not MELGAN_NEURIPS, reason="set TTSKIT_MELGAN_NEURIPS to a descriptinc/melgan-neurips checkout")
def test_against_descripts_own_generator(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(MELGAN_NEURIPS)
    from mel2wav.modules import Generator  # the checkout's module

    torch.manual_seed(4)
    theirs = Generator(80, 32, 3).eval()  # the published models' sizes
    torch.save(theirs.state_dict(), tmp_path / "multi_speaker.pt")
    vocoder = load_vocoder(tmp_path / "multi_speaker.pt", "cpu")
    assert load_generator(tmp_path / "multi_speaker.pt")[0].config == PRESETS["melgan"]
    log10_mel = torch.randn(1, 80, 24) - 3
    with torch.no_grad():
        expected = theirs(log10_mel).squeeze(1)
    assert torch.allclose(vocoder(log10_mel * math.log(10)), expected, atol=1e-4)


@pytest.mark.skipif(not PARALLEL_WAVEGAN, reason="set TTSKIT_PARALLEL_WAVEGAN to a kan-bayashi/ParallelWaveGAN checkout")
@pytest.mark.parametrize("preset", ["melgan", "mb-melgan"])
def test_against_parallel_wavegans_own_generator(tmp_path, monkeypatch, preset):
    import scipy.signal

    monkeypatch.syspath_prepend(PARALLEL_WAVEGAN)
    if not hasattr(scipy.signal, "kaiser"):  # its PQMF imports the name SciPy 1.13 removed
        monkeypatch.setattr(scipy.signal, "kaiser", scipy.signal.windows.kaiser, raising=False)
    from parallel_wavegan.layers import PQMF as TheirPQMF
    from parallel_wavegan.models import MelGANGenerator as Theirs

    config = dataclasses.replace(PRESETS[preset], channels=max(128, math.prod(PRESETS[preset].upsample_rates)))
    torch.manual_seed(5)
    theirs = Theirs(in_channels=80, out_channels=config.subbands, channels=config.channels,
                    upsample_scales=list(config.upsample_rates), stacks=config.stacks).eval()
    folder = tmp_path / preset
    folder.mkdir()
    c = config
    (folder / "config.yml").write_text(yaml.safe_dump({
        "sampling_rate": 22050, "fft_size": 1024, "hop_size": 256, "win_length": None, "window": "hann",
        "num_mels": 80, "fmin": 80, "fmax": 7600, "format": "npy", "generator_type": "MelGANGenerator",
        "version": "0.5.4", "generator_params": {"in_channels": 80, "out_channels": c.subbands, "channels": c.channels,
                                                 "upsample_scales": list(c.upsample_rates), "stacks": c.stacks}}))
    stats = np.stack([np.linspace(-4, -2, 80), np.linspace(0.5, 1.5, 80)])
    np.save(folder / "stats.npy", stats)
    path = folder / "checkpoint-1000steps.pkl"
    torch.save({"model": {"generator": theirs.state_dict()}, "steps": 1000}, path)
    vocoder = load_vocoder(path, "cpu")
    normalised = torch.randn(1, 80, 20)
    ln_mel = (normalised * torch.from_numpy(stats[1]).float()[:, None]
              + torch.from_numpy(stats[0]).float()[:, None]) * math.log(10)
    with torch.no_grad():
        expected = theirs(normalised)
        if config.subbands > 1:
            expected = TheirPQMF(config.subbands).synthesis(expected)
    assert torch.allclose(vocoder(ln_mel), expected.squeeze(1), atol=1e-4)
    assert sys.modules["parallel_wavegan"]  # their code, not ours, made `expected`
