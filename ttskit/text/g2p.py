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

from ttskit.text.arpabet import DATA_DIR, WITH_STRESS as ARPABET

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

    def __init__(self, model: G2PTransformer) -> None:
        self.model = model.eval()

    @classmethod
    def load(cls, path: Path = DEFAULT_WEIGHTS) -> "NeuralG2P":
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = G2PTransformer(G2PConfig(**state["config"]))
        model.load_state_dict({k: v.float() for k, v in state["weights"].items()})
        return cls(model)

    def predict(self, words: list[str]) -> list[list[str]]:
        if not words:
            return []
        ids = self.model.greedy(batch_words(words, self.model.config.max_len))
        return [[ARPABET[i - len(SPECIALS)] for i in row if i >= len(SPECIALS)] for row in ids]


def save_weights(model: G2PTransformer, path: Path) -> None:
    """float16 weights + config: half the size, and greedy output is unchanged in our measurements."""
    state = {"config": asdict(model.config),
             "weights": {k: v.detach().half() for k, v in model.state_dict().items()}}
    torch.save(state, path)


@functools.lru_cache(maxsize=1)
def default_g2p() -> NeuralG2P:
    return NeuralG2P.load(DEFAULT_WEIGHTS)
