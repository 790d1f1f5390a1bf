"""A harmonic-plus-noise source-filter vocoder (DDSP, Engel et al., 2020; in the spirit of NSF,
Wang et al., 2019): log-mel + F0 -> waveform, built for training on a CPU.

Per mel frame, a dilated convolution stack over (log-mel, log-F0, voicing) predicts a loudness,
a distribution over `harmonics` harmonics of F0 and a `noise_bands`-band noise magnitude
response. The wave is the sum of sinusoids at k * F0, whose phase is the running sum of F0 (so
the periodicity is the given F0 by construction, and the harmonics sound only where the frame is
voiced), plus white noise filtered in the STFT domain by the predicted response. No upsampling
network and no discriminator: a step costs a quarter of a HiFi-GAN V2 step (docs/vocoder-candidates.md).

F0 comes with the mel where it is known: from YIN on the recording for copy-synthesis, from the
acoustic model at synthesis. A small pitch head (`PitchEstimator`, trained beside the synthesiser
on YIN's tracks) estimates F0 and voicing from the mel alone where they are not given: a stored
mel, or the voicing of a synthesised one. Shapes: B batch, M mel bands, T frames, S = T * hop samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from ttskit.config import require

F0_REFERENCE = 100.0  # Hz; log-F0 enters and leaves the networks relative to it
LOWEST_F0 = 20.0  # Hz; the harmonic source never runs slower than this


@dataclass(frozen=True)
class HarmonicNoiseConfig:
    channels: int = 192
    layers: int = 8
    harmonics: int = 100
    noise_bands: int = 65
    noise_fft: int = 1024  # the STFT the noise is filtered in
    noise_hop: int = 0  # its hop in samples (0: the mel hop)
    # Harmonics may sound this many frames beyond the voiced ones (their gain still learned): at a
    # voicing boundary the gate would otherwise fade them within the last voiced frame.
    voicing_dilation: int = 0
    pitch_channels: int = 96
    pitch_layers: int = 4
    # A learned filter on the harmonic source (0 bands: none, the shipped voice's form): per frame a
    # gain and a phase response over `filter_bands` bands, applied in the noise's STFT.
    filter_bands: int = 0
    filter_channels: int = 128
    filter_layers: int = 4

    def __post_init__(self) -> None:
        require(0 <= self.filter_bands <= self.noise_fft // 2 + 1, "model.filter_bands",
                f"must be in [0, model.noise_fft / 2 + 1 ({self.noise_fft // 2 + 1})]")
        for key in ("channels", "layers", "harmonics", "noise_bands", "pitch_channels", "pitch_layers",
                    "filter_channels", "filter_layers"):
            require(getattr(self, key) >= 1, f"model.{key}", "must be at least 1")
        require(self.noise_fft >= 16 and self.noise_fft & (self.noise_fft - 1) == 0, "model.noise_fft",
                "must be a power of two, at least 16")
        require(self.voicing_dilation >= 0, "model.voicing_dilation", "must be >= 0")
        require(0 <= self.noise_hop <= self.noise_fft // 2, "model.noise_hop",
                f"must be in [0, model.noise_fft / 2 ({self.noise_fft // 2})] (0: the mel hop)")
        require(self.noise_bands <= self.noise_fft // 2 + 1, "model.noise_bands",
                f"must be at most model.noise_fft / 2 + 1 ({self.noise_fft // 2 + 1})")

    def takes_weights_of(self, other: object) -> bool:
        """Whether a generator of `other` can start one of this (`--init`): the same networks, with
        at most a harmonic filter added and weightless settings (the noise's STFT, the voicing
        dilation) changed."""
        if not isinstance(other, HarmonicNoiseConfig):
            return False
        weightless_as_other = replace(self, noise_fft=other.noise_fft, noise_hop=other.noise_hop,
                                      voicing_dilation=other.voicing_dilation)
        return weightless_as_other == other or (other.filter_bands == 0 and replace(
            weightless_as_other, filter_bands=0, filter_channels=other.filter_channels,
            filter_layers=other.filter_layers) == other)


PRESETS: dict[str, HarmonicNoiseConfig] = {"harmonic-noise": HarmonicNoiseConfig()}


def scaled_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """DDSP's amplitude nonlinearity: positive, with a wide dynamic range."""
    return 2.0 * torch.sigmoid(x) ** math.log(10.0) + 1e-7


def upsample(frames: torch.Tensor, samples: int) -> torch.Tensor:
    """(B, C, T) frame values -> (B, C, samples); frame j's value sits at the centre of its hop."""
    return F.interpolate(frames, size=samples, mode="linear", align_corners=False)


class _DilatedStack(nn.Module):
    """Residual dilated convolutions over frames (dilations 1, 2, 4, 8, 1, ...)."""

    def __init__(self, inputs: int, channels: int, layers: int, outputs: int) -> None:
        super().__init__()
        self.inp = nn.Conv1d(inputs, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv1d(channels, channels, 3, padding=2 ** (i % 4), dilation=2 ** (i % 4))
                                  for i in range(layers))
        self.head = nn.Conv1d(channels, outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Eager CPU inference only: an exported graph keeps its Conv nodes (ONNX Runtime's own
        # convolutions have no per-length cost).
        eager_cpu_inference = (x.device.type == "cpu" and not torch.is_grad_enabled()
                               and not torch.onnx.is_in_onnx_export() and not torch.jit.is_tracing())
        conv = conv_as_matmul if eager_cpu_inference else _conv
        h = conv(self.inp, x)
        for layer in self.body:
            h = h + conv(layer, F.leaky_relu(h, 0.1))
        return conv(self.head, F.leaky_relu(h, 0.1))


def _conv(layer: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    return layer(x)


def conv_as_matmul(layer: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)` for a stride-1, zero-padded Conv1d as one matrix product over the taps' shifted
    copies of the input. On a CPU torch's oneDNN convolution builds a new kernel for every input
    length it has not seen (~7 ms per length here), and every sentence of the user's path has a
    new length: measured on the shipped vocoder, 40 sentences of new lengths 152x real time through
    the convolution, 256x this way, 220x through the convolution for lengths seen before."""
    taps, dilation, padding = layer.kernel_size[0], layer.dilation[0], layer.padding[0]
    assert isinstance(padding, int) and layer.stride[0] == 1 and layer.groups == 1
    frames = x.shape[-1] + 2 * padding - dilation * (taps - 1)
    if taps == 1:
        stacked = x
    else:
        padded = F.pad(x, (padding, padding))
        stacked = torch.cat([padded[..., k * dilation:k * dilation + frames] for k in range(taps)], 1)
    # weight (out, in, taps) -> (out, taps * in), matching the taps' order in `stacked`.
    weight = layer.weight.permute(0, 2, 1).reshape(layer.out_channels, -1)
    out = torch.matmul(weight, stacked)
    return out if layer.bias is None else out + layer.bias[:, None]


class PitchEstimator(nn.Module):
    """log-mel (B, M, T) -> (log(F0 / F0_REFERENCE) (B, T), voicing logit (B, T))."""

    def __init__(self, n_mels: int, channels: int, layers: int) -> None:
        super().__init__()
        self.net = _DilatedStack(n_mels, channels, layers, 2)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(mel)
        return out[:, 0], out[:, 1]


class HarmonicNoiseGenerator(nn.Module):
    """(log-mel (B, M, T), F0 (B, T) Hz or None, voicing (B, T) in [0, 1] or None) -> wave (B, 1, S).

    F0 is a continuous contour (interpolated through unvoiced frames, as `PitchTrack.f0` is);
    where F0 or voicing is None, the pitch head's estimate from the mel is used."""

    # Parts that a checkpoint trained without them (`--init`) leaves at their identity start.
    optional_parts = ("filter_net.",)

    def __init__(self, config: HarmonicNoiseConfig, n_mels: int, sample_rate: int, hop_length: int) -> None:
        super().__init__()
        self.config, self.sample_rate, self.hop_length = config, sample_rate, hop_length
        self.noise_hop = config.noise_hop or hop_length
        self.controls_net = _DilatedStack(n_mels + 2, config.channels, config.layers,
                                          1 + config.harmonics + config.noise_bands)
        self.pitch = PitchEstimator(n_mels, config.pitch_channels, config.pitch_layers)
        if config.filter_bands:
            self.filter_net = _DilatedStack(n_mels + 2, config.filter_channels, config.filter_layers,
                                            2 * config.filter_bands)
            # Starts as the identity (gain 1, phase 0): a trained synthesiser gains the filter unchanged.
            nn.init.zeros_(self.filter_net.head.weight)
            nn.init.zeros_(self.filter_net.head.bias)
        self.register_buffer("noise_window", torch.hann_window(config.noise_fft), persistent=False)
        self.register_buffer("harmonic_numbers", torch.arange(1, config.harmonics + 1, dtype=torch.float32),
                             persistent=False)

    def estimate_pitch(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(F0 Hz (B, T), voicing probability (B, T)) from the mel alone."""
        log_f0, voicing = self.pitch(mel)
        return F0_REFERENCE * torch.exp(log_f0.clamp(-3.0, 3.0)), torch.sigmoid(voicing)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor | None = None,
                voiced: torch.Tensor | None = None) -> torch.Tensor:
        if f0 is None or voiced is None or bool((f0 <= 0).any()):
            estimated_f0, estimated_voicing = self.estimate_pitch(mel)
            # Frames with F0 0 have none given (an acoustic model that predicts no pitch).
            f0 = estimated_f0 if f0 is None else torch.where(f0 > 0, f0, estimated_f0)
            voiced = estimated_voicing if voiced is None else voiced
        f0 = f0.float().clamp(min=LOWEST_F0)
        voiced = voiced.float()
        gain, distribution, noise = self._controls(mel, f0, voiced)
        samples = mel.shape[-1] * self.hop_length
        harmonics = self._harmonics(f0, gain, distribution, voiced, samples)
        if self.config.filter_bands:
            harmonics = self._filter(harmonics, self.filter_net(self._conditioning(mel, f0, voiced)))
        return (harmonics + self._noise(noise, samples)).unsqueeze(1)

    @staticmethod
    def _conditioning(mel: torch.Tensor, f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        return torch.cat([mel, torch.log(f0 / F0_REFERENCE)[:, None], voiced[:, None]], 1)

    def _stft(self, wave: torch.Tensor) -> torch.Tensor:
        n_fft = self.config.noise_fft
        pad_mode = "reflect" if wave.shape[-1] > n_fft // 2 else "constant"
        return torch.stft(wave, n_fft, self.noise_hop, n_fft, self.noise_window, center=True, pad_mode=pad_mode,
                          return_complex=True)

    def _istft(self, spectrum: torch.Tensor, samples: int) -> torch.Tensor:
        n_fft = self.config.noise_fft
        return torch.istft(spectrum, n_fft, self.noise_hop, n_fft, self.noise_window, center=True, length=samples)

    def _filter(self, wave: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
        """(B, S) wave through the per-frame filter (B, 2 * bands, T): log-gains then phases."""
        spectrum = self._stft(wave)
        log_gain, phase = (_to_bins(part, spectrum.shape[-1], spectrum.shape[1]) for part in response.chunk(2, 1))
        return self._istft(spectrum * torch.polar(torch.exp(log_gain.clamp(max=4.0)), phase), wave.shape[-1])

    def _controls(self, mel: torch.Tensor, f0: torch.Tensor,
                  voiced: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.config.harmonics
        out = self.controls_net(self._conditioning(mel, f0, voiced))
        gain = scaled_sigmoid(out[:, 0])
        # Harmonics at or above Nyquist would alias: they get no share of the loudness.
        audible = (self.harmonic_numbers[None, :, None] * f0[:, None] < self.sample_rate / 2).float()
        distribution = torch.softmax(out[:, 1:1 + h], 1) * audible
        distribution = distribution / distribution.sum(1, keepdim=True).clamp(min=1e-7)
        # The -5 starts the noise quiet: early in training it would otherwise drown the harmonics.
        noise = scaled_sigmoid(out[:, 1 + h:] - 5.0)
        return gain, distribution, noise

    def harmonic_gate(self, voiced: torch.Tensor) -> torch.Tensor:
        """(B, T) voicing -> where the harmonics sound: the voicing, dilated by `voicing_dilation` frames."""
        d = self.config.voicing_dilation
        return F.max_pool1d(voiced[:, None], 2 * d + 1, 1, d)[:, 0] if d else voiced

    def _phase(self, f0: torch.Tensor, samples: int) -> torch.Tensor:
        f0_samples = upsample(f0[:, None], samples)[:, 0]
        # float64 running sum: a float32 one loses the phase's fractional part after a few seconds.
        return torch.remainder(2 * math.pi * torch.cumsum(f0_samples.double() / self.sample_rate, -1),
                               2 * math.pi).float()

    def _harmonics(self, f0: torch.Tensor, gain: torch.Tensor, distribution: torch.Tensor, voiced: torch.Tensor,
                   samples: int) -> torch.Tensor:
        frame_amplitudes = distribution * (gain * self.harmonic_gate(voiced))[:, None]
        phase = self._phase(f0, samples)
        if not torch.is_grad_enabled() and self.hop_length % 2 == 0:
            return harmonic_sum(frame_amplitudes, phase, self.hop_length)
        waves = torch.sin(self.harmonic_numbers[None, :, None] * phase[:, None])
        return (upsample(frame_amplitudes, samples) * waves).sum(1)

    def _noise(self, response: torch.Tensor, samples: int) -> torch.Tensor:
        white = torch.rand(response.shape[0], samples, device=response.device) * 2 - 1
        # Reflecting the edges needs more than half an STFT of signal; a shorter one (two frames or
        # fewer) is zero-padded instead (`_stft`).
        spectrum = self._stft(white)
        return self._istft(spectrum * _to_bins(response, spectrum.shape[-1], spectrum.shape[1]), samples)


def bands_at_frames(bands: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, bands, T) per-frame band values -> (B, bands, frames): linear over the STFT's frames."""
    return F.interpolate(bands, size=frames, mode="linear", align_corners=False)


def band_response(bands: torch.Tensor, frames: int, bins: int) -> torch.Tensor:
    """(B, bands, T) per-frame band values -> (B, frames, bins): linear over the STFT's frames and
    its bins (the bands spread evenly from 0 Hz to Nyquist). The exported graph takes the bins'
    interpolation as a matrix into its DFT's own order (`graph_dft.BandFilter`)."""
    return F.interpolate(bands_at_frames(bands, frames).transpose(1, 2), size=bins, mode="linear", align_corners=True)


def _to_bins(bands: torch.Tensor, frames: int, bins: int) -> torch.Tensor:
    """`band_response` in torch.stft's layout, (B, bins, frames)."""
    return band_response(bands, frames, bins).transpose(1, 2)


def harmonic_sum(frame_amplitudes: torch.Tensor, phase: torch.Tensor, hop: int) -> torch.Tensor:
    """sum_k a_k(t) sin(k phase(t)) for (B, H, T) frame amplitudes (linearly interpolated to the
    samples as `upsample` does) and (B, T * hop) phase, without (B, H, samples) tensors: the
    inference path, ~4x faster on a CPU than sin() of every harmonic (measured: 84 -> 20 ms for
    4.6 s of audio with 100 harmonics).

    sin(k x) follows from the two before it (sin(k x) = 2 cos(x) sin((k-1) x) - sin((k-2) x)),
    and within each hop-long block between two frame centres an amplitude is start + slope * u, so
    the sum is two broadcast accumulations per harmonic (the blocks: `_amplitude_blocks`).
    Agrees with the direct sum to float32 rounding (tested). No length is taken into a Python int,
    so it also traces with dynamic lengths (`grouped_harmonic_sum` is the form graph runtimes run faster)."""
    start, slope, u = _amplitude_blocks(frame_amplitudes, hop)
    blocks = _phase_in_blocks(phase, hop)
    start, slope = start[..., None], slope[..., None]  # (B, H, T + 1, 1)
    previous, current, twice_cos = torch.zeros_like(blocks), torch.sin(blocks), 2 * torch.cos(blocks)
    level, ramp = start[:, 0] * current, slope[:, 0] * current
    for k in range(1, frame_amplitudes.shape[1]):
        previous, current = current, twice_cos * current - previous
        level.addcmul_(start[:, k], current)
        ramp.addcmul_(slope[:, k], current)
    return _unblock(level + ramp * u, hop)


def _amplitude_blocks(frame_amplitudes: torch.Tensor, hop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The hop-long blocks between frame centres that both harmonic sums work in: (start (B, H, T + 1),
    slope (B, H, T + 1), u (hop,)), so that within block b the amplitude at sample j is start[b] +
    slope[b] * u[j]. Blocks start half a hop early (the centre of frame 0); the half blocks at both
    ends hold the edge frames' values, as `upsample` does."""
    edges = torch.cat([frame_amplitudes[..., :1], frame_amplitudes, frame_amplitudes[..., -1:]], -1)
    u = (torch.arange(hop, device=frame_amplitudes.device, dtype=frame_amplitudes.dtype) + 0.5) / hop
    return edges[..., :-1], edges[..., 1:] - edges[..., :-1], u


def _phase_in_blocks(phase: torch.Tensor, hop: int) -> torch.Tensor:
    """(B, T * hop) samples -> (B, T + 1, hop) in `_amplitude_blocks`' blocks (zeros in the half blocks' outer halves)."""
    half = hop // 2
    return F.pad(phase, (half, hop - half)).reshape(phase.shape[0], -1, hop)


def phase_blocks(f0: torch.Tensor, hop: int, sample_rate: int) -> torch.Tensor:
    """`HarmonicNoiseGenerator._phase` for (B, T) F0 laid out in `_amplitude_blocks`' blocks (B, T + 1,
    hop), in closed form per block: F0 is linear within a block (start + slope * u, as `upsample`
    makes it), so its running sum there is (j + 1) start + slope (j + 1)^2 / (2 hop) after sample j,
    and only the T + 1 block offsets need a running sum (float64, then wrapped to [0, 2 pi)). A
    graph runtime otherwise interpolates F0 to every sample and sums them in float64 (measured on
    ONNX Runtime: ~10 % of the exported vocoder). The values in the half blocks' outer halves
    (before sample 0, after the last) are not samples: the sums cut them off. Agrees with `_phase`
    to float32 rounding of a phase within one block (tested)."""
    half = hop // 2
    edges = torch.cat([f0[:, :1], f0, f0[:, -1:]], -1).double()
    start, slope = edges[:, :-1], edges[:, 1:] - edges[:, :-1]  # (B, T + 1)
    totals = hop * start + slope * (hop / 2)  # each block's sum of F0 over its samples
    # Block b starts after the blocks before it; block 0's first half lies before sample 0.
    offsets = torch.cumsum(totals, -1) - totals - half * edges[:, :1]
    radians = 2 * math.pi / sample_rate
    offsets = torch.remainder(radians * offsets, 2 * math.pi).float()
    count = torch.arange(1, hop + 1, device=f0.device, dtype=torch.float32)  # j + 1
    within = start.float()[..., None] * count + slope.float()[..., None] * (count * count / (2 * hop))
    return offsets[..., None] + radians * within


def _unblock(blocks: torch.Tensor, hop: int) -> torch.Tensor:
    """(B, T + 1, hop) blocks -> (B, T * hop) samples: the half blocks at both ends cut off."""
    half = hop // 2
    out = blocks.reshape(blocks.shape[0], -1)
    return out[:, half:out.shape[1] - (hop - half)]


def _chebyshev_u(cos_x: torch.Tensor, count: int) -> list[torch.Tensor]:
    """[U_0(cos x), ..., U_{count - 1}(cos x)], the Chebyshev polynomials of the second kind
    (U_n(cos x) = sin((n + 1) x) / sin x), by their recurrence U_n = 2 cos(x) U_{n-1} - U_{n-2}:
    one product and one difference per polynomial instead of a sin() each."""
    twice_cos = 2 * cos_x
    polynomials = [torch.ones_like(cos_x), twice_cos]
    while len(polynomials) < count:
        polynomials.append(twice_cos * polynomials[-1] - polynomials[-2])
    return polynomials[:count]


def _clenshaw(coefficients: tuple[torch.Tensor, ...], alpha: torch.Tensor,
              down_to: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(b_{down_to}, b_{down_to + 1}) of Clenshaw's recurrence b_q = c_q + alpha b_{q+1} - b_{q+2}
    (b past the last coefficient 0; None for a b known to be 0)."""
    b1, b2 = coefficients[-1], None
    for q in range(len(coefficients) - 2, down_to - 1, -1):
        b = coefficients[q] + alpha * b1
        b1, b2 = (b if b2 is None else b - b2), b1
    return b1, b2


def grouped_harmonic_sum(frame_amplitudes: torch.Tensor, blocks: torch.Tensor, hop: int, group: int = 10
                         ) -> torch.Tensor:
    """`harmonic_sum` with the harmonics in groups of `group` G, for graph runtimes (ONNX Runtime).
    With c = cos x, sin(k x) = sin(x) U_{k-1}(c), and harmonic k = q G + m + 1 has
    U_{qG+m} = U_{qG} U_m - U_{qG-1} U_{m-1}. So within each hop-long block the amplitudes (start +
    slope * u, as in `harmonic_sum`) meet one real basis, [U_0..U_{G-1}; u U_0..u U_{G-1}], in one
    small batched product per block, giving per group P_q = sum_m a_qm U_m and R_q = sum_m a_q,m+1
    U_m; the groups' weights U_{qG} and U_{qG-1} both follow V_{q+1} = 2 T_G(c) V_q - V_{q-1}, so
    Clenshaw's recurrence sums them (three passes per group and sum), and the result is sin(x)
    (sum_q U_{qG} P_q - U_{qG-1} R_q).

    ~50 graph nodes instead of ~600 one-harmonic updates, which a graph runtime runs as separate
    passes over the samples, and no (B, T + 1, groups, hop) weighted sums: measured on ONNX
    Runtime, one thread, 336 frames, 100 harmonics: 4.6 ms, against 6.0 ms for the complex form
    (sines and cosines of the first G harmonics, a complex sum per group), 7.7 ms for a weighted sum
    over the groups' offsets, and 3-4x that for one update per harmonic. Torch's fused in-place
    updates make `harmonic_sum` the faster one there. The phase comes in its blocks (B, T + 1, hop),
    as `phase_blocks` or `_phase_in_blocks` lay it out. Agrees with `harmonic_sum` to float32
    rounding (tested)."""
    batch, harmonics, _ = frame_amplitudes.shape
    groups = -(-harmonics // group)
    amplitudes = F.pad(frame_amplitudes, (0, 0, 0, groups * group - harmonics))  # silent padding harmonics
    start, slope, u = _amplitude_blocks(amplitudes, hop)
    start, slope = (c.reshape(batch, groups, group, -1) for c in (start, slope))  # (B, groups, group, T + 1)
    following = [F.pad(c[:, :, 1:], (0, 0, 0, 1)) for c in (start, slope)]  # a_q,m+1 (0 past the group)
    # (B, T + 1, 2 groups, 2 group): rows for P_q then R_q; columns for the starts then the slopes.
    rows = torch.cat([torch.cat([start, slope], 2), torch.cat(following, 2)], 1).permute(0, 3, 1, 2)
    cos_x = torch.cos(blocks)
    u_polynomials = _chebyshev_u(cos_x, group + 1)  # U_0 .. U_G
    basis = torch.stack(u_polynomials[:group] + [u * p for p in u_polynomials[:group]], 2)  # (B, T + 1, 2 group, hop)
    sums = (rows @ basis).unbind(2)
    p, r = sums[:groups], sums[groups:]
    if groups == 1:
        return _unblock(torch.sin(blocks) * p[0], hop)
    before_last = u_polynomials[group - 2] if group >= 2 else torch.zeros_like(cos_x)  # U_{G-2}
    alpha = u_polynomials[group] - before_last  # 2 T_G(c)
    # sum_q V_q c_q = V_0 b_0 + (V_1 - alpha V_0) b_1; V = U_{qG}: V_0 = 1, V_1 - alpha = U_{G-2};
    # V = U_{qG-1}: V_0 = 0, V_1 = U_{G-1}.
    p1, p2 = _clenshaw(p, alpha, 1)
    p0 = p[0] + alpha * p1 if p2 is None else p[0] + alpha * p1 - p2
    r1, _ = _clenshaw(r, alpha, 1)
    return _unblock(torch.sin(blocks) * (p0 + before_last * p1 - u_polynomials[group - 1] * r1), hop)


def multi_resolution_stft_loss(fake: torch.Tensor, real: torch.Tensor,
                               sizes: tuple[int | tuple[int, int, int], ...] = (2048, 1024, 512, 256, 128),
                               convergence_weight: float = 1.0) -> torch.Tensor:
    """Spectral convergence (x `convergence_weight`) + log-magnitude L1, averaged over STFT
    resolutions (Yamamoto et al., 2020): the whole training signal of the harmonic-plus-noise
    vocoder. (..., S) waves; a size is an FFT length (hop a quarter of it, window as long) or (FFT
    length, hop, window length)."""
    total = fake.new_zeros(())
    fake, real = fake.reshape(-1, fake.shape[-1]), real.reshape(-1, real.shape[-1])
    for size in sizes:
        n_fft, hop, win = (size, size // 4, size) if isinstance(size, int) else size
        window = torch.hann_window(win, device=fake.device)
        s_fake = torch.stft(fake, n_fft, hop, win, window, return_complex=True).abs()
        s_real = torch.stft(real, n_fft, hop, win, window, return_complex=True).abs()
        total = total + convergence_weight * torch.linalg.norm(s_real - s_fake) / torch.linalg.norm(s_real).clamp(min=1e-7)
        total = total + F.l1_loss(torch.log(s_fake + 1e-5), torch.log(s_real + 1e-5))
    return total / len(sizes)


def pitch_loss(log_f0: torch.Tensor, voicing_logit: torch.Tensor, f0: torch.Tensor,
               voiced: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pitch head's outputs (`PitchEstimator`) against YIN's track: (L1 of log-F0 on voiced
    frames, voicing cross-entropy). (B, T) each."""
    target = torch.log(f0.clamp(min=LOWEST_F0) / F0_REFERENCE)
    weight = voiced.float()
    f0_l1 = ((log_f0 - target).abs() * weight).sum() / weight.sum().clamp(min=1.0)
    return f0_l1, F.binary_cross_entropy_with_logits(voicing_logit, voiced.float())
