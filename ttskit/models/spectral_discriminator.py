"""A light multi-resolution spectrogram discriminator (UnivNet, Jang et al., 2021; Vocos, Siuzdak,
2023) for vocoders trained on a CPU budget.

Each sub-discriminator judges the magnitude spectrogram of the wave at one STFT resolution with a
small stack of 2-D convolutions over (time, frequency), striding along frequency: it sees the fine
harmonic structure, the noise between the harmonics and its evolution over frames, which is what a
multi-resolution STFT loss averages away. With 16 channels it costs a small fraction of HiFi-GAN's
71M-parameter waveform discriminators (~0.1M parameters here), so adversarial training fits in CPU
minutes. Shapes: waves (B, 1, S); the output is, per resolution, its feature maps with the score
map last (the layout `ttskit.models.melgan`'s GAN losses take).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

SLOPE = 0.2
# (FFT length, hop, window length), UnivNet's three resolutions.
RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))


class SpectrogramDiscriminator(nn.Module):
    """One resolution: |STFT| ** 0.3 (compressed like loudness) -> 2-D convolutions -> score map."""

    def __init__(self, resolution: tuple[int, int, int], channels: int, layers: int) -> None:
        super().__init__()
        self.n_fft, self.hop, self.win = resolution
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        convs = [nn.Conv2d(1, channels, (3, 9), padding=(1, 4))]
        convs += [nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)) for _ in range(layers)]
        convs.append(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1)))
        self.convs = nn.ModuleList(weight_norm(conv) for conv in convs)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wave: torch.Tensor) -> list[torch.Tensor]:
        spectrum = torch.stft(wave.squeeze(1).float(), self.n_fft, self.hop, self.win, self.window,
                              return_complex=True)
        x = spectrum.abs().clamp(min=1e-7).pow(0.3).transpose(1, 2).unsqueeze(1)  # (B, 1, frames, bins)
        maps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), SLOPE)
            maps.append(x)
        maps.append(self.post(x))
        return maps


class MultiResolutionSpectrogramDiscriminator(nn.Module):
    def __init__(self, resolutions: tuple[tuple[int, int, int], ...] = RESOLUTIONS, channels: int = 16,
                 layers: int = 3) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(SpectrogramDiscriminator(r, channels, layers) for r in resolutions)

    def forward(self, wave: torch.Tensor) -> list[list[torch.Tensor]]:
        return [d(wave) for d in self.discriminators]
