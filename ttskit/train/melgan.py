"""`ttskit train-vocoder --model melgan|mb-melgan`: MelGAN and multi-band MelGAN as a `Trainer` of the
training skeleton (the same data, validation and files as HiFi-GAN's: `GeneratorTrainer`).

A step: the generator makes the segment's wave (multi-band: its four PQMF sub-bands, then their
synthesis); once `train.discriminator_start_step` is reached, the multi-scale window discriminator
learns real from generated (hinge or least squares), and the generator's loss adds fooling it and
matching its feature maps to the STFT losses (full band, and the sub-bands against the PQMF analysis
of the recording). Before that step the generator trains on the STFT losses alone: multi-band
MelGAN's warm-up, the part of its training a CPU can afford.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ttskit.checkpoints.vocoder import load_generator_and_state
from ttskit.models.harmonic_noise import multi_resolution_stft_loss
from ttskit.models.melgan import (
    MelGANGenerator,
    MultiScaleWindowDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from ttskit.runtime import autocast
from ttskit.skeleton.distributed import Rank
from ttskit.skeleton.loop import RunPrecision, StepResult, ddp
from ttskit.train.generator_trainer import AdversarialTrainer, halves
from ttskit.train.vocoder_config import MelGANTrainConfig

# kan-bayashi's resolutions (FFT, hop, window) for multi-band MelGAN: full band, and the sub-bands
# at a quarter of the sample rate.
FULL_BAND_STFT = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
SUB_BAND_STFT = ((384, 30, 150), (683, 60, 300), (171, 10, 60))


class _Bands(torch.nn.Module):
    """The generator's own output (sub-bands when multi-band) as its forward, for DDP."""

    def __init__(self, generator: MelGANGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator.bands(mel)


@dataclass
class _Nets:
    generator: MelGANGenerator
    discriminator: MultiScaleWindowDiscriminator
    optim_g: torch.optim.Optimizer
    optim_d: torch.optim.Optimizer
    sched_g: Any
    sched_d: Any


class MelGANTrainer(AdversarialTrainer):
    architecture = "melgan"
    state_names = ("generator", "discriminator", "optim_g", "optim_d", "sched_g", "sched_d")

    def build(self, rank: Rank, precision: RunPrecision) -> None:
        self.build_data(rank, precision)
        job, cfg = self.job, self.cfg_melgan
        generator = MelGANGenerator(job.config.model, job.audio.n_mels).to(rank.device)
        discriminator = MultiScaleWindowDiscriminator(3, cfg.discriminator_downsample,
                                                      cfg.discriminator_max_channels).to(rank.device)

        def adam(module: torch.nn.Module) -> torch.optim.Optimizer:
            return torch.optim.AdamW(module.parameters(), cfg.learning_rate, betas=cfg.betas,
                                     weight_decay=cfg.weight_decay)

        optim_g, optim_d = adam(generator), adam(discriminator)
        self.nets = _Nets(generator, discriminator, optim_g, optim_d,
                          torch.optim.lr_scheduler.ExponentialLR(optim_g, gamma=cfg.lr_decay),
                          torch.optim.lr_scheduler.ExponentialLR(optim_d, gamma=cfg.lr_decay))
        self.bands, self.discriminator = _Bands(generator), discriminator  # DDP-wrapped later

    @property
    def cfg_melgan(self) -> MelGANTrainConfig:
        return self.job.config.train  # type: ignore[return-value]

    def generator_module(self) -> torch.nn.Module:
        return self.nets.generator

    def initialise(self) -> None:
        if self.job.init_from is not None:
            generator, _, _, state = load_generator_and_state(self.job.init_from)
            self.nets.generator.load_state_dict(generator.state_dict())
            if "discriminator" in state:  # a ttskit MelGAN training checkpoint
                self.nets.discriminator.load_state_dict(state["discriminator"])

    def wrap(self, rank: Rank) -> None:
        self.bands, self.discriminator = ddp(_Bands(self.nets.generator), rank), ddp(self.nets.discriminator, rank)

    def modules(self) -> list[torch.nn.Module]:
        return [self.nets.generator, self.nets.discriminator]

    def _stft_losses(self, bands: torch.Tensor, fake: torch.Tensor, wave: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cfg, zero = self.cfg_melgan, wave.new_zeros(())
        full = multi_resolution_stft_loss(fake.float().squeeze(1), wave.squeeze(1), FULL_BAND_STFT) \
            if cfg.stft_loss_weight > 0 else zero
        pqmf = self.nets.generator.pqmf
        sub = multi_resolution_stft_loss(bands.float(), pqmf.analysis(wave), SUB_BAND_STFT) \
            if cfg.subband_stft_loss_weight > 0 and pqmf is not None else zero
        return full, sub

    def step(self, batch: tuple[torch.Tensor, torch.Tensor], step: int) -> StepResult:
        device, dtype, cfg = self.rank.device, self.precision.autocast_dtype, self.cfg_melgan
        wave, mel = (t.to(device, non_blocking=True) for t in batch)
        self.nets.generator.train()
        pqmf = self.nets.generator.pqmf
        with autocast(device, dtype):
            bands = self.bands(mel)
            fake = pqmf.synthesis(bands.float()) if pqmf is not None else bands
        adversarial_phase = step >= cfg.discriminator_start_step
        zero = wave.new_zeros(())
        loss_d, norm_d, verdict_d = zero, zero, "ok"
        if adversarial_phase:
            with autocast(device, dtype):
                judged = self.discriminator(torch.cat([wave, fake.detach().to(wave.dtype)]))
                loss_d = discriminator_loss(*halves(judged), cfg.adversarial)
            norm_d, verdict_d = self.update_discriminator(loss_d, self.nets.optim_d,
                                                          self.nets.discriminator.parameters())
        full, sub = self._stft_losses(bands, fake, wave)
        adversarial, features = zero, zero
        if adversarial_phase:
            with autocast(device, dtype):
                real_maps, fake_maps = halves(self.discriminator(torch.cat([wave, fake.to(wave.dtype)])))
            adversarial = generator_adversarial_loss(fake_maps, cfg.adversarial)
            features = feature_matching_loss(real_maps, fake_maps) if cfg.feature_loss_weight > 0 else zero
        loss_g = (cfg.stft_loss_weight * full + cfg.subband_stft_loss_weight * sub
                  + cfg.adversarial_weight * adversarial + cfg.feature_loss_weight * features)
        norm_g, verdict_g = self.backward(loss_g, self.nets.optim_g, self.nets.generator.parameters())
        verdict = "bad" if "bad" in (verdict_d, verdict_g) else verdict_g
        terms = {"loss_g": loss_g, "loss_d": loss_d, "stft": full, "subband_stft": sub, "adversarial": adversarial,
                 "feature_matching": features}
        return StepResult(verdict, terms, {"grad_norm_g": norm_g, "grad_norm_d": norm_d},
                          wave.shape[0] * wave.shape[-1],
                          {"discriminator_finite": verdict_d != "bad", "generator_finite": verdict_g != "bad"})

