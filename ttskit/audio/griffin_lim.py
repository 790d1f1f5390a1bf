"""Griffin-Lim inversion of a log-mel: a preview and a fallback vocoder that needs no training."""

from __future__ import annotations

import torch

from ttskit.audio.mel import MelSpectrogram


def mel_to_magnitude(log_mel: torch.Tensor, mel: MelSpectrogram) -> torch.Tensor:
    """Least-squares linear magnitude for a log-mel (n_mels, F) -> (n_fft // 2 + 1, F), non-negative."""
    pseudo_inverse = torch.linalg.pinv(mel.mel_basis)
    return torch.clamp(pseudo_inverse @ torch.exp(log_mel), min=0.0)


@torch.no_grad()
def griffin_lim(log_mel: torch.Tensor, mel: MelSpectrogram, n_iter: int = 32, power: float = 1.2,
                momentum: float = 0.99, seed: int = 0) -> torch.Tensor:
    """Log-mel (n_mels, F) -> wave (F * hop,) by fast Griffin-Lim (Perraudin et al., 2013).

    `power` > 1 sharpens the magnitude, which reduces the phasey sound of Griffin-Lim output.
    """
    if log_mel.dim() != 2:
        raise ValueError(f"expected a log-mel of shape (n_mels, frames), got {tuple(log_mel.shape)}")
    c = mel.config
    frames = log_mel.shape[-1]
    shortest = c.n_fft // c.hop_length + 1  # the STFT's reflect padding needs more than n_fft / 2 samples
    if 0 < frames < shortest:  # e.g. one short word: extend with silence, invert, cut back
        silence = torch.full((log_mel.shape[0], shortest - frames), torch.log(torch.tensor(c.mel_floor)).item())
        return griffin_lim(torch.cat([log_mel.float().cpu(), silence], dim=1), mel, n_iter, power, momentum,
                           seed)[:frames * c.hop_length]
    magnitude = mel_to_magnitude(log_mel.float(), mel).pow(power)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    angles = torch.exp(2j * torch.pi * torch.rand(magnitude.shape, generator=generator)).to(magnitude.device)
    stft_args = dict(n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=mel.window.float(),
                     center=True)
    length = frames * c.hop_length
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        wave = torch.istft(magnitude * angles, length=length, **stft_args)
        rebuilt = torch.stft(wave, return_complex=True, pad_mode="reflect", **stft_args)[:, :frames]
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous
        previous = rebuilt
        angles = accelerated / accelerated.abs().clamp(min=1e-8)
    wave = torch.istft(magnitude * angles, length=length, **stft_args)
    # Centered frames sit at j * hop; the analysis frames sit at j * hop + hop / 2: shift to match.
    shift = c.hop_length // 2
    wave = torch.cat([wave.new_zeros(shift), wave])[:length]
    peak = wave.abs().max()
    return wave * (0.95 / peak) if peak > 0.95 else wave
