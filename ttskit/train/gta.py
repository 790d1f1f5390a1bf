"""Ground-truth-aligned (teacher-forced) mels for vocoder fine-tuning: the acoustic model's own
output for every utterance, with exactly the frames of the recorded mel."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ttskit.config import config_from_dict
from ttskit.data.dataset import FrameBudgetSampler, WorkDataset, collate
from ttskit.data.segments import mel_file
from ttskit.data.work import save_array
from ttskit.models.fastspeech2 import VarianceTargets
from ttskit.train.acoustic import _work_identity, build_model, check_compatible
from ttskit.train.acoustic_config import AcousticRunConfig
from ttskit.train.checkpoint import load_checkpoint


@torch.no_grad()
def export_gta(work: Path, checkpoint_path: Path, device: str | None = None, max_frames: int = 20000,
               on_done: Callable[[int], None] | None = None) -> int:
    """Write WORK/gta/<id>.npy (n_mels, T) for every train and val utterance; returns the count."""
    state = load_checkpoint(checkpoint_path)
    check_compatible(state, _work_identity(work), checkpoint_path, work)
    run_config = config_from_dict(AcousticRunConfig, state["run_config"], source=str(checkpoint_path))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    written = 0
    datasets = [WorkDataset(work, split) for split in ("train", "val")]
    # Both splits share the vocabulary and speakers: one model serves both.
    model = build_model(run_config, len(datasets[0].vocab), state["audio"]["n_mels"], len(datasets[0].speakers),
                        state["stats"])
    model.load_state_dict(state["model"])
    model.to(device).eval()
    for dataset in datasets:
        sampler = FrameBudgetSampler([dataset.frames(i) for i in range(len(dataset))], max_frames, shuffle=False)
        for indices in sampler:
            batch = collate([dataset[i] for i in indices]).to(device)
            out = model(batch.phonemes, batch.phoneme_lengths, batch.speakers,
                        targets=VarianceTargets(batch.durations, batch.pitch, batch.energy),
                        max_frames=batch.mels.shape[1])
            for row, uid in enumerate(batch.ids):
                frames = int(batch.frame_lengths[row])
                mel = out.mel_postnet[row, :frames].float().cpu().numpy().T
                save_array(mel_file(work, uid, gta=True), np.ascontiguousarray(mel, dtype=np.float32))
                written += 1
                if on_done:
                    on_done(written)
    return written
