"""`ttskit train-vocoder`: the HiFi-GAN training loop (generator vs multi-period and multi-scale
discriminators).

As in train-acoustic, one function runs on every rank; rank 0 alone logs, validates and saves.
Each save writes a full training state (`step_XXXXXXXX.pt`: both networks, both optimisers,
schedulers, scaler, RNG states) and a small generator-only file (`generator_XXXXXXXX.pt`) that
synthesis loads; `generator_best.pt` is the one with the lowest validation mel L1.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ttskit.audio import MelSpectrogram
from ttskit.audio.io import atomic_write
from ttskit.config import (
    AudioConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    mel_mismatches,
)
from ttskit.data.preprocess import load_work_config
from ttskit.data.segments import SegmentBatchSampler, SegmentDataset, collate_segments, mel_file
from ttskit.data.work import read_jsonl, wav_path
from ttskit.models import jik876
from ttskit.models.discriminators import (
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    adversarial_loss,
    discriminator_loss,
    feature_matching_loss,
)
from ttskit.models.hifigan import Generator
from ttskit.models.vocoder import (
    GENERATOR_FORMAT,
    TRAINING_FORMAT,
    VocoderError,
    load_generator,
    load_generator_and_state,
)
from ttskit.train.checkpoint import (
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from ttskit.train.distributed import Rank, launch
from ttskit.train.loop import (
    StopFlag,
    TrainingError,
    append_jsonl,
    autocast,
    broadcast_from_main,
    finish,
    first_difference,
    forget_unsaved_metrics,
    gather_rng_states,
    grad_scaler,
    ignore_stop_signals,
    log_record,
    overflow_event,
    precision,
    read_summary,
    require_work_files,
    restore_last_good,
    resume_point,
    step_verdict,
    tensorboard_writer,
)
from ttskit.train.media import log_vocoder_media
from ttskit.train.vocoder_config import VOCODER_PRESETS, VocoderRunConfig


@dataclass(frozen=True)
class VocoderJob:
    work: Path
    run: Path
    config: VocoderRunConfig
    audio: AudioConfig
    max_steps: int
    gta: bool
    resume_from: Path | None
    init_from: Path | None


def prepare_vocoder_run(work: Path, run: Path, *, model: str = "hifigan-v1", config_path: Path | None = None,
                        overrides: tuple[str, ...] | list[str] = (), max_steps: int | None = None,
                        resume: bool = False, gta: bool = False, init: Path | None = None) -> VocoderJob:
    """Resolve the run config and check WORK, RUN and --init before any process starts."""
    if model not in VOCODER_PRESETS:
        raise TrainingError(f"unknown vocoder model {model!r} (choose from {', '.join(VOCODER_PRESETS)})")
    require_work_files(work, ("config.yaml", "train.jsonl", "val.jsonl"))
    audio = load_work_config(work).audio
    previous = resume_point(run, resume)
    if previous is not None:
        state = load_checkpoint(previous)
        stored = config_from_dict(VocoderRunConfig, state["run_config"], source=str(previous))
        _check_audio(config_from_dict(AudioConfig, state["audio"], source=str(previous)), audio, previous, work)
        run_config = load_config(config_path, overrides, cls=VocoderRunConfig, base=stored)
        if run_config.model != stored.model:
            raise TrainingError(f"--resume: the model config differs from {previous.name}'s "
                                f"({first_difference(config_to_dict(stored.model), config_to_dict(run_config.model))})")
        gta = gta or bool(state["gta"])
    else:
        run_config = load_config(config_path, overrides, cls=VocoderRunConfig, base=VOCODER_PRESETS[model])
    if run_config.model.hop_length != audio.hop_length:
        raise TrainingError(f"the generator upsamples by {run_config.model.hop_length} "
                            f"(model.upsample_rates {list(run_config.model.upsample_rates)}), but {work} has "
                            f"audio.hop_length {audio.hop_length}")
    cfg = run_config.train
    if cfg.segment_samples % audio.hop_length:
        raise TrainingError(f"train.segment_samples {cfg.segment_samples} is not a multiple of the hop "
                            f"({audio.hop_length})")
    if init is not None and previous is None:
        _check_init(init, run_config, audio, work)
    if gta:
        _check_gta(work)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write(run / "config.yaml", lambda tmp: tmp.write_text(dump_config(run_config), encoding="utf-8"))
    return VocoderJob(work, run, run_config, audio, max_steps if max_steps is not None else 1_000_000, gta,
                      previous, init if previous is None else None)


def _check_audio(theirs: AudioConfig, ours: AudioConfig, source: Path, work: Path) -> None:
    mismatches = mel_mismatches(theirs, ours)
    if mismatches:
        key, a, b = mismatches[0]
        raise TrainingError(f"{source} was trained on other mels than {work} holds ({key}: {a!r} vs {b!r}); "
                            "preprocess with its audio settings or start from scratch")


def _check_init(init: Path, run_config: VocoderRunConfig, audio: AudioConfig, work: Path) -> None:
    try:
        generator, init_audio, resolved = load_generator(init)
    except VocoderError as err:
        raise TrainingError(f"--init: {err}") from None
    _check_audio(init_audio, audio, resolved, work)
    if generator.config != run_config.model:
        raise TrainingError(f"--init: {resolved} is a different generator "
                            f"({first_difference(config_to_dict(generator.config), config_to_dict(run_config.model))});"
                            " choose the matching --model")


def _check_gta(work: Path) -> None:
    rows = read_jsonl(work / "train.jsonl") + read_jsonl(work / "val.jsonl")
    missing = [row["id"] for row in rows if not mel_file(work, row["id"], gta=True).is_file()]
    if missing:
        raise TrainingError(f"--gta: {len(missing)} of {len(rows)} utterances have no {work}/gta/<id>.npy "
                            f"(first: {missing[0]}); run `ttskit train-acoustic ... --export-gta` first")


def train_vocoder(job: VocoderJob, *, gpus: int = 1, device: str | None = None,
                  on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train until `job.max_steps` steps in total (or a stop signal); returns the run summary."""
    device_kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if job.config.train.batch_size % gpus:
        raise TrainingError(f"train.batch_size {job.config.train.batch_size} is the global batch and must split "
                            f"evenly over --gpus {gpus}")
    launch(_train_rank, (job, on_log if gpus <= 1 else None), gpus, device_kind)
    return read_summary(job.run)


@dataclass
class _Nets:
    generator: Generator
    mpd: MultiPeriodDiscriminator
    msd: MultiScaleDiscriminator
    optim_g: torch.optim.Optimizer
    optim_d: torch.optim.Optimizer
    sched_g: Any
    sched_d: Any
    scaler: Any

    def state(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(), "mpd": self.mpd.state_dict(), "msd": self.msd.state_dict(),
                "optim_g": self.optim_g.state_dict(), "optim_d": self.optim_d.state_dict(),
                "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.mpd.load_state_dict(state["mpd"])
        self.msd.load_state_dict(state["msd"])
        for name in ("optim_g", "optim_d", "sched_g", "sched_d", "scaler"):
            getattr(self, name).load_state_dict(state[name])


def _build(job: VocoderJob, device: torch.device, use_scaler: bool) -> _Nets:
    cfg = job.config.train
    generator = Generator(job.config.model, n_mels=job.audio.n_mels).to(device)
    mpd, msd = MultiPeriodDiscriminator().to(device), MultiScaleDiscriminator().to(device)
    optim_g = torch.optim.AdamW(generator.parameters(), cfg.learning_rate, betas=cfg.betas,
                                weight_decay=cfg.weight_decay)
    optim_d = torch.optim.AdamW([*mpd.parameters(), *msd.parameters()], cfg.learning_rate, betas=cfg.betas,
                                weight_decay=cfg.weight_decay)
    return _Nets(generator, mpd, msd, optim_g, optim_d,
                 torch.optim.lr_scheduler.ExponentialLR(optim_g, gamma=cfg.lr_decay),
                 torch.optim.lr_scheduler.ExponentialLR(optim_d, gamma=cfg.lr_decay),
                 grad_scaler(device, use_scaler, cfg.fp16_initial_scale))


def _initialise(nets: _Nets, init: Path) -> None:
    """Fine-tuning start: the generator (and the discriminators, when the source has them)."""
    generator, _, resolved, state = load_generator_and_state(init)
    nets.generator.load_state_dict(generator.state_dict())
    discriminators = state if "mpd" in state else None
    if discriminators is None and (beside := jik876.discriminator_file(resolved)) is not None:
        discriminators = {k: jik876.from_jik876_keys(v) for k, v in load_checkpoint(beside).items()
                          if k in ("mpd", "msd")}
    if discriminators is not None:
        nets.mpd.load_state_dict(discriminators["mpd"])
        nets.msd.load_state_dict(discriminators["msd"])


def _grad_norm(parameters: Any, clip: float | None) -> torch.Tensor:
    return torch.nn.utils.clip_grad_norm_(list(parameters), clip if clip is not None else math.inf)


def _train_rank(rank: Rank, job: VocoderJob, on_log: Callable[[dict[str, Any]], None] | None) -> None:
    cfg = job.config.train
    torch.manual_seed(cfg.seed + rank.rank)
    np.random.seed(cfg.seed + rank.rank)
    per_rank = cfg.batch_size // rank.world_size
    train_set = SegmentDataset(job.work, "train", cfg.segment_samples, job.audio.hop_length, job.audio.mel_floor,
                               gta=job.gta, seed=cfg.seed)
    if len(train_set) == 0:
        raise TrainingError(f"{job.work}/train.jsonl is empty")
    sampler = SegmentBatchSampler(len(train_set), per_rank, seed=cfg.seed, num_replicas=rank.world_size,
                                  rank=rank.rank)
    loader = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate_segments, num_workers=cfg.num_workers,
                        pin_memory=rank.device.type == "cuda", persistent_workers=cfg.num_workers > 0,
                        worker_init_fn=ignore_stop_signals)
    autocast_dtype, use_scaler = precision(cfg.precision, rank.device)
    nets = _build(job, rank.device, use_scaler)
    step, epoch, batch_in_epoch, best = 0, 0, 0, math.inf
    if job.resume_from is not None:
        state = load_checkpoint(job.resume_from)
        nets.load(state)
        step, epoch, batch_in_epoch, best = state["step"], state["epoch"], state["batch_in_epoch"], state["best_val"]
        set_rng_state(state["rng"][min(rank.rank, len(state["rng"]) - 1)])
        if rank.is_main:
            forget_unsaved_metrics(job.run / "metrics.jsonl", step)
    elif job.init_from is not None:
        _initialise(nets, job.init_from)

    def wrap(module: torch.nn.Module) -> torch.nn.Module:
        if not rank.distributed:
            return module
        return DistributedDataParallel(module, device_ids=[rank.local_rank] if rank.device.type == "cuda" else None)

    generator, mpd, msd = wrap(nets.generator), wrap(nets.mpd), wrap(nets.msd)
    # The loss looks at the whole band; float32 STFT: this runs every step.
    loss_mel = MelSpectrogram(dataclasses.replace(job.audio, fmax=cfg.loss_fmax), double_precision=False).to(rank.device)
    stop = StopFlag()
    writer = tensorboard_writer(job.run) if rank.is_main else None
    checkpoints, metrics_path = job.run / "checkpoints", job.run / "metrics.jsonl"
    bad_in_a_row, samples_seen, window_start = 0, 0, time.perf_counter()

    def save(best_only: bool = False) -> None:
        rngs = gather_rng_states(rank)
        if not rank.is_main:
            return
        light = {"format": GENERATOR_FORMAT, "architecture": "hifigan", "generator": nets.generator.state_dict(),
                 "model": config_to_dict(job.config.model), "audio": config_to_dict(job.audio), "step": step,
                 "gta": job.gta}
        if best_only:
            save_checkpoint(checkpoints / "generator_best.pt", light)
            return
        save_checkpoint(checkpoints / f"step_{step:08d}.pt",
                        {"format": TRAINING_FORMAT, "architecture": "hifigan", **nets.state(), "step": step,
                         "epoch": epoch, "batch_in_epoch": batch_in_epoch, "best_val": best, "rng": rngs,
                         "run_config": config_to_dict(job.config), "audio": config_to_dict(job.audio),
                         "gta": job.gta})
        save_checkpoint(checkpoints / f"generator_{step:08d}.pt", light)
        prune_checkpoints(checkpoints, cfg.keep_last)
        prune_checkpoints(checkpoints, cfg.keep_last, prefix="generator")

    try:
        while step < job.max_steps and not stop.stop:
            sampler.set_epoch(epoch, skip=batch_in_epoch)
            for wave, mel in loader:
                batch_in_epoch += 1
                wave, mel = wave.to(rank.device, non_blocking=True), mel.to(rank.device, non_blocking=True)
                nets.generator.train()
                with autocast(rank.device, autocast_dtype):
                    fake = generator(mel)
                adversarial_phase = step >= cfg.discriminator_start_step
                verdict_d, norm_d, loss_d = "ok", torch.zeros(()), torch.zeros(())
                if adversarial_phase:
                    loss_d, norm_d, verdict_d = _discriminator_step(nets, (mpd, msd), wave, fake, cfg, rank,
                                                                    autocast_dtype)
                # Generator step: fool both discriminators, match their features, match the mel.
                mel_l1 = F.l1_loss(loss_mel(fake.squeeze(1).float()), loss_mel(wave.squeeze(1)))
                adversarial, features = torch.zeros(()), torch.zeros(())
                if adversarial_phase:
                    with autocast(rank.device, autocast_dtype):
                        both = torch.cat([wave, fake.to(wave.dtype)])
                        judged = [d(both) for d in (mpd, msd)]
                    adversarial = sum(adversarial_loss(_split(scores)[1]) for scores, _ in judged)
                    features = sum(feature_matching_loss(*_split_maps(maps)) for _, maps in judged)
                loss_g = adversarial + cfg.feature_loss_weight * features + cfg.mel_loss_weight * mel_l1
                nets.optim_g.zero_grad(set_to_none=True)
                nets.scaler.scale(loss_g).backward()
                nets.scaler.unscale_(nets.optim_g)
                norm_g = _grad_norm(nets.generator.parameters(), cfg.grad_clip)
                verdict_g = step_verdict(loss_g, norm_g, nets.scaler, rank)
                if verdict_d != "bad" and verdict_g == "overflow":
                    nets.optim_g.zero_grad(set_to_none=True)
                    nets.scaler.update()
                    if rank.is_main:
                        append_jsonl(metrics_path, overflow_event(step, nets.scaler))
                    continue
                if "bad" in (verdict_d, verdict_g):
                    bad_in_a_row += 1
                    nets.optim_g.zero_grad(set_to_none=True)
                    nets.scaler.update()
                    if rank.is_main:
                        append_jsonl(metrics_path, {"step": step, "event": "non-finite loss or gradient, step skipped",
                                                    "discriminator_finite": verdict_d != "bad",
                                                    "generator_finite": verdict_g != "bad"})
                    if bad_in_a_row >= cfg.nan_patience:
                        restore_last_good(job.run, cfg.nan_patience,
                                          "lower train.learning_rate or try train.precision=fp32", nets.load, rank)
                        bad_in_a_row = 0
                    continue
                bad_in_a_row = 0
                nets.scaler.step(nets.optim_g)
                nets.scaler.update()
                step += 1
                samples_seen += wave.shape[0] * wave.shape[-1] * rank.world_size
                if rank.is_main and (step % cfg.log_every == 0 or step == job.max_steps):
                    elapsed = max(time.perf_counter() - window_start, 1e-9)
                    terms = {"loss_g": loss_g, "loss_d": loss_d, "mel_l1": mel_l1, "adversarial": adversarial,
                             "feature_matching": features}
                    record = {"step": step, "epoch": epoch, **{k: round(v.item(), 5) for k, v in terms.items()},
                              "lr": nets.sched_g.get_last_lr()[0], "grad_norm_g": round(float(norm_g), 4),
                              "grad_norm_d": round(float(norm_d), 4),
                              "audio_s_per_s": round(samples_seen / job.audio.sample_rate / elapsed, 2)}
                    log_record(metrics_path, writer, record, on_log)
                    samples_seen, window_start = 0, time.perf_counter()
                if step % cfg.val_every == 0 or step == job.max_steps:
                    val = _validate(job, nets.generator, loss_mel, rank, writer, step) if rank.is_main else None
                    val = broadcast_from_main(val, rank)  # save() is collective: every rank takes the same path
                    if val is not None:
                        if rank.is_main:
                            append_jsonl(metrics_path, {"step": step, "val_mel_l1": round(val, 5)})
                        if val < best:
                            best = val
                            save(best_only=True)
                if step % cfg.checkpoint_every == 0 or step == job.max_steps:
                    save()
                if step >= job.max_steps or stop.stop:
                    break
            else:
                epoch, batch_in_epoch = epoch + 1, 0
                nets.sched_g.step()
                nets.sched_d.step()
        if stop.stop:
            save()
        finish(job.run, {"step": step, "epoch": epoch, "stopped_by_signal": stop.stop, "best_val_mel_l1": best},
               rank, [nets.generator, nets.mpd, nets.msd], (i for b in sampler for _, i in b))
    finally:
        stop.restore()
        if writer is not None:
            writer.close()


def _discriminator_step(nets: _Nets, discriminators: tuple[torch.nn.Module, ...], wave: torch.Tensor,
                        fake: torch.Tensor, cfg: Any, rank: Rank,
                        autocast_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Real vs generated, both through each discriminator in one batch; steps unless the step is
    bad. An fp16 overflow is left to the GradScaler: its step() skips the update, and the
    generator step's scaler.update() lowers the scale."""
    with autocast(rank.device, autocast_dtype):
        both = torch.cat([wave, fake.detach().to(wave.dtype)])
        loss_d = sum(discriminator_loss(*_split(d(both)[0])) for d in discriminators)
    nets.optim_d.zero_grad(set_to_none=True)
    nets.scaler.scale(loss_d).backward()
    nets.scaler.unscale_(nets.optim_d)
    norm_d = _grad_norm([*nets.mpd.parameters(), *nets.msd.parameters()], cfg.grad_clip)
    verdict = step_verdict(loss_d, norm_d, nets.scaler, rank)
    if verdict != "bad":
        nets.scaler.step(nets.optim_d)
    return loss_d, norm_d, verdict


def _split(scores: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Scores of a real-then-generated batch -> (real scores, generated scores)."""
    return [s.chunk(2)[0] for s in scores], [s.chunk(2)[1] for s in scores]


def _split_maps(maps: list[list[torch.Tensor]]) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    return ([[m.chunk(2)[0] for m in per] for per in maps], [[m.chunk(2)[1] for m in per] for per in maps])


@torch.no_grad()
def _validate(job: VocoderJob, generator: Generator, loss_mel: MelSpectrogram, rank: Rank, writer: Any,
              step: int) -> float | None:
    """Mean mel L1 (the loss's full-band mel) of whole held-out utterances; media to TensorBoard."""
    rows = read_jsonl(job.work / "val.jsonl")[:job.config.train.val_utterances]
    if not rows:
        return None
    generator.eval()
    total = 0.0
    for index, row in enumerate(rows):
        uid = row["id"]
        mel = torch.from_numpy(np.load(mel_file(job.work, uid, job.gta))).unsqueeze(0).to(rank.device)
        recorded, _ = sf.read(str(wav_path(job.work, uid)), dtype="float32")
        recorded = torch.from_numpy(recorded).unsqueeze(0).to(rank.device)
        generated = generator(mel).squeeze(1).float()
        length = min(generated.shape[-1], recorded.shape[-1])
        target, predicted = loss_mel(recorded[:, :length]), loss_mel(generated[:, :length])
        total += float(F.l1_loss(predicted, target))
        if writer is not None and index < 2:
            log_vocoder_media(writer, f"val/{index}", target[0], predicted[0], generated[0], step,
                              job.audio.sample_rate)
    generator.train()
    return total / len(rows)
