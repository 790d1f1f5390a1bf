from __future__ import annotations

import numpy as np
import pytest

from ttskit.audio.pitch import PitchTrack, clean_pitch, extract_pitch
from ttskit.config import AudioConfig

CONFIG = AudioConfig()
RATE = CONFIG.sample_rate


def harmonic_tone(f0: np.ndarray) -> np.ndarray:
    """A voice-like tone (7 harmonics, 1/k amplitudes) following the F0 contour `f0` (per sample)."""
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32)


def test_yin_tracks_known_pitch_and_silence():
    f0 = np.full(RATE, 150.0)
    f0[RATE // 2:] = 220.0
    wave = harmonic_tone(f0)
    wave[: RATE // 5] = 0.0  # 200 ms of silence: unvoiced
    track = extract_pitch(wave, CONFIG)
    frames = CONFIG.num_frames(len(wave))
    assert track.f0.shape == (frames,) and track.voiced.shape == (frames,)
    assert not track.voiced[:15].any()  # the silence
    assert np.median(track.f0[25:40]) == pytest.approx(150.0, rel=0.005)
    assert np.median(track.f0[50:80]) == pytest.approx(220.0, rel=0.005)
    assert (track.f0[:15] == track.f0[track.voiced][0]).all()  # held flat before the first voiced frame


def test_yin_follows_a_glide():
    f0 = np.linspace(100.0, 300.0, 2 * RATE)
    track = extract_pitch(harmonic_tone(f0), CONFIG)
    centres = (np.arange(len(track.f0)) * CONFIG.hop_length + CONFIG.hop_length // 2).clip(0, len(f0) - 1)
    middle = slice(5, -5)
    assert np.median(np.abs(track.f0[middle] / f0[centres][middle] - 1)) < 0.01


def test_cleanup_fixes_octave_jumps_drops_islands_and_interpolates():
    f0 = np.full(40, 200.0)
    voiced = np.ones(40, dtype=bool)
    f0[10], f0[20] = 400.0, 100.0  # octave errors
    voiced[25:30] = False
    f0[25:30] = 0.0
    voiced[27] = True  # a one-frame voiced island inside an unvoiced stretch
    f0[27] = 350.0
    cleaned = clean_pitch(PitchTrack(f0, voiced))
    assert cleaned.f0[10] == pytest.approx(200.0) and cleaned.f0[20] == pytest.approx(200.0)
    assert not cleaned.voiced[27]
    assert np.allclose(cleaned.f0[25:30], 200.0)  # interpolated between 200 and 200


def test_no_voiced_frames_gives_zeros():
    noise = np.random.default_rng(0).normal(0, 0.05, RATE).astype(np.float32)
    track = extract_pitch(noise, CONFIG)
    assert track.voiced_fraction < 0.05


def test_pyin_option_agrees_on_a_tone():
    wave = harmonic_tone(np.full(RATE // 2, 180.0))
    track = extract_pitch(wave, CONFIG, method="pyin")
    assert len(track.f0) == CONFIG.num_frames(len(wave))
    assert np.median(track.f0[5:-5]) == pytest.approx(180.0, rel=0.01)
