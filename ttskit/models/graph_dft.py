"""Real DFTs of one fixed length as a few small matrix products (Cooley-Tukey, one split), for
graphs that must export: torch's `stft`/`rfft` do not export to ONNX, and ONNX Runtime's own DFT
operator is no faster than a dense DFT matrix (measured: 5 ms for 345 frames of 1,024 on 2
threads). A dense (N, N) DFT matrix costs N^2 multiply-adds per frame; with N = N1 * N2 the same
transform is a product with an (N1, N1) matrix, a twiddle (elementwise), and a product with an
(N2, N2) matrix: 2 N (N1 + N2) instead of 2 N^2 (16x fewer at N = 1,024 = 32 * 32).

Index maps (N1, N2 the two factors): n = N2 n1 + n2 and k = k1 + N1 k2, in both directions. The
spectrum stays in the transform's own order [k1, k2] between the forward and the inverse stages
(`BandFilter`): putting it in bin order and back would cost two transposes of the whole spectrum,
which a graph runtime copies (measured on ONNX Runtime: ~10 % of the exported vocoder).
Only the half spectrum a real signal needs is kept.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def split_length(n: int) -> tuple[int, int]:
    """(N1, N2) with N1 * N2 = n and N1 the largest divisor not above sqrt(n) (1 for a prime)."""
    first = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return first, n // first


def _angles(rows: int, columns: int, period: int) -> torch.Tensor:
    return 2 * math.pi * torch.outer(torch.arange(rows, dtype=torch.float64),
                                     torch.arange(columns, dtype=torch.float64)) / period


class RealDFT(nn.Module):
    """(..., N) real -> its half spectrum in the factored order: (..., N1, 2 K2), row k1 holding the
    real parts of bins k1 + N1 k2 (k2 < K2) then their imaginary parts; `bins()` says which bin
    each position is (positions past N / 2 are extra). float32, to float32 rounding (tested)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.half = n, n // 2 + 1
        n1, n2 = self.n1, self.n2 = split_length(n)
        self.k2 = -(-self.half // n1)  # only the k2 needed for k <= N / 2
        first = _angles(n1, n1, n1)  # (k1, n1)
        self._buffer("first", torch.cat([torch.cos(first), -torch.sin(first)], 0))  # (2 N1, N1)
        # Both directions twiddle by the angle 2 pi k1 n2 / N over the (N1, N2) grid.
        twiddle = _angles(n1, n2, n)
        self._buffer("twiddle_cos", torch.cos(twiddle))
        self._buffer("twiddle_sin", torch.sin(twiddle))
        second = _angles(n2, self.k2, n2)  # (n2, k2)
        cos, sin = torch.cos(second), torch.sin(second)
        self._buffer("second", torch.cat([torch.cat([cos, -sin], 1), torch.cat([sin, cos], 1)], 0))

    def _buffer(self, name: str, value: torch.Tensor) -> None:
        self.register_buffer(name, value.float(), persistent=False)

    def bins(self) -> torch.Tensor:
        """(N1, K2) int64: the bin k = k1 + N1 k2 at each position of the factored order."""
        return torch.arange(self.n1)[:, None] + self.n1 * torch.arange(self.k2)[None, :]

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        grid = signal.reshape(*signal.shape[:-1], self.n1, self.n2)  # [n1, n2]
        stage = self.first @ grid  # (..., 2 N1, N2): [k1, n2], real rows then imaginary
        real, imaginary = stage[..., :self.n1, :], stage[..., self.n1:, :]
        c, s = self.twiddle_cos, self.twiddle_sin  # times exp(-i 2 pi k1 n2 / N)
        twisted = torch.cat([real * c + imaginary * s, imaginary * c - real * s], -1)  # (..., N1, 2 N2)
        return twisted @ self.second  # (..., N1, 2 K2): [k1, k2], real parts then imaginary


class BandFilter(nn.Module):
    """Frames (..., N) real and per-frame band gains (..., bands) -> irfft(rfft(frames) * gain at
    each bin) (..., N), the gains linear over the bins (the bands spread evenly from 0 Hz to
    Nyquist: `harmonic_noise.band_response`'s interpolation over bins). One product maps the band
    gains straight into the spectrum's factored order with irfft's weights folded in, and the
    inverse runs over k2, then k1: its output is in sample order, so no stage transposes."""

    def __init__(self, n: int, bands: int) -> None:
        super().__init__()
        self.dft = RealDFT(n)
        n1, n2, k2, half = self.dft.n1, self.dft.n2, self.dft.k2, self.dft.half
        k = self.dft.bins().reshape(-1).double()
        # irfft of a half spectrum: bins 0 and N / 2 once, the others twice; no imaginary part at
        # 0 and N / 2; nothing past N / 2.
        real_weight = torch.where((k == 0) | (2 * k == n), 1.0 / n, 2.0 / n)
        imaginary_weight = torch.where((k == 0) | (2 * k == n), 0.0, 2.0 / n)
        real_weight[k >= half], imaginary_weight[k >= half] = 0.0, 0.0
        # Linear interpolation of the bands at each bin (align_corners: band 0 at 0 Hz, the last at Nyquist).
        position = k.clamp(max=half - 1) * (bands - 1) / max(half - 1, 1)
        low = position.floor().long().clamp(max=bands - 1)
        fraction = position - low
        spread = torch.zeros(bands, k.numel(), dtype=torch.float64)
        spread[low, torch.arange(k.numel())] = 1.0 - fraction
        spread[(low + 1).clamp(max=bands - 1), torch.arange(k.numel())] += fraction
        gain_map = torch.stack([(spread * real_weight).reshape(bands, n1, k2),
                                (spread * imaginary_weight).reshape(bands, n1, k2)], 2)  # [band, k1, part, k2]
        self.register_buffer("gain_map", gain_map.reshape(bands, -1).float(), persistent=False)
        over_k2 = _angles(k2, n2, n2)  # (k2, n2), exp(+i ...)
        cos, sin = torch.cos(over_k2), torch.sin(over_k2)
        self.register_buffer("over_k2", torch.cat([torch.cat([cos, sin], 1), torch.cat([-sin, cos], 1)], 0).float(),
                             persistent=False)  # (2 K2, 2 N2): real parts then imaginary, in and out
        over_k1 = _angles(n1, n1, n1)  # (n1, k1)
        self.register_buffer("over_k1_cos", torch.cos(over_k1).float(), persistent=False)
        self.register_buffer("over_k1_sin", torch.sin(over_k1).float(), persistent=False)

    def forward(self, frames: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
        lead, n1, n2 = frames.shape[:-1], self.dft.n1, self.dft.n2
        weighted = self.dft(frames) * (gains @ self.gain_map).reshape(*lead, n1, 2 * self.dft.k2)
        stage = weighted @ self.over_k2  # (..., N1, 2 N2): [k1, n2], real parts then imaginary
        real, imaginary = stage[..., :n2], stage[..., n2:]
        c, s = self.dft.twiddle_cos, self.dft.twiddle_sin  # times exp(+i 2 pi k1 n2 / N)
        wave = self.over_k1_cos @ (real * c - imaginary * s) - self.over_k1_sin @ (real * s + imaginary * c)
        return wave.reshape(*lead, self.dft.n)  # [n1, n2]: sample order
