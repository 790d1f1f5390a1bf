"""HiFi-GAN's discriminators (Kong et al., 2020) and its GAN losses.

Multi-period: the wave folded into (T / p, p) for p in 2, 3, 5, 7, 11, so each sub-discriminator
sees equally spaced samples and learns periodic structure. Multi-scale: raw, x2 and x4 average-
pooled waves; the first uses spectral normalisation. Module names follow the paper's reference
code so its `do_XXXXXXXX` discriminator checkpoints load too.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm
from torch.nn.utils.parametrizations import weight_norm

from ttskit.models.hifigan import LRELU_SLOPE, same_padding

PERIODS = (2, 3, 5, 7, 11)
# Channel widths relative to the paper's at which every grouped convolution keeps whole groups.
DISCRIMINATOR_WIDTHS = (0.125, 0.25, 0.5, 1.0)


def _scaled(channels: int, width: float) -> int:
    """`channels` of the paper's discriminators at `width` (the input's one channel stays one)."""
    return channels if channels == 1 else int(channels * width)

# (scores per sub-discriminator, feature maps per sub-discriminator)
Judgement = tuple[list[torch.Tensor], list[list[torch.Tensor]]]


def _judge(convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The convolution stack every sub-discriminator shares: (flattened scores, every layer's output)."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        features.append(x)
    x = conv_post(x)
    features.append(x)
    return torch.flatten(x, 1), features


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, kernel: int = 5, stride: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.period = period
        pad = (same_padding(kernel), 0)
        widths = [_scaled(c, width) for c in (1, 32, 128, 512, 1024)]
        self.convs = nn.ModuleList([weight_norm(nn.Conv2d(c_in, c_out, (kernel, 1), (stride, 1), padding=pad))
                                    for c_in, c_out in zip(widths, widths[1:])])
        self.convs.append(weight_norm(nn.Conv2d(widths[-1], widths[-1], (kernel, 1), 1, padding=pad)))
        self.conv_post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, channels, length = wave.shape
        if length % self.period:  # reflect-pad up to a whole number of periods
            wave = F.pad(wave, (0, self.period - length % self.period), mode="reflect")
        return _judge(self.convs, self.conv_post, wave.view(batch, channels, -1, self.period))


class ScaleDiscriminator(nn.Module):
    def __init__(self, spectral: bool = False, width: float = 1.0) -> None:
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        # (in, out, kernel, stride, groups)
        layers = ((1, 128, 15, 1, 1), (128, 128, 41, 2, 4), (128, 256, 41, 2, 16), (256, 512, 41, 4, 16),
                  (512, 1024, 41, 4, 16), (1024, 1024, 41, 1, 16), (1024, 1024, 5, 1, 1))
        self.convs = nn.ModuleList([norm(nn.Conv1d(_scaled(c_in, width), _scaled(c_out, width), k, s, groups=g,
                                                   padding=same_padding(k)))
                                    for c_in, c_out, k, s, g in layers])
        self.conv_post = norm(nn.Conv1d(_scaled(1024, width), 1, 3, 1, padding=1))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _judge(self.convs, self.conv_post, wave)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...] = PERIODS, width: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList([PeriodDiscriminator(p, width=width) for p in periods])

    def forward(self, wave: torch.Tensor) -> Judgement:
        results = [d(wave) for d in self.discriminators]
        return [score for score, _ in results], [features for _, features in results]


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList([ScaleDiscriminator(spectral=True, width=width),
                                             ScaleDiscriminator(width=width), ScaleDiscriminator(width=width)])
        self.meanpools = nn.ModuleList([nn.AvgPool1d(4, 2, padding=2), nn.AvgPool1d(4, 2, padding=2)])

    def forward(self, wave: torch.Tensor) -> Judgement:
        scores, features = [], []
        for index, discriminator in enumerate(self.discriminators):
            if index > 0:
                wave = self.meanpools[index - 1](wave)
            score, maps = discriminator(wave)
            scores.append(score)
            features.append(maps)
        return scores, features


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN: real scores pulled to 1, generated ones to 0 (float32 math)."""
    return sum(torch.mean((1 - r.float()) ** 2) + torch.mean(f.float() ** 2) for r, f in zip(real, fake))


def adversarial_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """The generator's least-squares term: its scores pulled to 1."""
    return sum(torch.mean((1 - f.float()) ** 2) for f in fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Summed mean L1 between the discriminators' feature maps on real and generated audio (the
    paper's code weighs it by 2: train.feature_loss_weight)."""
    return sum(torch.mean(torch.abs(r.float() - f.float())) for maps_r, maps_f in zip(real, fake)
                   for r, f in zip(maps_r, maps_f))
