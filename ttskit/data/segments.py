"""Vocoder training data from a WORK folder: random audio segments with exactly their mel frames.

A segment of F frames starting at frame f is samples [f * hop, (f + F) * hop) of WORK/wav/<id>.wav
with frames [f, f + F) of WORK/mel/<id>.npy, or of WORK/gta/<id>.npy (the acoustic model's
teacher-forced output, which has the recorded mel's frame count) for fine-tuning; with
`pitch=True`, also frames [f, f + F) of WORK/f0/<id>.npy (F0 and voicing, `ensure_frame_pitch`)
for F0-driven vocoders. Where a segment
starts depends only on (seed, epoch, utterance), so a resumed run and data-loader workers draw
exactly what an uninterrupted single-process run would.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset, Sampler

from ttskit.work import frame_pitch_path, mel_path, read_jsonl, wav_path


class SegmentDataset(Dataset):
    """Items are (epoch, index) pairs from `SegmentBatchSampler`; returns (wave (S,), mel (M, S / hop)),
    and with `pitch` also (F0 Hz (S / hop,), voicing (S / hop,))."""

    def __init__(self, work: Path, split: str, segment_samples: int, hop_length: int, mel_floor: float,
                 gta: bool = False, seed: int = 0, pitch: bool = False) -> None:
        if segment_samples % hop_length:
            raise ValueError(f"segment of {segment_samples} samples is not a whole number of {hop_length}-sample frames")
        self.work = Path(work)
        self.rows = read_jsonl(self.work / f"{split}.jsonl")
        self.frames = segment_samples // hop_length
        self.hop, self.seed, self.gta, self.pitch = hop_length, seed, gta, pitch
        self.silence = math.log(mel_floor)  # what a mel holds where there is no sound

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        epoch, index = item
        uid = self.rows[index]["id"]
        mel = np.load(mel_path(self.work, uid, self.gta), mmap_mode="r")
        total = mel.shape[1]
        start = random.Random(f"{self.seed}:{epoch}:{index}").randint(0, max(total - self.frames, 0))
        stop = min(start + self.frames, total)
        wave, _ = sf.read(str(wav_path(self.work, uid)), start=start * self.hop, stop=stop * self.hop,
                          dtype="float32", always_2d=False)
        segment = np.full((mel.shape[0], self.frames), self.silence, dtype=np.float32)
        segment[:, :stop - start] = mel[:, start:stop]
        padded = np.zeros(self.frames * self.hop, dtype=np.float32)  # short clips: silence after the end
        padded[:len(wave)] = wave
        if not self.pitch:
            return torch.from_numpy(padded), torch.from_numpy(segment)
        track = np.load(frame_pitch_path(self.work, uid), mmap_mode="r")
        f0 = np.full(self.frames, track[0, stop - 1] if stop > start else 100.0, dtype=np.float32)
        voiced = np.zeros(self.frames, dtype=np.float32)  # past the end: silence, unvoiced
        f0[:stop - start], voiced[:stop - start] = track[0, start:stop], track[1, start:stop]
        return torch.from_numpy(padded), torch.from_numpy(segment), torch.from_numpy(f0), torch.from_numpy(voiced)


def collate_segments(items: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """(wave (B, 1, S), mel (B, M, F)), then (F0 (B, F), voicing (B, F)) when the items have them."""
    columns = list(zip(*items))
    return (torch.stack(columns[0]).unsqueeze(1), *(torch.stack(column) for column in columns[1:]))


class SegmentBatchSampler(Sampler[list[tuple[int, int]]]):
    """Shuffled fixed-size batches of (epoch, index); rank r of N takes every N-th batch, so ranks
    see disjoint data and the same number of batches. `set_epoch(epoch, skip)` resumes mid-epoch."""

    def __init__(self, size: int, batch_size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _batches(self) -> list[list[tuple[int, int]]]:
        order = list(range(self.size))
        random.Random(self.seed + self.epoch).shuffle(order)
        # Corpora smaller than a batch still train: the order repeats to fill one.
        while 0 < len(order) < self.batch_size * self.num_replicas:
            order += order[:self.batch_size * self.num_replicas - len(order)]
        whole = len(order) // (self.batch_size * self.num_replicas) * self.num_replicas
        batches = [[(self.epoch, i) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]
                   for b in range(whole)]
        return batches[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self._batches()[self.skip:])

    def __len__(self) -> int:
        return len(self._batches()) - self.skip
