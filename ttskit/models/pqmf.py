"""A pseudo-quadrature mirror filter bank (PQMF): a wave split into K critically sampled sub-bands
and put back together, near-perfectly, as multi-band MelGAN (Yang et al., 2020) does to make one
generator step produce K samples.

The prototype is a Kaiser-windowed ideal low-pass (Lin & Vaidyanathan's design: cut-off and beta
chosen so the overlapping bands' aliasing cancels); the K analysis and synthesis filters are it
modulated by cosines centred on each band, with opposite phase terms (Nguyen, "Near-perfect-
reconstruction pseudo-QMF banks", 1994). Analysis filters then keeps every K-th sample; synthesis
puts K - 1 zeros between samples (times K, the energy the decimation took) and filters; both are
computed as strided (transposed) convolutions, which skip the samples dropped or the zeros added.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def prototype_filter(taps: int, cutoff: float, beta: float) -> np.ndarray:
    """(taps + 1,) impulse response: sinc low-pass at `cutoff` x Nyquist under a Kaiser window."""
    if taps % 2:
        raise ValueError(f"the PQMF needs an even number of taps (got {taps})")
    n = np.arange(taps + 1) - taps / 2
    ideal = cutoff * np.sinc(cutoff * n)  # sin(pi c n) / (pi n), with its limit c at n = 0
    # numpy's Kaiser window is scipy's (symmetric); scipy.signal costs ~0.7 s to import, on every
    # cold start that loads a vocoder.
    return ideal * np.kaiser(taps + 1, beta)


class PQMF(nn.Module):
    def __init__(self, subbands: int = 4, taps: int = 62, cutoff: float = 0.142, beta: float = 9.0) -> None:
        super().__init__()
        self.subbands, self.taps = subbands, taps
        prototype = prototype_filter(taps, cutoff, beta)
        n = np.arange(taps + 1) - taps / 2
        analysis, synthesis = [], []
        for k in range(subbands):
            phase = (-1) ** k * math.pi / 4
            carrier = (2 * k + 1) * math.pi / (2 * subbands) * n
            analysis.append(2 * prototype * np.cos(carrier + phase))
            synthesis.append(2 * prototype * np.cos(carrier - phase))
        # Derived from the settings, not learned: kept out of the state dict.
        self.register_buffer("analysis_filters", torch.tensor(np.array(analysis), dtype=torch.float32)[:, None],
                             persistent=False)
        self.register_buffer("synthesis_transposed",
                             torch.tensor(np.array(synthesis)[:, None, ::-1] * subbands, dtype=torch.float32),
                             persistent=False)

    def analysis(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 1, S) -> (B, K, S / K)."""
        # Filtering then keeping every K-th sample is a convolution of stride K.
        return F.conv1d(F.pad(wave, (self.taps // 2, self.taps // 2)), self.analysis_filters, stride=self.subbands)

    def synthesis(self, bands: torch.Tensor) -> torch.Tensor:
        """(B, K, S / K) -> (B, 1, S)."""
        # Zeros between samples, then filtering, is a transposed convolution of stride K with the
        # filters reversed (and times K): it skips the multiplications by the inserted zeros.
        return F.conv_transpose1d(bands, self.synthesis_transposed, stride=self.subbands, padding=self.taps // 2,
                                  output_padding=self.subbands - 1)
