"""WaveGlow (Prenger et al., 2019): a normalising flow from Gaussian noise to the wave, conditioned on
the mel, trained by maximum likelihood alone (no discriminator, no spectral loss).

The wave is squeezed into groups of `group` (8) samples, so a step of the flow sees (B, 8, S / 8).
Each of the `flows` (12) steps is an invertible 1x1 convolution (a random rotation at first; its
log-determinant enters the likelihood) and an affine coupling: half the channels pass unchanged and,
with the up-sampled mel, drive a WaveNet-like stack (`layers` dilated convolutions with gated tanh
x sigmoid units and residual/skip 1x1 convolutions) that outputs a log-scale and a shift for the
other half. Every `early_every` (4) steps, `early_size` (2) channels leave the flow early: they are
already Gaussian, and the rest of the flow is cheaper. Names follow NVIDIA/waveglow's `glow.py`
(one `cond_layer` per coupling), so its state dicts load by name (`checkpoints/waveglow_checkpoints.py`).

Inference runs the flow backwards from noise of standard deviation `sigma` (NVIDIA: 0.6 for
speech); the denoiser (`WaveGlowDenoiser`) subtracts the magnitude spectrum the model makes from a
silent (all-zero) mel at sigma 0, its constant hiss, times a strength (0.1 default in `vocode`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from ttskit.config import require
from ttskit.models.weight_norm import fold_weight_norm


@dataclass(frozen=True)
class WaveGlowConfig:
    flows: int = 12
    group: int = 8
    early_every: int = 4
    early_size: int = 2
    layers: int = 8  # per coupling's WaveNet stack, dilations 1, 2, 4, ...
    channels: int = 256  # NVIDIA's published waveglow_256channels; DeepLearningExamples' is 512
    kernel: int = 3
    sigma: float = 1.0  # the Gaussian the flow maps to in training (the loss's)
    inference_sigma: float = 0.6
    denoiser_strength: float = 0.0  # subtract this much of the model's bias spectrum at inference

    def __post_init__(self) -> None:
        require(self.group % 2 == 0 and self.early_size % 2 == 0, "model.group", "group and early_size must be even")
        require(self.kernel % 2 == 1 and self.channels % 2 == 0, "model.kernel", "kernel odd, channels even")
        require(self.remaining_channels >= 2, "model.early_size", "too many channels leave early for this group")

    @property
    def remaining_channels(self) -> int:
        return self.group - self.early_size * ((self.flows - 1) // self.early_every)


PRESETS = {"waveglow": WaveGlowConfig(), "waveglow-512": WaveGlowConfig(channels=512)}


class Invertible1x1Conv(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 1, bias=False)
        rotation = torch.linalg.qr(torch.randn(channels, channels))[0]
        if torch.det(rotation) < 0:  # a rotation, determinant +1
            rotation[:, 0] = -rotation[:, 0]
        with torch.no_grad():
            self.conv.weight.copy_(rotation[..., None])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z W, log|det W| for every (batch, position) it was applied at), the log-det in float32."""
        weight = self.conv.weight.squeeze(-1)
        log_det = z.shape[0] * z.shape[2] * torch.linalg.slogdet(weight.float())[1]
        return F.conv1d(z, weight[..., None].to(z.dtype)), log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        inverse = torch.linalg.inv(self.conv.weight.squeeze(-1).double()).to(z.dtype)
        return F.conv1d(z, inverse[..., None])


class WN(nn.Module):
    """The coupling's WaveNet-like stack: (half the channels, conditioning) -> (shift, log-scale)."""

    def __init__(self, in_channels: int, cond_channels: int, layers: int, channels: int, kernel: int) -> None:
        super().__init__()
        self.layers, self.channels = layers, channels
        self.start = weight_norm(nn.Conv1d(in_channels, channels, 1))
        self.end = nn.Conv1d(channels, 2 * in_channels, 1)
        nn.init.zeros_(self.end.weight)  # the coupling starts as the identity: stable early training
        nn.init.zeros_(self.end.bias)
        self.cond_layer = weight_norm(nn.Conv1d(cond_channels, 2 * channels * layers, 1))
        self.in_layers = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, 2 * channels, kernel, dilation=2 ** i, padding=(kernel - 1) * 2 ** i // 2))
            for i in range(layers))
        self.res_skip_layers = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, 2 * channels if i < layers - 1 else channels, 1)) for i in range(layers))

    def forward(self, audio: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        audio = self.start(audio)
        cond = self.cond_layer(cond)
        output = torch.zeros_like(audio)
        c = self.channels
        for i in range(self.layers):
            gates = self.in_layers[i](audio) + cond[:, 2 * c * i:2 * c * (i + 1)]
            acts = torch.tanh(gates[:, :c]) * torch.sigmoid(gates[:, c:])
            res_skip = self.res_skip_layers[i](acts)
            if i < self.layers - 1:
                audio = audio + res_skip[:, :c]
                output = output + res_skip[:, c:]
            else:
                output = output + res_skip
        return self.end(output)


class WaveGlow(nn.Module):
    def __init__(self, config: WaveGlowConfig, n_mels: int = 80, hop_length: int = 256) -> None:
        super().__init__()
        self.config, self.n_mels, self.hop_length = config, n_mels, hop_length
        # The mel up-sampled to the sample rate by a learned transposed convolution (4 hops wide).
        self.upsample = nn.ConvTranspose1d(n_mels, n_mels, 4 * hop_length, stride=hop_length)
        self.WN = nn.ModuleList()
        self.convinv = nn.ModuleList()
        half, remaining = config.group // 2, config.group
        for k in range(config.flows):
            if k % config.early_every == 0 and k > 0:
                half -= config.early_size // 2
                remaining -= config.early_size
            self.convinv.append(Invertible1x1Conv(remaining))
            self.WN.append(WN(half, n_mels * config.group, config.layers, config.channels, config.kernel))

    def _grouped_condition(self, mel: torch.Tensor, samples: int) -> torch.Tensor:
        """(B, n_mels, T) -> (B, n_mels * group, samples / group): the up-sampled mel, squeezed."""
        cond = self.upsample(mel)[..., :samples]
        batch, bands, length = cond.shape
        group = self.config.group
        cond = cond.reshape(batch, bands, length // group, group).permute(0, 2, 1, 3)
        return cond.reshape(batch, length // group, bands * group).transpose(1, 2)

    def forward(self, mel: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor],
                                                                       list[torch.Tensor]]:
        """Training: (latent z (B, group, S / group), log-scales, log-determinants) of `audio` (B, S),
        S a multiple of the group and at most the mel's frames x hop."""
        cfg = self.config
        cond = self._grouped_condition(mel, audio.shape[1])
        z = audio.reshape(audio.shape[0], -1, cfg.group).transpose(1, 2)
        early, log_scales, log_dets = [], [], []
        for k in range(cfg.flows):
            if k % cfg.early_every == 0 and k > 0:
                early.append(z[:, :cfg.early_size])
                z = z[:, cfg.early_size:]
            z, log_det = self.convinv[k](z)
            log_dets.append(log_det)
            half = z.shape[1] // 2
            shift_scale = self.WN[k](z[:, :half], cond)
            log_s = shift_scale[:, half:]
            z = torch.cat([z[:, :half], torch.exp(log_s) * z[:, half:] + shift_scale[:, :half]], 1)
            log_scales.append(log_s)
        return torch.cat([*early, z], 1), log_scales, log_dets

    def inverse(self, mel: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The flow backwards from a latent (B, group, S / group) laid out as `forward` returns it."""
        cfg = self.config
        cond = self._grouped_condition(mel, z.shape[2] * cfg.group)
        leaving = [cfg.early_size] * ((cfg.flows - 1) // cfg.early_every)
        early, audio = list(z[:, :sum(leaving)].split(leaving, 1)) if leaving else [], z[:, sum(leaving):]
        for k in reversed(range(cfg.flows)):
            half = audio.shape[1] // 2
            shift_scale = self.WN[k](audio[:, :half], cond)
            second = (audio[:, half:] - shift_scale[:, :half]) / torch.exp(shift_scale[:, half:])
            audio = self.convinv[k].inverse(torch.cat([audio[:, :half], second], 1))
            if k % cfg.early_every == 0 and k > 0:
                audio = torch.cat([early.pop(), audio], 1)
        return audio.transpose(1, 2).reshape(audio.shape[0], -1)

    def infer(self, mel: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """(B, n_mels, T) -> (B, T * hop): the flow backwards from noise of deviation `sigma`."""
        sigma = self.config.inference_sigma if sigma is None else sigma
        samples = mel.shape[-1] * self.hop_length
        z = torch.randn(mel.shape[0], self.config.group, samples // self.config.group, device=mel.device,
                        dtype=mel.dtype) * sigma
        return self.inverse(mel, z)

    def remove_weight_norm(self) -> WaveGlow:
        """Weight norm folded into plain weights (inference)."""
        fold_weight_norm(self)
        return self


def waveglow_loss(z: torch.Tensor, log_scales: list[torch.Tensor], log_dets: list[torch.Tensor],
                  sigma: float = 1.0) -> torch.Tensor:
    """Negative log-likelihood per sample (up to a constant), in float32 whatever the autocast."""
    z = z.float()
    total = (z * z).sum() / (2 * sigma * sigma) - sum(s.float().sum() for s in log_scales) - sum(log_dets)
    return total / z.numel()


class WaveGlowDenoiser(nn.Module):
    """NVIDIA's bias removal: the magnitude spectrum of what the model makes from an all-zero mel at
    sigma 0 (its constant hiss), subtracted from every frame of its output, times `strength`."""

    def __init__(self, waveglow: WaveGlow, n_fft: int = 1024) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        with torch.no_grad():
            silent = torch.zeros(1, waveglow.n_mels, 88, device=waveglow.upsample.weight.device)
            bias = waveglow.infer(silent, sigma=0.0).float()
        self.register_buffer("bias_spectrum", self._stft(bias).abs()[:, :, :1], persistent=False)

    def _stft(self, audio: torch.Tensor) -> torch.Tensor:
        window = torch.hann_window(self.n_fft, device=audio.device)
        return torch.stft(audio, self.n_fft, self.hop, self.n_fft, window, return_complex=True)

    def forward(self, audio: torch.Tensor, strength: float) -> torch.Tensor:
        spectrum = self._stft(audio.float())
        magnitude = (spectrum.abs() - self.bias_spectrum * strength).clamp(min=0.0)
        cleaned = torch.polar(magnitude, spectrum.angle())
        window = torch.hann_window(self.n_fft, device=audio.device)
        return torch.istft(cleaned, self.n_fft, self.hop, self.n_fft, window, length=audio.shape[-1])


class WaveGlowSynthesis(nn.Module):
    """Inference as a mel -> wave module (what `NeuralVocoder` calls): the flow from noise of the
    config's sigma, then the denoiser at its strength (when > 0)."""

    def __init__(self, waveglow: WaveGlow) -> None:
        super().__init__()
        self.waveglow = waveglow
        strength = waveglow.config.denoiser_strength
        self.denoiser = WaveGlowDenoiser(waveglow) if strength > 0 else None

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        audio = self.waveglow.infer(mel)
        if self.denoiser is not None:
            audio = self.denoiser(audio, self.waveglow.config.denoiser_strength)
        return audio.unsqueeze(1)

