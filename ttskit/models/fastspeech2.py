"""FastSpeech2 (Ren et al., 2021): phonemes (+ speaker) -> mel frames, with explicit duration,
pitch and energy predictors; and FastSpeech (Ren et al., 2019), the same feed-forward
transformer with a duration predictor and the length regulator but no pitch or energy predictors
(`variance_predictors=False`; its presets in `FASTSPEECH_PRESETS`). Shapes: B batch, N phonemes,
T frames, C channels, M mel bands.

The constructor takes everything it needs as arguments (vocabulary size, speakers, value
ranges); it never opens a file, so a checkpoint alone can rebuild it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from ttskit.config import require
from ttskit.models.length_regulator import regulate_length


@dataclass(frozen=True)
class FastSpeech2Config:
    hidden: int = 256
    encoder_layers: int = 4
    decoder_layers: int = 6
    heads: int = 2
    conv_filter: int = 1024
    conv_kernels: tuple[int, int] = (9, 1)
    dropout: float = 0.2
    variance_filter: int = 256
    variance_kernel: int = 3
    variance_dropout: float = 0.5
    # Pitch and energy values are embedded by bucketing into this many bins over the corpus range.
    n_bins: int = 256
    postnet_layers: int = 5  # 0: no postnet (FastSpeech as published)
    postnet_channels: int = 512
    postnet_kernel: int = 5
    # False: FastSpeech, no pitch and energy predictors (durations are the only variance).
    variance_predictors: bool = True

    def __post_init__(self) -> None:
        for key in ("hidden", "encoder_layers", "decoder_layers", "heads", "conv_filter", "variance_filter",
                    "variance_kernel", "n_bins", "postnet_channels", "postnet_kernel"):
            require(getattr(self, key) >= 1, f"model.{key}", "must be at least 1")
        require(self.postnet_layers == 0 or self.postnet_layers >= 2, "model.postnet_layers",
                "must be 0 (no postnet) or at least 2")
        require(self.hidden % self.heads == 0, "model.heads", f"must divide model.hidden ({self.hidden})")
        require(all(k >= 1 and k % 2 == 1 for k in self.conv_kernels), "model.conv_kernels", "must be odd and >= 1")
        for key in ("variance_kernel", "postnet_kernel"):
            require(getattr(self, key) % 2 == 1, f"model.{key}", "must be odd (same-length convolution)")
        for key in ("dropout", "variance_dropout"):
            require(0 <= getattr(self, key) < 1, f"model.{key}", "must be in [0, 1)")


PRESETS: dict[str, FastSpeech2Config] = {
    # ming024/FastSpeech2's LJSpeech size.
    "base": FastSpeech2Config(),
    # Learns something within minutes on 2 CPU cores.
    "small": FastSpeech2Config(hidden=128, encoder_layers=2, decoder_layers=2, heads=2, conv_filter=512,
                               variance_filter=128, postnet_layers=3, postnet_channels=256),
}

FASTSPEECH_PRESETS: dict[str, FastSpeech2Config] = {
    # The FastSpeech paper's size: 6 FFT blocks on each side, 384 channels, 2 heads, 1536-channel
    # convolutions with kernel 3, a 2-layer duration predictor, dropout 0.1, no postnet.
    "base": FastSpeech2Config(hidden=384, encoder_layers=6, decoder_layers=6, heads=2, conv_filter=1536,
                              conv_kernels=(3, 3), dropout=0.1, variance_filter=384, variance_dropout=0.1,
                              postnet_layers=0, variance_predictors=False),
    # The size of FastSpeech2's small preset, for comparisons on a CPU.
    "small": FastSpeech2Config(hidden=128, encoder_layers=2, decoder_layers=2, heads=2, conv_filter=512,
                               variance_filter=128, postnet_layers=0, variance_predictors=False),
}


@dataclass
class VarianceTargets:
    """Ground truth for teacher forcing: (B, N) durations in frames, (B, N) or (B, T) normalised
    pitch and energy (level given by the model's feature_level)."""

    durations: torch.Tensor
    pitch: torch.Tensor
    energy: torch.Tensor


@dataclass
class Controls:
    """Inference controls. Per-phoneme overrides are (B, N) tensors that replace predictions."""

    duration_scale: float = 1.0  # > 1 speaks slower
    pitch_shift: float = 0.0  # added to the normalised pitch (in units of the speaker's std)
    pitch_scale: float = 1.0  # multiplies the normalised pitch (expressiveness)
    energy_scale: float = 1.0  # multiplies the normalised energy
    energy_shift: float = 0.0  # added to the normalised energy (in units of the corpus' energy std)
    durations: torch.Tensor | None = None
    pitch: torch.Tensor | None = None
    energy: torch.Tensor | None = None


@dataclass
class FastSpeech2Output:
    mel: torch.Tensor  # (B, T, M) before the postnet
    mel_postnet: torch.Tensor  # (B, T, M)
    log_duration: torch.Tensor  # (B, N) predicted log(1 + frames)
    pitch: torch.Tensor  # predicted, (B, N) or (B, T)
    energy: torch.Tensor
    durations: torch.Tensor  # (B, N) frames actually used (targets or rounded predictions)
    phoneme_mask: torch.Tensor  # (B, N) True on padding
    frame_mask: torch.Tensor  # (B, T) True on padding
    frame_lengths: torch.Tensor  # (B,)
    extra: dict = field(default_factory=dict)


def padding_mask(lengths: torch.Tensor, width: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, width) mask, True past each length."""
    width = int(lengths.max()) if width is None else width
    return torch.arange(width, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


def sinusoid_positions(length: int, channels: int, device: torch.device) -> torch.Tensor:
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, channels, 2, device=device, dtype=torch.float32)
                          * (-math.log(10000.0) / channels))
    angle = position * frequency
    # sin and cos interleaved, built without slice assignment so the graph exports to ONNX.
    return torch.stack([torch.sin(angle), torch.cos(angle)], -1).reshape(length, -1)[:, :channels]


class SelfAttention(nn.Module):
    """Multi-head self-attention over (B, L, C) with a key padding mask, through PyTorch's fused
    scaled-dot-product attention (flash / memory-efficient kernels on CPU and GPU: no (B, H, L, L)
    probability tensor is kept, and no dropout on it, as in ming024/FastSpeech2).

    Parameters are named and shaped as nn.MultiheadAttention's (in_proj_weight, in_proj_bias,
    out_proj), so checkpoints written with either load into the other."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * channels, channels))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * channels))
        self.out_proj = nn.Linear(channels, channels)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """`padding` (B, L) is True where there is no symbol/frame: no query attends to it."""
        batch, length, channels = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(batch, length, 3, self.heads, channels // self.heads).permute(2, 0, 3, 1, 4)
        if torch.onnx.is_in_onnx_export():
            attended = explicit_attention(q, k, v, padding)
        else:
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=~padding[:, None, None, :])
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, channels))


MASKED_SCORE = -1e9  # a padded key's score offset: finite, so a query with every key padded gets no NaN


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v for (B, heads, L, d) with (B, L) key padding, as the exported
    graph computes it. The exporter writes `scaled_dot_product_attention` with a NaN guard over
    the whole (B, heads, L, L) score tensor (IsNaN + Where: a third of ONNX Runtime's attention
    time, measured); a finite mask makes the guard needless. The mask rides in the score product
    itself, as one more coordinate (1 on every query, 0 or MASKED_SCORE on each key), rather than
    as an addition over the (B, heads, L, L) scores: a graph runtime makes that a pass of its own
    over the largest tensor of the layer. Valid positions agree with the fused kernel to float
    rounding; padded queries differ (the callers zero them)."""
    key_mask = (padding[:, None, :, None].to(q.dtype) * MASKED_SCORE).expand(-1, k.shape[1], -1, -1)
    queries = torch.cat([q * q.shape[-1] ** -0.5, torch.ones_like(q[..., :1])], -1)
    return torch.softmax(queries @ torch.cat([k, key_mask], -1).transpose(-1, -2), -1) @ v


def zero_padding(x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """`x` with the positions where `padding` (broadcast to it) is True set to 0. In an ONNX export
    a product with the kept positions: ONNX Runtime's broadcast Where runs at half the speed of
    its Mul (measured), and this runs on every layer. (Torch keeps masked_fill, which also clears a
    NaN that a padded query may hold.)"""
    if torch.onnx.is_in_onnx_export():
        return x * (~padding).to(x.dtype)
    return x.masked_fill(padding, 0.0)


class FFTBlock(nn.Module):
    """Self-attention + 1-D convolutional feed-forward, each residual and layer-normalised. (B, L, C)."""

    def __init__(self, channels: int, heads: int, filter_channels: int, kernels: tuple[int, int],
                 dropout: float) -> None:
        super().__init__()
        self.attention = SelfAttention(channels, heads)
        self.attention_norm = nn.LayerNorm(channels)
        self.conv1 = nn.Conv1d(channels, filter_channels, kernels[0], padding=kernels[0] // 2)
        self.conv2 = nn.Conv1d(filter_channels, channels, kernels[1], padding=kernels[1] // 2)
        self.feed_forward_norm = nn.LayerNorm(channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(x, mask)
        x = zero_padding(self.attention_norm(x + self.dropout(attended)), mask.unsqueeze(-1))
        hidden = self.conv2(F.relu(self.conv1(x.transpose(1, 2)))).transpose(1, 2)
        return zero_padding(self.feed_forward_norm(x + self.dropout(hidden)), mask.unsqueeze(-1))


class FFTStack(nn.Module):
    def __init__(self, config: FastSpeech2Config, layers: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(FFTBlock(config.hidden, config.heads, config.conv_filter, config.conv_kernels,
                                             config.dropout) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + sinusoid_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        for block in self.blocks:
            x = block(x, mask)
        return x


class VariancePredictor(nn.Module):
    """Two conv layers with ReLU, layer norm and dropout, then one value per position: (B, L, C) -> (B, L)."""

    def __init__(self, config: FastSpeech2Config) -> None:
        super().__init__()
        c, k = config.variance_filter, config.variance_kernel
        self.conv1 = nn.Conv1d(config.hidden, c, k, padding=k // 2)
        self.norm1 = nn.LayerNorm(c)
        self.conv2 = nn.Conv1d(c, c, k, padding=k // 2)
        self.norm2 = nn.LayerNorm(c)
        self.dropout = nn.Dropout(config.variance_dropout)
        self.output = nn.Linear(c, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Padding is zeroed before each convolution, so an utterance's values do not depend on
        # what it was batched with.
        padded = mask.unsqueeze(-1)
        x = self.dropout(self.norm1(F.relu(self.conv1(zero_padding(x, padded).transpose(1, 2))).transpose(1, 2)))
        x = self.dropout(self.norm2(F.relu(self.conv2(zero_padding(x, padded).transpose(1, 2))).transpose(1, 2)))
        return zero_padding(self.output(x).squeeze(-1), mask)


class ValueEmbedding(nn.Module):
    """A scalar per position -> an embedding, by bucketing over a fixed range: (B, L) -> (B, L, C)."""

    def __init__(self, n_bins: int, channels: int, low: float, high: float) -> None:
        super().__init__()
        self.register_buffer("boundaries", torch.linspace(low, high, n_bins - 1), persistent=False)
        self.embedding = nn.Embedding(n_bins, channels)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        # torch.bucketize's bins (the number of boundaries below each value) as a comparison:
        # bucketize has no ONNX export (ming024/FastSpeech2#98), a comparison does.
        return self.embedding((values.float().unsqueeze(-1) > self.boundaries).sum(-1))


class PostNet(nn.Module):
    """Tacotron 2's residual convolutional refinement of the mel: (B, T, M) -> (B, T, M)."""

    def __init__(self, n_mels: int, config: FastSpeech2Config) -> None:
        super().__init__()
        k, c = config.postnet_kernel, config.postnet_channels
        sizes = [n_mels] + [c] * (config.postnet_layers - 1) + [n_mels]
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv1d(a, b, k, padding=k // 2), nn.BatchNorm1d(b)) for a, b in zip(sizes, sizes[1:]))
        self.dropout = nn.Dropout(0.5)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`mask` (B, T) is True on padding, which is zeroed before every convolution."""
        padded = mask.unsqueeze(1)
        x = mel.transpose(1, 2)
        for i, layer in enumerate(self.layers):
            x = layer(zero_padding(x, padded))
            if i < len(self.layers) - 1:
                x = torch.tanh(x)
            x = self.dropout(x)
        return x.transpose(1, 2)


def _choose(target: torch.Tensor | None, override: torch.Tensor | None,
            predicted: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Teacher forcing while training, else a caller's per-phoneme override, else the prediction."""
    if target is not None:
        return target
    return override if override is not None else predicted()


class FastSpeech2(nn.Module):
    """Phoneme ids (B, N) -> mel (B, T, n_mels) through a variance adaptor and length regulation."""

    def __init__(self, config: FastSpeech2Config, n_symbols: int, n_mels: int, n_speakers: int = 1,
                 pitch_range: tuple[float, float] = (-4.0, 4.0), energy_range: tuple[float, float] = (-4.0, 4.0),
                 feature_level: Literal["phoneme", "frame"] = "phoneme") -> None:
        super().__init__()
        self.config = config
        self.feature_level = feature_level
        self.embedding = nn.Embedding(n_symbols, config.hidden, padding_idx=0)
        self.encoder = FFTStack(config, config.encoder_layers)
        self.speaker_embedding = nn.Embedding(n_speakers, config.hidden) if n_speakers > 1 else None
        self.duration_predictor = VariancePredictor(config)
        if config.variance_predictors:
            self.pitch_predictor = VariancePredictor(config)
            self.energy_predictor = VariancePredictor(config)
            self.pitch_embedding = ValueEmbedding(config.n_bins, config.hidden, *pitch_range)
            self.energy_embedding = ValueEmbedding(config.n_bins, config.hidden, *energy_range)
        self.decoder = FFTStack(config, config.decoder_layers)
        self.mel_linear = nn.Linear(config.hidden, n_mels)
        self.postnet = PostNet(n_mels, config) if config.postnet_layers else None

    def forward(self, phonemes: torch.Tensor, phoneme_lengths: torch.Tensor, speakers: torch.Tensor | None = None,
                targets: VarianceTargets | None = None, controls: Controls | None = None,
                max_frames: int | None = None) -> FastSpeech2Output:
        controls = controls or Controls()
        phoneme_mask = padding_mask(phoneme_lengths, phonemes.shape[1])
        x = self.encoder(self.embedding(phonemes), phoneme_mask)
        if self.speaker_embedding is not None and speakers is not None:
            x = x + self.speaker_embedding(speakers).unsqueeze(1)
        log_duration = self.duration_predictor(x, phoneme_mask)
        durations = _choose(targets and targets.durations, controls.durations, lambda: torch.clamp(
            torch.round((torch.exp(log_duration) - 1) * controls.duration_scale), min=0).long().masked_fill(
                phoneme_mask, 0))
        if max_frames is None and int(durations.sum(dim=1).max()) == 0:
            # Nothing to say in the whole batch (an untrained duration predictor, a zero speed
            # override): one fully masked frame keeps the decoder's convolutions defined.
            max_frames = 1
        if self.feature_level == "phoneme":
            x, pitch, energy = self._add_variances(x, phoneme_mask, targets, controls)
            frames, frame_lengths = regulate_length(x, durations, max_frames)
            frame_mask = padding_mask(frame_lengths, frames.shape[1])
        else:
            frames, frame_lengths = regulate_length(x, durations, max_frames)
            frame_mask = padding_mask(frame_lengths, frames.shape[1])
            frames, pitch, energy = self._add_variances(frames, frame_mask, targets, controls)
        hidden = self.decoder(frames, frame_mask)
        mel = self.mel_linear(hidden)
        mel_postnet = self.refine(mel, frame_mask).masked_fill(frame_mask.unsqueeze(-1), 0.0)
        return FastSpeech2Output(mel.masked_fill(frame_mask.unsqueeze(-1), 0.0), mel_postnet, log_duration, pitch,
                                 energy, durations, phoneme_mask, frame_mask, frame_lengths)

    def refine(self, mel: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """The mel after the postnet's residual (the mel itself where there is no postnet)."""
        return mel if self.postnet is None else mel + self.postnet(mel, frame_mask)

    def _add_variances(self, x: torch.Tensor, mask: torch.Tensor, targets: VarianceTargets | None,
                       controls: Controls) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self.config.variance_predictors:  # FastSpeech: nothing to add; zeros keep the output's shape
            return x, x.new_zeros(mask.shape), x.new_zeros(mask.shape)
        pitch = self.pitch_predictor(x, mask)
        x = x + self.pitch_embedding(_choose(targets and targets.pitch, controls.pitch,
                                             lambda: pitch * controls.pitch_scale + controls.pitch_shift))
        energy = self.energy_predictor(x, mask)
        x = x + self.energy_embedding(_choose(targets and targets.energy, controls.energy,
                                              lambda: energy * controls.energy_scale + controls.energy_shift))
        return x, pitch, energy
