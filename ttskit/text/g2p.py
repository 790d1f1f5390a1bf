"""Letter-to-sound for words CMUdict lacks: a tiny Transformer trained on CMUdict itself.

The weights (about 1.4 M parameters, stored in float16) ship in `ttskit/text/data/g2p_en.pt`;
`tools/train_g2p.py` rebuilt them from the bundled dictionary, and docs/text.md records the
phoneme error rate it measures on held-out words.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ttskit.text.arpabet import DATA_DIR
from ttskit.text.arpabet import WITH_STRESS as ARPABET

DEFAULT_WEIGHTS = DATA_DIR / "g2p_en.pt"
GRAPHEMES = tuple("abcdefghijklmnopqrstuvwxyz'")
PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<s>", "</s>")


@dataclass(frozen=True)
class G2PConfig:
    d_model: int = 128
    n_heads: int = 4
    ff_dim: int = 512
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.1
    max_len: int = 40


class G2PTransformer(nn.Module):
    """Graphemes (B, L) -> phoneme logits (B, P, n_phonemes); ids 0..2 are pad, bos, eos."""

    def __init__(self, config: G2PConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.grapheme_embedding = nn.Embedding(len(SPECIALS) + len(GRAPHEMES), d, padding_idx=PAD)
        self.phoneme_embedding = nn.Embedding(len(SPECIALS) + len(ARPABET), d, padding_idx=PAD)
        self.position = nn.Embedding(config.max_len + 2, d)
        with warnings.catch_warnings():
            # Pre-norm layers cannot use torch's nested-tensor fast path; torch warns about it on every build.
            warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
            self.transformer = nn.Transformer(d_model=d, nhead=config.n_heads, num_encoder_layers=config.encoder_layers,
                                              num_decoder_layers=config.decoder_layers, dim_feedforward=config.ff_dim,
                                              dropout=config.dropout, batch_first=True, norm_first=True)
        self.output = nn.Linear(d, len(SPECIALS) + len(ARPABET))

    def _embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        return table(ids) * (self.config.d_model ** 0.5) + self.position(positions)

    def encode(self, graphemes: torch.Tensor) -> torch.Tensor:
        return self.transformer.encoder(self._embed(self.grapheme_embedding, graphemes),
                                        src_key_padding_mask=graphemes == PAD)

    def decode(self, memory: torch.Tensor, graphemes: torch.Tensor, phonemes_in: torch.Tensor) -> torch.Tensor:
        causal = nn.Transformer.generate_square_subsequent_mask(phonemes_in.shape[1], device=phonemes_in.device,
                                                                dtype=torch.bool)
        hidden = self.transformer.decoder(self._embed(self.phoneme_embedding, phonemes_in), memory,
                                          tgt_mask=causal, tgt_is_causal=True,
                                          tgt_key_padding_mask=phonemes_in == PAD,
                                          memory_key_padding_mask=graphemes == PAD)
        return self.output(hidden)

    def forward(self, graphemes: torch.Tensor, phonemes_in: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(graphemes), graphemes, phonemes_in)

    @torch.no_grad()
    def greedy(self, graphemes: torch.Tensor) -> list[list[int]]:
        """Greedy decoding for a batch; returns phoneme ids without specials."""
        memory = self.encode(graphemes)
        batch = graphemes.shape[0]
        out = torch.full((batch, 1), BOS, dtype=torch.long, device=graphemes.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=graphemes.device)
        # English words have at most ~1.5 phonemes per letter; a longer output is a decoding loop.
        longest = int((graphemes != PAD).sum(dim=1).max()) * 2 + 2
        for _ in range(min(self.config.max_len, longest)):
            logits = self.decode(memory, graphemes, out)[:, -1]
            logits[:, PAD] = -torch.inf
            logits[:, BOS] = -torch.inf
            step = torch.where(finished, torch.full_like(finished, EOS, dtype=torch.long), logits.argmax(-1))
            out = torch.cat([out, step[:, None]], dim=1)
            finished |= step == EOS
            if bool(finished.all()):
                break
        results = []
        for row in out[:, 1:].tolist():
            ids = []
            for i in row:
                if i == EOS:
                    break
                ids.append(i)
            results.append(ids)
        return results


@torch.no_grad()
def beam_search(model: G2PTransformer, graphemes: torch.Tensor, beam: int) -> list[list[int]]:
    """Beam search for a batch of words at once (words x beams decoded together); the best
    hypothesis by log-probability per output symbol, so short guesses get no unfair advantage."""
    batch = graphemes.shape[0]
    memory = model.encode(graphemes).repeat_interleave(beam, dim=0)
    grapheme_rows = graphemes.repeat_interleave(beam, dim=0)
    sequences = torch.full((batch * beam, 1), BOS, dtype=torch.long, device=graphemes.device)
    scores = torch.full((batch, beam), -torch.inf, device=graphemes.device)
    scores[:, 0] = 0.0  # all beams start identical: keep one alive
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    longest = int((graphemes != PAD).sum(dim=1).max()) * 2 + 2
    for _ in range(min(model.config.max_len, longest)):
        log_probs = model.decode(memory, grapheme_rows, sequences)[:, -1].log_softmax(-1)
        log_probs[:, PAD] = -torch.inf
        log_probs[:, BOS] = -torch.inf
        vocabulary = log_probs.shape[-1]
        total = (scores.reshape(-1, 1) + log_probs).reshape(batch, beam * vocabulary)
        best, index = total.topk(beam, dim=1)
        origin = index // vocabulary + torch.arange(batch, device=graphemes.device).unsqueeze(1) * beam
        symbol = index % vocabulary
        sequences = torch.cat([sequences[origin.reshape(-1)], symbol.reshape(-1, 1)], dim=1)
        ended = symbol == EOS
        for word, position in ended.nonzero().tolist():
            ids = sequences[word * beam + position, 1:-1].tolist()
            finished[word].append((float(best[word, position]) / (len(ids) + 1), ids))
        scores = best.masked_fill(ended, -torch.inf)
        if all(len(f) >= beam for f in finished) or bool(torch.isinf(scores).all()):
            break
    results = []
    for word in range(batch):
        if finished[word]:
            results.append(max(finished[word])[1])
        else:  # nothing ended within the length limit: take the best open hypothesis
            results.append(sequences[word * beam + int(scores[word].argmax()), 1:].tolist())
    return results


def encode_word(word: str, max_len: int) -> list[int]:
    index = {g: i + len(SPECIALS) for i, g in enumerate(GRAPHEMES)}
    return [index[ch] for ch in word.lower() if ch in index][:max_len]


def phoneme_ids(phonemes: list[str]) -> list[int]:
    index = {p: i + len(SPECIALS) for i, p in enumerate(ARPABET)}
    return [index[p] for p in phonemes]


def batch_words(words: list[str], max_len: int) -> torch.Tensor:
    encoded = [encode_word(w, max_len) or [PAD] for w in words]
    width = max(len(e) for e in encoded)
    return torch.tensor([e + [PAD] * (width - len(e)) for e in encoded], dtype=torch.long)


class NeuralG2P:
    """Predicts ARPAbet (with stress) for any alphabetic word."""

    CACHE_WORDS = 100_000  # a long-running process (a server) meets the same unknown words again

    def __init__(self, model: G2PTransformer, beam: int = 4) -> None:
        self.model = model.eval()
        self.beam = beam
        self._known: dict[str, list[str]] = {}

    @classmethod
    def load(cls, path: Path = DEFAULT_WEIGHTS, beam: int = 4) -> NeuralG2P:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = G2PTransformer(G2PConfig(**state["config"]))
        model.load_state_dict({k: v.float() for k, v in state["weights"].items()})
        return cls(model, beam)

    def predict(self, words: list[str]) -> list[list[str]]:
        """ARPAbet per word; each distinct word is predicted once (a beam search costs ~15 ms)."""
        unknown = list(dict.fromkeys(w for w in words if w not in self._known))
        if unknown:
            graphemes = batch_words(unknown, self.model.config.max_len)
            ids = self.model.greedy(graphemes) if self.beam <= 1 else beam_search(self.model, graphemes, self.beam)
            if len(self._known) + len(unknown) > self.CACHE_WORDS:
                self._known.clear()
            for word, row in zip(unknown, ids):
                self._known[word] = [ARPABET[i - len(SPECIALS)] for i in row if i >= len(SPECIALS)]
        return [list(self._known[w]) for w in words]


def save_weights(model: G2PTransformer, path: Path) -> None:
    """float16 weights + config: half the size, and greedy output is unchanged in our measurements."""
    state = {"config": asdict(model.config),
             "weights": {k: v.detach().half() for k, v in model.state_dict().items()}}
    torch.save(state, path)


@functools.lru_cache(maxsize=1)
def default_g2p() -> NeuralG2P:
    return NeuralG2P.load(DEFAULT_WEIGHTS)
