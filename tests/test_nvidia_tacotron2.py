"""NVIDIA's Tacotron 2 checkpoints in ttskit: their two layouts load with weights_only (sizes read
off the tensors, NVIDIA's symbols and cleaners as the front end) and speak through `ttskit synth`;
against NVIDIA/tacotron2's own code (a checkout given at run time in TTSKIT_NVIDIA_TACOTRON2,
random weights, as the jik876 test does) the mels match teacher-forced and in inference with the
prenet's dropout seeded."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from ttskit.checkpoints.acoustic import load_acoustic
from ttskit.checkpoints.store import CheckpointError
from ttskit.cli import app
from ttskit.models.tacotron2 import Tacotron2, Tacotron2Config
from ttskit.text.nvidia_chars import SYMBOLS, NvidiaCharsFrontend, nvidia_vocab

CHECKOUT = os.environ.get("TTSKIT_NVIDIA_TACOTRON2")
SMALL = Tacotron2Config(symbols_embedding=64, encoder_channels=64, attention_rnn=96, decoder_rnn=96, prenet=32,
                        attention=32, location_filters=8, postnet_channels=64, max_decoder_steps=25)


def nvidia_file(path: Path, weights: dict, data_parallel: bool) -> Path:
    """A checkpoint in NVIDIA/tacotron2's layout, or DeepLearningExamples' ("module." names)."""
    state = {("module." + k if data_parallel else k): v for k, v in weights.items()}
    extra = {"epoch": 3, "config": {"n_symbols": 148}} if data_parallel else {"iteration": 7, "learning_rate": 1e-3}
    torch.save({"state_dict": state, "optimizer": {}, **extra}, path)
    return path


@pytest.mark.parametrize("data_parallel", [False, True])
def test_both_layouts_load_and_compute_as_the_model_that_wrote_them(tmp_path, data_parallel):
    torch.manual_seed(0)
    original = Tacotron2(SMALL, len(SYMBOLS), 80).eval()
    path = nvidia_file(tmp_path / "tacotron2_statedict.pt", original.state_dict(), data_parallel)
    loaded = load_acoustic(path, torch.device("cpu"))
    assert isinstance(loaded.model, Tacotron2) and loaded.vocab.symbols == SYMBOLS
    assert (loaded.model.config.encoder_channels, loaded.model.config.prenet, loaded.model.config.postnet_convolutions) \
        == (64, 32, 5)
    ids, _ = loaded.frontend.encode("Hello there.", loaded.vocab)
    symbols, mels = torch.tensor([ids]), torch.randn(1, 12, 80) - 5
    with torch.no_grad():  # the prenet's dropout is on in eval too: the same draws for both
        torch.manual_seed(9)
        a = original(symbols, torch.tensor([len(ids)]), mels, torch.tensor([12]))
        torch.manual_seed(9)
        b = loaded.model(symbols, torch.tensor([len(ids)]), mels, torch.tensor([12]))
    assert torch.allclose(a.mel_postnet, b.mel_postnet, atol=1e-6) and torch.allclose(a.gate, b.gate, atol=1e-6)


def test_the_front_end_is_nvidias_symbols_and_cleaners():
    frontend, vocab = NvidiaCharsFrontend(), nvidia_vocab()
    ids, analysis = frontend.encode("Dr. Jones paid $3 for Lt. Dan's Ünïcode \u2603 hat.", vocab)
    assert analysis.normalized == "doctor jones paid three dollars for lieutenant dan's unicode hat."
    assert [SYMBOLS[i] for i in ids] == list(analysis.normalized)
    assert any("dropped" in w for w in analysis.warnings) is False  # the snowman folds away in the cleaning
    assert len(SYMBOLS) == 148 and SYMBOLS.index("a") == 38 and SYMBOLS[-1] == "@ZH"


def test_an_nvidia_checkpoint_speaks_through_the_cli(tmp_path):
    torch.manual_seed(1)
    model = Tacotron2(SMALL, len(SYMBOLS), 80)
    with torch.no_grad():  # the stop token at once
        model.decoder.gate_layer.linear_layer.bias.fill_(20.0)
    path = nvidia_file(tmp_path / "t2.pt", model.state_dict(), False)
    wav = tmp_path / "x.wav"
    result = CliRunner().invoke(app, ["synth", "Hello there.", "-o", str(wav), "--acoustic", str(path),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    wave, rate = sf.read(str(wav))
    assert rate == 22050 and len(wave) == 256  # it stopped at the first step: one frame


def test_what_it_cannot_read_is_refused(tmp_path):
    torch.manual_seed(2)
    weights = Tacotron2(SMALL, 100, 80).state_dict()  # another symbol set
    with pytest.raises(CheckpointError, match="100 symbols"):
        load_acoustic(nvidia_file(tmp_path / "a.pt", weights, False), torch.device("cpu"))
    weights = Tacotron2(Tacotron2Config(**{**SMALL.__dict__, "reduction": 2}), len(SYMBOLS), 80).state_dict()
    with pytest.raises(CheckpointError, match="frames per decoder step"):
        load_acoustic(nvidia_file(tmp_path / "b.pt", weights, False), torch.device("cpu"))


@pytest.mark.skipif(not CHECKOUT, reason="set TTSKIT_NVIDIA_TACOTRON2 to an NVIDIA/tacotron2 checkout")
def test_against_nvidias_own_code(tmp_path, monkeypatch):
    sys.path.insert(0, CHECKOUT)
    monkeypatch.syspath_prepend(CHECKOUT)
    import model as nvidia_model  # NVIDIA/tacotron2/model.py

    def cpu_mask(lengths):  # theirs allocates on CUDA
        return torch.arange(int(lengths.max()))[None] < lengths[:, None]

    monkeypatch.setattr(nvidia_model, "get_mask_from_lengths", cpu_mask)
    hparams = SimpleNamespace(
        mask_padding=True, fp16_run=False, n_mel_channels=80, n_frames_per_step=1, n_symbols=len(SYMBOLS),
        symbols_embedding_dim=64, encoder_kernel_size=5, encoder_n_convolutions=3, encoder_embedding_dim=64,
        attention_rnn_dim=96, attention_dim=32, attention_location_n_filters=8, attention_location_kernel_size=31,
        decoder_rnn_dim=96, prenet_dim=32, max_decoder_steps=25, gate_threshold=0.5, p_attention_dropout=0.1,
        p_decoder_dropout=0.1, postnet_embedding_dim=64, postnet_kernel_size=5, postnet_n_convolutions=5)
    torch.manual_seed(3)
    theirs = nvidia_model.Tacotron2(hparams).eval()
    path = nvidia_file(tmp_path / "tacotron2_statedict.pt", theirs.state_dict(), False)
    ours = load_acoustic(path, torch.device("cpu")).model
    ids, _ = NvidiaCharsFrontend().encode("Hello there, how are you?", nvidia_vocab())
    symbols, lengths = torch.tensor([ids]), torch.tensor([len(ids)])
    mels = torch.randn(1, 80, 30) - 5
    with torch.no_grad():
        torch.manual_seed(4)
        mel, mel_postnet, gate, alignments = theirs((symbols, lengths, mels, len(ids), torch.tensor([30])))
        torch.manual_seed(4)
        forced = ours(symbols, lengths, mels.transpose(1, 2), torch.tensor([30]))
    assert torch.allclose(forced.mel_postnet.transpose(1, 2), mel_postnet, atol=1e-5)
    assert torch.allclose(forced.gate, gate, atol=1e-5) and torch.allclose(forced.alignments, alignments, atol=1e-6)
    with torch.no_grad():
        torch.manual_seed(5)
        _, their_mel, _, _ = theirs.inference(symbols)
        torch.manual_seed(5)
        with pytest.warns(RuntimeWarning) if their_mel.shape[-1] == 25 else _nothing():
            free = ours.infer(symbols, lengths)
    assert free.mel_postnet.shape[1] == their_mel.shape[-1]
    assert torch.allclose(free.mel_postnet.transpose(1, 2), their_mel, atol=1e-4)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
