"""The factored real DFT the exported vocoder graph filters its noise with (`ttskit.models.graph_dft`)."""

import pytest
import torch
from torch.nn import functional as F

from ttskit.models.graph_dft import BandFilter, RealDFT, split_length


@pytest.mark.parametrize("n", [1024, 512, 30, 18, 7, 2, 1])
def test_real_dft_equals_rfft_in_its_own_bin_order(n):
    """Powers of two, composite and prime lengths (a prime is one dense stage)."""
    torch.manual_seed(n)
    dft = RealDFT(n)
    signal = torch.randn(2, 3, n)
    spectrum = dft(signal)
    assert spectrum.shape == (2, 3, dft.n1, 2 * dft.k2)
    bins = dft.bins()
    inside = bins <= n // 2
    expected = torch.fft.rfft(signal.double())[..., bins.clamp(max=n // 2)]
    scale = float(expected.abs().max())
    real, imaginary = spectrum[..., :dft.k2].double(), spectrum[..., dft.k2:].double()
    assert torch.allclose(real[..., inside], expected.real[..., inside], atol=1e-5 * scale)
    assert torch.allclose(imaginary[..., inside], expected.imag[..., inside], atol=1e-5 * scale)
    assert sorted(bins[inside].tolist()) == list(range(n // 2 + 1))  # every bin once


@pytest.mark.parametrize("n, bands", [(512, 65), (1024, 65), (30, 4), (7, 3), (2, 2)])
def test_band_filter_equals_irfft_of_the_gained_spectrum(n, bands):
    torch.manual_seed(n)
    frames, gains = torch.randn(2, 5, n), torch.rand(2, 5, bands) * 2
    at_bins = F.interpolate(gains.reshape(-1, 1, bands).double(), size=n // 2 + 1, mode="linear",
                            align_corners=True).reshape(2, 5, -1)
    expected = torch.fft.irfft(torch.fft.rfft(frames.double()) * at_bins, n=n)
    got = BandFilter(n, bands)(frames, gains)
    assert got.shape == (2, 5, n)
    assert torch.allclose(got.double(), expected, atol=1e-5 * float(expected.abs().max()))
    # unit gains give the frames back
    assert torch.allclose(BandFilter(n, bands)(frames, torch.ones(2, 5, bands)), frames, atol=1e-4)


def test_split_length_takes_the_most_balanced_factors():
    assert split_length(1024) == (32, 32)
    assert split_length(2048) == (32, 64)
    assert split_length(30) == (5, 6)
    assert split_length(7) == (1, 7)
