from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch
from conftest import requires_cuda

from ttskit.audio import AudioError, MelSpectrogram, griffin_lim, load_audio, save_wav, trim_silence
from ttskit.config import AudioConfig


def reference_log_mel(wave: np.ndarray, c: AudioConfig) -> np.ndarray:
    """HiFi-GAN's mel_spectrogram written independently in numpy from its definition."""
    pad = (c.n_fft - c.hop_length) // 2
    padded = np.pad(wave.astype(np.float64), (pad, pad), mode="reflect")
    window = scipy.signal.get_window("hann", c.win_length, fftbins=True)  # periodic, as torch.hann_window
    left = (c.n_fft - c.win_length) // 2
    full_window = np.zeros(c.n_fft)
    full_window[left:left + c.win_length] = window
    n_frames = 1 + (len(padded) - c.n_fft) // c.hop_length
    frames = np.stack([padded[i * c.hop_length:i * c.hop_length + c.n_fft] for i in range(n_frames)], axis=1)
    spectrum = np.fft.rfft(frames * full_window[:, None], axis=0)
    magnitude = np.sqrt(spectrum.real ** 2 + spectrum.imag ** 2 + 1e-9)
    basis = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax_hz)
    return np.log(np.clip(basis @ magnitude, 1e-5, None))


def test_mel_matches_hifigan_definition_on_real_speech(speech_clip):
    wave, rate = speech_clip
    config = AudioConfig()
    assert rate == config.sample_rate
    ours = MelSpectrogram(config)(torch.from_numpy(wave)[None])[0].numpy()
    reference = reference_log_mel(wave, config)
    assert ours.shape == reference.shape == (80, len(wave) // 256)
    assert np.max(np.abs(ours - reference)) <= 1e-4


def test_mel_other_configs_match_too(speech_clip):
    wave, _ = speech_clip
    config = AudioConfig(n_fft=2048, hop_length=300, win_length=1200, n_mels=100, fmin=50.0, fmax=None)
    ours = MelSpectrogram(config)(torch.from_numpy(wave)[None])[0].numpy()
    assert np.max(np.abs(ours - reference_log_mel(wave, config))) <= 1e-4


def test_mel_is_batched_and_energy_is_frame_norm(speech_clip):
    wave, _ = speech_clip
    batch = torch.from_numpy(np.stack([wave[:20000], wave[5000:25000]]))
    mel = MelSpectrogram()
    log_mel, energy = mel.mel_and_energy(batch)
    assert log_mel.shape == (2, 80, 20000 // 256) and energy.shape == (2, 20000 // 256)
    single = mel(batch[1:2])
    assert torch.allclose(log_mel[1:2], single, atol=1e-5)
    assert torch.allclose(energy, torch.linalg.vector_norm(mel.magnitude(batch), dim=1))
    assert not any(True for _ in mel.state_dict())  # buffers are rebuilt from the config, not saved


@requires_cuda
def test_mel_same_on_cuda(speech_clip):
    wave = torch.from_numpy(speech_clip[0])[None]
    mel = MelSpectrogram()
    on_cpu = mel(wave)
    assert torch.allclose(on_cpu, mel.cuda()(wave.cuda()).cpu(), atol=1e-4)
    assert torch.allclose(on_cpu, MelSpectrogram(double_precision=False).cuda()(wave.cuda()).cpu(), atol=1e-3)


def test_load_audio_mixes_resamples_and_reports_bad_files(tmp_path, speech_clip):
    wave, rate = speech_clip
    stereo = np.stack([wave, wave * 0.5], axis=1)
    path = tmp_path / "stereo_44k.flac"
    sf.write(str(path), librosa.resample(stereo.T, orig_sr=rate, target_sr=44100).T, 44100)
    loaded = load_audio(path, 22050)
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    assert abs(len(loaded) - len(wave)) <= 2
    n = min(len(loaded), len(wave))
    assert np.corrcoef(loaded[:n], wave[:n] * 0.75)[0, 1] > 0.99

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00not really a wav")
    with pytest.raises(AudioError, match="broken.wav: cannot be read as audio"):
        load_audio(broken, 22050)
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        load_audio(tmp_path / "missing.wav", 22050)
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), 22050)
    with pytest.raises(AudioError, match="empty.wav: contains no samples"):
        load_audio(empty, 22050)


def test_trim_removes_silence_but_keeps_margin(speech_clip):
    wave, rate = speech_clip
    config = AudioConfig()
    padded = np.concatenate([np.zeros(rate), wave, np.zeros(rate)]).astype(np.float32)
    trimmed = trim_silence(padded, config)
    assert len(trimmed) < len(wave) + 0.3 * rate
    assert len(trimmed) > 0.8 * len(wave)
    assert len(trim_silence(padded, AudioConfig(trim_top_db=None))) == len(padded)


def test_save_wav_is_atomic_and_roundtrips(tmp_path, speech_clip):
    wave, rate = speech_clip
    path = tmp_path / "out" / "a.wav"
    save_wav(path, wave, rate)
    assert [p.name for p in path.parent.iterdir()] == ["a.wav"]  # no temp file left behind
    back, back_rate = sf.read(str(path), dtype="float32")
    assert back_rate == rate and np.max(np.abs(back - wave)) < 1e-4


def test_griffin_lim_inverts_a_real_mel(speech_clip):
    wave, _ = speech_clip
    mel = MelSpectrogram()
    log_mel = mel(torch.from_numpy(wave)[None])[0]
    rebuilt = griffin_lim(log_mel, mel, n_iter=32, power=1.0)
    assert rebuilt.shape == (log_mel.shape[-1] * 256,)
    # The magnitude is what Griffin-Lim can restore: compare mels, which ignore phase.
    error = torch.mean(torch.abs(mel(rebuilt[None])[0] - log_mel)).item()
    random_phase = griffin_lim(log_mel, mel, n_iter=0, power=1.0)
    assert error < 0.25
    assert torch.mean(torch.abs(mel(random_phase[None])[0] - log_mel)).item() > 2 * error
