"""The learned aligner's model and losses, after "One TTS Alignment To Rule Them All" (Badlani et
al., 2021): text and mel frames are encoded by small conv stacks; the attention of a frame over the
symbols comes from their squared distances; a beta-binomial prior keeps early training near the
diagonal; the forward-sum loss (CTC over all monotonic paths) trains it, and a binarization loss
later pulls the soft attention towards its best hard path (MAS).

Nothing here reads files: `ttskit.align.learned.training` trains it on a WORK folder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ttskit.align.mas import maximum_path
from ttskit.config import LearnedAlignerConfig

BLANK_LOGPROB = -1.0  # the forward-sum loss's blank: a constant, it is never a symbol
_MASKED = -1e4  # finite: -inf in CTC's inputs turns gradients into NaN


class AlignmentModel(nn.Module):
    def __init__(self, n_symbols: int, n_mels: int, config: LearnedAlignerConfig) -> None:
        super().__init__()
        c, d = config.channels, config.attention_dim
        self.temperature = config.temperature
        self.embedding = nn.Embedding(n_symbols, c)
        self.key = nn.Sequential(nn.Conv1d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.Conv1d(2 * c, d, 1))
        self.query = nn.Sequential(nn.Conv1d(n_mels, 2 * n_mels, 3, padding=1), nn.ReLU(),
                                   nn.Conv1d(2 * n_mels, n_mels, 1), nn.ReLU(), nn.Conv1d(n_mels, d, 1))

    def forward(self, symbols: torch.Tensor, symbol_mask: torch.Tensor, mels: torch.Tensor,
                log_prior: torch.Tensor) -> torch.Tensor:
        """symbols (B, N) ids, symbol_mask (B, N) True on padding, mels (B, n_mels, T) normalised,
        log_prior (B, T, N). Returns log-attention (B, T, N): per frame, a log-distribution over
        the symbols plus the log-prior (what the forward-sum loss and MAS read); padding is masked."""
        keys = self.key(self.embedding(symbols).transpose(1, 2))  # (B, D, N)
        queries = self.query(mels)  # (B, D, T)
        # |q - k|^2 = |q|^2 - 2 q.k + |k|^2, without a (B, D, T, N) tensor.
        distance = (queries.pow(2).sum(1).unsqueeze(2) - 2 * torch.bmm(queries.transpose(1, 2), keys)
                    + keys.pow(2).sum(1).unsqueeze(1))
        logits = (-self.temperature * distance).masked_fill(symbol_mask.unsqueeze(1), _MASKED)
        return (F.log_softmax(logits, dim=-1) + log_prior).masked_fill(symbol_mask.unsqueeze(1), _MASKED)


def beta_binomial_log_prior(n_frames: int, n_symbols: int, scaling: float = 1.0) -> torch.Tensor:
    """(T, N) log P(symbol k | frame t): Beta-binomial over the N symbols with alpha = s (t + 1) and
    beta = s (T - t), so frame t's mass centres on symbol ~ t N / T."""
    k = torch.arange(n_symbols, dtype=torch.float64)
    t = torch.arange(n_frames, dtype=torch.float64).unsqueeze(1)
    a, b, n = scaling * (t + 1), scaling * (n_frames - t), float(n_symbols - 1)

    def log_beta(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y)

    log_choose = torch.lgamma(torch.tensor(n + 1)) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
    return (log_choose + log_beta(k + a, n - k + b) - log_beta(a, b)).float()


def batch_log_prior(frame_lengths: list[int], symbol_lengths: list[int], scaling: float) -> torch.Tensor:
    prior = torch.zeros(len(frame_lengths), max(frame_lengths), max(symbol_lengths))
    for row, (t, n) in enumerate(zip(frame_lengths, symbol_lengths)):
        prior[row, :t, :n] = beta_binomial_log_prior(t, n, scaling)
    return prior


def forward_sum_loss(log_attention: torch.Tensor, frame_lengths: torch.Tensor, symbol_lengths: torch.Tensor) -> torch.Tensor:
    """CTC over the symbols in order, each symbol its own label and a constant blank: the negative
    log-likelihood summed over every monotonic alignment, averaged per symbol and utterance."""
    batch, _, n = log_attention.shape
    padded = F.pad(log_attention, (1, 0), value=BLANK_LOGPROB)
    log_probs = F.log_softmax(padded, dim=-1).transpose(0, 1)  # (T, B, N + 1) as ctc_loss wants
    targets = torch.arange(1, n + 1, device=log_attention.device).expand(batch, n)
    return F.ctc_loss(log_probs.float(), targets, frame_lengths, symbol_lengths, blank=0, reduction="mean",
                      zero_infinity=True)


def hard_durations(log_attention: torch.Tensor, frame_lengths: torch.Tensor, symbol_lengths: torch.Tensor) -> np.ndarray:
    """MAS over the log-attention: (B, N) int64 frames per symbol."""
    return maximum_path(log_attention.detach().float().cpu().numpy(), frame_lengths.cpu().numpy(),
                        symbol_lengths.cpu().numpy())


def durations_to_path(durations: np.ndarray, n_frames: int) -> torch.Tensor:
    """(B, N) durations -> (B, T, N) one-hot path."""
    batch, n = durations.shape
    path = torch.zeros(batch, n_frames, n)
    for row in range(batch):
        index = np.repeat(np.arange(n), durations[row])
        path[row, np.arange(len(index)), index] = 1.0
    return path


def binarization_loss(log_attention: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
    """Mean negative log soft-attention on the hard path's cells."""
    log_soft = F.log_softmax(log_attention, dim=-1)
    return -(log_soft * path).sum() / path.sum().clamp(min=1)


@dataclass
class Batch:
    ids: list[str]
    symbols: torch.Tensor  # (B, N)
    symbol_lengths: torch.Tensor
    mels: torch.Tensor  # (B, n_mels, T), normalised, padding 0
    frame_lengths: torch.Tensor
    log_prior: torch.Tensor  # (B, T, N)

    @property
    def symbol_mask(self) -> torch.Tensor:
        return torch.arange(self.symbols.shape[1]).unsqueeze(0) >= self.symbol_lengths.unsqueeze(1)

    def to(self, device: torch.device) -> Batch:
        return Batch(self.ids, self.symbols.to(device), self.symbol_lengths.to(device), self.mels.to(device),
                     self.frame_lengths.to(device), self.log_prior.to(device))


def collate(ids: list[str], symbols: list[np.ndarray], mels: list[np.ndarray], scaling: float) -> Batch:
    """Pad a batch; `mels` are (n_mels, T) and already normalised."""
    n_frames, n_symbols = [m.shape[1] for m in mels], [len(s) for s in symbols]
    symbol_tensor = torch.zeros(len(ids), max(n_symbols), dtype=torch.long)
    mel_tensor = torch.zeros(len(ids), mels[0].shape[0], max(n_frames))
    for row, (s, m) in enumerate(zip(symbols, mels)):
        symbol_tensor[row, :len(s)] = torch.from_numpy(np.asarray(s, dtype=np.int64))
        mel_tensor[row, :, :m.shape[1]] = torch.from_numpy(m)
    return Batch(ids, symbol_tensor, torch.tensor(n_symbols), mel_tensor, torch.tensor(n_frames),
                 batch_log_prior(n_frames, n_symbols, scaling))
