"""Training data from a WORK folder: utterances with normalised pitch/energy, padded batches,
and length-bucketed batches filled up to a frame budget (little padding, steady memory)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ttskit.text.vocab import Vocab
from ttskit.work import (
    SPEAKERS,
    STATS,
    VOCAB,
    Split,
    array_path,
    has_durations,
    load_work_config,
    read_json,
    read_manifest,
)


@dataclass
class AcousticBatch:
    ids: list[str]
    phonemes: torch.Tensor  # (B, N) long, 0 = padding
    phoneme_lengths: torch.Tensor  # (B,)
    speakers: torch.Tensor  # (B,)
    durations: torch.Tensor  # (B, N) long; (B, 0) from a WORK folder without durations (--aligner none)
    pitch: torch.Tensor  # (B, N) or (B, T), normalised
    energy: torch.Tensor  # same shape as pitch, normalised
    mels: torch.Tensor  # (B, T, n_mels)
    frame_lengths: torch.Tensor  # (B,)

    def to(self, device: torch.device | str) -> AcousticBatch:
        moved = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                 for k, v in self.__dict__.items()}
        return AcousticBatch(**moved)


class WorkDataset(Dataset):
    """One split (`train` or `val`) of a WORK folder, as tensors ready for the acoustic model."""

    def __init__(self, work: Path, split: Split = "train") -> None:
        self.work = Path(work)
        self.rows = read_manifest(self.work, split)
        self.vocab = Vocab.load(self.work / VOCAB)
        self.speakers: dict[str, int] = read_json(self.work / SPEAKERS)
        self.stats = read_json(self.work / STATS)
        self.has_durations = has_durations(load_work_config(self.work))

    def __len__(self) -> int:
        return len(self.rows)

    def frames(self, index: int) -> int:
        return int(self.rows[index]["n_frames"])

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        uid = row["id"]
        pitch_stats = self.stats["pitch"]["per_speaker"][row["speaker"]]
        energy_stats = self.stats["energy"]
        pitch = (np.load(array_path(self.work, "pitch", uid)) - pitch_stats["mean"]) / pitch_stats["std"]
        energy = (np.load(array_path(self.work, "energy", uid)) - energy_stats["mean"]) / energy_stats["std"]
        return {"id": uid, "phonemes": torch.tensor(self.vocab.encode(row["phonemes"])),
                "speaker": self.speakers[row["speaker"]],
                "durations": (torch.from_numpy(np.load(array_path(self.work, "duration", uid))) if self.has_durations
                              else torch.zeros(0, dtype=torch.long)),
                "pitch": torch.from_numpy(pitch.astype(np.float32)), "energy": torch.from_numpy(energy.astype(np.float32)),
                "mel": torch.from_numpy(np.load(array_path(self.work, "mel", uid)).T.copy())}


def _pad(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)


def collate(items: list[dict]) -> AcousticBatch:
    return AcousticBatch(
        ids=[i["id"] for i in items], phonemes=_pad([i["phonemes"] for i in items]),
        phoneme_lengths=torch.tensor([len(i["phonemes"]) for i in items]),
        speakers=torch.tensor([i["speaker"] for i in items]), durations=_pad([i["durations"] for i in items]),
        pitch=_pad([i["pitch"] for i in items]), energy=_pad([i["energy"] for i in items]),
        mels=_pad([i["mel"] for i in items]), frame_lengths=torch.tensor([i["mel"].shape[0] for i in items]))


class FrameBudgetSampler(Sampler[list[int]]):
    """Batches of similar-length utterances whose padded size stays under `max_frames`.

    Utterances are sorted by length inside shuffled buckets, cut into batches by the budget
    (batch size x longest item), and the batches are shuffled. With `num_replicas` > 1 each rank
    takes every num_replicas-th batch (disjoint data), and all ranks get the same number of batches.
    """

    def __init__(self, lengths: list[int], max_frames: int, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, bucket_size: int = 100) -> None:
        self.lengths = lengths
        self.max_frames = max_frames
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.num_replicas, self.rank, self.bucket_size = num_replicas, rank, bucket_size
        self.skip = 0  # batches of the current epoch already trained on (set when resuming mid-epoch)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        batches: list[list[int]] = []
        for start in range(0, len(order), self.bucket_size * 8):
            bucket = sorted(order[start:start + self.bucket_size * 8], key=lambda i: self.lengths[i])
            batch: list[int] = []
            for index in bucket:
                longest = max([self.lengths[i] for i in batch] + [self.lengths[index]])
                if batch and longest * (len(batch) + 1) > self.max_frames:
                    batches.append(batch)
                    batch = []
                batch.append(index)
            if batch:
                batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.num_replicas if len(batches) >= self.num_replicas else len(batches)
        return batches[:usable][self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches()[self.skip:])

    def __len__(self) -> int:
        return len(self._batches()) - self.skip
