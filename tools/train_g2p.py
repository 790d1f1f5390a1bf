#!/usr/bin/env python3
"""Train the English letter-to-sound model shipped as ttskit/text/data/g2p_en.pt.

Data: the bundled CMUdict. Words are split by a stable hash: 5 % held out for the test
(never seen in training), 1 % for validation, the rest for training; only purely alphabetic
words (apostrophes allowed) are used. Each word trains on its first pronunciation.

The phoneme error rate (PER) is the edit distance between the predicted and the reference
phoneme sequences (stress digits included) summed over test words, divided by the total
number of reference phonemes. It is reported against the first pronunciation ("strict") and
against the closest of the word's listed pronunciations ("any variant", as g2p papers do).

    python tools/train_g2p.py --epochs 12 --threads 2 --out /tmp/g2p_a.pt
    python tools/train_g2p.py --epochs 12 --threads 2 --lr 1e-3 --init /tmp/g2p_a.pt --out /tmp/g2p_b.pt
    python tools/train_g2p.py --epochs 12 --threads 2 --lr 6e-4 --init /tmp/g2p_b.pt --out ttskit/text/data/g2p_en.pt
    python tools/train_g2p.py --evaluate ttskit/text/data/g2p_en.pt    # test PER, greedy and beam 4
"""

from __future__ import annotations

import argparse
import math
import random
import re
import time
import zlib
from pathlib import Path

import torch
from torch import nn

from ttskit.text.distance import edit_distance
from ttskit.text.g2p import BOS, EOS, PAD, G2PConfig, G2PTransformer, NeuralG2P, batch_words, phoneme_ids, save_weights
from ttskit.text.lexicon import read_cmudict

WORD = re.compile(r"^[a-z][a-z']*$")


def split_of(word: str) -> str:
    bucket = zlib.crc32(word.encode()) % 100
    return "test" if bucket < 5 else "valid" if bucket < 6 else "train"


def evaluate(g2p: NeuralG2P, words: list[str], lexicon: dict[str, list[list[str]]]) -> dict[str, float]:
    errors_strict = errors_any = ref_strict = ref_any = wrong_words = 0
    for start in range(0, len(words), 512):
        chunk = words[start:start + 512]
        for word, hyp in zip(chunk, g2p.predict(chunk)):
            refs = lexicon[word]
            errors_strict += edit_distance(hyp, refs[0])
            ref_strict += len(refs[0])
            best = min(refs, key=lambda r: edit_distance(hyp, r) / len(r))
            errors_any += edit_distance(hyp, best)
            ref_any += len(best)
            wrong_words += hyp not in refs
    return {"per_strict": errors_strict / ref_strict, "per_any_variant": errors_any / ref_any,
            "wer_any_variant": wrong_words / len(words), "words": len(words)}


def make_batches(pairs: list[tuple[str, list[int]]], batch_size: int, max_len: int, rng: random.Random):
    order = sorted(pairs, key=lambda p: (len(p[0]), rng.random()))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    for batch in batches:
        graphemes = batch_words([w for w, _ in batch], max_len)
        width = max(len(p) for _, p in batch) + 1
        inputs = torch.full((len(batch), width), PAD, dtype=torch.long)
        targets = torch.full((len(batch), width), PAD, dtype=torch.long)
        for row, (_, ids) in enumerate(batch):
            inputs[row, :len(ids) + 1] = torch.tensor([BOS] + ids)
            targets[row, :len(ids) + 1] = torch.tensor(ids + [EOS])
        yield graphemes, inputs, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("ttskit/text/data/g2p_en.pt"))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", type=Path, help="start from these weights (continue an earlier run)")
    parser.add_argument("--evaluate", type=Path, help="only score these weights on the test words, then stop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    lexicon = {w: p for w, p in read_cmudict().items() if WORD.match(w)}
    split: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for word in sorted(lexicon):
        split[split_of(word)].append(word)
    print({k: len(v) for k, v in split.items()})
    if args.evaluate:
        for beam in (1, 4):
            started = time.time()
            print(f"beam {beam}:", evaluate(NeuralG2P.load(args.evaluate, beam=beam), split["test"], lexicon),
                  f"({time.time() - started:.0f} s)")
        return
    config = G2PConfig()
    model = NeuralG2P.load(args.init).model if args.init else G2PTransformer(config)
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M")
    pairs = [(w, phoneme_ids(lexicon[w][0])) for w in split["train"] if len(w) <= config.max_len]
    steps_per_epoch = math.ceil(len(pairs) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = 1000
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(
        (s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, total - warmup))))))
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=0.1)
    best_valid = float("inf")
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        running = 0.0
        for graphemes, inputs, targets in make_batches(pairs, args.batch_size, config.max_len, rng):
            logits = model(graphemes, inputs)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            running += loss.item()
        model.eval()
        valid = evaluate(NeuralG2P(model, beam=1), split["valid"], lexicon)
        print(f"epoch {epoch} loss {running / steps_per_epoch:.4f} valid PER {valid['per_strict']:.4f} "
              f"({time.time() - started:.0f} s)", flush=True)
        if valid["per_strict"] < best_valid:
            best_valid = valid["per_strict"]
            save_weights(model, args.out)
    # Score the saved (float16) weights exactly as ttskit will load them (beam search of 4).
    test = evaluate(NeuralG2P.load(args.out), split["test"], lexicon)
    print(f"test: {test}  size {args.out.stat().st_size / 1e6:.2f} MB  "
          f"trained {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
