"""Fine-tuning an acoustic model from another one (`train-acoustic --init`): a new voice from
minutes of speech, starting from a trained model (the shipped voice's, `--init default`).

What carries over: every weight whose name and shape agree; the phoneme embedding row by row by
*symbol* (the new WORK folder's vocabulary may order or hold its symbols differently); speaker
embeddings by speaker name, and a new speaker starts from the mean of the old ones. Pitch and
energy are normalised per corpus (per speaker for pitch), so their predictors carry over in
meaning; their value embeddings keep their rows, bucketed over the new corpus' range. The text
front end and the mel settings must be the same: the model's inputs and outputs would mean
something else otherwise. NVIDIA's published Tacotron 2 checkpoints are accepted too
(`checkpoints.nvidia_tacotron2.nvidia_init_state`), on a WORK folder made with their front end.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ttskit.checkpoints.acoustic import is_acoustic_checkpoint, model_config_class
from ttskit.checkpoints.nvidia_tacotron2 import nvidia_init_state, nvidia_weights
from ttskit.checkpoints.resolve import resolve_checkpoint
from ttskit.checkpoints.store import CheckpointError, load_checkpoint
from ttskit.config import AudioConfig, config_from_dict, mel_mismatches
from ttskit.models.fastspeech2 import FastSpeech2
from ttskit.models.tacotron2 import Tacotron2Config
from ttskit.skeleton.pieces import TrainingError, first_difference
from ttskit.train.acoustic_config import RUN_PRESETS, AcousticRunConfig, Tacotron2RunConfig

# Fine-tuning starts from a trained model: half the `small` preset's peak (2e-3, for a model
# trained from scratch) with a longer warm-up keeps it from being shaken apart in the first steps
# and still moves it far in 20 minutes (a new voice's pair: 1.37x its recordings' WER against 1.50x
# at 5e-4 with 100 warm-up steps, the same vocoder; recipes/fine-tune/README.md).
FINE_TUNE_LEARNING_RATE = 1e-3
FINE_TUNE_WARMUP_STEPS = 400


def read_init_state(path: Path) -> dict[str, Any]:
    """A ttskit acoustic checkpoint, or an NVIDIA Tacotron 2 one read as such."""
    state = load_checkpoint(path)
    if (weights := nvidia_weights(state)) is not None:
        return nvidia_init_state(weights, path)
    return state


def load_init(init: Path, identity: dict[str, Any], work: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint --init names, checked against the WORK folder it will be tuned on."""
    try:
        path = resolve_checkpoint(init, "acoustic")
        state = read_init_state(path)
    except CheckpointError as err:
        raise TrainingError(f"--init: {err}") from None
    if not is_acoustic_checkpoint(state):
        raise TrainingError(f"--init: {path} is not an acoustic-model checkpoint (format {state.get('format')!r})")
    if state["text"] != identity["text"]:
        raise TrainingError(f"--init: {path} was trained with another text front end than {work} uses "
                            f"({first_difference(state['text'], identity['text'])}); preprocess with its text "
                            f"settings (--set text.frontend={state['text']['frontend']})")
    theirs = config_from_dict(AudioConfig, state["audio"], source=str(path))
    ours = config_from_dict(AudioConfig, identity["audio"], source=str(work))
    if mismatches := mel_mismatches(theirs, ours):
        key, a, b = mismatches[0]
        raise TrainingError(f"--init: {path} makes other mels than {work} holds ({key}: {a!r} vs {b!r}); "
                            "preprocess with its audio settings")
    return path, state


def fine_tune_preset(state: dict[str, Any], source: Path) -> AcousticRunConfig | Tacotron2RunConfig:
    """The starting config of a fine-tuning run: the init's model, `small`'s training with a lower rate."""
    section = state["run_config"]["model"]
    model = config_from_dict(model_config_class(section), section, source=str(source), prefix="model")
    train = dataclasses.replace(RUN_PRESETS["small"].train, learning_rate=FINE_TUNE_LEARNING_RATE,
                                warmup_steps=FINE_TUNE_WARMUP_STEPS)
    return Tacotron2RunConfig(model, train) if isinstance(model, Tacotron2Config) else AcousticRunConfig(model, train)


@torch.no_grad()
def transfer_weights(model: FastSpeech2, state: dict[str, Any], vocab: list[str],
                     speakers: dict[str, int]) -> list[str]:
    """Copy what carries over from the checkpoint `state` into `model`; returns the names of the
    weights left as initialised (nothing of the same name and shape to take them from)."""
    source: dict[str, torch.Tensor] = state["model"]
    target = model.state_dict()
    fresh = []
    for name, tensor in target.items():
        if name == "embedding.weight":
            rows = {symbol: i for i, symbol in enumerate(state["vocab"])}
            for i, symbol in enumerate(vocab):
                if symbol in rows:
                    tensor[i] = source[name][rows[symbol]]
        elif name == "speaker_embedding.weight":
            old = source.get(name)
            for speaker, i in speakers.items():
                if old is not None and speaker in state["speakers"]:
                    tensor[i] = old[state["speakers"][speaker]]
                elif old is not None:
                    tensor[i] = old.mean(0)
                else:
                    tensor[i] = 0.0  # the init had one speaker and no table: it speaks as that voice
        elif name in source and source[name].shape == tensor.shape:
            tensor.copy_(source[name])
        else:
            fresh.append(name)
    model.load_state_dict(target)
    return fresh
