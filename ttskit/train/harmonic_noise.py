"""`ttskit train-vocoder --model harmonic-noise`: the harmonic-plus-noise source-filter vocoder as a
`Trainer` of the training skeleton.

One network and one optimiser: the synthesiser is driven by YIN's F0 and voicing of the recorded
segment (WORK/f0, teacher forcing) and trained on the multi-resolution STFT loss; its pitch head
learns YIN's tracks from the mel beside it, for mels that come without F0. Checkpoints are the
same files as HiFi-GAN's (`step_XXXXXXXX.pt`, `generator_XXXXXXXX.pt`, `generator_best.pt`),
tagged `"architecture": "harmonic-noise"` and carrying the YIN pitch range copy-synthesis uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ttskit.models.harmonic_noise import HarmonicNoiseGenerator, multi_resolution_stft_loss, pitch_loss
from ttskit.runtime import autocast
from ttskit.skeleton.distributed import Rank
from ttskit.skeleton.loop import RunPrecision, StepResult, ddp
from ttskit.train.generator_trainer import SingleNetworkTrainer, VocoderJob
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
        job = self.job
        self.net = HarmonicNoiseGenerator(job.config.model, job.audio.n_mels, job.audio.sample_rate,
                                          job.audio.hop_length).to(rank.device)
        self.forward = _WithPitchHead(self.net)
        self.build_optimiser()

    def wrap(self, rank: Rank) -> None:
        self.forward = ddp(_WithPitchHead(self.net), rank)

    def extra_metadata(self) -> dict[str, Any]:
        prep = self.work_config.preprocess
        return {"pitch_range": [prep.pitch_fmin, prep.pitch_fmax]}

    def step(self, batch: tuple[torch.Tensor, ...], step: int) -> StepResult:
        device, cfg = self.rank.device, self.job.config.train
        wave, mel, f0, voiced = (t.to(device, non_blocking=True) for t in batch)
        self.net.train()
        with autocast(device, self.precision.autocast_dtype):
            fake, log_f0, voicing = self.forward(mel, f0, voiced)
        stft = multi_resolution_stft_loss(fake.squeeze(1).float(), wave.squeeze(1))
        f0_l1, voicing_bce = pitch_loss(log_f0.float(), voicing.float(), f0, voiced)
        loss = stft + cfg.pitch_loss_weight * (f0_l1 + voicing_bce)
        norm, verdict = self.backward(loss, self.optimizer, self.net.parameters())
        return StepResult(verdict, {"loss": loss, "stft": stft, "f0_l1": f0_l1, "voicing_bce": voicing_bce},
                          {"grad_norm": norm}, wave.shape[0] * wave.shape[-1])

    def generate_for_validation(self, mel: torch.Tensor, recorded: torch.Tensor, uid: str) -> torch.Tensor:
        """Copy-synthesis as `ttskit vocode` does it: F0 and voicing from YIN on the recording (WORK/f0)."""
        track = torch.from_numpy(np.load(frame_pitch_path(self.job.work, uid)))[:, None].to(mel.device)
        return self.net(mel, track[0], track[1]).squeeze(1).float()
