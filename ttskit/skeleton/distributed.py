"""Distributed set-up: `--gpus N` spawns N local ranks; under torchrun (RANK/WORLD_SIZE set) the
same code joins that group instead, so multi-node runs need nothing else."""

from __future__ import annotations

import os
import socket
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ttskit.errors import TtskitError


class DistributedError(TtskitError, RuntimeError):
    """A distributed request that cannot be met (more GPUs than visible, ...)."""


@dataclass(frozen=True)
class Rank:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_gpus(gpus: int, device: str) -> None:
    if device == "cuda":
        visible = torch.cuda.device_count()
        if gpus > visible:
            raise DistributedError(f"--gpus {gpus} asked for, but only {visible} CUDA device(s) are visible")


def _setup(local_rank: int, world_size: int, device_kind: str, rank: int | None = None) -> Rank:
    rank = local_rank if rank is None else rank
    if device_kind == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo", rank=rank, world_size=world_size)
    return Rank(rank, world_size, local_rank, device)


def _run_and_leave(function: Callable[..., Any], rank: Rank, args: tuple,
                   done: Callable[[], None] | None = None) -> None:
    """Run, then leave the group together: a rank that destroys its gloo group while another
    still has messages in flight can die in C++ ("terminate called without an active
    exception"; 1 run in 3 before this barrier). After an error there is no barrier, since the
    other ranks may be inside a collective that will never complete. `done` runs once every
    rank's work is over (after the barrier), before the group is left."""
    try:
        function(rank, *args)
    except BaseException:
        if dist.is_initialized():
            dist.destroy_process_group()
        raise
    if dist.is_initialized():
        dist.barrier()
        if done is not None:
            done()
        dist.destroy_process_group()


def _spawned(local_rank: int, world_size: int, device_kind: str, function: Callable[..., Any],
             args: tuple, marks: str) -> None:
    def done() -> None:
        Path(marks, f"rank{local_rank}.done").touch()

    _run_and_leave(function, _setup(local_rank, world_size, device_kind), args, done)


def launch(function: Callable[..., Any], args: tuple, gpus: int, device_kind: str) -> None:
    """Run `function(rank, *args)` on every rank: in this process, in N spawned ones, or under torchrun."""
    if under_torchrun():
        rank = _setup(int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]), device_kind,
                      rank=int(os.environ["RANK"]))
        _run_and_leave(function, rank, args)
        return
    check_gpus(gpus, device_kind)
    if gpus <= 1:
        function(_setup(0, 1, device_kind), *args)
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    with tempfile.TemporaryDirectory(prefix="ttskit-ranks-") as marks:
        try:
            mp.spawn(_spawned, args=(gpus, device_kind, function, args, marks), nprocs=gpus, join=True)
        except mp.ProcessExitedException as died:
            # Even after the barrier gloo's threads can abort a rank as it leaves the group (once
            # in ~50 runs of the test suite). A rank whose mark is written had finished its work
            # and every other rank had too: the run is complete, so only say so.
            if not all(Path(marks, f"rank{r}.done").exists() for r in range(gpus)):
                raise
            warnings.warn(f"{died} while leaving the process group, after every rank's work was done",
                          RuntimeWarning, stacklevel=2)
