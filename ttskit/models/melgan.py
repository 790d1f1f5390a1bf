"""MelGAN (Kumar et al., 2019) and multi-band MelGAN (Yang et al., 2020): generator and the
multi-scale window discriminator, with their losses.

Generator: a 7-tap convolution from the mel, then per up-sampling stage a LeakyReLU, a transposed
convolution (kernel 2r, stride r) halving the channels, and `stacks` residual stacks (LeakyReLU,
a dilated 3-tap convolution (dilations 1, 3, 9, ...), LeakyReLU, a 1x1 convolution, plus a 1x1
shortcut); then a LeakyReLU, a 7-tap convolution to `subbands` outputs and tanh. Reflection padding
throughout, weight norm on every convolution. With `subbands` 4 the outputs are the PQMF sub-bands
of the wave (`models.pqmf`), so the convolutions run at a quarter of the sample rate: the reason
multi-band MelGAN is the fastest GAN vocoder on a CPU.

The layer order is that of descript's melgan-neurips and kan-bayashi's ParallelWaveGAN
(`layers.N` here, `model.N` / `melgan.N` there), so their checkpoints load by renaming
(`checkpoints/melgan_checkpoints.py`).

Discriminator: three copies of one strided-convolution stack (a 15-tap convolution, grouped
downsampling convolutions of kernel 10s + 1, a 5-tap and a 3-tap one) on the wave and its x2 and
x4 average-pooled versions; every layer's output is kept for feature matching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from ttskit.config import require
from ttskit.models.pqmf import PQMF
from ttskit.models.weight_norm import fold_weight_norm

SLOPE = 0.2


@dataclass(frozen=True)
class MelGANConfig:
    channels: int = 512  # after the first convolution; halved at every up-sampling
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    stacks: int = 3  # residual stacks per stage, dilations 1, 3, 9, ...
    stack_kernel: int = 3
    kernel: int = 7  # the first and last convolutions
    subbands: int = 1  # 4: multi-band MelGAN
    pqmf_taps: int = 62
    pqmf_cutoff: float = 0.142
    pqmf_beta: float = 9.0

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates) * self.subbands

    def __post_init__(self) -> None:
        require(self.channels % 2 ** len(self.upsample_rates) == 0, "model.channels",
                f"must be divisible by 2^{len(self.upsample_rates)} (it is halved at every up-sampling)")
        require(self.subbands >= 1 and self.stacks >= 1, "model.subbands", "subbands and stacks must be >= 1")
        require(self.stack_kernel % 2 == 1 and self.kernel % 2 == 1, "model.kernel", "kernels must be odd")


PRESETS = {
    # The paper's generator (descript's melgan-neurips: ngf 32, 3 residual layers).
    "melgan": MelGANConfig(),
    # kan-bayashi's multi_band_melgan.v2 (the paper's sizes): 384 channels, x8 x4 x2 then 4 bands.
    "mb-melgan": MelGANConfig(channels=384, upsample_rates=(8, 4, 2), stacks=4, subbands=4),
}


def _normal_init(module: nn.Module) -> nn.Module:
    nn.init.normal_(module.weight, 0.0, 0.02)  # both references' initialisation
    return weight_norm(module)


class ResidualStack(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.stack = nn.Sequential(
            nn.LeakyReLU(SLOPE), nn.ReflectionPad1d((kernel - 1) // 2 * dilation),
            _normal_init(nn.Conv1d(channels, channels, kernel, dilation=dilation)),
            nn.LeakyReLU(SLOPE), _normal_init(nn.Conv1d(channels, channels, 1)))
        self.shortcut = _normal_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stack(x) + self.shortcut(x)


class MelGANGenerator(nn.Module):
    def __init__(self, config: MelGANConfig, n_mels: int = 80) -> None:
        super().__init__()
        self.config = config
        channels = config.channels
        layers: list[nn.Module] = [nn.ReflectionPad1d((config.kernel - 1) // 2),
                                   _normal_init(nn.Conv1d(n_mels, channels, config.kernel))]
        for rate in config.upsample_rates:
            layers += [nn.LeakyReLU(SLOPE),
                       _normal_init(nn.ConvTranspose1d(channels, channels // 2, 2 * rate, stride=rate,
                                                       padding=rate // 2 + rate % 2, output_padding=rate % 2))]
            channels //= 2
            layers += [ResidualStack(channels, config.stack_kernel, config.stack_kernel ** j)
                       for j in range(config.stacks)]
        layers += [nn.LeakyReLU(SLOPE), nn.ReflectionPad1d((config.kernel - 1) // 2),
                   _normal_init(nn.Conv1d(channels, config.subbands, config.kernel)), nn.Tanh()]
        self.layers = nn.Sequential(*layers)
        self.pqmf = PQMF(config.subbands, config.pqmf_taps, config.pqmf_cutoff, config.pqmf_beta) \
            if config.subbands > 1 else None

    def bands(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, subbands, T * hop / subbands): the network's own output."""
        return self.layers(mel)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, 1, T * hop)."""
        out = self.layers(mel)
        return self.pqmf.synthesis(out) if self.pqmf is not None else out

    def remove_weight_norm(self) -> MelGANGenerator:
        """Weight norm folded into plain weights (inference)."""
        fold_weight_norm(self)
        return self


class WindowDiscriminator(nn.Module):
    def __init__(self, downsample: tuple[int, ...], max_channels: int, channels: int = 16) -> None:
        super().__init__()
        layers = [nn.Sequential(nn.ReflectionPad1d(7), _normal_init(nn.Conv1d(1, channels, 15)), nn.LeakyReLU(SLOPE))]
        for stride in downsample:
            out = min(channels * stride, max_channels)
            layers.append(nn.Sequential(
                _normal_init(nn.Conv1d(channels, out, stride * 10 + 1, stride=stride, padding=stride * 5,
                                       groups=channels // 4)), nn.LeakyReLU(SLOPE)))
            channels = out
        out = min(channels * 2, max_channels)
        layers.append(nn.Sequential(_normal_init(nn.Conv1d(channels, out, 5, padding=2)), nn.LeakyReLU(SLOPE)))
        layers.append(_normal_init(nn.Conv1d(out, 1, 3, padding=1)))
        self.layers = nn.ModuleList(layers)

    def forward(self, wave: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output; the last is the score map."""
        outputs = []
        for layer in self.layers:
            wave = layer(wave)
            outputs.append(wave)
        return outputs


class MultiScaleWindowDiscriminator(nn.Module):
    def __init__(self, scales: int = 3, downsample: tuple[int, ...] = (4, 4, 4, 4), max_channels: int = 1024) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(WindowDiscriminator(downsample, max_channels) for _ in range(scales))

    def forward(self, wave: torch.Tensor) -> list[list[torch.Tensor]]:
        judged = []
        for index, discriminator in enumerate(self.discriminators):
            if index:
                wave = F.avg_pool1d(wave, 4, stride=2, padding=1, count_include_pad=False)
            judged.append(discriminator(wave))
        return judged


def discriminator_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]], kind: str) -> torch.Tensor:
    """Hinge (MelGAN) or least-squares (multi-band MelGAN) loss of the score maps."""
    total = real[0][-1].new_zeros(())
    for r, f in zip(real, fake):
        if kind == "hinge":
            total = total + F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean()
        else:
            total = total + ((1 - r[-1]) ** 2).mean() + (f[-1] ** 2).mean()
    return total


def generator_adversarial_loss(fake: list[list[torch.Tensor]], kind: str) -> torch.Tensor:
    total = fake[0][-1].new_zeros(())
    for f in fake:
        total = total + (-f[-1].mean() if kind == "hinge" else ((1 - f[-1]) ** 2).mean())
    return total


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between the real and generated waves' intermediate feature maps (the score maps excluded),
    averaged over layers and discriminators."""
    total = real[0][0].new_zeros(())
    for r, f in zip(real, fake):
        layers = list(zip(r[:-1], f[:-1]))
        total = total + sum(F.l1_loss(b, a.detach()) for a, b in layers) / len(layers)
    return total / len(real)
