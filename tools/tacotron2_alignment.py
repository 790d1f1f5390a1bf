"""When does a Tacotron 2 run learn to align? Teacher-forced attention of each checkpoint of a
`train-acoustic --model tacotron2` run on a WORK folder's utterances, scored three ways:

    python tools/tacotron2_alignment.py RUN WORK [--split val] [--utterances 16]

- focus: the mean over decoder steps of the largest attention weight (1: every step looks at
  one symbol; 1/N: attention spread over all N symbols);
- diagonal error: the mean |argmax symbol / N - step / T| (0: on the diagonal);
- monotonic: the share of steps whose attended symbol does not move back by more than one.

A run "has aligned" at the first checkpoint with focus >= 0.5 and diagonal error <= 0.1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ttskit.align.tacotron2_teacher import attention_focus
from ttskit.checkpoints.acoustic import model_from_state
from ttskit.checkpoints.store import load_checkpoint
from ttskit.data.dataset import WorkDataset, collate
from ttskit.train.acoustic_step import teacher_forced


@torch.no_grad()
def scores(checkpoint: Path, dataset: WorkDataset, count: int) -> tuple[float, float, float]:
    model = model_from_state(load_checkpoint(checkpoint), checkpoint).eval()
    focus = diagonal = monotonic = 0.0
    used = min(count, len(dataset))
    for index in range(used):
        batch = collate([dataset[index]])
        torch.manual_seed(0)  # the prenet's dropout is on in eval too
        out, _ = teacher_forced(model, model, batch)
        steps = -(-int(batch.frame_lengths[0]) // model.config.reduction)
        attention = out.alignments[0, :steps, :int(batch.phoneme_lengths[0])]
        attended = attention.argmax(-1).float()
        focus += attention_focus(attention)
        diagonal += float((attended / attention.shape[1] - torch.arange(steps) / steps).abs().mean())
        monotonic += float((attended[1:] >= attended[:-1] - 1).float().mean())
    return focus / used, diagonal / used, monotonic / used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--split", default="val", choices=("train", "val"))
    parser.add_argument("--utterances", type=int, default=16)
    args = parser.parse_args()
    dataset = WorkDataset(args.work, args.split)
    aligned = None
    print("| step | focus | diagonal error | monotonic |\n|---:|---:|---:|---:|")
    for checkpoint in sorted((args.run / "checkpoints").glob("step_*.pt")):
        step = int(checkpoint.stem.split("_")[1])
        focus, diagonal, monotonic = scores(checkpoint, dataset, args.utterances)
        print(f"| {step} | {focus:.2f} | {diagonal:.3f} | {monotonic:.0%} |", flush=True)
        if aligned is None and focus >= 0.5 and diagonal <= 0.1:
            aligned = step
    print(f"\naligned (focus >= 0.5, diagonal error <= 0.1) first at step {aligned}" if aligned
          else "\nnot aligned at any checkpoint (focus >= 0.5, diagonal error <= 0.1)")


if __name__ == "__main__":
    main()
