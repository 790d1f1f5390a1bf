"""`ttskit train-acoustic`: FastSpeech2 (and FastSpeech, the same network without pitch and energy
predictors) as a `Trainer` of the training skeleton.

Its checkpoints (`step_XXXXXXXX.pt`, and `best.pt` at the lowest validation loss) hold the full
training state and everything synthesis needs: configs, vocabulary, speakers, statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ttskit.audio import MelSpectrogram
from ttskit.checkpoints.acoustic import build_acoustic_model
from ttskit.checkpoints.formats import ACOUSTIC_FORMAT
from ttskit.checkpoints.vocoder import load_generator, load_vocoder
from ttskit.config import mel_mismatches
from ttskit.data.dataset import AcousticBatch, FrameBudgetSampler, WorkDataset, collate
from ttskit.models.fastspeech2 import FastSpeech2
from ttskit.models.tacotron2 import Tacotron2, Tacotron2Config
from ttskit.models.vocoder import Vocoder, VocoderError
from ttskit.runtime import autocast, default_device
from ttskit.skeleton.distributed import Rank, launch
from ttskit.skeleton.loop import RunPrecision, StepResult, Trainer, TrainingLoop, ddp
from ttskit.skeleton.pieces import (
    TrainingError,
    first_difference,
    follow_learning_rate,
    read_summary,
    resolve_run_config,
    step_verdict,
    stored_model_section,
    write_run_config,
)
from ttskit.train.acoustic_config import (
    DEFAULT_MODEL,
    MODEL_PRESETS,
    AnyAcousticRunConfig,
    model_family,
    run_config_class,
)
from ttskit.train.acoustic_step import acoustic_loss, teacher_forced
from ttskit.train.fine_tune import fine_tune_preset, load_init, read_init_state, transfer_weights
from ttskit.train.media import log_validation_media
from ttskit.work import (
    ACOUSTIC_FILES,
    check_manifest_files,
    has_durations,
    load_work_config,
    read_manifest,
    require_work_files,
    work_identity,
)


@dataclass(frozen=True)
class AcousticJob:
    work: Path
    run: Path
    config: AnyAcousticRunConfig
    max_steps: int
    resume_from: Path | None
    vocoder: Path | None = None  # for validation audio; Griffin-Lim without one
    init_from: Path | None = None  # fine-tuning: the checkpoint whose weights it starts from


def build_model(run_config: AnyAcousticRunConfig, n_symbols: int, n_mels: int, n_speakers: int,
                stats: dict[str, Any]) -> FastSpeech2 | Tacotron2:
    return build_acoustic_model(run_config.model, n_symbols, n_mels, n_speakers, stats)


def noam_factor(step: int, warmup: int) -> float:
    """Linear warm-up to 1 at `warmup`, then 1/sqrt decay (Vaswani et al.)."""
    step = max(step, 1)
    return min(step / warmup, math.sqrt(warmup / step))


def check_compatible(checkpoint: dict[str, Any], identity: dict[str, Any], source: Path, work: Path) -> None:
    for key in ("audio", "text", "vocab", "speakers"):
        if checkpoint[key] != identity[key]:
            raise TrainingError(f"{source} was trained on a different {key} than {work} has "
                                f"({first_difference(checkpoint[key], identity[key])}); "
                                "preprocess with the checkpoint's settings or start a new run")


def prepare_run(work: Path, run: Path, *, preset: str | None = None, config_path: Path | None = None,
                overrides: tuple[str, ...] | list[str] = (), max_steps: int | None = None,
                resume: bool = False, vocoder: Path | None = None, init: Path | None = None,
                model: str | None = None) -> AcousticJob:
    """Resolve the run config and check WORK and RUN before any process starts. `model`:
    fastspeech2 (the default) or fastspeech; `preset`: small when a fresh run names none; on resume
    they may only name the run's own model. `init`: fine-tune from that checkpoint (its model
    config, a fine-tuning learning rate; `ttskit.train.fine_tune`)."""
    stored_family = run_family(run) if resume else None
    family = model or stored_family or DEFAULT_MODEL
    if family not in MODEL_PRESETS:
        raise TrainingError(f"unknown model {family!r} (choose from {', '.join(MODEL_PRESETS)})")
    if stored_family is not None and model_family(MODEL_PRESETS[family]["small"].model) != stored_family:
        raise TrainingError(f"--resume: {run} is a {stored_family} run, trained with another model than --model "
                            f"{family}; leave --model out to resume it, or start a new run")
    chosen = preset or "small"
    if chosen not in MODEL_PRESETS[family]:
        raise TrainingError(f"unknown preset {chosen!r} (choose from {', '.join(MODEL_PRESETS[family])})")
    if init is not None and (preset is not None or model is not None):
        raise TrainingError("--init brings its own model: leave --preset and --model out")
    require_work_files(work, ACOUSTIC_FILES)
    identity = work_identity(work)
    base = MODEL_PRESETS[family][chosen]
    init_path = None
    if init is not None:
        init_path, init_state = load_init(init, identity, work)
        base = fine_tune_preset(init_state, init_path)
    if init is not None:
        family = model_family(base.model)
    run_config, previous, _ = resolve_run_config(
        run, resume, run_config_class(family), base, config_path, overrides,
        lambda state, source: check_compatible(state, identity, source, work),
        preset_given=preset is not None or model is not None)
    if not isinstance(run_config.model, Tacotron2Config) and not has_durations(load_work_config(work)):
        name = "FastSpeech" if not run_config.model.variance_predictors else "FastSpeech2"
        raise TrainingError(f"{work} holds no phoneme durations (preprocessed with --aligner none), which {name} "
                            "learns from; preprocess it with --aligner pocketsphinx or learned, or with "
                            "--aligner tacotron2 --teacher RUN (a Tacotron 2 trained on this folder), or train "
                            "--model tacotron2 here")
    if vocoder is not None:
        _check_vocoder(vocoder, work)
    check_manifest_files(work, read_manifest(work, "train") + read_manifest(work, "val"))
    write_run_config(run, run_config, fresh=previous is None)
    return AcousticJob(work, run, run_config, max_steps if max_steps is not None else 200_000, previous, vocoder,
                       init_path if previous is None else None)


def run_family(run: Path) -> str | None:
    """tacotron2 or fastspeech2 (FastSpeech included: its model section says so) for a run being
    resumed, from its RUN/config.yaml (None: not known)."""
    section = stored_model_section(run)
    return model_family(section) if section is not None else None


def _check_vocoder(vocoder: Path, work: Path) -> None:
    try:
        _, audio, resolved = load_generator(vocoder)
    except VocoderError as err:
        raise TrainingError(f"--vocoder: {err}") from None
    mismatches = mel_mismatches(load_work_config(work).audio, audio)
    if mismatches:
        key, ours, theirs = mismatches[0]
        raise TrainingError(f"--vocoder: {resolved} was trained on other mels than {work} holds "
                            f"({key}: {ours!r} here vs {theirs!r}); leave it out to hear Griffin-Lim")


def train_acoustic(job: AcousticJob, *, gpus: int = 1, device: str | None = None,
                   on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train until `job.max_steps` steps in total (or a stop signal); returns the run summary."""
    launch(_train_rank, (job, on_log if gpus <= 1 else None), gpus, default_device(device).type)
    return read_summary(job.run)


def _train_rank(rank: Rank, job: AcousticJob, on_log: Callable[[dict[str, Any]], None] | None) -> None:
    TrainingLoop(AcousticTrainer(job), rank, on_log).run()


class AcousticTrainer(Trainer):
    nan_advice = "lower train.learning_rate or check the data (see metrics.jsonl for the batch ids)"

    def __init__(self, job: AcousticJob) -> None:
        super().__init__(job.run, job.config, job.max_steps, job.resume_from)
        self.job = job

    def build(self, rank: Rank, precision: RunPrecision) -> None:
        cfg, work = self.job.config.train, self.job.work
        self.rank, self.precision = rank, precision
        self.identity = work_identity(work)
        work_config = load_work_config(work)
        self.train_set, self.val_set = WorkDataset(work, "train"), WorkDataset(work, "val")
        if len(self.train_set) == 0:
            raise TrainingError(f"{work}/train.jsonl is empty")
        self.sampler = FrameBudgetSampler([self.train_set.frames(i) for i in range(len(self.train_set))],
                                          cfg.max_frames_per_batch, seed=cfg.seed, num_replicas=rank.world_size,
                                          rank=rank.rank)
        self.collate = collate
        self.model = build_model(self.job.config, len(self.train_set.vocab), work_config.audio.n_mels,
                                 len(self.train_set.speakers), self.identity["stats"]).to(rank.device)
        self.trained: torch.nn.Module = self.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.learning_rate, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lambda s: noam_factor(s, cfg.warmup_steps))
        self.mel_analysis = MelSpectrogram(work_config.audio)
        self.vocoder: Vocoder | None = None
        if self.job.vocoder is not None and rank.is_main:
            self.vocoder = load_vocoder(self.job.vocoder, "cpu")  # beside training, never in its GPU memory

    def initialise(self) -> None:
        if self.job.init_from is not None:
            transfer_weights(self.model, read_init_state(self.job.init_from), self.identity["vocab"],
                             self.identity["speakers"])

    def wrap(self, rank: Rank) -> None:
        self.trained = ddp(self.model, rank)

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        warmup = self.job.config.train.warmup_steps
        follow_learning_rate(self.optimizer, self.scheduler, self.cfg.learning_rate, lambda s: noam_factor(s, warmup))

    def metadata(self) -> dict[str, Any]:
        return {"format": ACOUSTIC_FORMAT, **self.identity}

    def step(self, batch: AcousticBatch, step: int) -> StepResult:
        batch = batch.to(self.rank.device)
        scaler = self.precision.scaler
        self.model.train()
        with autocast(self.rank.device, self.precision.autocast_dtype):
            out, mels = teacher_forced(self.trained, self.model, batch)
        terms = acoustic_loss(self.model, out, mels, batch)
        self.optimizer.zero_grad(set_to_none=True)
        scaler.scale(terms["loss"]).backward()
        scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                   self.cfg.grad_clip if self.cfg.grad_clip is not None else math.inf)
        return StepResult(step_verdict(terms["loss"], grad_norm, scaler, self.rank), terms, {"grad_norm": grad_norm},
                          float(batch.frame_lengths.sum()), {"ids": batch.ids})

    def apply(self) -> None:
        self.precision.scaler.step(self.optimizer)
        self.scheduler.step()

    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def throughput(self, amount: float, seconds: float) -> dict[str, float]:
        return {"frames_per_s": round(amount / seconds, 1)}

    @torch.no_grad()
    def validate(self, step: int, writer: Any) -> float | None:
        if len(self.val_set) == 0:
            return None
        self.model.eval()
        total, count = 0.0, 0
        sampler = FrameBudgetSampler([self.val_set.frames(i) for i in range(len(self.val_set))],
                                     self.job.config.train.max_frames_per_batch, shuffle=False)
        for indices in sampler:
            batch = collate([self.val_set[i] for i in indices]).to(self.rank.device)
            with autocast(self.rank.device, self.precision.autocast_dtype):
                out, mels = teacher_forced(self.model, self.model, batch)
            loss = acoustic_loss(self.model, out, mels, batch)["loss"]
            total += float(loss) * len(indices)
            count += len(indices)
        if writer is not None:
            log_validation_media(writer, self.model, self.val_set, self.mel_analysis, step, self.rank.device,
                                 self.vocoder)
        return total / count

    def seen_indices(self, sampler: Any) -> Iterable[int]:
        return (i for batch in sampler for i in batch)
