"""`ttskit train-vocoder --model harmonic-noise`: the harmonic-plus-noise source-filter vocoder as a
`Trainer` of the training skeleton.

The synthesiser is driven by YIN's F0 and voicing of the recorded segment (WORK/f0, teacher forcing)
and trained on the multi-resolution STFT loss; its pitch head learns YIN's tracks from the mel
beside it, for mels that come without F0. With `train.adversarial_weight > 0` a light
multi-resolution spectrogram discriminator joins from `train.discriminator_start_step` (hinge loss
and feature matching, its own optimiser); its state rides in the training checkpoints. Checkpoints are the
same files as HiFi-GAN's (`step_XXXXXXXX.pt`, `generator_XXXXXXXX.pt`, `generator_best.pt`),
tagged `"architecture": "harmonic-noise"` and carrying the YIN pitch range copy-synthesis uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ttskit.models.harmonic_noise import HarmonicNoiseGenerator, multi_resolution_stft_loss, pitch_loss
from ttskit.models.melgan import discriminator_loss, feature_matching_loss, generator_adversarial_loss
from ttskit.models.spectral_discriminator import MultiResolutionSpectrogramDiscriminator
from ttskit.runtime import autocast
from ttskit.skeleton.distributed import Rank
from ttskit.skeleton.loop import RunPrecision, StepResult, ddp
from ttskit.skeleton.pieces import follow_learning_rate
from ttskit.train.generator_trainer import SingleNetworkTrainer, VocoderJob, halves
from ttskit.train.vocoder_config import HarmonicNoiseTrainConfig
from ttskit.work import frame_pitch_path, load_work_config


class _WithPitchHead(nn.Module):
    """The generator's forward with its pitch head's outputs too, so DDP sees every parameter used."""

    def __init__(self, generator: HarmonicNoiseGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, mel: torch.Tensor, f0: torch.Tensor,
                voiced: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.generator(mel, f0, voiced), *self.generator.pitch(mel)


class HarmonicNoiseTrainer(SingleNetworkTrainer):
    architecture = "harmonic-noise"
    uses_pitch = True

    def __init__(self, job: VocoderJob) -> None:
        super().__init__(job)
        self.work_config = load_work_config(job.work)

    def build(self, rank: Rank, precision: RunPrecision) -> None:
        self.build_data(rank, precision)
        job, cfg = self.job, self.cfg_hn
        self.net = HarmonicNoiseGenerator(job.config.model, job.audio.n_mels, job.audio.sample_rate,
                                          job.audio.hop_length).to(rank.device)
        self.forward = _WithPitchHead(self.net)
        self.build_optimiser()
        self.discriminator: MultiResolutionSpectrogramDiscriminator | None = None
        if cfg.adversarial:
            self.discriminator = MultiResolutionSpectrogramDiscriminator(
                channels=cfg.discriminator_channels).to(rank.device)
            self.judge: nn.Module = self.discriminator
            self.optim_d = torch.optim.AdamW(self.discriminator.parameters(), cfg.discriminator_learning_rate,
                                             betas=cfg.betas, weight_decay=cfg.weight_decay)
            self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, gamma=cfg.lr_decay)

    @property
    def cfg_hn(self) -> HarmonicNoiseTrainConfig:
        return self.job.config.train  # type: ignore[return-value]

    def wrap(self, rank: Rank) -> None:
        self.forward = ddp(_WithPitchHead(self.net), rank)
        if self.discriminator is not None:
            self.judge = ddp(self.discriminator, rank)

    def modules(self) -> list[nn.Module]:
        return [self.net] + ([self.discriminator] if self.discriminator is not None else [])

    def state(self) -> dict[str, Any]:
        state = super().state()
        if self.discriminator is not None:
            state.update(discriminator=self.discriminator.state_dict(), optim_d=self.optim_d.state_dict(),
                         sched_d=self.sched_d.state_dict())
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        # A run trained without the discriminator and resumed with it starts the discriminator afresh.
        if self.discriminator is not None and "discriminator" in state:
            self.discriminator.load_state_dict(state["discriminator"])
            self.optim_d.load_state_dict(state["optim_d"])
            self.sched_d.load_state_dict(state["sched_d"])
            decay = self.cfg_hn.lr_decay
            follow_learning_rate(self.optim_d, self.sched_d, self.cfg_hn.discriminator_learning_rate,
                                 lambda epoch: decay ** epoch)

    def end_epoch(self) -> None:
        super().end_epoch()
        if self.discriminator is not None:
            self.sched_d.step()

    def extra_metadata(self) -> dict[str, Any]:
        prep = self.work_config.preprocess
        return {"pitch_range": [prep.pitch_fmin, prep.pitch_fmax]}

    def step(self, batch: tuple[torch.Tensor, ...], step: int) -> StepResult:
        device, cfg = self.rank.device, self.cfg_hn
        wave, mel, f0, voiced = (t.to(device, non_blocking=True) for t in batch)
        self.net.train()
        with autocast(device, self.precision.autocast_dtype):
            fake, log_f0, voicing = self.forward(mel, f0, voiced)
        fake = fake.float()
        zero = wave.new_zeros(())
        loss_d, norm_d, verdict_d, adversarial, features = zero, zero, "ok", zero, zero
        adversarial_phase = self.discriminator is not None and step >= cfg.discriminator_start_step
        if adversarial_phase:
            real, generated = self._judged_window(wave, fake)
            with autocast(device, self.precision.autocast_dtype):
                loss_d = discriminator_loss(*halves(self.judge(torch.cat([real, generated.detach()]))), "hinge")
            norm_d, verdict_d = self.update_discriminator(loss_d, self.optim_d, self.discriminator.parameters())
            with autocast(device, self.precision.autocast_dtype):
                real_maps, fake_maps = halves(self.judge(torch.cat([real, generated])))
            adversarial = generator_adversarial_loss(fake_maps, "hinge")
            features = feature_matching_loss(real_maps, fake_maps)
        stft = multi_resolution_stft_loss(fake.squeeze(1), wave.squeeze(1),
                                          convergence_weight=cfg.stft_convergence_weight)
        mel_l1 = (F.l1_loss(self.loss_mel(fake.squeeze(1)), self.loss_mel(wave.squeeze(1)))
                  if cfg.mel_loss_weight > 0 else zero)
        f0_l1, voicing_bce = pitch_loss(log_f0.float(), voicing.float(), f0, voiced)
        loss = (stft + cfg.mel_loss_weight * mel_l1 + cfg.pitch_loss_weight * (f0_l1 + voicing_bce)
                + cfg.adversarial_weight * adversarial + cfg.feature_loss_weight * features)
        norm, verdict_g = self.backward(loss, self.optimizer, self.net.parameters())
        verdict = "bad" if "bad" in (verdict_d, verdict_g) else verdict_g
        terms = {"loss": loss, "stft": stft, "f0_l1": f0_l1, "voicing_bce": voicing_bce}
        if cfg.mel_loss_weight > 0:
            terms["mel_l1"] = mel_l1
        norms = {"grad_norm": norm}
        if self.discriminator is not None:
            terms.update(loss_d=loss_d, adversarial=adversarial, feature_matching=features)
            norms["grad_norm_d"] = norm_d
        return StepResult(verdict, terms, norms, wave.shape[0] * wave.shape[-1],
                          {"discriminator_finite": verdict_d != "bad", "generator_finite": verdict_g != "bad"})

    def _judged_window(self, wave: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same random window of the recorded and generated segments (B, 1, window). Drawn from
        torch's generator, whose state the checkpoints carry, so a resumed run draws the same."""
        window = min(self.cfg_hn.discriminator_segment_samples, wave.shape[-1])
        start = int(torch.randint(0, wave.shape[-1] - window + 1, ()))
        return wave[..., start:start + window], fake[..., start:start + window]

    def generate_for_validation(self, mel: torch.Tensor, recorded: torch.Tensor, uid: str) -> torch.Tensor:
        """Copy-synthesis as `ttskit vocode` does it: F0 and voicing from YIN on the recording (WORK/f0)."""
        track = torch.from_numpy(np.load(frame_pitch_path(self.job.work, uid)))[:, None].to(mel.device)
        return self.net(mel, track[0], track[1]).squeeze(1).float()
