"""HiFi-GAN generator (Kong et al., 2020): log-mel (B, M, T) -> wave (B, 1, T * hop).

Transposed-convolution upsampling, each stage followed by multi-receptive-field fusion (the mean
of residual blocks with different kernels and dilations). The module and parameter names follow
the paper's reference code, so its checkpoints load key for key (see `ttskit.checkpoints.jik876`).

Training uses weight normalisation; `remove_weight_norm()` folds it into plain weights for
inference. `ttskit.models.hifigan_inference.FastGenerator` runs the same computation in the
layout CPU convolution kernels are fastest in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from ttskit.config import require
from ttskit.models.weight_norm import fold_weight_norm

LRELU_SLOPE = 0.1
# The reference code applies a default-slope leaky ReLU before the output convolution; checkpoints
# were trained with it, so it stays.
OUTPUT_LRELU_SLOPE = 0.01


@dataclass(frozen=True)
class HiFiGANConfig:
    """The generator's architecture; the defaults are the paper's V1."""

    resblock: Literal["1", "2"] = "1"
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))

    def __post_init__(self) -> None:
        require(len(self.upsample_rates) == len(self.upsample_kernel_sizes), "model.upsample_kernel_sizes",
                "needs one kernel per upsample rate")
        require(len(self.resblock_kernel_sizes) == len(self.resblock_dilation_sizes),
                "model.resblock_dilation_sizes", "needs one dilation list per resblock kernel")
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes):
            require(kernel >= rate and (kernel - rate) % 2 == 0, "model.upsample_kernel_sizes",
                    f"kernel {kernel} for rate {rate}: must be >= the rate and differ from it by an even number")
        expected = 3 if self.resblock == "1" else 2
        for dilations in self.resblock_dilation_sizes:
            require(len(dilations) == expected, "model.resblock_dilation_sizes",
                    f"resblock {self.resblock} takes {expected} dilations per kernel, got {list(dilations)}")
        require(self.upsample_initial_channel >= 1, "model.upsample_initial_channel", "must be at least 1")
        require(all(r >= 1 for r in self.upsample_rates), "model.upsample_rates", "must all be at least 1")
        require(all(k >= 1 and k % 2 == 1 for k in self.resblock_kernel_sizes), "model.resblock_kernel_sizes",
                "must be odd and >= 1")
        require(all(d >= 1 for ds in self.resblock_dilation_sizes for d in ds), "model.resblock_dilation_sizes",
                "must all be at least 1")
        require(self.upsample_initial_channel % (2 ** len(self.upsample_rates)) == 0,
                "model.upsample_initial_channel", f"must be divisible by 2^{len(self.upsample_rates)}")

    @property
    def hop_length(self) -> int:
        """Samples per mel frame: the product of the upsample rates."""
        product = 1
        for rate in self.upsample_rates:
            product *= rate
        return product


PRESETS: dict[str, HiFiGANConfig] = {
    "hifigan-v1": HiFiGANConfig(),
    "hifigan-v2": HiFiGANConfig(upsample_initial_channel=128),
    "hifigan-v3": HiFiGANConfig(resblock="2", upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8),
                                upsample_initial_channel=256, resblock_kernel_sizes=(3, 5, 7),
                                resblock_dilation_sizes=((1, 2), (2, 6), (3, 12))),
}


def same_padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


def _init_normal(module: nn.Module) -> None:
    # N(0, 0.01) for every convolution, as the paper's code does; other inits train slower.
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d)):
        module.weight.data.normal_(0.0, 0.01)


def _conv(channels: int, kernel: int, dilation: int) -> nn.Module:
    return weight_norm(nn.Conv1d(channels, channels, kernel, 1, dilation=dilation,
                                 padding=same_padding(kernel, dilation)))


class ResBlock1(nn.Module):
    """Per dilation: lrelu -> dilated conv -> lrelu -> conv, added to the input."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList([_conv(channels, kernel, d) for d in dilations])
        self.convs2 = nn.ModuleList([_conv(channels, kernel, 1) for _ in dilations])
        self.apply(_init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.convs1, self.convs2):
            x = x + plain(F.leaky_relu(dilated(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """Per dilation: lrelu -> dilated conv, added to the input (V3's lighter block)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList([_conv(channels, kernel, d) for d in dilations])
        self.apply(_init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


class Generator(nn.Module):
    """Log-mel (B, n_mels, T) -> wave (B, 1, T * hop) in [-1, 1]."""

    def __init__(self, config: HiFiGANConfig = HiFiGANConfig(), n_mels: int = 80) -> None:
        super().__init__()
        self.config, self.n_mels = config, n_mels
        channels = config.upsample_initial_channel
        self.conv_pre = weight_norm(nn.Conv1d(n_mels, channels, 7, 1, padding=3))
        block = ResBlock1 if config.resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes)):
            c_in, c_out = channels // 2 ** i, channels // 2 ** (i + 1)
            self.ups.append(weight_norm(nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=(kernel - rate) // 2)))
            for k, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
                self.resblocks.append(block(c_out, k, tuple(dilations)))
        self.conv_post = weight_norm(nn.Conv1d(c_out, 1, 7, 1, padding=3))
        self.ups.apply(_init_normal)
        self.conv_post.apply(_init_normal)
        self.num_kernels = len(config.resblock_kernel_sizes)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            fused = blocks[0](x)
            for block in blocks[1:]:
                fused = fused + block(x)
            x = fused / self.num_kernels
        x = self.conv_post(F.leaky_relu(x, OUTPUT_LRELU_SLOPE))
        return torch.tanh(x)

    def has_weight_norm(self) -> bool:
        return any(parametrize.is_parametrized(module, "weight") for module in self.modules())

    def remove_weight_norm(self) -> Generator:
        """Fold every weight norm into a plain weight (same output; faster, inference only)."""
        fold_weight_norm(self)
        return self
