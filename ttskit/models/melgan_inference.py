"""MelGAN and multi-band MelGAN inference on a CPU: the generator's exact computation laid out for
oneDNN's fast kernels, as `hifigan_inference.FastGenerator` does for HiFi-GAN (its notes explain
why a (K, 1) 2-D convolution over channels-last activations beats a 1-D one).

What differs from HiFi-GAN: MelGAN pads by reflection, so every convolution here is a valid
convolution over an explicitly reflection-padded input, and the output has exactly the input's
length (no zero extension to carry between layers). A dilated convolution (dilation d) reads the
padded input as d interleaved undilated phases; when its length is not a multiple of d, zeros are
appended first, which only touch outputs past the end, cut off after. Transposed convolutions run
in polyphase form (`hifigan_inference._Upsample`). Each residual stack's last 1x1 convolution and
its 1x1 shortcut are two matrix products accumulated into one buffer. The output equals
`MelGANGenerator.forward` up to float rounding (tested to 1e-5).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ttskit.models.hifigan_inference import CHANNELS_LAST, _as_2d, _Upsample
from ttskit.models.melgan import SLOPE, MelGANGenerator, ResidualStack
from ttskit.models.weight_norm import folded_copy


def reflect(x: torch.Tensor, pad: int) -> torch.Tensor:
    """`F.pad(x, (0, 0, pad, pad), mode="reflect")` for (B, C, L, 1) channels-last x, as one
    concatenation: 2-5x faster than the reflection-pad kernel on such tensors (measured on 2 cores)."""
    return torch.cat([x[:, :, 1:pad + 1].flip(2), x, x[:, :, -pad - 1:-1].flip(2)], 2)


def _cast_tensors(layer: object, dtype: torch.dtype) -> None:
    """Every tensor attribute of one of the layers below, in `dtype`."""
    for name, value in vars(layer).items():
        if isinstance(value, torch.Tensor):
            setattr(layer, name, value.to(dtype))
        elif isinstance(value, _ValidConv):  # a residual stack's dilated convolution
            _cast_tensors(value, dtype)


class _ValidConv:
    """A reflection-padded convolution as a valid (K, 1) 2-D convolution over channels-last input."""

    def __init__(self, conv: nn.Conv1d, pad: int, weight: torch.Tensor | None = None,
                 bias: torch.Tensor | None = None) -> None:
        self.weight = _as_2d(conv.weight if weight is None else weight)
        self.bias = (conv.bias if bias is None else bias).detach().clone()
        self.dilation, self.pad = conv.dilation[0], pad

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, length, _ = x.shape
        if self.pad:
            x = reflect(x, self.pad)
        d = self.dilation
        if d == 1:
            return F.conv2d(x, self.weight, self.bias)
        extra = (-x.shape[2]) % d
        if extra:
            x = F.pad(x, (0, 0, 0, extra))
        padded = x.shape[2]
        phases = x.permute(0, 2, 3, 1).reshape(batch, padded // d, d, channels).permute(0, 3, 1, 2)
        y = F.conv2d(phases, self.weight, self.bias)  # (B, C, padded / d - K + 1, d)
        y = y.permute(0, 2, 3, 1).reshape(batch, -1, 1, y.shape[1]).permute(0, 3, 1, 2)
        return y[:, :, :length]


class _Stack:
    """One residual stack: the dilated convolution, then last(lrelu(h)) + shortcut(x) as two matrix
    products into one buffer (channels-last activations are (B * L, C) matrices already)."""

    def __init__(self, block: ResidualStack) -> None:
        dilated, last = block.stack[2], block.stack[4]
        self.dilated = _ValidConv(dilated, block.stack[1].padding[0])
        self.last_t = last.weight.detach()[:, :, 0].T.contiguous()  # (C_in, C_out)
        self.shortcut_t = block.shortcut.weight.detach()[:, :, 0].T.contiguous()
        self.bias = (last.bias + block.shortcut.bias).detach().clone()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, length, _ = x.shape
        h = F.leaky_relu(self.dilated(F.leaky_relu(x, SLOPE)), SLOPE, inplace=True)
        rows_x = x.permute(0, 2, 3, 1).reshape(-1, channels)  # free views of channels-last memory
        rows_h = h.permute(0, 2, 3, 1).reshape(-1, channels)
        out = torch.addmm(self.bias, rows_x, self.shortcut_t)
        out.addmm_(rows_h, self.last_t)
        return out.reshape(batch, length, 1, -1).permute(0, 3, 1, 2)


class FastMelGAN(nn.Module):
    """Inference-only copy of a `MelGANGenerator`: mel (B, n_mels, T) -> wave (B, 1, T * hop).

    `dtype` is the arithmetic of the convolutions: float32, or bfloat16 (`--precision bf16`),
    whose weights are cast here once and whose activations stay bfloat16 from the first layer to
    the last (autocast would cast every weight on every call and the activations between the
    layers it does not list); the PQMF synthesis runs in float32."""

    def __init__(self, generator: MelGANGenerator, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.dtype = dtype
        source = folded_copy(generator)
        layers = list(source.layers)
        self.config = source.config
        self.first = _ValidConv(layers[1], layers[0].padding[0])
        self.stages: list[tuple[_Upsample, list[_Stack]]] = []
        for layer in layers[2:-4]:
            if isinstance(layer, nn.ConvTranspose1d):
                self.stages.append((_Upsample(layer, 1.0), []))
            elif isinstance(layer, ResidualStack):
                self.stages[-1][1].append(_Stack(layer))
        self.last = _ValidConv(layers[-2], layers[-3].padding[0])
        self.pqmf = source.pqmf
        for layer in [self.first, self.last, *(part for up, stacks in self.stages for part in (up, *stacks))]:
            _cast_tensors(layer, dtype)

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.first(mel.to(self.dtype).unsqueeze(-1).contiguous(memory_format=CHANNELS_LAST))
        for upsample, stacks in self.stages:
            length = x.shape[2]
            x, _ = upsample(F.leaky_relu(x, SLOPE), length)
            for stack in stacks:
                x = stack(x)
        x = torch.tanh(self.last(F.leaky_relu(x, SLOPE)).float()).squeeze(-1).contiguous()
        return self.pqmf.synthesis(x) if self.pqmf is not None else x
