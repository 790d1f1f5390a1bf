"""Tacotron 2 (Shen et al., 2018): symbols -> mel frames by an autoregressive decoder with
location-sensitive attention, at NVIDIA's reference sizes.

Encoder: embedding -> 3 x (conv 5, batch norm, ReLU, dropout) -> bidirectional LSTM. Decoder, per
step of `reduction` frames: prenet (2 x linear + ReLU + dropout, the dropout kept at inference,
as the paper does, for variety) of the previous frame -> attention LSTM over [prenet, context] ->
location-sensitive attention (the previous and cumulative weights through a convolution, added to
the query and the encoder's memory) -> context -> decoder LSTM over [attention state, context] ->
linear to `reduction` mel frames and one stop-token (gate) logit. Postnet: 5 convolutions, tanh
between, residual. Training is teacher-forced; `infer` decodes free-running, batched, until every
utterance's gate passes the threshold or `max_decoder_steps` (then it warns, never hangs).

Parameters are named as NVIDIA/tacotron2's (`encoder.convolutions.0.0.conv`, `decoder.attention_rnn`,
`decoder.attention_layer.location_layer.location_conv.conv`, ...), so its state dicts map onto
this module by name. Shapes: B batch, N symbols, T frames, M mel bands, C channels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ttskit.config import require
from ttskit.models.recurrent import DeferredWeightGradient, lstm_cell


@dataclass(frozen=True)
class Tacotron2Config:
    symbols_embedding: int = 512
    encoder_convolutions: int = 3
    encoder_kernel: int = 5
    encoder_channels: int = 512
    attention_rnn: int = 1024
    decoder_rnn: int = 1024
    prenet: int = 256
    attention: int = 128
    location_filters: int = 32
    location_kernel: int = 31
    postnet_channels: int = 512
    postnet_kernel: int = 5
    postnet_convolutions: int = 5
    reduction: int = 1  # frames per decoder step
    prenet_dropout: float = 0.5
    attention_dropout: float = 0.1
    decoder_dropout: float = 0.1
    gate_threshold: float = 0.5
    max_decoder_steps: int = 1000
    # Guided attention (Tachibana et al., 2017): weight of the loss on attention far from the diagonal.
    guided_attention_weight: float = 0.0
    guided_attention_sigma: float = 0.2

    def __post_init__(self) -> None:
        for key in ("symbols_embedding", "encoder_convolutions", "encoder_channels", "attention_rnn", "decoder_rnn",
                    "prenet", "attention", "location_filters", "postnet_channels", "reduction", "max_decoder_steps"):
            require(getattr(self, key) >= 1, f"model.{key}", "must be at least 1")
        require(self.encoder_channels % 2 == 0, "model.encoder_channels", "must be even (a bidirectional LSTM)")
        require(self.postnet_convolutions >= 2, "model.postnet_convolutions", "must be at least 2")
        for key in ("encoder_kernel", "location_kernel", "postnet_kernel"):
            require(getattr(self, key) % 2 == 1, f"model.{key}", "must be odd (same-length convolution)")
        for key in ("prenet_dropout", "attention_dropout", "decoder_dropout"):
            require(0 <= getattr(self, key) < 1, f"model.{key}", "must be in [0, 1)")
        require(0 < self.gate_threshold < 1, "model.gate_threshold", "must be in (0, 1)")


TACOTRON2_PRESETS: dict[str, Tacotron2Config] = {
    # NVIDIA/tacotron2's hparams.
    "base": Tacotron2Config(),
    # A quarter of the widths, with guided attention so it aligns within a CPU run on a small corpus.
    "small": Tacotron2Config(symbols_embedding=128, encoder_channels=128, attention_rnn=256, decoder_rnn=256,
                             prenet=128, attention=64, location_filters=16, postnet_channels=128, reduction=2,
                             guided_attention_weight=1.0),
}


class Linear(nn.Module):
    """nn.Linear with Xavier initialisation (NVIDIA's LinearNorm; `.linear_layer` keeps its names)."""

    def __init__(self, inputs: int, outputs: int, bias: bool = True, gain: str = "linear") -> None:
        super().__init__()
        self.linear_layer = nn.Linear(inputs, outputs, bias=bias)
        nn.init.xavier_uniform_(self.linear_layer.weight, gain=nn.init.calculate_gain(gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_layer(x)


class Conv(nn.Module):
    """Same-length nn.Conv1d with Xavier initialisation (NVIDIA's ConvNorm; `.conv`)."""

    def __init__(self, inputs: int, outputs: int, kernel: int, bias: bool = True, gain: str = "linear") -> None:
        super().__init__()
        self.conv = nn.Conv1d(inputs, outputs, kernel, padding=kernel // 2, bias=bias)
        nn.init.xavier_uniform_(self.conv.weight, gain=nn.init.calculate_gain(gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Encoder(nn.Module):
    def __init__(self, c: Tacotron2Config) -> None:
        super().__init__()
        self.convolutions = nn.ModuleList(
            nn.Sequential(Conv(c.symbols_embedding if i == 0 else c.encoder_channels, c.encoder_channels,
                               c.encoder_kernel, gain="relu"), nn.BatchNorm1d(c.encoder_channels))
            for i in range(c.encoder_convolutions))
        self.lstm = nn.LSTM(c.encoder_channels, c.encoder_channels // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, C, N) embedded symbols -> (B, N, C) memory. Padding is zeroed before every
        convolution and kept out of the LSTM, so an utterance's memory does not depend on what
        it is batched with (NVIDIA's encoder lets padding into the convolutions; for one
        utterance alone the two are the same)."""
        padding = padding_mask(lengths, x.shape[-1]).unsqueeze(1)
        for conv in self.convolutions:
            x = F.dropout(F.relu(conv(x.masked_fill(padding, 0.0))), 0.5, self.training)
        packed = nn.utils.rnn.pack_padded_sequence(x.transpose(1, 2), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[-1])[0]


class Prenet(nn.Module):
    def __init__(self, inputs: int, size: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Linear(inputs, size, bias=False), Linear(size, size, bias=False)])
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), self.dropout, training=True)  # on at inference too
        return x


class LocationLayer(nn.Module):
    def __init__(self, filters: int, kernel: int, attention: int) -> None:
        super().__init__()
        self.location_conv = Conv(2, filters, kernel, bias=False)
        self.location_dense = Linear(filters, attention, bias=False, gain="tanh")

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        """(B, 2, N) previous and cumulative attention -> (B, N, attention)."""
        return self.location_dense(self.location_conv(weights).transpose(1, 2))


class Attention(nn.Module):
    """Location-sensitive additive attention (Chorowski et al., 2015)."""

    def __init__(self, c: Tacotron2Config) -> None:
        super().__init__()
        self.query_layer = Linear(c.attention_rnn, c.attention, bias=False, gain="tanh")
        self.memory_layer = Linear(c.encoder_channels, c.attention, bias=False, gain="tanh")
        self.v = Linear(c.attention, 1, bias=False)
        self.location_layer = LocationLayer(c.location_filters, c.location_kernel, c.attention)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, processed_memory: torch.Tensor,
                weights_cat: torch.Tensor, padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(context (B, C), weights (B, N)) for one decoder step; `padding` (B, N) is True past each input."""
        return self.attend(self.query_layer(query), memory, processed_memory, weights_cat, padding)

    def attend(self, processed_query: torch.Tensor, memory: torch.Tensor, processed_memory: torch.Tensor,
               weights_cat: torch.Tensor, padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` from the query already through `query_layer` (B, attention)."""
        energies = self.v(torch.tanh(processed_query.unsqueeze(1) + self.location_layer(weights_cat)
                                     + processed_memory)).squeeze(-1)
        weights = torch.softmax(energies.masked_fill(padding, -float("inf")), dim=1)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights


@dataclass
class DecoderState:
    attention_hidden: torch.Tensor
    attention_cell: torch.Tensor
    decoder_hidden: torch.Tensor
    decoder_cell: torch.Tensor
    weights: torch.Tensor
    cumulative: torch.Tensor
    context: torch.Tensor


class Decoder(nn.Module):
    def __init__(self, c: Tacotron2Config, n_mels: int) -> None:
        super().__init__()
        self.c, self.n_mels = c, n_mels
        self.prenet = Prenet(n_mels, c.prenet, c.prenet_dropout)
        self.attention_rnn = nn.LSTMCell(c.prenet + c.encoder_channels, c.attention_rnn)
        self.attention_layer = Attention(c)
        self.decoder_rnn = nn.LSTMCell(c.attention_rnn + c.encoder_channels, c.decoder_rnn)
        self.linear_projection = Linear(c.decoder_rnn + c.encoder_channels, n_mels * c.reduction)
        self.gate_layer = Linear(c.decoder_rnn + c.encoder_channels, 1, gain="sigmoid")

    def initial_state(self, memory: torch.Tensor) -> DecoderState:
        batch, length, _ = memory.shape
        zeros = memory.new_zeros
        return DecoderState(zeros(batch, self.c.attention_rnn), zeros(batch, self.c.attention_rnn),
                            zeros(batch, self.c.decoder_rnn), zeros(batch, self.c.decoder_rnn),
                            zeros(batch, length), zeros(batch, length), zeros(batch, self.c.encoder_channels))

    def step(self, frame: torch.Tensor, state: DecoderState, memory: torch.Tensor, processed: torch.Tensor,
             padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """One decoder step from the prenet's output `frame` (B, prenet): (mel (B, M * r), gate logit (B,), state)."""
        c = self.c
        h, cell = self.attention_rnn(torch.cat([frame, state.context], -1), (state.attention_hidden,
                                                                            state.attention_cell))
        h = F.dropout(h, c.attention_dropout, self.training)
        weights_cat = torch.stack([state.weights, state.cumulative], 1)
        context, weights = self.attention_layer(h, memory, processed, weights_cat, padding)
        dh, dcell = self.decoder_rnn(torch.cat([h, context], -1), (state.decoder_hidden, state.decoder_cell))
        dh = F.dropout(dh, c.decoder_dropout, self.training)
        out = torch.cat([dh, context], -1)
        new = DecoderState(h, cell, dh, dcell, weights, state.cumulative + weights, context)
        return self.linear_projection(out), self.gate_layer(out).squeeze(-1), new

    def stepwise(self, frames: torch.Tensor, memory: torch.Tensor, processed: torch.Tensor,
                 padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`teacher_forced` one `step` at a time, as inference and NVIDIA's training run it: the
        reference the training decoder is tested and benchmarked against."""
        state = self.initial_state(memory)
        outputs, gates, alignments = [], [], []
        for frame in frames.unbind(1):
            out, gate, state = self.step(frame, state, memory, processed, padding)
            outputs.append(out)
            gates.append(gate)
            alignments.append(state.weights)
        return torch.stack(outputs, 1), torch.stack(gates, 1), torch.stack(alignments, 1)

    def teacher_forced(self, frames: torch.Tensor, memory: torch.Tensor, processed: torch.Tensor,
                       padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`step` over every prenet output `frames` (B, S, prenet): (mels (B, S, M * r), gate logits
        (B, S), attention (B, S, N)), the same numbers (and dropout draws) as S calls of `step`,
        computed for training: what does not depend on the recurrence (the attention LSTM's
        projection of the prenet outputs, the mel and gate projections) as one product over all
        steps, and the recurrent weights' gradients deferred to one product at the end
        (`models.recurrent`)."""
        c, attention_rnn, decoder_rnn = self.c, self.attention_rnn, self.decoder_rnn
        prenet_part = F.linear(frames, attention_rnn.weight_ih[:, :c.prenet],
                               attention_rnn.bias_ih + attention_rnn.bias_hh)
        attention_weight = DeferredWeightGradient(torch.cat([attention_rnn.weight_ih[:, c.prenet:],
                                                             attention_rnn.weight_hh], 1))
        decoder_weight = DeferredWeightGradient(torch.cat([decoder_rnn.weight_ih, decoder_rnn.weight_hh], 1))
        decoder_bias = decoder_rnn.bias_ih + decoder_rnn.bias_hh
        query_weight = DeferredWeightGradient(self.attention_layer.query_layer.linear_layer.weight)
        state = self.initial_state(memory)
        h, cell, dh, dcell = state.attention_hidden, state.attention_cell, state.decoder_hidden, state.decoder_cell
        weights, cumulative, context = state.weights, state.cumulative, state.context
        outputs, alignments = [], []
        # unbind, not indexing: one backward node for all steps, where each `[:, k]` would add a
        # gradient the size of all of them
        for prenet_k in prenet_part.unbind(1):
            h, cell = lstm_cell(prenet_k + attention_weight.apply(torch.cat([context, h], -1)), cell)
            h = F.dropout(h, c.attention_dropout, self.training)
            context, weights = self.attention_layer.attend(query_weight.apply(h), memory, processed,
                                                           torch.stack([weights, cumulative], 1), padding)
            cumulative = cumulative + weights
            dh, dcell = lstm_cell(decoder_weight.apply(torch.cat([h, context, dh], -1)) + decoder_bias, dcell)
            dh = F.dropout(dh, c.decoder_dropout, self.training)
            outputs.append(torch.cat([dh, context], -1))
            alignments.append(weights)
        out = torch.stack(outputs, 1)
        return self.linear_projection(out), self.gate_layer(out).squeeze(-1), torch.stack(alignments, 1)


@dataclass
class Tacotron2Output:
    mel: torch.Tensor  # (B, T, M) before the postnet
    mel_postnet: torch.Tensor  # (B, T, M)
    gate: torch.Tensor  # (B, T / reduction) stop-token logits, one per decoder step
    alignments: torch.Tensor  # (B, T / reduction, N)
    frame_lengths: torch.Tensor  # (B,)


def padding_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


class Tacotron2(nn.Module):
    def __init__(self, config: Tacotron2Config, n_symbols: int, n_mels: int, n_speakers: int = 1) -> None:
        super().__init__()
        self.config, self.n_mels = config, n_mels
        self.embedding = nn.Embedding(n_symbols, config.symbols_embedding)
        bound = (6.0 / (n_symbols + config.symbols_embedding)) ** 0.5 * 3 ** 0.5
        nn.init.uniform_(self.embedding.weight, -bound, bound)
        self.speaker_embedding = nn.Embedding(n_speakers, config.encoder_channels) if n_speakers > 1 else None
        self.encoder = Encoder(config)
        self.decoder = Decoder(config, n_mels)
        sizes = [n_mels] + [config.postnet_channels] * (config.postnet_convolutions - 1) + [n_mels]
        self.postnet = nn.Module()
        self.postnet.convolutions = nn.ModuleList(
            nn.Sequential(Conv(a, b, config.postnet_kernel, gain="tanh" if i < len(sizes) - 2 else "linear"),
                          nn.BatchNorm1d(b)) for i, (a, b) in enumerate(zip(sizes, sizes[1:])))

    def encode(self, symbols: torch.Tensor, lengths: torch.Tensor,
               speakers: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        memory = self.encoder(self.embedding(symbols).transpose(1, 2), lengths)
        if self.speaker_embedding is not None and speakers is not None:
            memory = memory + self.speaker_embedding(speakers).unsqueeze(1)
        padding = padding_mask(lengths, symbols.shape[1])
        return memory, self.decoder.attention_layer.memory_layer(memory), padding

    def refine(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, T, M) -> the postnet's residual added."""
        x = mel.transpose(1, 2)
        layers = self.postnet.convolutions
        for i, layer in enumerate(layers):
            x = layer(x)
            x = F.dropout(torch.tanh(x) if i < len(layers) - 1 else x, 0.5, self.training)
        return mel + x.transpose(1, 2)

    def forward(self, symbols: torch.Tensor, lengths: torch.Tensor, mels: torch.Tensor, frame_lengths: torch.Tensor,
                speakers: torch.Tensor | None = None) -> Tacotron2Output:
        """Teacher-forced: `mels` (B, T, M), T a multiple of the reduction factor (pad it)."""
        r = self.config.reduction
        if mels.shape[1] % r:
            raise ValueError(f"{mels.shape[1]} frames are not a multiple of the reduction factor {r}")
        memory, processed, padding = self.encode(symbols, lengths, speakers)
        # Step k sees the last frame of group k - 1 (a zero "go" frame first). The prenet runs over
        # the last group too (unused), as NVIDIA's does: its dropout then draws the same numbers.
        previous = torch.cat([mels.new_zeros(mels.shape[0], 1, self.n_mels), mels[:, r - 1::r]], 1)
        frames = self.decoder.prenet(previous)
        outputs, gates, alignments = self.decoder.teacher_forced(frames[:, :-1], memory, processed, padding)
        mel = outputs.reshape(mels.shape[0], -1, self.n_mels)
        frame_mask = padding_mask(frame_lengths, mel.shape[1]).unsqueeze(-1)
        refined = self.refine(mel).masked_fill(frame_mask, 0.0)
        return Tacotron2Output(mel.masked_fill(frame_mask, 0.0), refined, gates, alignments, frame_lengths)

    @torch.no_grad()
    def infer(self, symbols: torch.Tensor, lengths: torch.Tensor, speakers: torch.Tensor | None = None,
              max_decoder_steps: int | None = None) -> Tacotron2Output:
        """Free-running, batched: each utterance stops at the first step whose gate passes the
        threshold; at `max_decoder_steps` (default: the config's) the unfinished ones stop with a
        warning naming them."""
        limit = max_decoder_steps or self.config.max_decoder_steps
        r, batch = self.config.reduction, symbols.shape[0]
        memory, processed, padding = self.encode(symbols, lengths, speakers)
        state = self.decoder.initial_state(memory)
        frame = memory.new_zeros(batch, self.n_mels)
        steps = torch.full((batch,), limit, dtype=torch.long, device=symbols.device)
        done = torch.zeros(batch, dtype=torch.bool, device=symbols.device)
        outputs, gates, alignments = [], [], []
        for k in range(limit):
            out, gate, state = self.decoder.step(self.decoder.prenet(frame), state, memory, processed, padding)
            outputs.append(out)
            gates.append(gate)
            alignments.append(state.weights)
            stopping = (torch.sigmoid(gate) > self.config.gate_threshold) & ~done
            steps = torch.where(stopping, torch.full_like(steps, k + 1), steps)
            done |= stopping
            if bool(done.all()):
                break
            frame = out.view(batch, r, self.n_mels)[:, -1]
        if not bool(done.all()):
            unfinished = (~done).nonzero().flatten().tolist()
            warnings.warn(f"Tacotron2 reached max_decoder_steps ({limit}) before the stop token for utterance(s) "
                          f"{unfinished}: their audio is cut there (an alignment that failed, or text longer than "
                          f"{limit * r} frames allow)", RuntimeWarning, stacklevel=2)
        mel = torch.stack(outputs, 1).reshape(batch, -1, self.n_mels)
        frame_lengths = steps * r
        frame_mask = padding_mask(frame_lengths, mel.shape[1]).unsqueeze(-1)
        return Tacotron2Output(mel.masked_fill(frame_mask, 0.0), self.refine(mel).masked_fill(frame_mask, 0.0),
                               torch.stack(gates, 1), torch.stack(alignments, 1), frame_lengths)


def guided_attention_weights(lengths: torch.Tensor, steps: torch.Tensor, width: int, height: int,
                             sigma: float) -> torch.Tensor:
    """(B, height steps, width symbols) penalty 1 - exp(-(n/N - t/T)^2 / (2 sigma^2)), zero on padding."""
    t = torch.arange(height, device=lengths.device)[None, :, None] / steps.clamp(min=1)[:, None, None]
    n = torch.arange(width, device=lengths.device)[None, None, :] / lengths.clamp(min=1)[:, None, None]
    weights = 1 - torch.exp(-((n - t) ** 2) / (2 * sigma ** 2))
    valid = (~padding_mask(steps, height)).unsqueeze(-1) & (~padding_mask(lengths, width)).unsqueeze(1)
    return weights * valid


def tacotron2_loss(output: Tacotron2Output, mels: torch.Tensor, lengths: torch.Tensor, config: Tacotron2Config
                   ) -> dict[str, torch.Tensor]:
    """Mel MSE before and after the postnet, stop-token BCE (1 from the step holding the last
    frame on), and the guided-attention term when its weight is set; over real frames only."""
    r = config.reduction
    frame_valid = (~padding_mask(output.frame_lengths, mels.shape[1])).unsqueeze(-1).float()
    count = frame_valid.sum().clamp(min=1) * mels.shape[-1]
    steps = (output.frame_lengths + r - 1) // r
    step_index = torch.arange(output.gate.shape[1], device=mels.device)[None]
    gate_target = (step_index >= (steps - 1)[:, None]).float()
    terms = {"mel_mse": (((output.mel.float() - mels) ** 2) * frame_valid).sum() / count,
             "postnet_mse": (((output.mel_postnet.float() - mels) ** 2) * frame_valid).sum() / count,
             "gate_bce": F.binary_cross_entropy_with_logits(output.gate.float(), gate_target)}
    if config.guided_attention_weight > 0:
        weights = guided_attention_weights(lengths, steps, output.alignments.shape[2], output.alignments.shape[1],
                                           config.guided_attention_sigma)
        terms["guided_attention"] = config.guided_attention_weight * (
            (output.alignments.float() * weights).sum() / (~padding_mask(steps, weights.shape[1])).sum().clamp(min=1))
    terms["loss"] = sum(terms.values())
    return terms
