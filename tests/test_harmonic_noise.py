"""The harmonic-plus-noise vocoder: periodicity by construction, its pitch head, training through
`ttskit train-vocoder --model harmonic-noise`, resume, copy-synthesis with YIN's F0 and from a
stored mel, and synthesis with the acoustic model's pitch."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from ttskit.audio.pitch import extract_pitch
from ttskit.checkpoints.store import load_checkpoint
from ttskit.checkpoints.vocoder import load_vocoder
from ttskit.cli import app
from ttskit.config import AudioConfig
from ttskit.data.frame_pitch import ensure_frame_pitch
from ttskit.models.harmonic_noise import (
    HarmonicNoiseConfig,
    HarmonicNoiseGenerator,
    conv_as_matmul,
    multi_resolution_stft_loss,
)
from ttskit.models.vocoder import SourceFilterVocoder
from ttskit.train.vocoder import prepare_vocoder_run, train_vocoder
from ttskit.work import frame_pitch_path, load_work_config, read_manifest

runner = CliRunner()
SMALL = HarmonicNoiseConfig(channels=32, layers=2, harmonics=40, pitch_channels=16, pitch_layers=1)
TINY = ["model.channels=32", "model.layers=2", "model.harmonics=40", "model.pitch_channels=16",
        "model.pitch_layers=1", "train.segment_samples=2048", "train.batch_size=2", "train.log_every=1",
        "train.val_every=2", "train.checkpoint_every=2", "train.val_utterances=1", "train.num_workers=0"]


def sets(values):
    return sum((["--set", v] for v in values), [])


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("hz", [110.0, 240.0])
def test_untrained_output_has_the_given_pitch(hz):
    """The harmonic source follows the F0 it is given, before any training: YIN finds it."""
    audio = AudioConfig()
    torch.manual_seed(0)
    generator = HarmonicNoiseGenerator(SMALL, audio.n_mels, audio.sample_rate, audio.hop_length).eval()
    frames = 120
    mel = torch.full((1, audio.n_mels, frames), -4.0)
    with torch.no_grad():
        wave = generator(mel, torch.full((1, frames), hz), torch.ones(1, frames))[0, 0].numpy()
    assert wave.shape == (frames * audio.hop_length,)
    track = extract_pitch(wave / np.abs(wave).max(), audio, "yin", 60.0, 800.0)
    assert track.voiced[10:-10].mean() > 0.9
    cents = 1200 * np.log2(np.median(track.f0[track.voiced]) / hz)
    assert abs(cents) < 20, cents


def test_unvoiced_frames_get_no_harmonics():
    audio = AudioConfig()
    generator = HarmonicNoiseGenerator(SMALL, audio.n_mels, audio.sample_rate, audio.hop_length).eval()
    frames = 40
    f0, voiced = torch.full((1, frames), 150.0), torch.zeros(1, frames)
    with torch.no_grad():
        gain, distribution, _ = generator._controls(torch.zeros(1, audio.n_mels, frames), f0, voiced)
        harmonic = generator._harmonics(f0, gain, distribution, voiced, frames * audio.hop_length)
    assert torch.count_nonzero(harmonic) == 0


def test_harmonics_above_nyquist_are_silent():
    audio = AudioConfig()
    generator = HarmonicNoiseGenerator(SMALL, audio.n_mels, audio.sample_rate, audio.hop_length)
    f0 = torch.full((1, 4), 1000.0)  # harmonics 12 and up of 1 kHz lie past 11.025 kHz
    _, distribution, _ = generator._controls(torch.zeros(1, audio.n_mels, 4), f0, torch.ones(1, 4))
    assert torch.all(distribution[:, 11:] == 0) and torch.allclose(distribution.sum(1), torch.ones(1, 4))


def test_stft_loss_is_zero_for_identical_waves_and_grows_with_noise():
    torch.manual_seed(0)
    wave = torch.randn(2, 8192)
    assert multi_resolution_stft_loss(wave, wave).item() == pytest.approx(0.0, abs=1e-6)
    small = multi_resolution_stft_loss(wave + 0.01 * torch.randn_like(wave), wave).item()
    large = multi_resolution_stft_loss(wave + 0.3 * torch.randn_like(wave), wave).item()
    assert 0 < small < large



def test_spectral_convergence_prefers_a_quieter_noise_than_the_recordings_the_log_term_does_not():
    """train.stft_convergence_weight: against an independent noise of the same level, the squared
    error of magnitudes is lowest for a generated noise pi/4 as loud; the L1 of log-magnitudes at
    the same level. The weight scales the first term only."""
    torch.manual_seed(0)
    real, fake = torch.randn(4, 32768), torch.randn(4, 32768)
    gains = torch.linspace(0.5, 1.5, 21)
    both = torch.stack([multi_resolution_stft_loss(g * fake, real) for g in gains])
    log_only = torch.stack([multi_resolution_stft_loss(g * fake, real, convergence_weight=0.0) for g in gains])
    convergence = both - log_only
    assert gains[convergence.argmin()].item() == pytest.approx(math.pi / 4, abs=0.05)
    assert gains[log_only.argmin()].item() == pytest.approx(1.0, abs=0.05)
    doubled = multi_resolution_stft_loss(fake, real, convergence_weight=2.0)
    assert doubled.item() == pytest.approx((log_only[10] + 2 * convergence[10]).item(), rel=1e-5)

def test_frame_pitch_is_made_once_and_remade_when_damaged(mini_work, tmp_path):
    import shutil

    work = tmp_path / "w"
    shutil.copytree(mini_work, work)
    shutil.rmtree(work / "f0", ignore_errors=True)
    rows = read_manifest(work, "train") + read_manifest(work, "val")
    config = load_work_config(work)
    assert ensure_frame_pitch(work, rows, config) == len(rows)
    track = np.load(frame_pitch_path(work, rows[0]["id"]))
    mel = np.load(work / "mel" / f"{rows[0]['id']}.npy")
    assert track.shape == (2, mel.shape[1]) and set(np.unique(track[1])) <= {0.0, 1.0} and track[1].mean() > 0.3
    assert ensure_frame_pitch(work, rows, config) == 0
    frame_pitch_path(work, rows[1]["id"]).write_bytes(b"not numpy")
    assert ensure_frame_pitch(work, rows, config) == 1


def test_cli_trains_resumes_and_vocodes(mini_work, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--model", "harmonic-noise",
                                 "--max-steps", "2", "--device", "cpu", *sets(TINY)])
    assert result.exit_code == 0, result.output
    steps = [m for m in metrics(run) if "stft" in m]
    assert [m["step"] for m in steps] == [1, 2]
    for key in ("loss", "stft", "f0_l1", "voicing_bce", "grad_norm", "lr", "audio_s_per_s"):
        assert all(np.isfinite(m[key]) for m in steps), key
    assert [m["step"] for m in metrics(run) if "val_mel_l1" in m] == [2]
    state = load_checkpoint(run / "checkpoints" / "step_00000002.pt")
    assert state["architecture"] == "harmonic-noise" and "optim_g" in state and "mpd" not in state
    # --resume without --model continues the run's own family (a HiFi-GAN default would not fit it).
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--max-steps", "3", "--resume",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert [m["step"] for m in metrics(run) if "stft" in m] == [1, 2, 3]

    vocoder = load_vocoder(run, "cpu")
    assert isinstance(vocoder, SourceFilterVocoder) and vocoder.uses_f0
    wav = mini_work / "wav" / f"{read_manifest(mini_work, 'val')[0]['id']}.wav"
    out = tmp_path / "copy.wav"
    result = runner.invoke(app, ["vocode", str(wav), "-o", str(out), "--vocoder", str(run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    made, rate = sf.read(str(out))
    recorded, _ = sf.read(str(wav))
    assert rate == 22050 and abs(len(made) - len(recorded)) <= 256 and np.isfinite(made).all()
    # A stored mel has no F0: the pitch head estimates it, and the audio has the mel's length.
    mel_file = mini_work / "mel" / f"{wav.stem}.npy"
    result = runner.invoke(app, ["vocode", str(mel_file), "-o", str(tmp_path / "from_mel.wav"), "--vocoder",
                                 str(run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(sf.read(str(tmp_path / "from_mel.wav"))[0]) == np.load(mel_file).shape[1] * 256


ADVERSARIAL = [*TINY, "train.adversarial_weight=1", "train.discriminator_start_step=2",
               "train.discriminator_channels=4", "train.discriminator_segment_samples=2048"]


def test_spectrogram_discriminator_trains_after_its_start_step_and_resumes_exactly(mini_work, tmp_path):
    """STFT loss alone for two steps, then the discriminator joins; its state is saved, and a run
    stopped at step 2 and resumed to 4 ends where a straight run to 4 does."""
    from conftest import assert_same_run

    straight = prepare_vocoder_run(mini_work, tmp_path / "a", model="harmonic-noise", overrides=ADVERSARIAL,
                                   max_steps=4)
    train_vocoder(straight, device="cpu")
    steps = [m for m in metrics(tmp_path / "a") if "stft" in m]
    assert [m["loss_d"] for m in steps[:2]] == [0, 0] and all(m["loss_d"] > 0 for m in steps[2:])
    assert all(m["adversarial"] != 0 and m["feature_matching"] > 0 and m["grad_norm_d"] > 0 for m in steps[2:])
    first = prepare_vocoder_run(mini_work, tmp_path / "b", model="harmonic-noise", overrides=ADVERSARIAL,
                                max_steps=2)
    train_vocoder(first, device="cpu")
    resumed = prepare_vocoder_run(mini_work, tmp_path / "b", overrides=ADVERSARIAL, max_steps=4, resume=True)
    train_vocoder(resumed, device="cpu")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000004.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000004.pt")
    assert {"discriminator", "optim_d", "sched_d"} <= set(a)
    for part in ("generator", "discriminator"):
        assert_same_run(a[part], b[part])
    # The generator file synthesis loads is the same as without a discriminator: it vocodes.
    vocoder = load_vocoder(tmp_path / "a", "cpu")
    mel = torch.from_numpy(np.load(mini_work / "mel" / f"{read_manifest(mini_work, 'val')[0]['id']}.npy"))
    assert torch.isfinite(vocoder(mel)).all()


def test_given_f0_moves_the_output_pitch(mini_work, tmp_path):
    """The same mel with F0 an octave up: the vocoder's output is an octave up (YIN on both)."""
    run = tmp_path / "run"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--model", "harmonic-noise",
                                 "--max-steps", "1", "--device", "cpu", *sets(TINY)])
    assert result.exit_code == 0, result.output
    vocoder = load_vocoder(run, "cpu")
    frames = 100
    mel = torch.full((vocoder.audio.n_mels, frames), -3.0)
    low = vocoder(mel, torch.full((frames,), 120.0), torch.ones(frames))[0].numpy()
    high = vocoder(mel, torch.full((frames,), 240.0), torch.ones(frames))[0].numpy()
    f0s = [np.median(extract_pitch(w / np.abs(w).max(), vocoder.audio, "yin", 60.0, 800.0).f0[10:-10])
           for w in (low, high)]
    assert 1200 * abs(np.log2(f0s[1] / f0s[0]) - 1) < 30, f0s


@pytest.mark.parametrize("frames", [1, 2, 37])
def test_fast_harmonic_sum_equals_the_direct_one(frames):
    """The inference paths (sine recurrence, block-wise amplitude ramps; and the graph runtimes'
    grouped form, with a group that divides the harmonics, one that does not and one larger than
    all of them) against sin() of every harmonic with upsampled amplitudes, as training computes it."""
    from ttskit.models.harmonic_noise import (
        _phase_in_blocks,
        grouped_harmonic_sum,
        harmonic_sum,
        phase_blocks,
        upsample,
    )

    torch.manual_seed(frames)
    generator = HarmonicNoiseGenerator(SMALL, 80, 22050, 256)
    amplitudes = torch.rand(2, SMALL.harmonics, frames) / SMALL.harmonics
    f0 = 80 + 300 * torch.rand(2, frames)
    phase = generator._phase(f0, frames * 256)
    direct = (upsample(amplitudes, frames * 256)
              * torch.sin(generator.harmonic_numbers[None, :, None] * phase[:, None])).sum(1)
    # The graph's closed-form phase blocks agree with the running sum on every sample (as angles).
    closed_form = phase_blocks(f0, 256, 22050).reshape(2, -1)[:, 128:-128]
    assert torch.allclose(torch.polar(torch.ones_like(phase), closed_form),
                          torch.polar(torch.ones_like(phase), phase), atol=1e-4)
    with torch.no_grad():
        fast = harmonic_sum(amplitudes, phase, 256)
        grouped = [grouped_harmonic_sum(amplitudes, blocks, 256, group) for group in (2, 3, SMALL.harmonics + 1)
                   for blocks in (_phase_in_blocks(phase, 256), phase_blocks(f0, 256, 22050))]
    assert fast.shape == direct.shape and torch.allclose(fast, direct, atol=1e-4)
    for each in grouped:
        assert each.shape == direct.shape and torch.allclose(each, direct, atol=1e-4)



@pytest.mark.parametrize("taps, dilation, padding", [(3, 1, 1), (3, 4, 4), (3, 8, 8), (1, 1, 0), (5, 2, 3)])
def test_convolution_as_one_matrix_product_equals_the_convolution(taps, dilation, padding):
    torch.manual_seed(0)
    layer = torch.nn.Conv1d(24, 16, taps, padding=padding, dilation=dilation)
    for frames in (1, 7, 130):
        if frames + 2 * padding - dilation * (taps - 1) < 1:
            continue  # no output frame: the convolution itself refuses
        x = torch.randn(2, 24, frames)
        with torch.no_grad():
            assert torch.allclose(conv_as_matmul(layer, x), layer(x), atol=1e-5), frames


def test_inference_on_a_cpu_takes_the_matrix_product_path_with_the_same_result():
    """Without gradients on a CPU the generator's convolutions run as matrix products (no per-length
    kernel building); with gradients (training), and in an exported graph, as Conv1d."""
    torch.manual_seed(0)
    generator = HarmonicNoiseGenerator(SMALL, n_mels=80, sample_rate=22050, hop_length=256).eval()
    mel, f0, voiced = torch.randn(1, 80, 40) - 4, torch.full((1, 40), 140.0), torch.ones(1, 40)
    calls = []
    original = torch.nn.Conv1d.forward
    torch.nn.Conv1d.forward = lambda self, x: calls.append(1) or original(self, x)
    try:
        torch.manual_seed(1)
        with torch.no_grad():
            fast = generator(mel, f0, voiced)
        assert not calls
        torch.manual_seed(1)
        trained_path = generator(mel, f0, voiced).detach()
        assert calls
    finally:
        torch.nn.Conv1d.forward = original
    assert torch.allclose(fast, trained_path, atol=1e-4)

def test_harmonic_filter_starts_as_the_identity_and_fine_tunes_from_a_run_without_one(mini_work, tmp_path):
    """`model.filter_bands` adds a learned per-frame filter (gain and phase) on the harmonic source:
    it starts as the identity, so `--init` a run trained without one gives the same wave at step 0,
    then trains; a filtered generator is no --init for a run without the filter."""
    plain = tmp_path / "plain"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(plain), "--model", "harmonic-noise",
                                 "--max-steps", "1", "--device", "cpu", *sets(TINY)])
    assert result.exit_code == 0, result.output
    filtered = tmp_path / "filtered"
    args = ["train-vocoder", str(mini_work), "-o", str(filtered), "--model", "harmonic-noise", "--init",
            str(plain), "--device", "cpu", *sets([*TINY, "model.filter_bands=16", "model.filter_channels=8",
                                                 "model.filter_layers=1"])]
    result = runner.invoke(app, [*args, "--max-steps", "2"])
    assert result.exit_code == 0, result.output

    before, after = load_vocoder(plain, "cpu").generator, load_vocoder(filtered, "cpu").generator
    assert after.config.filter_bands == 16 and before.config.filter_bands == 0
    head = after.filter_net.head.weight
    assert head.abs().sum() > 0  # trained away from its zero start
    mel = torch.from_numpy(np.load(mini_work / "mel" / f"{read_manifest(mini_work, 'val')[0]['id']}.npy"))[None]
    f0, voiced = torch.full((1, mel.shape[-1]), 150.0), torch.ones(1, mel.shape[-1])
    with torch.no_grad():
        torch.nn.init.zeros_(head)
        torch.nn.init.zeros_(after.filter_net.head.bias)
        after.load_state_dict(before.state_dict(), strict=False)
        torch.manual_seed(3)
        expected = before(mel, f0, voiced)
        torch.manual_seed(3)
        got = after(mel, f0, voiced)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()

    # --init keeps the settings of the generator it starts from (the filter here) unless --set changes them;
    # dropping the filter would drop trained weights.
    kept = tmp_path / "kept"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(kept), "--init", str(filtered),
                                 "--max-steps", "1", "--device", "cpu", *sets(TINY)])
    assert result.exit_code == 0, result.output
    assert load_vocoder(kept, "cpu").generator.config == after.config
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(tmp_path / "back"), "--model",
                                 "harmonic-noise", "--init", str(filtered), "--max-steps", "1", "--device", "cpu",
                                 *sets([*TINY, "model.filter_bands=0"])])
    assert result.exit_code != 0 and "different generator" in result.output and "filter_bands" in result.output


def test_mel_loss_joins_the_stft_loss_when_weighted(mini_work, tmp_path):
    """`train.mel_loss_weight`: a full-band log-mel L1 is logged and added to the step's loss."""
    job = prepare_vocoder_run(mini_work, tmp_path / "run", model="harmonic-noise",
                              overrides=[*TINY, "train.mel_loss_weight=2.5"], max_steps=2)
    train_vocoder(job, device="cpu")
    steps = [m for m in metrics(tmp_path / "run") if "stft" in m]
    assert len(steps) == 2
    for m in steps:
        assert m["mel_l1"] > 0
        expected = m["stft"] + 2.5 * m["mel_l1"] + m["f0_l1"] + m["voicing_bce"]
        assert m["loss"] == pytest.approx(expected, rel=1e-4)



def test_stft_convergence_weight_scales_that_term_of_the_logged_stft_loss(mini_work, tmp_path):
    """`train.stft_convergence_weight` through `train-vocoder`: the first step (same seed, same
    batch, same weights in every run) logs an STFT loss linear in the weight, its convergence
    term positive."""
    first_step = {}
    for weight in (0.0, 1.0, 2.0):
        run = tmp_path / f"w{weight}"
        job = prepare_vocoder_run(mini_work, run, model="harmonic-noise",
                                  overrides=[*TINY, f"train.stft_convergence_weight={weight}"], max_steps=1)
        train_vocoder(job, device="cpu")
        first_step[weight] = next(m for m in metrics(run) if "stft" in m)["stft"]
    convergence = first_step[1.0] - first_step[0.0]
    assert convergence > 0
    assert first_step[2.0] == pytest.approx(first_step[0.0] + 2 * convergence, rel=1e-4)

def test_voicing_dilation_lets_the_harmonics_sound_a_frame_beyond_the_voiced_ones():
    audio = AudioConfig()
    voiced = torch.tensor([[0.0, 0, 0, 1, 1, 1, 0, 0, 0, 0]])
    plain = HarmonicNoiseGenerator(SMALL, audio.n_mels, audio.sample_rate, audio.hop_length).eval()
    dilated = HarmonicNoiseGenerator(replace(SMALL, voicing_dilation=1), audio.n_mels, audio.sample_rate,
                                     audio.hop_length).eval()
    dilated.load_state_dict(plain.state_dict())
    assert dilated.harmonic_gate(voiced).tolist() == [[0.0, 0, 1, 1, 1, 1, 1, 0, 0, 0]]
    assert torch.equal(plain.harmonic_gate(voiced), voiced)
    mel, f0 = torch.full((1, audio.n_mels, 10), -4.0), torch.full((1, 10), 150.0)
    with torch.no_grad():
        gain, distribution, _ = plain._controls(mel, f0, voiced)
        energy = [(g._harmonics(f0, gain, distribution, voiced, 10 * 256) ** 2).reshape(10, 256).sum(1)
                  for g in (plain, dilated)]
    # Hop-long stretches of samples: 7 (frame 6's centre to frame 7's) is silent in the plain gate and
    # sounds in the dilated one; 4, between voiced frames, is the same in both.
    assert energy[0][7] == 0 and energy[1][6] > 2 * energy[0][6] and energy[1][7] > 0
    assert torch.allclose(energy[0][4], energy[1][4])


def test_init_takes_weights_across_weightless_settings_only():
    base = SMALL
    assert replace(base, noise_fft=512, noise_hop=128, voicing_dilation=1).takes_weights_of(base)
    assert replace(base, filter_bands=8).takes_weights_of(base)
    assert not base.takes_weights_of(replace(base, filter_bands=8))  # would drop trained weights
    assert not replace(base, harmonics=41).takes_weights_of(base)
    assert not replace(base, noise_bands=33).takes_weights_of(base)
