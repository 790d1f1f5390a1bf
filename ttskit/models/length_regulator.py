"""Length regulation: repeat each phoneme's hidden vector for its duration in frames.

The frame -> phoneme index map is built from integer durations by a numba kernel and applied as
one gather on the model's device. The kernel is serial: a batch's map takes ~10 us, less than
waking a thread pool, and a numba thread pool beside torch's would compete for the same cores
during the rest of the training step. ming024/FastSpeech2 does this
with Python loops over the batch and the phonemes, concatenating tensors; `repeat_interleave`
below is the pure-torch reference that tests hold the kernel to.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch

PADDING = -1  # index of a padded frame


@cache
def _kernel() -> Any:
    """The numba-compiled `_frame_to_phoneme`, made on first use: importing numba costs ~0.2 s, which
    synthesis (whose graph regulates length in torch, `inference_graph.frames_of`) need not pay."""
    import numba

    return numba.njit(cache=True)(_frame_to_phoneme)


def _frame_to_phoneme(durations: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    batch, phonemes = durations.shape
    index = np.full((batch, max_len), PADDING, dtype=np.int64)
    lengths = np.zeros(batch, dtype=np.int64)
    for b in range(batch):
        frame = 0
        for p in range(phonemes):
            for _ in range(durations[b, p]):
                if frame < max_len:
                    index[b, frame] = p
                frame += 1
        lengths[b] = min(frame, max_len)
    return index, lengths


def frame_to_phoneme_index(durations: torch.Tensor, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer durations (B, N) -> frame index map (B, T) with PADDING past each length, and lengths (B,).

    T is `max_len` when given (frames beyond it are dropped, shorter outputs padded), else the
    longest total duration in the batch. Negative durations count as zero.
    """
    counts = durations.detach().to("cpu", torch.int64).clamp(min=0).numpy()
    if max_len is None:
        max_len = int(counts.sum(axis=1).max()) if counts.size else 0
    index, lengths = _kernel()(np.ascontiguousarray(counts), int(max_len))
    return (torch.from_numpy(index).to(durations.device, non_blocking=True),
            torch.from_numpy(lengths).to(durations.device, non_blocking=True))


def regulate_length(hidden: torch.Tensor, durations: torch.Tensor,
                    max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Expand (B, N, C) phoneme features to (B, T, C) frames; padded frames are exactly zero.

    Returns the frames and the per-item frame counts (B,).
    """
    index, lengths = frame_to_phoneme_index(durations, max_len)
    batch, phonemes, channels = hidden.shape
    # One row gather from a flat (B*N + 1, C) table whose last row is zeros: padded frames point
    # there. Rows are copied whole, which is far cheaper than an element-wise gather with a
    # (B, T, C) index, and needs no mask multiply afterwards.
    table = torch.cat([hidden.reshape(batch * phonemes, channels), hidden.new_zeros(1, channels)])
    offsets = torch.arange(batch, device=index.device).unsqueeze(1) * phonemes
    rows = torch.where(index == PADDING, batch * phonemes, index + offsets)
    return table.index_select(0, rows.reshape(-1)).reshape(batch, index.shape[1], channels), lengths


def regulate_length_reference(hidden: torch.Tensor, durations: torch.Tensor,
                              max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch `repeat_interleave` version: the same result, one item at a time."""
    counts = durations.clamp(min=0).long()
    expanded = [torch.repeat_interleave(h, c, dim=0) for h, c in zip(hidden, counts)]
    width = max_len if max_len is not None else max((e.shape[0] for e in expanded), default=0)
    out = hidden.new_zeros(hidden.shape[0], width, hidden.shape[-1])
    lengths = torch.zeros(hidden.shape[0], dtype=torch.long, device=hidden.device)
    for b, frames in enumerate(expanded):
        n = min(frames.shape[0], width)
        out[b, :n] = frames[:n]
        lengths[b] = n
    return out, lengths
