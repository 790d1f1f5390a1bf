"""HiFi-GAN inference on a CPU: the generator's exact computation, laid out for fast kernels.

Measured on 2 cores (docs/benchmarks.md), oneDNN's 1-D convolutions over channels-first
activations run far below peak for HiFi-GAN's shapes (40-200 GFLOP/s), while the same
convolution as a (K, 1) 2-D convolution over channels-last activations is 2-6x faster when it
is not dilated. So `FastGenerator` keeps every activation channels-last and removes the two
shapes that have no fast kernel:

- a dilated convolution (dilation d) is an undilated one over the d interleaved phases of the
  sequence; with channels-last storage, viewing (B, C, L) as (B, C, L/d, d) costs nothing;
- a stride-s transposed convolution is one undilated convolution with s * C_out outputs
  (its polyphase form); the interleave of the s phases is again a free view.

Both views need lengths divisible by every dilation, so the mel is zero-extended to a multiple of
their least common multiple and the extension is zeroed again after every convolution: each
layer then sees exactly the zeros past the end that the reference's own padding gives it, and
the output equals `Generator.forward` up to float rounding (tests hold it to 1e-5).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ttskit.models.hifigan import LRELU_SLOPE, OUTPUT_LRELU_SLOPE, Generator, ResBlock1
from ttskit.models.weight_norm import folded_copy

CHANNELS_LAST = torch.channels_last


def polyphase_weights(transposed: nn.ConvTranspose1d) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(weight (s*C_out, C_in, W), bias (s*C_out,), left, right) of the polyphase form.

    y[s*q + r] = sum_t x[q + a_r - t] * w[b_r + s*t], with a_r, b_r = divmod(r + padding, s):
    phase r is a correlation over an input window ending at q + a_r. One window ending at
    q + max(a_r) serves every phase (shorter ones zero-padded), so the convolution over the input
    zero-padded by (left, right) gives block q of all s phases; output channels are phase-major.
    """
    stride, padding, kernel = transposed.stride[0], transposed.padding[0], transposed.kernel_size[0]
    weight = transposed.weight.detach()  # (C_in, C_out, K)
    c_in, c_out, _ = weight.shape
    taps = -(-kernel // stride)
    shifts = [(r + padding) // stride for r in range(stride)]
    last = max(shifts)
    width = taps + last - min(shifts)
    stacked = torch.zeros(stride, c_out, c_in, width, dtype=weight.dtype)
    for r, shift in enumerate(shifts):
        end = width - (last - shift)  # one past the window index of input position q + a_r
        for t, k in enumerate(range((r + padding) % stride, kernel, stride)):
            stacked[r, :, :, end - 1 - t] = weight[:, :, k].T
    bias = transposed.bias.detach() if transposed.bias is not None else torch.zeros(c_out)
    left = width - 1 - last
    if left < 0:
        raise ValueError(f"no polyphase form for kernel {kernel}, stride {stride}, padding {padding}")
    return stacked.reshape(stride * c_out, c_in, width), bias.repeat(stride), left, last


def _as_2d(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().unsqueeze(-1).contiguous(memory_format=CHANNELS_LAST)


class _Conv:
    """One 'same'-padded convolution of the generator as a (K, 1) 2-D convolution over (B, C, L, 1)
    channels-last activations; the extension past `length` is zeroed again afterwards."""

    def __init__(self, conv: nn.Conv1d, scale: float = 1.0) -> None:
        self.weight = _as_2d(conv.weight * scale)
        self.bias = conv.bias.detach().clone()
        self.dilation = conv.dilation[0]
        self.padding = conv.padding[0] // self.dilation  # in phase steps

    def __call__(self, x: torch.Tensor, length: int) -> torch.Tensor:
        d = self.dilation
        if d == 1:
            y = F.conv2d(x, self.weight, self.bias, padding=(self.padding, 0))
        else:  # (B, C, L, 1) -> (B, C, L/d, d): the same memory, read as d undilated phases
            batch, channels, padded, _ = x.shape
            phases = x.permute(0, 2, 3, 1).reshape(batch, padded // d, d, channels).permute(0, 3, 1, 2)
            y = F.conv2d(phases, self.weight, self.bias, padding=(self.padding, 0))
            y = y.permute(0, 2, 3, 1).reshape(batch, padded, 1, -1).permute(0, 3, 1, 2)
        y[:, :, length:].zero_()
        return y


class _Upsample:
    """A transposed convolution in polyphase form; the s phases interleave by a free reshape."""

    def __init__(self, transposed: nn.ConvTranspose1d, scale: float) -> None:
        self.stride, self.c_out = transposed.stride[0], transposed.out_channels
        self.kernel, self.padding = transposed.kernel_size[0], transposed.padding[0]
        weight, self.bias, left, right = polyphase_weights(transposed)
        self.weight = _as_2d(weight * scale)
        self.pad = max(left, right)
        self.start = self.pad - left  # the output blocks the symmetric padding adds in front

    def __call__(self, x: torch.Tensor, length: int) -> tuple[torch.Tensor, int]:
        batch, _, padded, _ = x.shape
        y = F.conv2d(x, self.weight, self.bias, padding=(self.pad, 0))[:, :, self.start:self.start + padded]
        y = y.permute(0, 2, 3, 1).reshape(batch, padded * self.stride, 1, self.c_out).permute(0, 3, 1, 2)
        new_length = (length - 1) * self.stride - 2 * self.padding + self.kernel
        y[:, :, new_length:].zero_()
        return y, new_length


class FastGenerator(nn.Module):
    """Inference-only copy of a `Generator`: mel (B, n_mels, T) -> wave (B, 1, T * hop)."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        source = folded_copy(generator) if generator.has_weight_norm() else generator
        config = source.config
        self.hop_length = config.hop_length
        self.n_mels = source.n_mels
        kernels = len(config.resblock_kernel_sizes)
        # The mean over the fusion's resblocks becomes a scale on the next layer's weights:
        # lrelu(x / n) = lrelu(x) / n and convolution is linear.
        self.pre = _Conv(source.conv_pre)
        self.ups = [_Upsample(up, 1.0 if i == 0 else 1.0 / kernels) for i, up in enumerate(source.ups)]
        self.blocks: list[list[list[_Conv]]] = []
        for block in source.resblocks:
            if isinstance(block, ResBlock1):
                self.blocks.append([[_Conv(a), _Conv(b)] for a, b in zip(block.convs1, block.convs2)])
            else:
                self.blocks.append([[_Conv(a)] for a in block.convs])
        self.post = _Conv(source.conv_post, 1.0 / kernels)
        self.kernels = kernels
        dilations = [c.dilation for layers in self.blocks for pair in layers for c in pair]
        self.multiple = math.lcm(*dilations)

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        batch, _, frames = mel.shape
        padded = -(-frames // self.multiple) * self.multiple
        length = frames
        x = F.pad(mel, (0, padded - frames)).unsqueeze(-1).contiguous(memory_format=CHANNELS_LAST)
        x = self.pre(x, length)
        for i, up in enumerate(self.ups):
            x, length = up(F.leaky_relu(x, LRELU_SLOPE), length)
            fused = None
            for layers in self.blocks[i * self.kernels:(i + 1) * self.kernels]:
                h = x
                for convs in layers:
                    t = convs[0](F.leaky_relu(h, LRELU_SLOPE), length)
                    if len(convs) == 2:
                        t = convs[1](F.leaky_relu(t, LRELU_SLOPE, inplace=True), length)
                    h = t.add_(h)
                fused = h if fused is None else fused.add_(h)
            x = fused
        x = self.post(F.leaky_relu(x, OUTPUT_LRELU_SLOPE, inplace=True), length)
        return torch.tanh(x.reshape(batch, 1, -1)[:, :, :length])


def for_inference(generator: Generator, device: torch.device) -> nn.Module:
    """Weight norm folded away; on a CPU the channels-last FastGenerator (same output, faster)."""
    generator = generator.remove_weight_norm().eval()
    for parameter in generator.parameters():
        parameter.requires_grad_(False)
    return FastGenerator(generator) if device.type == "cpu" else generator.to(device)
