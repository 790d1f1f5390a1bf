"""The factored real DFT the exported vocoder graph filters its noise with (`ttskit.models.graph_dft`)."""

import pytest
import torch

from ttskit.models.graph_dft import RealDFT, split_length


@pytest.mark.parametrize("n", [1024, 30, 18, 7, 2, 1])
def test_real_dft_and_its_inverse_equal_rfft_and_irfft(n):
    """Powers of two, composite and prime lengths (a prime is one dense stage)."""
    torch.manual_seed(n)
    dft = RealDFT(n)
    signal = torch.randn(2, 3, n)
    real, imaginary = dft(signal)
    expected = torch.fft.rfft(signal.double())
    assert real.shape == imaginary.shape == (2, 3, n // 2 + 1)
    scale = float(expected.abs().max())
    assert torch.allclose(real.double(), expected.real, atol=1e-5 * scale)
    assert torch.allclose(imaginary.double(), expected.imag, atol=1e-5 * scale)
    spectrum = torch.randn(2, 3, n // 2 + 1, dtype=torch.complex128)
    wave = dft.inverse(spectrum.real.float(), spectrum.imag.float())
    assert wave.shape == (2, 3, n)
    assert torch.allclose(wave.double(), torch.fft.irfft(spectrum, n=n), atol=1e-5)
    assert torch.allclose(dft.inverse(real, imaginary), signal, atol=1e-4)


def test_split_length_takes_the_most_balanced_factors():
    assert split_length(1024) == (32, 32)
    assert split_length(2048) == (32, 64)
    assert split_length(30) == (5, 6)
    assert split_length(7) == (1, 7)
