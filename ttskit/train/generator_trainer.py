"""What every vocoder family's trainer shares (`train-vocoder`): the job `prepare_vocoder_run`
resolves, and `GeneratorTrainer`, the `Trainer` base of HiFi-GAN (`train/vocoder.py`) and the
harmonic-plus-noise vocoder (`train/harmonic_noise.py`): segments of WORK, the generator files
synthesis loads, and validation by the full-band mel L1 of whole held-out utterances."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.nn import functional as F

from ttskit.audio import MelSpectrogram
from ttskit.checkpoints.formats import VOCODER_GENERATOR_FORMAT, VOCODER_TRAINING_FORMAT
from ttskit.checkpoints.store import prune_checkpoints, save_checkpoint
from ttskit.checkpoints.vocoder import load_generator
from ttskit.config import AudioConfig, config_to_dict
from ttskit.data.segments import SegmentBatchSampler, SegmentDataset, collate_segments
from ttskit.skeleton.distributed import Rank
from ttskit.skeleton.loop import RunPrecision, Trainer
from ttskit.skeleton.pieces import TrainingError, follow_learning_rate, step_verdict
from ttskit.train.media import log_vocoder_media
from ttskit.train.vocoder_config import AnyVocoderRunConfig
from ttskit.work import mel_path, read_manifest, wav_path


@dataclass(frozen=True)
class VocoderJob:
    work: Path
    run: Path
    config: AnyVocoderRunConfig
    audio: AudioConfig
    max_steps: int
    gta: bool
    resume_from: Path | None
    init_from: Path | None


def grad_norm(parameters: Any, clip: float | None) -> torch.Tensor:
    return torch.nn.utils.clip_grad_norm_(list(parameters), clip if clip is not None else math.inf)


def halves(judged: list[list[torch.Tensor]]) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """Per-discriminator tensors of a real-then-generated batch -> (real ones, generated ones)."""
    return ([[m.chunk(2)[0] for m in maps] for maps in judged], [[m.chunk(2)[1] for m in maps] for maps in judged])


class GeneratorTrainer(Trainer):
    """What every vocoder family's trainer shares: segments of WORK, the generator files synthesis
    loads, and validation by the full-band mel L1 of whole held-out utterances."""

    summary_best_key = "best_val_mel_l1"
    val_key = "val_mel_l1"
    nan_advice = "lower train.learning_rate or try train.precision=fp32"
    architecture: str  # what the checkpoints say, for `ttskit.checkpoints.vocoder.ARCHITECTURES`
    uses_pitch = False  # segments carry F0 and voicing (WORK/f0)

    def __init__(self, job: VocoderJob) -> None:
        super().__init__(job.run, job.config, job.max_steps, job.resume_from)
        self.job = job

    def build_data(self, rank: Rank, precision: RunPrecision) -> None:
        cfg, job = self.job.config.train, self.job
        self.rank, self.precision = rank, precision
        self.train_set = SegmentDataset(job.work, "train", cfg.segment_samples, job.audio.hop_length,
                                        job.audio.mel_floor, gta=job.gta, seed=cfg.seed, pitch=self.uses_pitch)
        if len(self.train_set) == 0:
            raise TrainingError(f"{job.work}/train.jsonl is empty")
        self.sampler = SegmentBatchSampler(len(self.train_set), cfg.batch_size // rank.world_size, seed=cfg.seed,
                                           num_replicas=rank.world_size, rank=rank.rank)
        self.collate = collate_segments
        # The loss looks at the whole band; float32 STFT: this runs every step.
        fmax = getattr(cfg, "loss_fmax", None)
        self.loss_mel = MelSpectrogram(dataclasses.replace(job.audio, fmax=fmax),
                                       double_precision=False).to(rank.device)

    def generator_module(self) -> torch.nn.Module:
        """The bare generator (not DDP-wrapped): what the generator files hold."""
        raise NotImplementedError

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                 parameters: Iterable[torch.nn.Parameter]) -> tuple[torch.Tensor, str]:
        """Gradients of a network's loss through the scaler, unscaled and clipped: (norm, verdict).
        For the generator the skeleton calls `apply` for the optimiser step of an ok step."""
        scaler = self.precision.scaler
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        norm = grad_norm(parameters, self.job.config.train.grad_clip)
        return norm, step_verdict(loss, norm, scaler, self.rank)

    def update_discriminator(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                             parameters: Iterable[torch.nn.Parameter]) -> tuple[torch.Tensor, str]:
        """A discriminator's whole update: (norm, verdict), stepped unless the step is bad. An fp16
        overflow is left to the GradScaler: its step() skips the update, and the skeleton's
        scaler.update() after the generator step lowers the scale."""
        norm, verdict = self.backward(loss, optimizer, parameters)
        if verdict != "bad":
            self.precision.scaler.step(optimizer)
        return norm, verdict

    def generate_for_validation(self, mel: torch.Tensor, recorded: torch.Tensor, uid: str) -> torch.Tensor:
        """(1, M, T) mel of a held-out utterance -> (1, S) wave."""
        return self.generator_module()(mel).squeeze(1).float()

    def metadata(self) -> dict[str, Any]:
        return {"format": VOCODER_TRAINING_FORMAT, "architecture": self.architecture,
                "audio": config_to_dict(self.job.audio), "gta": self.job.gta, **self.extra_metadata()}

    def extra_metadata(self) -> dict[str, Any]:
        """What a family's checkpoints carry beyond the generator, model and audio config."""
        return {}

    def throughput(self, amount: float, seconds: float) -> dict[str, float]:
        return {"audio_s_per_s": round(amount / self.job.audio.sample_rate / seconds, 2)}

    def generator_file(self, step: int) -> dict[str, Any]:
        """What synthesis loads: the generator alone, with its architecture and mel settings."""
        return {"format": VOCODER_GENERATOR_FORMAT, "architecture": self.architecture,
                "generator": self.generator_module().state_dict(), "model": config_to_dict(self.job.config.model),
                "audio": config_to_dict(self.job.audio), "step": step, "gta": self.job.gta, **self.extra_metadata()}

    def save_best(self, checkpoints: Path, state: dict[str, Any], step: int) -> None:
        save_checkpoint(checkpoints / "generator_best.pt", self.generator_file(step))

    def after_save(self, checkpoints: Path, step: int) -> None:
        save_checkpoint(checkpoints / f"generator_{step:08d}.pt", self.generator_file(step))
        prune_checkpoints(checkpoints, self.job.config.train.keep_last, prefix="generator")

    @torch.no_grad()
    def validate(self, step: int, writer: Any) -> float | None:
        """Mean mel L1 (the loss's full-band mel) of whole held-out utterances; media to TensorBoard."""
        job, device = self.job, self.rank.device
        rows = read_manifest(job.work, "val")[:job.config.train.val_utterances]
        if not rows:
            return None
        generator = self.generator_module()
        generator.eval()
        total = 0.0
        for index, row in enumerate(rows):
            mel = torch.from_numpy(np.load(mel_path(job.work, row["id"], job.gta))).unsqueeze(0).to(device)
            recorded, _ = sf.read(str(wav_path(job.work, row["id"])), dtype="float32")
            recorded = torch.from_numpy(recorded).unsqueeze(0).to(device)
            generated = self.generate_for_validation(mel, recorded, row["id"])
            length = min(generated.shape[-1], recorded.shape[-1])
            target, predicted = self.loss_mel(recorded[:, :length]), self.loss_mel(generated[:, :length])
            total += float(F.l1_loss(predicted, target))
            if writer is not None and index < 2:
                log_vocoder_media(writer, f"val/{index}", target[0], predicted[0], generated[0], step,
                                  job.audio.sample_rate)
        generator.train()
        return total / len(rows)

    def seen_indices(self, sampler: Any) -> Iterable[int]:
        return (i for batch in sampler for _, i in batch)


class SingleNetworkTrainer(GeneratorTrainer):
    """A vocoder trained without a discriminator (harmonic-plus-noise, WaveGlow): one network
    (`self.net`), one optimiser and its per-epoch decay; subclasses build them and take a step."""

    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any

    def initialise(self) -> None:
        """--init: the generator's weights from the checkpoint it names (ttskit's or a foreign one)."""
        if self.job.init_from is not None:
            generator, _, _ = load_generator(self.job.init_from)
            loaded = self.net.load_state_dict(generator.state_dict(), strict=False)
            # Parts the network has and the checkpoint's lacks (a harmonic filter added to a trained
            # synthesiser) keep their own start, which is the identity; anything else must match.
            fresh = tuple(getattr(self.net, "optional_parts", ()))
            unmatched = loaded.unexpected_keys + [key for key in loaded.missing_keys if not key.startswith(fresh)]
            if unmatched:
                raise TrainingError(f"{self.job.init_from}: its generator does not fit this --model's "
                                    f"(unmatched weights: {', '.join(unmatched[:5])})")

    def build_optimiser(self) -> None:
        cfg = self.job.config.train
        self.optimizer = torch.optim.AdamW(self.net.parameters(), cfg.learning_rate, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=cfg.lr_decay)

    def modules(self) -> list[torch.nn.Module]:
        return [self.net]

    def generator_module(self) -> torch.nn.Module:
        return self.net

    def state(self) -> dict[str, Any]:
        return {"generator": self.net.state_dict(), "optim_g": self.optimizer.state_dict(),
                "sched_g": self.scheduler.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optim_g"])
        self.scheduler.load_state_dict(state["sched_g"])
        decay = self.job.config.train.lr_decay
        follow_learning_rate(self.optimizer, self.scheduler, self.job.config.train.learning_rate,
                             lambda epoch: decay ** epoch)

    def apply(self) -> None:
        self.precision.scaler.step(self.optimizer)

    def end_epoch(self) -> None:
        self.scheduler.step()

    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


class AdversarialTrainer(GeneratorTrainer):
    """A generator against discriminators (HiFi-GAN, MelGAN): `self.nets` holds both optimisers
    (optim_g, optim_d) and their per-epoch schedulers (sched_g, sched_d)."""

    nets: Any
    state_names: tuple[str, ...]  # the `nets` fields a training checkpoint holds

    def state(self) -> dict[str, Any]:
        return {name: getattr(self.nets, name).state_dict() for name in self.state_names}

    def load_state(self, state: dict[str, Any]) -> None:
        for name in self.state_names:
            getattr(self.nets, name).load_state_dict(state[name])
        self.follow_rates()

    def follow_rates(self) -> None:
        """After loading a state: the learning rates the config and schedules say now."""
        rate, decay = self.job.config.train.learning_rate, self.job.config.train.lr_decay
        for optimizer, scheduler in ((self.nets.optim_g, self.nets.sched_g), (self.nets.optim_d, self.nets.sched_d)):
            follow_learning_rate(optimizer, scheduler, rate, lambda epoch: decay ** epoch)

    def apply(self) -> None:
        self.precision.scaler.step(self.nets.optim_g)

    def end_epoch(self) -> None:
        self.nets.sched_g.step()
        self.nets.sched_d.step()

    def learning_rate(self) -> float:
        return float(self.nets.optim_g.param_groups[0]["lr"])
