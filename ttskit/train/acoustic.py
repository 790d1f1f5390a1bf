"""`ttskit train-acoustic`: the FastSpeech2 training loop.

One function runs on every rank (one process on CPU or one GPU, N spawned ranks with --gpus N,
or the ranks torchrun started). Rank 0 alone logs, validates and saves. Checkpoints are atomic
and hold everything needed to resume at the exact step or to synthesise with nothing else.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ttskit.config import config_from_dict, config_to_dict, dump_config, load_config, mel_mismatches
from ttskit.audio.io import atomic_write
from ttskit.data.dataset import AcousticBatch, FrameBudgetSampler, WorkDataset, collate
from ttskit.data.preprocess import load_work_config
from ttskit.models.fastspeech2 import FastSpeech2, VarianceTargets
from ttskit.models.losses import fastspeech2_loss
from ttskit.train.acoustic_config import RUN_PRESETS, AcousticRunConfig
from ttskit.audio import MelSpectrogram
from ttskit.train.media import log_validation_media
from ttskit.train.checkpoint import load_checkpoint, prune_checkpoints, save_checkpoint, set_rng_state
from ttskit.train.distributed import Rank, launch
from ttskit.train.loop import (StopFlag, TrainingError, append_jsonl, autocast, broadcast_from_main, finish,
                               first_difference, forget_unsaved_metrics, gather_rng_states, grad_scaler,
                               ignore_stop_signals, log_record, overflow_event, precision, read_summary,
                               require_work_files, restore_last_good, resume_point, step_verdict, tensorboard_writer)

CHECKPOINT_FORMAT = "ttskit-acoustic-1"


@dataclass(frozen=True)
class AcousticJob:
    work: Path
    run: Path
    config: AcousticRunConfig
    max_steps: int
    resume_from: Path | None
    vocoder: Path | None = None  # for validation audio; Griffin-Lim without one


def build_model(run_config: AcousticRunConfig, n_symbols: int, n_mels: int, n_speakers: int,
                stats: dict[str, Any]) -> FastSpeech2:
    return FastSpeech2(run_config.model, n_symbols, n_mels, n_speakers,
                       (stats["pitch"]["normalized_min"], stats["pitch"]["normalized_max"]),
                       (stats["energy"]["normalized_min"], stats["energy"]["normalized_max"]),
                       feature_level=stats["feature_level"])


def noam_factor(step: int, warmup: int) -> float:
    """Linear warm-up to 1 at `warmup`, then 1/sqrt decay (Vaswani et al.)."""
    step = max(step, 1)
    return min(step / warmup, math.sqrt(warmup / step))


def _work_identity(work: Path) -> dict[str, Any]:
    """What a checkpoint must agree with to train on (or synthesise for) a WORK folder."""
    config = load_work_config(work)
    return {"audio": config_to_dict(config.audio), "text": config_to_dict(config.text),
            "vocab": json.loads((work / "vocab.json").read_text(encoding="utf-8"))["symbols"],
            "speakers": json.loads((work / "speakers.json").read_text(encoding="utf-8")),
            "stats": json.loads((work / "stats.json").read_text(encoding="utf-8"))}


def check_compatible(checkpoint: dict[str, Any], identity: dict[str, Any], source: Path, work: Path) -> None:
    for key in ("audio", "text", "vocab", "speakers"):
        if checkpoint[key] != identity[key]:
            raise TrainingError(f"{source} was trained on a different {key} than {work} has "
                                f"({first_difference(checkpoint[key], identity[key])}); "
                                "preprocess with the checkpoint's settings or start a new run")


def prepare_run(work: Path, run: Path, *, preset: str = "small", config_path: Path | None = None,
                overrides: tuple[str, ...] | list[str] = (), max_steps: int | None = None,
                resume: bool = False, vocoder: Path | None = None) -> AcousticJob:
    """Resolve the run config and check WORK and RUN before any process starts."""
    if preset not in RUN_PRESETS:
        raise TrainingError(f"unknown preset {preset!r} (choose from {', '.join(RUN_PRESETS)})")
    require_work_files(work, ("config.yaml", "vocab.json", "speakers.json", "stats.json", "train.jsonl", "val.jsonl"))
    identity = _work_identity(work)
    previous = resume_point(run, resume)
    if previous is not None:
        checkpoint = load_checkpoint(previous)
        check_compatible(checkpoint, identity, previous, work)
        stored = config_from_dict(AcousticRunConfig, checkpoint["run_config"], source=str(previous))
        run_config = load_config(config_path, overrides, cls=AcousticRunConfig, base=stored)
        if run_config.model != stored.model:
            raise TrainingError(f"--resume: the model config differs from {previous.name}'s "
                                f"({first_difference(config_to_dict(stored.model), config_to_dict(run_config.model))})")
    else:
        run_config = load_config(config_path, overrides, cls=AcousticRunConfig, base=RUN_PRESETS[preset])
    steps = max_steps if max_steps is not None else 200_000
    run.mkdir(parents=True, exist_ok=True)
    atomic_write(run / "config.yaml", lambda tmp: tmp.write_text(dump_config(run_config), encoding="utf-8"))
    if vocoder is not None:
        _check_vocoder(vocoder, work)
    return AcousticJob(work, run, run_config, steps, previous, vocoder)


def _check_vocoder(vocoder: Path, work: Path) -> None:
    from ttskit.models.vocoder import VocoderError, load_generator

    try:
        _, audio, resolved = load_generator(vocoder)
        mismatches = mel_mismatches(load_work_config(work).audio, audio)
    except VocoderError as err:
        raise TrainingError(f"--vocoder: {err}") from None
    if mismatches:
        key, ours, theirs = mismatches[0]
        raise TrainingError(f"--vocoder: {resolved} was trained on other mels than {work} holds "
                            f"({key}: {ours!r} here vs {theirs!r}); leave it out to hear Griffin-Lim")


def train_acoustic(job: AcousticJob, *, gpus: int = 1, device: str | None = None,
                   on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train until `job.max_steps` steps in total (or a stop signal); returns the final metrics."""
    device_kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    launch(_train_rank, (job, on_log if gpus <= 1 else None), gpus, device_kind)
    return read_summary(job.run)


def _train_rank(rank: Rank, job: AcousticJob, on_log: Callable[[dict[str, Any]], None] | None) -> None:
    cfg = job.config.train
    torch.manual_seed(cfg.seed + rank.rank)
    np.random.seed(cfg.seed + rank.rank)
    identity = _work_identity(job.work)
    work_config = load_work_config(job.work)
    train_set, val_set = WorkDataset(job.work, "train"), WorkDataset(job.work, "val")
    if len(train_set) == 0:
        raise TrainingError(f"{job.work}/train.jsonl is empty")
    sampler = FrameBudgetSampler([train_set.frames(i) for i in range(len(train_set))], cfg.max_frames_per_batch,
                                 seed=cfg.seed, num_replicas=rank.world_size, rank=rank.rank)
    # Its own generator: a DataLoader draws a seed from the global RNG for every new iterator,
    # which would shift the dropout masks of a resumed run away from the uninterrupted one.
    loader = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.num_workers,
                        pin_memory=rank.device.type == "cuda", persistent_workers=cfg.num_workers > 0,
                        worker_init_fn=ignore_stop_signals,
                        generator=torch.Generator().manual_seed(cfg.seed))
    model = build_model(job.config, len(train_set.vocab), work_config.audio.n_mels, len(train_set.speakers),
                        identity["stats"]).to(rank.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=cfg.betas,
                                  weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: noam_factor(s, cfg.warmup_steps))
    autocast_dtype, use_scaler = precision(cfg.precision, rank.device)
    scaler = grad_scaler(rank.device, use_scaler, cfg.fp16_initial_scale)
    step, epoch, best, batch_in_epoch = 0, 0, math.inf, 0

    def load_training_state(state: dict[str, Any]) -> None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])

    if job.resume_from is not None:
        state = load_checkpoint(job.resume_from)
        load_training_state(state)
        step, epoch, best = state["step"], state["epoch"], state.get("best_val", math.inf)
        batch_in_epoch = state["batch_in_epoch"]
        set_rng_state(state["rng"][min(rank.rank, len(state["rng"]) - 1)])
        if rank.is_main:
            forget_unsaved_metrics(job.run / "metrics.jsonl", step)
    trained = DistributedDataParallel(model, device_ids=[rank.local_rank] if rank.device.type == "cuda" else None) \
        if rank.distributed else model
    stop = StopFlag()
    writer = tensorboard_writer(job.run) if rank.is_main else None
    mel_analysis = MelSpectrogram(work_config.audio)
    vocoder = None
    if job.vocoder is not None and rank.is_main:
        from ttskit.models.vocoder import load_vocoder

        vocoder = load_vocoder(job.vocoder, "cpu")  # beside training, never in the way of its GPU memory
    checkpoints = job.run / "checkpoints"
    metrics_path = job.run / "metrics.jsonl"
    bad_in_a_row = 0
    frames_seen, window_start = 0, time.perf_counter()

    def save(kind: str = "step") -> None:
        rngs = gather_rng_states(rank)
        if not rank.is_main:
            return
        state = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "step": step, "epoch": epoch,
                 "batch_in_epoch": batch_in_epoch, "best_val": best, "rng": rngs,
                 "run_config": config_to_dict(job.config), **identity}
        path = checkpoints / (f"step_{step:08d}.pt" if kind == "step" else f"{kind}.pt")
        save_checkpoint(path, state)
        if kind == "step":
            prune_checkpoints(checkpoints, cfg.keep_last)

    try:
        while step < job.max_steps and not stop.stop:
            sampler.set_epoch(epoch, skip=batch_in_epoch)  # a resumed run continues mid-epoch, exactly
            for batch in loader:
                batch_in_epoch += 1
                batch: AcousticBatch = batch.to(rank.device)
                model.train()
                with autocast(rank.device, autocast_dtype):
                    out = trained(batch.phonemes, batch.phoneme_lengths, batch.speakers,
                                  targets=VarianceTargets(batch.durations, batch.pitch, batch.energy),
                                  max_frames=batch.mels.shape[1])
                terms = fastspeech2_loss(out, batch.mels, batch.durations, batch.pitch, batch.energy)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(terms["loss"]).backward()
                scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                verdict = step_verdict(terms["loss"], grad_norm, scaler, rank)
                if verdict == "overflow":
                    optimizer.zero_grad(set_to_none=True)
                    scaler.update()
                    if rank.is_main:
                        append_jsonl(metrics_path, overflow_event(step, scaler))
                    continue
                if verdict == "bad":
                    bad_in_a_row += 1
                    optimizer.zero_grad(set_to_none=True)
                    if rank.is_main:
                        append_jsonl(metrics_path, {"step": step, "event": "non-finite loss or gradient, step skipped",
                                               "ids": batch.ids})
                    if bad_in_a_row >= cfg.nan_patience:
                        restore_last_good(job.run, cfg.nan_patience, "lower train.learning_rate or check the data "
                                          "(see metrics.jsonl for the batch ids)", load_training_state, rank)
                        bad_in_a_row = 0
                    if use_scaler:
                        scaler.update()
                    continue
                bad_in_a_row = 0
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                frames_seen += int(batch.frame_lengths.sum()) * rank.world_size
                if rank.is_main and (step % cfg.log_every == 0 or step == job.max_steps):
                    elapsed = time.perf_counter() - window_start
                    record = {"step": step, "epoch": epoch, **{k: round(v.item(), 5) for k, v in terms.items()},
                              "lr": scheduler.get_last_lr()[0], "grad_norm": round(float(grad_norm), 4),
                              "frames_per_s": round(frames_seen / max(elapsed, 1e-9), 1)}
                    log_record(metrics_path, writer, record, on_log)
                    frames_seen, window_start = 0, time.perf_counter()
                if step % cfg.val_every == 0 or step == job.max_steps:
                    val_loss = _validate(model, val_set, rank, autocast_dtype, cfg) if rank.is_main else None
                    # Every rank must take the same path: save() is collective.
                    val_loss = broadcast_from_main(val_loss, rank)
                    if val_loss is not None:
                        if rank.is_main:
                            append_jsonl(metrics_path, {"step": step, "val_loss": round(val_loss, 5)})
                        if writer is not None:
                            writer.add_scalar("val/loss", val_loss, step)
                            log_validation_media(writer, model, val_set, mel_analysis, step, rank.device, vocoder)
                        if val_loss < best:
                            best = val_loss
                            save("best")
                if step % cfg.checkpoint_every == 0 or step == job.max_steps:
                    save()
                if step >= job.max_steps or stop.stop:
                    break
            else:
                epoch, batch_in_epoch = epoch + 1, 0
        if stop.stop:
            save()
        finish(job.run, {"step": step, "epoch": epoch, "stopped_by_signal": stop.stop, "best_val": best},
               rank, [model], (i for b in sampler for i in b))
    finally:
        stop.restore()
        if writer is not None:
            writer.close()


@torch.no_grad()
def _validate(model: FastSpeech2, val_set: WorkDataset, rank: Rank, autocast_dtype: torch.dtype | None,
              cfg: Any) -> float | None:
    if len(val_set) == 0:
        return None
    model.eval()
    total, count = 0.0, 0
    sampler = FrameBudgetSampler([val_set.frames(i) for i in range(len(val_set))], cfg.max_frames_per_batch,
                                 shuffle=False)
    for indices in sampler:
        batch = collate([val_set[i] for i in indices]).to(rank.device)
        with autocast(rank.device, autocast_dtype):
            out = model(batch.phonemes, batch.phoneme_lengths, batch.speakers,
                        targets=VarianceTargets(batch.durations, batch.pitch, batch.energy),
                        max_frames=batch.mels.shape[1])
        total += float(fastspeech2_loss(out, batch.mels, batch.durations, batch.pitch, batch.energy)["loss"]) \
            * len(indices)
        count += len(indices)
    return total / count
