"""Inference as one graph: the computations synthesis runs, written with ops that trace and export
to ONNX (no Python loop over data, no data-dependent Python int, no `bucketize`, no `istft`).

`AcousticGraph` is FastSpeech2's inference with the user's controls as per-utterance *inputs*
(speed, pitch shift in semitones, energy scale) and the acoustic model's pitch as a per-frame F0
contour in Hz as an output (0 for a model that predicts no pitch, FastSpeech: the vocoder then
estimates it), so a runtime needs nothing but the graph and the front end. The
torch backend of `Synthesizer` runs this module, and `ttskit export` exports it: both backends
compute the same thing. `HarmonicNoiseGraph` is the harmonic-plus-noise vocoder's inference with
its white noise as an input (so two backends can be compared sample for sample), the harmonics
summed in groups (`grouped_harmonic_sum`: a few dozen graph nodes, not one per harmonic) and the
STFT pair it filters the noise with written as factored DFT products (`graph_dft.BandFilter`) over
frames cut from hop-sized blocks.

Shapes: B batch, N phonemes, T frames, C channels, M mel bands, S = T * hop samples.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ttskit.models.fastspeech2 import FastSpeech2, zero_padding
from ttskit.models.graph_dft import BandFilter, from_planes, to_planes
from ttskit.models.harmonic_noise import (
    LOWEST_F0,
    HarmonicNoiseGenerator,
    bands_at_frames,
    grouped_harmonic_sum,
    phase_blocks,
)

LOWEST_SPOKEN_F0 = 40.0  # Hz; the acoustic model's contour is clamped here (as synthesis always did)
F0_SMOOTHING_FRAMES = 5  # a phoneme-level pitch is a staircase; the voice glides between phonemes


def frames_of(durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer durations (B, N) -> (phoneme of each frame (B, T), frame lengths (B,), frame index (T,)),
    T the longest total (at least 1). A frame's phoneme is the number of phonemes that ended
    before it: a comparison against the cumulative durations, so the graph has no loop. Frames
    past an utterance's end get index N (out of range: callers mask or clamp them)."""
    ends = torch.cumsum(durations, 1)
    lengths = ends[:, -1]
    frame = torch.arange(torch.clamp(lengths.max(), min=1), device=durations.device)
    phoneme = (ends.unsqueeze(1) <= frame[None, :, None]).sum(-1)
    return phoneme, lengths, frame


def gather_frames(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, N, C) per phoneme, (B, T) phoneme indices in [0, N) -> (B, T, C)."""
    return torch.gather(values, 1, index.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


def moving_average(rows: torch.Tensor, width: int) -> torch.Tensor:
    """(R, N) -> (R, N): each row's centred moving average over `width` values, edges repeated."""
    kernel = torch.full((1, 1, width), 1.0 / width, dtype=rows.dtype, device=rows.device)
    padded = F.pad(rows[:, None], (width // 2, width // 2), mode="replicate")
    return F.conv1d(padded, kernel)[:, 0]


def smooth_log(hz: torch.Tensor, frames: int = F0_SMOOTHING_FRAMES) -> torch.Tensor:
    """(B, T) Hz, averaged in the log domain over `frames` (edges held)."""
    return torch.exp(moving_average(torch.log(hz), frames))


class AcousticGraph(nn.Module):
    """(phonemes (B, N) int64, lengths (B,), speakers (B,), speed (B,), pitch semitones (B,),
    energy scale (B,)) -> (mel (B, M, T) natural-log, silence past each length; frame lengths
    (B,); F0 (B, T) Hz, held past each length; durations (B, N) frames).

    The controls are the user's units, turned into the model's normalised pitch and energy
    domains with the speakers' statistics, which the graph holds."""

    def __init__(self, model: FastSpeech2, speaker_pitch: list[tuple[float, float]], energy_mean: float,
                 energy_std: float, silence: float) -> None:
        super().__init__()
        self.model = model.eval()
        stats = torch.tensor(speaker_pitch, dtype=torch.float32)  # (speakers, 2): mean, std in Hz
        self.register_buffer("pitch_mean", stats[:, 0].contiguous(), persistent=False)
        self.register_buffer("pitch_std", stats[:, 1].contiguous(), persistent=False)
        self.energy_mean, self.energy_std, self.silence = float(energy_mean), float(energy_std), float(silence)
        self.eval()  # inference only; an exporter restores this mode afterwards

    def forward(self, phonemes: torch.Tensor, lengths: torch.Tensor, speakers: torch.Tensor, speed: torch.Tensor,
                pitch: torch.Tensor, energy: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        m = self.model
        phoneme_mask = torch.arange(phonemes.shape[1], device=phonemes.device)[None] >= lengths[:, None]
        x = m.encoder(m.embedding(phonemes), phoneme_mask)
        if m.speaker_embedding is not None:
            x = x + m.speaker_embedding(speakers).unsqueeze(1)
        log_duration = m.duration_predictor(x, phoneme_mask)
        durations = torch.clamp(torch.round((torch.exp(log_duration) - 1) / speed[:, None]), min=0)
        durations = durations.long().masked_fill(phoneme_mask, 0)
        # f0 * r in Hz is (p * std + mean) * r: in the normalised domain p * r + mean (r - 1) / std.
        ratio = torch.pow(2.0, pitch / 12.0)[:, None]
        mean, std = self.pitch_mean[speakers][:, None], self.pitch_std[speakers][:, None]
        pitch_shift = mean * (ratio - 1.0) / std
        energy_scale = energy[:, None]
        energy_shift = self.energy_mean * (energy_scale - 1.0) / self.energy_std

        phoneme, frame_lengths, frame = frames_of(durations)
        frame_mask = frame[None] >= frame_lengths[:, None]
        # Each frame, held at the utterance's last frame past its end (F0 is held there).
        held = torch.minimum(frame[None], torch.clamp(frame_lengths - 1, min=0)[:, None])
        inside = torch.clamp(phoneme, max=phonemes.shape[1] - 1)
        if m.feature_level == "phoneme":
            x, predicted_pitch = self._variances(x, phoneme_mask, ratio, pitch_shift, energy_scale, energy_shift)
            frames = zero_padding(gather_frames(x, inside), frame_mask.unsqueeze(-1))
            normalised = torch.gather(predicted_pitch * ratio + pitch_shift, 1, torch.gather(inside, 1, held))
        else:
            frames = zero_padding(gather_frames(x, inside), frame_mask.unsqueeze(-1))
            frames, predicted_pitch = self._variances(frames, frame_mask, ratio, pitch_shift, energy_scale, energy_shift)
            normalised = torch.gather(predicted_pitch * ratio + pitch_shift, 1, held)
        hidden = m.decoder(frames, frame_mask)
        mel = m.mel_linear(hidden)
        mel = m.refine(mel, frame_mask).masked_fill(frame_mask.unsqueeze(-1), self.silence)
        f0 = smooth_log(torch.clamp(normalised * std + mean, min=LOWEST_SPOKEN_F0))
        if not m.config.variance_predictors:  # FastSpeech predicts no pitch: 0 asks the vocoder to find it
            f0 = torch.zeros_like(f0)
        return mel.transpose(1, 2), frame_lengths, f0, durations

    def _variances(self, x: torch.Tensor, mask: torch.Tensor, pitch_scale: torch.Tensor, pitch_shift: torch.Tensor,
                   energy_scale: torch.Tensor, energy_shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        if not m.config.variance_predictors:
            return x, torch.zeros(mask.shape, device=x.device)
        pitch = m.pitch_predictor(x, mask)
        x = x + m.pitch_embedding(pitch * pitch_scale + pitch_shift)
        energy = m.energy_predictor(x, mask)
        return x + m.energy_embedding(energy * energy_scale + energy_shift), pitch


def _overlapping_frames(signal: torch.Tensor, hop: int, ratio: int) -> torch.Tensor:
    """(B, (F + ratio - 1) * hop) -> (B, F, ratio * hop): frames of ratio * hop samples every hop,
    built from hop-sized blocks by static slices."""
    blocks = signal.reshape(signal.shape[0], -1, hop)
    return torch.cat([blocks[:, i:blocks.shape[1] - (ratio - 1 - i)] for i in range(ratio)], -1)


def _overlap_add(frames: torch.Tensor, hop: int, ratio: int) -> torch.Tensor:
    """(B, F, ratio * hop) -> (B, (F + ratio - 1) * hop): the frames summed at hop spacing."""
    total = None
    for i in range(ratio):
        chunk = F.pad(frames[..., i * hop:(i + 1) * hop], (0, 0, i, ratio - 1 - i))
        total = chunk if total is None else total + chunk
    return total.reshape(frames.shape[0], -1)


class HarmonicNoiseGraph(nn.Module):
    """(mel (B, M, T), F0 (B, T) Hz, white noise (B, S + noise_fft) uniform in [-1, 1)) -> wave
    (B, S): the harmonic-plus-noise generator's inference, voicing from its pitch head, equal to
    `HarmonicNoiseGenerator.forward` given the same noise (its noise reflect-padded by half an STFT
    at each end; to float rounding).

    The noise's STFT and inverse STFT (centred, Hann window, the noise hop) are factored DFT
    products (`graph_dft.BandFilter`) over frames cut from hop-sized blocks, which needs the STFT size
    to be a multiple of the noise hop and the noise hop to divide the mel hop (true of every preset);
    the harmonics are summed in groups (`grouped_harmonic_sum`)."""

    def __init__(self, generator: HarmonicNoiseGenerator) -> None:
        super().__init__()
        self.generator = generator.eval()
        n_fft, hop = generator.config.noise_fft, generator.noise_hop
        if n_fft % hop or generator.hop_length % hop:
            raise ValueError(f"the noise STFT size {n_fft} and the mel hop {generator.hop_length} are not "
                             f"multiples of the noise hop {hop}")
        if generator.config.filter_bands:
            raise ValueError("a harmonic-noise generator with a harmonic filter (model.filter_bands) does not export")
        self.n_fft, self.hop, self.ratio = n_fft, hop, n_fft // hop
        self.filter = BandFilter(n_fft, generator.config.noise_bands)
        window = torch.hann_window(n_fft, dtype=torch.float64)
        self.register_buffer("window_planes", window.float().reshape(self.filter.dft.n1, 1, self.filter.dft.n2),
                             persistent=False)
        self.register_buffer("window_power", (window ** 2).float(), persistent=False)
        self.eval()

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, white: torch.Tensor) -> torch.Tensor:
        g = self.generator
        estimated, voiced = g.estimate_pitch(mel)
        f0 = torch.where(f0 > 0, f0.float(), estimated).clamp(min=LOWEST_F0)  # 0: not given
        gain, distribution, noise = g._controls(mel, f0, voiced)
        harmonics = grouped_harmonic_sum(distribution * (gain * g.harmonic_gate(voiced))[:, None],
                                         phase_blocks(f0, g.hop_length, g.sample_rate), g.hop_length)
        return harmonics + self._filtered_noise(white, noise)

    def _filtered_noise(self, white: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
        """`white` (B, S + n_fft): the noise with half an STFT of context at each end (where the
        generator reflects its noise at the edges: noise either way, and no minimum length)."""
        half, dft = self.n_fft // 2, self.filter.dft
        frames = _overlapping_frames(white, self.hop, self.ratio)  # (B, STFT frames, n_fft)
        # The window and the filter work on the frames in planes (graph_dft): (N1, B * frames, N2).
        planes = to_planes(frames, dft.n1, dft.n2) * self.window_planes
        gains = bands_at_frames(response, frames.shape[1]).transpose(1, 2)  # (B, STFT frames, bands)
        filtered = self.filter.planes(planes, gains.reshape(-1, gains.shape[-1])) * self.window_planes
        wave = _overlap_add(from_planes(filtered, frames.shape[:-1]), self.hop, self.ratio)
        return (wave / self._window_envelope(frames.shape[1]))[:, half:wave.shape[1] - half]

    def _window_envelope(self, frames: int) -> torch.Tensor:
        """(1, (frames + ratio - 1) * hop): the squared windows overlap-added, which the inverse STFT
        divides by, from one small product: hop-sized block b holds part i of every frame b - i
        that exists, so the envelope is (which frames exist per block and part) @ (the squared
        window's parts) rather than an overlap-add of (frames, n_fft) windows (the same values;
        a dozen fewer passes over the samples in a graph runtime)."""
        block = torch.arange(frames + self.ratio - 1, device=self.window_power.device)[:, None]
        frame = block - torch.arange(self.ratio, device=block.device)  # (blocks, part): the frame's index
        exists = ((frame >= 0) & (frame < frames)).to(self.window_power.dtype)
        envelope = exists @ self.window_power.reshape(self.ratio, self.hop)
        return envelope.reshape(1, -1).clamp(min=1e-11)
