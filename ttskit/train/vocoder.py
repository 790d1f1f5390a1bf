"""`ttskit train-vocoder`: each vocoder family is a `Trainer` of the training skeleton. HiFi-GAN
(generator vs multi-period and multi-scale discriminators) lives here; the harmonic-plus-noise
vocoder (`train/harmonic_noise.py`) shares `GeneratorTrainer` (`train/generator_trainer.py`): data,
validation and the files.

Each save writes a full training state (`step_XXXXXXXX.pt`: both networks, both optimisers,
schedulers, scaler, RNG states) and a small generator-only file (`generator_XXXXXXXX.pt`) that
synthesis loads; `generator_best.pt` is the one with the lowest validation mel L1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ttskit.checkpoints import jik876
from ttskit.checkpoints.store import load_checkpoint
from ttskit.checkpoints.vocoder import load_generator, load_generator_and_state
from ttskit.config import AudioConfig, config_from_dict, config_to_dict, mel_mismatches
from ttskit.data.frame_pitch import ensure_frame_pitch
from ttskit.models.discriminators import (
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    adversarial_loss,
    discriminator_loss,
    feature_matching_loss,
)
from ttskit.models.hifigan import Generator
from ttskit.models.vocoder import VocoderError
from ttskit.runtime import autocast, default_device
from ttskit.skeleton.distributed import Rank, launch
from ttskit.skeleton.loop import RunPrecision, StepResult, TrainingLoop, ddp
from ttskit.skeleton.pieces import (
    TrainingError,
    first_difference,
    read_summary,
    resolve_run_config,
    stored_model_section,
    write_run_config,
)
from ttskit.train.generator_trainer import AdversarialTrainer, VocoderJob, halves
from ttskit.train.harmonic_noise import HarmonicNoiseTrainer
from ttskit.train.melgan import MelGANTrainer
from ttskit.train.vocoder_config import (
    VOCODER_PRESETS,
    AnyVocoderRunConfig,
    HarmonicNoiseRunConfig,
    MelGANRunConfig,
    VocoderRunConfig,
    WaveGlowRunConfig,
)
from ttskit.train.waveglow import WaveGlowTrainer
from ttskit.work import (
    VOCODER_FILES,
    check_manifest_files,
    load_work_config,
    mel_path,
    read_manifest,
    require_work_files,
)


def prepare_vocoder_run(work: Path, run: Path, *, model: str | None = None, config_path: Path | None = None,
                        overrides: tuple[str, ...] | list[str] = (), max_steps: int | None = None,
                        resume: bool = False, gta: bool = False, init: Path | None = None) -> VocoderJob:
    """Resolve the run config and check WORK, RUN and --init before any process starts. `model`:
    hifigan-v1 when a fresh run names none; on resume it may only name the run's own (and naming
    none resumes the run's own family, as naming none with --init takes the family of the generator
    it starts from)."""
    # The --init generator, read once for its family, its settings and the checks (None: unreadable,
    # which `_check_init` reports).
    init_generator = _read_init(init) if init is not None else None
    chosen = model or (_run_family(run) if resume else None) or _init_family(init_generator) or "hifigan-v1"
    if chosen not in VOCODER_PRESETS:
        raise TrainingError(f"unknown vocoder model {chosen!r} (choose from {', '.join(VOCODER_PRESETS)})")
    require_work_files(work, VOCODER_FILES)
    work_config = load_work_config(work)
    audio = work_config.audio

    def check_state(state: dict[str, Any], source: Path) -> None:
        _check_audio(config_from_dict(AudioConfig, state["audio"], source=str(source)), audio, source, work)

    preset = _with_init_settings(VOCODER_PRESETS[chosen], init_generator)
    run_config, previous, state = resolve_run_config(run, resume, type(preset), preset, config_path, overrides,
                                                     check_state, preset_given=model is not None)
    gta = gta or bool(state.get("gta"))
    if isinstance(run_config, (VocoderRunConfig, MelGANRunConfig)) and run_config.model.hop_length != audio.hop_length:
        bands = getattr(run_config.model, "subbands", 1)
        raise TrainingError(f"the generator upsamples by {run_config.model.hop_length} "
                            f"(model.upsample_rates {list(run_config.model.upsample_rates)}"
                            f"{f' x {bands} sub-bands' if bands > 1 else ''}), but {work} has "
                            f"audio.hop_length {audio.hop_length}")
    cfg = run_config.train
    if cfg.segment_samples % audio.hop_length:
        raise TrainingError(f"train.segment_samples {cfg.segment_samples} is not a multiple of the hop "
                            f"({audio.hop_length})")
    if init is not None and previous is None:
        _check_init(init, init_generator, run_config, audio, work)
    if gta:
        _check_gta(work)
    rows = read_manifest(work, "train") + read_manifest(work, "val")
    check_manifest_files(work, rows, gta=gta)
    if isinstance(run_config, HarmonicNoiseRunConfig):
        ensure_frame_pitch(work, rows, work_config)
    write_run_config(run, run_config, fresh=previous is None)
    return VocoderJob(work, run, run_config, audio, max_steps if max_steps is not None else 1_000_000, gta,
                      previous, init if previous is None else None)


def _family_of_section(model: dict[str, Any]) -> str | None:
    """The preset family of a stored generator section (None: HiFi-GAN's, which has presets per size)."""
    if "harmonics" in model:
        return "harmonic-noise"
    if "subbands" in model:
        return "mb-melgan" if model["subbands"] > 1 else "melgan"
    if "flows" in model:
        return "waveglow"
    return None


def _run_family(run: Path) -> str | None:
    """The preset family a run was started with, from its RUN/config.yaml (None: not known)."""
    model = stored_model_section(run)
    return _family_of_section(model) if model is not None else None


LoadedInit = tuple[nn.Module, AudioConfig, Path]  # what `load_generator` gives for --init


def _read_init(init: Path) -> LoadedInit | None:
    """(generator, its audio config, resolved path) of --init, or None when it cannot be read."""
    try:
        return load_generator(init)
    except VocoderError:
        return None


def _init_family(init: LoadedInit | None) -> str | None:
    """The family of the --init generator (None: none given, HiFi-GAN, or unreadable)."""
    if init is None or not hasattr(init[0], "config"):
        return None
    return _family_of_section(config_to_dict(init[0].config))


# A generator fine-tuned to a new voice learns its F0 range, and the fundamental weighs little in
# the STFT loss alone: with the log-mel L1 beside it a new voice's pair scored 1.57x its
# recordings' WER (three scorings) against 1.70x without (recipes/fine-tune/README.md).
FINE_TUNE_MEL_LOSS_WEIGHT = 1.0


def _with_init_settings(preset: AnyVocoderRunConfig, init: LoadedInit | None
                        ) -> AnyVocoderRunConfig:
    """The preset with the model settings of the generator --init starts from, where that family has
    settings without weights (`takes_weights_of`): fine-tuning a generator keeps its noise STFT and
    voicing gate unless --config/--set change them, rather than falling back to the preset's. A
    harmonic-plus-noise fine-tuning also weighs the mel loss (`FINE_TUNE_MEL_LOSS_WEIGHT`)."""
    if init is None or not hasattr(preset.model, "takes_weights_of"):
        return preset  # no --init, or an unreadable one (`_check_init` says why)
    config = getattr(init[0], "config", None)
    if type(config) is not type(preset.model):
        return preset
    tuned = dataclasses.replace(preset, model=config)
    if isinstance(tuned, HarmonicNoiseRunConfig):
        tuned = dataclasses.replace(tuned, train=dataclasses.replace(tuned.train,
                                                                     mel_loss_weight=FINE_TUNE_MEL_LOSS_WEIGHT))
    return tuned


def _check_audio(theirs: AudioConfig, ours: AudioConfig, source: Path, work: Path) -> None:
    mismatches = mel_mismatches(theirs, ours)
    if mismatches:
        key, a, b = mismatches[0]
        raise TrainingError(f"{source} was trained on other mels than {work} holds ({key}: {a!r} vs {b!r}); "
                            "preprocess with its audio settings or start from scratch")


def _check_init(init: Path, loaded: LoadedInit | None, run_config: AnyVocoderRunConfig,
                audio: AudioConfig, work: Path) -> None:
    if loaded is None:  # unreadable: read it again for the reason
        try:
            loaded = load_generator(init)
        except VocoderError as err:
            raise TrainingError(f"--init: {err}") from None
    generator, init_audio, resolved = loaded
    _check_audio(init_audio, audio, resolved, work)
    takes_weights_of = getattr(run_config.model, "takes_weights_of", None)  # a config that differs in weightless ways
    if generator.config != run_config.model and not (takes_weights_of is not None
                                                     and takes_weights_of(generator.config)):
        raise TrainingError(f"--init: {resolved} is a different generator "
                            f"({first_difference(config_to_dict(generator.config), config_to_dict(run_config.model))});"
                            " choose the matching --model")


def _check_gta(work: Path) -> None:
    rows = read_manifest(work, "train") + read_manifest(work, "val")
    missing = [row["id"] for row in rows if not mel_path(work, row["id"], gta=True).is_file()]
    if missing:
        raise TrainingError(f"--gta: {len(missing)} of {len(rows)} utterances have no {work}/gta/<id>.npy "
                            f"(first: {missing[0]}); run `ttskit train-acoustic ... --export-gta` first")


def train_vocoder(job: VocoderJob, *, gpus: int = 1, device: str | None = None,
                  on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train until `job.max_steps` steps in total (or a stop signal); returns the run summary."""
    if job.config.train.batch_size % gpus:
        raise TrainingError(f"train.batch_size {job.config.train.batch_size} is the global batch and must split "
                            f"evenly over --gpus {gpus}")
    launch(_train_rank, (job, on_log if gpus <= 1 else None), gpus, default_device(device).type)
    return read_summary(job.run)


def _train_rank(rank: Rank, job: VocoderJob, on_log: Callable[[dict[str, Any]], None] | None) -> None:
    trainers = {HarmonicNoiseRunConfig: HarmonicNoiseTrainer, MelGANRunConfig: MelGANTrainer,
                WaveGlowRunConfig: WaveGlowTrainer}
    trainer = trainers.get(type(job.config), VocoderTrainer)(job)
    TrainingLoop(trainer, rank, on_log).run()


@dataclass
class _Nets:
    generator: Generator
    mpd: MultiPeriodDiscriminator
    msd: MultiScaleDiscriminator
    optim_g: torch.optim.Optimizer
    optim_d: torch.optim.Optimizer
    sched_g: Any
    sched_d: Any


def _build(job: VocoderJob, device: torch.device) -> _Nets:
    cfg = job.config.train
    generator = Generator(job.config.model, n_mels=job.audio.n_mels).to(device)
    mpd = MultiPeriodDiscriminator(width=cfg.discriminator_width).to(device)
    msd = MultiScaleDiscriminator(width=cfg.discriminator_width).to(device)
    optim_g = torch.optim.AdamW(generator.parameters(), cfg.learning_rate, betas=cfg.betas,
                                weight_decay=cfg.weight_decay)
    optim_d = torch.optim.AdamW([*mpd.parameters(), *msd.parameters()], cfg.learning_rate, betas=cfg.betas,
                                weight_decay=cfg.weight_decay)
    return _Nets(generator, mpd, msd, optim_g, optim_d,
                 torch.optim.lr_scheduler.ExponentialLR(optim_g, gamma=cfg.lr_decay),
                 torch.optim.lr_scheduler.ExponentialLR(optim_d, gamma=cfg.lr_decay))


def _initialise(nets: _Nets, init: Path) -> None:
    """Fine-tuning start: the generator (and the discriminators, when the source has them)."""
    generator, _, resolved, state = load_generator_and_state(init)
    nets.generator.load_state_dict(generator.state_dict())
    discriminators = state if "mpd" in state else None
    if discriminators is None and (beside := jik876.discriminator_file(resolved)) is not None:
        discriminators = {k: jik876.from_jik876_keys(v) for k, v in load_checkpoint(beside).items()
                          if k in ("mpd", "msd")}
    if discriminators is not None:
        for name, net in (("mpd", nets.mpd), ("msd", nets.msd)):
            own = net.state_dict()
            if any(tensor.shape != own[key].shape for key, tensor in discriminators[name].items() if key in own):
                raise TrainingError(f"{resolved}: its discriminators are another width than train.discriminator_width "
                                    "asks for (a published do_ file is the paper's: width 1)")
            net.load_state_dict(discriminators[name])


def _split(scores: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Scores of a real-then-generated batch -> (real scores, generated scores)."""
    return [s.chunk(2)[0] for s in scores], [s.chunk(2)[1] for s in scores]


class VocoderTrainer(AdversarialTrainer):
    """HiFi-GAN: the generator against multi-period and multi-scale discriminators."""

    architecture = "hifigan"
    state_names = ("generator", "mpd", "msd", "optim_g", "optim_d", "sched_g", "sched_d")

    def build(self, rank: Rank, precision: RunPrecision) -> None:
        self.build_data(rank, precision)
        self.nets = _build(self.job, rank.device)
        self.generator, self.mpd, self.msd = self.nets.generator, self.nets.mpd, self.nets.msd  # DDP-wrapped later

    def generator_module(self) -> torch.nn.Module:
        return self.nets.generator

    def initialise(self) -> None:
        if self.job.init_from is not None:
            _initialise(self.nets, self.job.init_from)

    def wrap(self, rank: Rank) -> None:
        self.generator, self.mpd, self.msd = ddp(self.nets.generator, rank), ddp(self.nets.mpd, rank), \
            ddp(self.nets.msd, rank)

    def modules(self) -> list[torch.nn.Module]:
        return [self.nets.generator, self.nets.mpd, self.nets.msd]

    def step(self, batch: tuple[torch.Tensor, torch.Tensor], step: int) -> StepResult:
        device, dtype, cfg = self.rank.device, self.precision.autocast_dtype, self.job.config.train
        wave, mel = (t.to(device, non_blocking=True) for t in batch)
        self.nets.generator.train()
        with autocast(device, dtype):
            fake = self.generator(mel)
        adversarial_phase = step >= cfg.discriminator_start_step
        verdict_d, norm_d, loss_d = "ok", torch.zeros(()), torch.zeros(())
        if adversarial_phase:
            loss_d, norm_d, verdict_d = self._discriminator_step(wave, fake)
        # Generator step: fool both discriminators, match their features, match the mel.
        mel_l1 = F.l1_loss(self.loss_mel(fake.squeeze(1).float()), self.loss_mel(wave.squeeze(1)))
        adversarial, features = torch.zeros(()), torch.zeros(())
        if adversarial_phase:
            with autocast(device, dtype):
                both = torch.cat([wave, fake.to(wave.dtype)])
                judged = [d(both) for d in (self.mpd, self.msd)]
            adversarial = sum(adversarial_loss(_split(scores)[1]) for scores, _ in judged)
            features = sum(feature_matching_loss(*halves(maps)) for _, maps in judged)
        loss_g = adversarial + cfg.feature_loss_weight * features + cfg.mel_loss_weight * mel_l1
        norm_g, verdict_g = self.backward(loss_g, self.nets.optim_g, self.nets.generator.parameters())
        # A discriminator overflow was skipped by the scaler already; the generator's decides.
        verdict = "bad" if "bad" in (verdict_d, verdict_g) else verdict_g
        terms = {"loss_g": loss_g, "loss_d": loss_d, "mel_l1": mel_l1, "adversarial": adversarial,
                 "feature_matching": features}
        return StepResult(verdict, terms, {"grad_norm_g": norm_g, "grad_norm_d": norm_d},
                          wave.shape[0] * wave.shape[-1],
                          {"discriminator_finite": verdict_d != "bad", "generator_finite": verdict_g != "bad"})

    def _discriminator_step(self, wave: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
        """Real vs generated, both through each discriminator in one batch; steps unless the step is bad."""
        with autocast(self.rank.device, self.precision.autocast_dtype):
            both = torch.cat([wave, fake.detach().to(wave.dtype)])
            loss_d = sum(discriminator_loss(*_split(d(both)[0])) for d in (self.mpd, self.msd))
        norm_d, verdict = self.update_discriminator(loss_d, self.nets.optim_d,
                                                    [*self.nets.mpd.parameters(), *self.nets.msd.parameters()])
        return loss_d, norm_d, verdict


