"""`ttskit train-vocoder --model waveglow`: WaveGlow as a `Trainer` of the training skeleton.

One network, one loss: the negative log-likelihood of the segment under the flow (its latent's
squared norm against the log-scales and the 1x1 convolutions' log-determinants), computed in
float32 even under bf16/fp16 autocast (a log-determinant and a sum over every sample lose too much
in half precision). Validation makes each held-out utterance from noise at the model's
`inference_sigma`, as synthesis does.
"""

from __future__ import annotations

import torch

from ttskit.models.waveglow import WaveGlow, waveglow_loss
from ttskit.runtime import autocast
from ttskit.skeleton.distributed import Rank
from ttskit.skeleton.loop import RunPrecision, StepResult, ddp
from ttskit.train.generator_trainer import SingleNetworkTrainer


class WaveGlowTrainer(SingleNetworkTrainer):
    architecture = "waveglow"

    def build(self, rank: Rank, precision: RunPrecision) -> None:
        self.build_data(rank, precision)
        job = self.job
        self.net = WaveGlow(job.config.model, job.audio.n_mels, job.audio.hop_length).to(rank.device)
        self.forward = self.net
        self.build_optimiser()

    def wrap(self, rank: Rank) -> None:
        self.forward = ddp(self.net, rank)

    def step(self, batch: tuple[torch.Tensor, torch.Tensor], step: int) -> StepResult:
        device = self.rank.device
        wave, mel = (t.to(device, non_blocking=True) for t in batch)
        self.net.train()
        with autocast(device, self.precision.autocast_dtype):
            z, log_scales, log_dets = self.forward(mel, wave.squeeze(1))
        loss = waveglow_loss(z, log_scales, log_dets, self.job.config.model.sigma)
        norm, verdict = self.backward(loss, self.optimizer, self.net.parameters())
        return StepResult(verdict, {"loss": loss, "nll": loss}, {"grad_norm": norm}, wave.shape[0] * wave.shape[-1])

    def generate_for_validation(self, mel: torch.Tensor, recorded: torch.Tensor, uid: str) -> torch.Tensor:
        return self.net.infer(mel).float()
