"""Ground-truth-aligned (teacher-forced) mels for vocoder fine-tuning: the acoustic model's own
output for every utterance, with exactly the frames of the recorded mel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ttskit.checkpoints.acoustic import model_from_state
from ttskit.checkpoints.store import load_checkpoint
from ttskit.data.dataset import FrameBudgetSampler, WorkDataset, collate
from ttskit.runtime import default_device
from ttskit.train.acoustic import check_compatible
from ttskit.train.acoustic_step import teacher_forced
from ttskit.work import mel_path, save_array, work_identity


@torch.no_grad()
def export_gta(work: Path, checkpoint_path: Path, device: str | None = None, max_frames: int = 20000,
               on_done: Callable[[int], None] | None = None) -> int:
    """Write WORK/gta/<id>.npy (n_mels, T) for every train and val utterance; returns the count."""
    state = load_checkpoint(checkpoint_path)
    check_compatible(state, work_identity(work), checkpoint_path, work)
    device = default_device(device)
    written = 0
    datasets = [WorkDataset(work, split) for split in ("train", "val")]
    model = model_from_state(state, checkpoint_path).to(device).eval()
    for dataset in datasets:
        sampler = FrameBudgetSampler([dataset.frames(i) for i in range(len(dataset))], max_frames, shuffle=False)
        for indices in sampler:
            batch = collate([dataset[i] for i in indices]).to(device)
            out, _ = teacher_forced(model, model, batch)
            for row, uid in enumerate(batch.ids):
                frames = int(batch.frame_lengths[row])
                mel = out.mel_postnet[row, :frames].float().cpu().numpy().T
                save_array(mel_path(work, uid, gta=True), np.ascontiguousarray(mel, dtype=np.float32))
                written += 1
                if on_done:
                    on_done(written)
    return written
