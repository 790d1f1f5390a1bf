#!/usr/bin/env python3
"""Feasibility probe for the default-voice vocoder (issue 16): an F0-driven harmonic-plus-noise
(DDSP-style) vocoder, trained on a WORK folder with a multi-resolution STFT loss only (no
discriminator), for a fixed wall-clock budget on this machine; then copy-synthesis of a held-out
corpus for `ttskit eval`, so it is scored exactly as `ttskit eval --vocoder-only` scores a trained
vocoder.

Not a ttskit vocoder yet: a measurement of whether this family reaches the issue's copy-synthesis
goals (F0 RMSE <= 60 cents, voicing error <= 8 %, WER <= 1.10x the recordings') on a CPU budget,
before it is built into `train-vocoder --model` with its F0 plumbing (docs/vocoder-candidates.md).

    python tools/vocoder_candidates/ddsp_probe.py WORK --minutes 30 --out probe/ --heldout CORPUS
    ttskit eval --ref CORPUS/metadata.csv --hyp probe/copy --json probe/eval.json

The model: per mel frame, a dilated conv stack over (log-mel, log-F0, voicing) predicts a gain, a
distribution over 100 harmonics of F0 (masked above Nyquist) and a 65-band noise magnitude
response. Audio = sum of sinusoids at k * F0 (phase = running sum of F0, so the periodicity is the
given F0 by construction) + white noise shaped in the STFT domain by the predicted response.
F0 comes from ttskit's YIN (the same `extract_pitch` preprocessing uses), from the audio itself.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn
from torch.nn import functional as F

from ttskit.audio import MelSpectrogram, load_audio, save_wav
from ttskit.audio.pitch import extract_pitch
from ttskit.config import AudioConfig
from ttskit.work import load_work_config, mel_path, read_manifest, wav_path

F0_REFERENCE = 100.0  # Hz; log-F0 enters the network relative to it


def scaled_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """DDSP's amplitude nonlinearity: positive, with a wide dynamic range."""
    return 2.0 * torch.sigmoid(x) ** math.log(10.0) + 1e-7


class HarmonicPlusNoise(nn.Module):
    def __init__(self, audio: AudioConfig, channels: int = 192, layers: int = 8, harmonics: int = 100,
                 noise_bands: int = 65) -> None:
        super().__init__()
        self.audio, self.harmonics, self.noise_bands = audio, harmonics, noise_bands
        self.inp = nn.Conv1d(audio.n_mels + 2, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv1d(channels, channels, 3, padding=2 ** (i % 4), dilation=2 ** (i % 4))
                                  for i in range(layers))
        self.head = nn.Conv1d(channels, 1 + harmonics + noise_bands, 1)
        self.register_buffer("window", torch.hann_window(1024), persistent=False)

    def controls(self, mel: torch.Tensor, f0: torch.Tensor, voiced: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = torch.cat([mel, torch.log(f0.clamp(min=1.0) / F0_REFERENCE)[:, None], voiced[:, None]], 1)
        h = self.inp(x)
        for conv in self.body:
            h = h + conv(F.leaky_relu(h, 0.1))
        out = self.head(F.leaky_relu(h, 0.1))
        gain = scaled_sigmoid(out[:, 0])
        k = torch.arange(1, self.harmonics + 1, device=f0.device)[None, :, None]
        audible = (k * f0[:, None] < self.audio.sample_rate / 2).float()
        distribution = torch.softmax(out[:, 1:1 + self.harmonics], 1) * audible
        distribution = distribution / distribution.sum(1, keepdim=True).clamp(min=1e-7)
        noise = scaled_sigmoid(out[:, 1 + self.harmonics:] - 5.0)
        return gain, distribution, noise

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T), (B, T) Hz, (B, T) 0/1 -> (B, T * hop)."""
        hop, rate = self.audio.hop_length, self.audio.sample_rate
        gain, distribution, noise = self.controls(mel, f0, voiced)
        n = mel.shape[-1] * hop
        # Frame j's value sits at sample j*hop + hop/2, the centre of the mel frame.
        f0_s = F.interpolate(f0[:, None], size=n, mode="linear", align_corners=False)[:, 0]
        amplitudes = F.interpolate(distribution * gain[:, None], size=n, mode="linear", align_corners=False)
        phase = 2 * math.pi * torch.cumsum(f0_s.double() / rate, -1)
        phase = torch.remainder(phase, 2 * math.pi).float()
        k = torch.arange(1, self.harmonics + 1, device=mel.device, dtype=torch.float32)[None, :, None]
        harmonic = (amplitudes * torch.sin(k * phase[:, None])).sum(1)
        white = torch.rand(mel.shape[0], n, device=mel.device) * 2 - 1
        spectrum = torch.stft(white, 1024, hop, 1024, self.window, center=True, return_complex=True)
        response = F.interpolate(noise, size=(spectrum.shape[-1]), mode="linear", align_corners=False)
        response = F.interpolate(response.transpose(1, 2), size=spectrum.shape[1], mode="linear",
                                 align_corners=True).transpose(1, 2)
        shaped = torch.istft(spectrum * response, 1024, hop, 1024, self.window, center=True, length=n)
        return harmonic + shaped


def stft_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss: spectral convergence + log-magnitude L1 at five resolutions."""
    total = fake.new_zeros(())
    for n_fft in (2048, 1024, 512, 256, 128):
        window = torch.hann_window(n_fft, device=fake.device)
        s_fake = torch.stft(fake, n_fft, n_fft // 4, n_fft, window, return_complex=True).abs()
        s_real = torch.stft(real, n_fft, n_fft // 4, n_fft, window, return_complex=True).abs()
        total = total + torch.linalg.norm(s_real - s_fake) / torch.linalg.norm(s_real).clamp(min=1e-7)
        total = total + F.l1_loss(torch.log(s_fake + 1e-5), torch.log(s_real + 1e-5))
    return total / 5


def load_corpus(work: Path, audio: AudioConfig, fmin: float, fmax: float) -> list[dict]:
    items = []
    for row in read_manifest(work, "train"):
        wave, _ = sf.read(str(wav_path(work, row["id"])), dtype="float32")
        mel = np.load(mel_path(work, row["id"]))
        pitch = extract_pitch(wave, audio, "yin", fmin, fmax)
        frames = min(mel.shape[1], len(pitch.f0), len(wave) // audio.hop_length)
        items.append({"wave": wave, "mel": mel[:, :frames], "f0": pitch.f0[:frames].astype(np.float32),
                      "voiced": pitch.voiced[:frames].astype(np.float32)})
    return items


def batch(items: list[dict], size: int, frames: int, hop: int, rng: random.Random) -> tuple[torch.Tensor, ...]:
    waves, mels, f0s, voiced = [], [], [], []
    for item in (rng.choice(items) for _ in range(size)):
        total = item["mel"].shape[1]
        start = rng.randint(0, max(total - frames, 0))
        stop = start + frames
        mel = np.full((item["mel"].shape[0], frames), np.log(1e-5), dtype=np.float32)
        mel[:, :min(stop, total) - start] = item["mel"][:, start:stop]
        f0 = np.zeros(frames, np.float32)
        f0[:min(stop, total) - start] = item["f0"][start:stop]
        f0[min(stop, total) - start:] = item["f0"][-1] if total else 100.0
        v = np.zeros(frames, np.float32)
        v[:min(stop, total) - start] = item["voiced"][start:stop]
        wave = np.zeros(frames * hop, np.float32)
        piece = item["wave"][start * hop:stop * hop]
        wave[:len(piece)] = piece
        waves.append(wave), mels.append(mel), f0s.append(f0), voiced.append(v)
    return tuple(torch.from_numpy(np.stack(x)) for x in (waves, mels, f0s, voiced))


def train(args: argparse.Namespace, audio: AudioConfig, items: list[dict]) -> HarmonicPlusNoise:
    torch.manual_seed(1234)
    model = HarmonicPlusNoise(audio)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.8, 0.99))
    rng = random.Random(1234)
    started, step, log = time.perf_counter(), 0, []
    while time.perf_counter() - started < args.minutes * 60:
        wave, mel, f0, voiced = batch(items, args.batch, args.frames, audio.hop_length, rng)
        loss = stft_loss(model(mel, f0, voiced), wave)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 50 == 0:
            log.append({"step": step, "minutes": round((time.perf_counter() - started) / 60, 2),
                        "loss": round(loss.item(), 4)})
            print(json.dumps(log[-1]), flush=True)
    torch.save({"model": model.state_dict(), "steps": step, "log": log}, args.out / "probe.pt")
    return model


@torch.inference_mode()
def copy_synthesis(model: HarmonicPlusNoise, heldout: Path, out: Path, audio: AudioConfig, fmin: float,
                   fmax: float) -> dict:
    """Recording -> mel (ttskit's analysis) + YIN F0 -> the probe -> out/<id>.wav, timed."""
    model.eval()
    analysis = MelSpectrogram(audio)
    out.mkdir(parents=True, exist_ok=True)
    audio_s = compute_s = 0.0
    for path in sorted((heldout / "wavs").glob("*.wav")):
        wave = load_audio(path, audio.sample_rate)
        start = time.perf_counter()
        mel = analysis(torch.from_numpy(wave)[None]).float()
        pitch = extract_pitch(wave, audio, "yin", fmin, fmax)
        frames = min(mel.shape[-1], len(pitch.f0))
        made = model(mel[..., :frames], torch.from_numpy(pitch.f0[:frames].astype(np.float32))[None],
                     torch.from_numpy(pitch.voiced[:frames].astype(np.float32))[None])[0].numpy()
        compute_s += time.perf_counter() - start
        audio_s += len(made) / audio.sample_rate
        peak = float(np.abs(made).max())
        save_wav(out / path.name, made / peak * 0.95 if peak > 1 else made, audio.sample_rate)
    return {"audio_s": round(audio_s, 1), "compute_s": round(compute_s, 2),
            "x_real_time": round(audio_s / max(compute_s, 1e-9), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True, help="an LJSpeech-layout corpus of held-out lines")
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-clock budget")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=32, help="segment length in mel frames")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    config = load_work_config(args.work)
    audio, prep = config.audio, config.preprocess
    items = load_corpus(args.work, audio, prep.pitch_fmin, prep.pitch_fmax)
    print(f"{len(items)} utterances loaded", flush=True)
    model = train(args, audio, items)
    timing = copy_synthesis(model, args.heldout, args.out / "copy", audio, prep.pitch_fmin, prep.pitch_fmax)
    (args.out / "timing.json").write_text(json.dumps(timing) + "\n")
    print(json.dumps(timing))


if __name__ == "__main__":
    main()
