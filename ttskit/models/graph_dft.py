"""Real DFTs of one fixed length as a few small matrix products (Cooley-Tukey, one split), for
graphs that must export: torch's `stft`/`rfft` do not export to ONNX, and ONNX Runtime's own DFT
operator is no faster than a dense DFT matrix (measured: 5 ms for 345 frames of 1,024 on 2
threads). A dense (N, N) DFT matrix costs N^2 multiply-adds per frame; with N = N1 * N2 the same
transform is a product with an (N1, N1) matrix, a twiddle, and a product with an (N2, N2) matrix:
2 N (N1 + N2) instead of 2 N^2 (16x fewer at N = 1,024 = 32 * 32).

Index maps (N1, N2 the two factors): n = N2 n1 + n2 and k = k1 + N1 k2, in both directions. The
work is laid out in *planes*: (N1, R, N2) for R frames, plane n1 (or k1) holding that part of
every frame. The first stage is then one product over the planes, and the twiddle (which depends
on k1 and n2) folds into the second stage's matrices, one per plane, so the transform has no
elementwise stage and no transposes between its stages: a graph runtime runs each elementwise
node and each copy as a pass over the whole spectrum (measured on ONNX Runtime: the twiddles,
concatenations and slices of the earlier, frame-major form took more time than its products).
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
    each position is (positions past N / 2 are extra). `of_planes` is the same transform in the
    plane layout. float32, to float32 rounding (tested)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.half = n, n // 2 + 1
        n1, n2 = self.n1, self.n2 = split_length(n)
        self.k2 = -(-self.half // n1)  # only the k2 needed for k <= N / 2
        first = _angles(n1, n1, n1)  # (k1, n1): exp(-i ...)
        self._buffer("first_cos", torch.cos(first))
        self._buffer("first_minus_sin", -torch.sin(first))
        angle = twiddled_angles(n1, n2, self.k2, n)  # (k1, n2, k2)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # [X real | X imaginary] = Y real @ [cos | -sin] + Y imaginary @ [sin | cos] (times exp(-i angle)).
        self._buffer("from_real", torch.cat([cos, -sin], -1))  # (N1, N2, 2 K2)
        self._buffer("from_imaginary", torch.cat([sin, cos], -1))

    def _buffer(self, name: str, value: torch.Tensor) -> None:
        self.register_buffer(name, value.float(), persistent=False)

    def bins(self) -> torch.Tensor:
        """(N1, K2) int64: the bin k = k1 + N1 k2 at each position of the factored order."""
        return torch.arange(self.n1)[:, None] + self.n1 * torch.arange(self.k2)[None, :]

    def of_planes(self, planes: torch.Tensor) -> torch.Tensor:
        """(N1, R, N2) frames in planes (plane n1 holds samples N2 n1 .. N2 n1 + N2 - 1 of each)
        -> (N1, R, 2 K2) their half spectra, plane k1 holding bins k1 + N1 k2."""
        flat = planes.reshape(self.n1, -1)
        real = (self.first_cos @ flat).reshape(planes.shape)  # [k1, r, n2]
        imaginary = (self.first_minus_sin @ flat).reshape(planes.shape)
        return real @ self.from_real + imaginary @ self.from_imaginary  # one product per plane k1

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        spectrum = self.of_planes(to_planes(signal, self.n1, self.n2))
        return spectrum.transpose(0, 1).reshape(*signal.shape[:-1], self.n1, 2 * self.k2)


def twiddled_angles(n1: int, n2: int, k2: int, n: int) -> torch.Tensor:
    """(N1, N2, K2) float64: 2 pi n2 (k1 + N1 k2) / N, the second stage's angle with the twiddle in it."""
    k = torch.arange(n1, dtype=torch.float64)[:, None, None] + n1 * torch.arange(k2, dtype=torch.float64)
    return 2 * math.pi * torch.arange(n2, dtype=torch.float64)[None, :, None] * k / n


def to_planes(frames: torch.Tensor, n1: int, n2: int) -> torch.Tensor:
    """(..., N1 * N2) -> (N1, R, N2), R the frames of every leading dimension."""
    return frames.reshape(-1, n1, n2).transpose(0, 1)


def from_planes(planes: torch.Tensor, lead: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """`to_planes` undone: (N1, R, N2) -> (*lead, N1 * N2)."""
    return planes.transpose(0, 1).reshape(*lead, -1)


class BandFilter(nn.Module):
    """Frames (..., N) real and per-frame band gains (..., bands) -> irfft(rfft(frames) * gain at
    each bin) (..., N), the gains linear over the bins (the bands spread evenly from 0 Hz to
    Nyquist: `harmonic_noise.band_response`'s interpolation over bins). One product maps the band
    gains straight into the spectrum's planes with irfft's weights folded in, and the inverse runs
    over k2 (the twiddle folded in, one product per plane), then over k1. `planes` is the same in
    the plane layout, which the exported vocoder keeps from its frames to its overlap-add."""

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
        gain_map = torch.cat([(spread * real_weight).reshape(bands, n1, k2),
                              (spread * imaginary_weight).reshape(bands, n1, k2)], 2)  # [band, k1, part k2]
        self.register_buffer("gain_map", gain_map.permute(1, 0, 2).float(), persistent=False)  # (N1, bands, 2 K2)
        angle = twiddled_angles(n1, n2, k2, n).transpose(1, 2)  # (k1, k2, n2): exp(+i ...)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # Z real = W real cos - W imaginary sin; Z imaginary = W real sin + W imaginary cos.
        self.register_buffer("to_real", torch.cat([cos, -sin], 1).float(), persistent=False)  # (N1, 2 K2, N2)
        self.register_buffer("to_imaginary", torch.cat([sin, cos], 1).float(), persistent=False)
        over_k1 = _angles(n1, n1, n1)  # (n1, k1)
        self.register_buffer("over_k1_cos", torch.cos(over_k1).float(), persistent=False)
        self.register_buffer("over_k1_minus_sin", -torch.sin(over_k1).float(), persistent=False)

    def planes(self, planes: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
        """(N1, R, N2) frames in planes and (R, bands) gains -> (N1, R, N2) the filtered frames."""
        weighted = self.dft.of_planes(planes) * (gains @ self.gain_map)  # (N1, R, 2 K2)
        real = (weighted @ self.to_real).reshape(self.dft.n1, -1)  # [k1, r n2]
        imaginary = (weighted @ self.to_imaginary).reshape(self.dft.n1, -1)
        return (self.over_k1_cos @ real + self.over_k1_minus_sin @ imaginary).reshape(planes.shape)

    def forward(self, frames: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
        planes = to_planes(frames, self.dft.n1, self.dft.n2)
        return from_planes(self.planes(planes, gains.reshape(-1, gains.shape[-1])), frames.shape[:-1])
