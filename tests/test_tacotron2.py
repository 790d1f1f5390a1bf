"""Tacotron 2's module (issue 19's first part): teacher-forced training shapes and a falling loss
with and without a reduction factor, the stop token ending inference (and the max-steps bound
warning instead of hanging), batch-independent encoding, guided attention, NVIDIA's names; the
training decoder (batched projections, deferred recurrent weight gradients) equal to stepping the
decoder one step at a time."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ttskit.models.recurrent import DeferredWeightGradient, lstm_cell
from ttskit.models.tacotron2 import (
    TACOTRON2_PRESETS,
    Tacotron2,
    Tacotron2Config,
    guided_attention_weights,
    tacotron2_loss,
)

TINY = Tacotron2Config(symbols_embedding=32, encoder_channels=32, attention_rnn=48, decoder_rnn=48, prenet=32,
                       attention=16, location_filters=8, postnet_channels=32, max_decoder_steps=50)


def batch(frames: int = 24, n_mels: int = 20):
    torch.manual_seed(0)
    symbols = torch.randint(1, 30, (2, 9))
    lengths = torch.tensor([9, 6])
    symbols[1, 6:] = 0
    mels = torch.randn(2, frames, n_mels) * 0.5 - 4
    frame_lengths = torch.tensor([frames, frames - 6])
    mels[1, frames - 6:] = 0
    return symbols, lengths, mels, frame_lengths


@pytest.mark.parametrize("reduction", [1, 2])
def test_teacher_forced_training_fits_a_repeated_batch(reduction):
    config = dataclasses.replace(TINY, reduction=reduction, guided_attention_weight=1.0)
    symbols, lengths, mels, frame_lengths = batch()
    torch.manual_seed(1)
    model = Tacotron2(config, 30, 20)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        out = model(symbols, lengths, mels, frame_lengths)
        assert out.mel.shape == mels.shape and out.gate.shape == (2, mels.shape[1] // reduction)
        assert out.alignments.shape == (2, mels.shape[1] // reduction, 9)
        terms = tacotron2_loss(out, mels, lengths, config)
        assert set(terms) == {"mel_mse", "postnet_mse", "gate_bce", "guided_attention", "loss"}
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(float(terms["loss"].detach()))
    assert losses[-1] < 0.5 * losses[0]
    # Attention never looks at padding, and each step's weights sum to one.
    assert torch.allclose(out.alignments.sum(-1), torch.ones(2, mels.shape[1] // reduction), atol=1e-5)
    assert float(out.alignments[1, :, 6:].detach().abs().max()) == 0.0


@pytest.mark.parametrize("reduction", [1, 2])
def test_the_training_decoder_equals_stepping_it(reduction):
    """Outputs, dropout draws and every parameter's gradient of `Decoder.teacher_forced` agree with
    the step-by-step decoder to float64 rounding."""
    config = dataclasses.replace(TINY, reduction=reduction)
    symbols, lengths, mels, _ = batch()
    torch.manual_seed(2)
    model = Tacotron2(config, 30, 20).double().train()
    probe = torch.randn(2, mels.shape[1] // reduction, 9, dtype=torch.float64)
    results = []
    for decode in (model.decoder.stepwise, model.decoder.teacher_forced):
        model.zero_grad()
        torch.manual_seed(3)
        memory, processed, padding = model.encode(symbols, lengths, None)
        previous = torch.cat([mels.new_zeros(2, 1, 20), mels[:, reduction - 1::reduction]], 1).double()
        frames = model.decoder.prenet(previous)[:, :-1]
        outputs, gates, alignments = decode(frames, memory, processed, padding)
        ((outputs ** 2).sum() + gates.sum() + (alignments * probe).sum()).backward()
        results.append(([outputs, gates, alignments], {n: p.grad.clone() for n, p in model.named_parameters()
                                                        if p.grad is not None}))
    (stepped, stepped_grads), (batched, batched_grads) = results
    for a, b in zip(stepped, batched):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert set(stepped_grads) == set(batched_grads) and "decoder.attention_rnn.weight_hh" in batched_grads
    for name, gradient in stepped_grads.items():
        assert torch.allclose(gradient, batched_grads[name], rtol=1e-9, atol=1e-12), name


def test_deferred_weight_gradient_sums_the_steps_it_reached():
    """An LSTM unrolled by hand: the deferred gradient equals autograd's per-step one, including a
    step whose output the loss never uses (and so contributes nothing); a recurrence whose steps
    do not each take the state before them is refused rather than given a wrong gradient."""
    torch.manual_seed(0)
    weight = torch.randn(16, 7, dtype=torch.float64, requires_grad=True)
    inputs = torch.randn(5, 2, 3, dtype=torch.float64)

    def unrolled(linear):
        h, c, hidden = torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64), []
        for x in inputs:
            h, c = lstm_cell(linear(torch.cat([x, h], -1)), c)
            hidden.append(h)
        return (torch.stack(hidden[:-1]) ** 2).sum()  # the last step unused

    expected = torch.autograd.grad(unrolled(lambda x: x @ weight.t()), weight)[0]
    deferred = DeferredWeightGradient(weight)
    assert torch.allclose(torch.autograd.grad(unrolled(deferred.apply), weight)[0], expected, rtol=1e-12)

    # Steps that do not hand state on are summed too, whichever order autograd reaches them in ...
    independent = DeferredWeightGradient(weight)
    x = torch.randn(2, 2, 7, dtype=torch.float64)
    loss = (independent.apply(x[0]) ** 2).sum() + independent.apply(x[1]).sum()
    expected = torch.autograd.grad((x[0] @ weight.t()).pow(2).sum() + (x[1] @ weight.t()).sum(), weight)[0]
    assert torch.allclose(torch.autograd.grad(loss, weight)[0], expected, rtol=1e-12)
    # ... and a step arriving after step 0 (which hands the weight its gradient) is refused.
    late = DeferredWeightGradient(weight)
    late.apply(x[0]), late.apply(x[1])
    late.collect(0, torch.ones(2, 16, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="step 1 was reached after step 0"):
        late.collect(1, torch.ones(2, 16, dtype=torch.float64))


def test_the_stop_token_ends_inference_and_the_step_bound_warns():
    symbols, lengths, _, _ = batch()
    model = Tacotron2(TINY, 30, 20).eval()
    with torch.no_grad():
        model.decoder.gate_layer.linear_layer.bias.fill_(20.0)  # "stop" at once
    out = model.infer(symbols, lengths)
    assert out.frame_lengths.tolist() == [1, 1] and out.gate.shape == (2, 1)
    with torch.no_grad():
        model.decoder.gate_layer.linear_layer.bias.fill_(-20.0)  # never stops
    with pytest.warns(RuntimeWarning, match=r"max_decoder_steps \(7\).*\[0, 1\]"):
        out = model.infer(symbols, lengths, max_decoder_steps=7)
    assert out.frame_lengths.tolist() == [7, 7] and out.mel.shape == (2, 7, 20)


def test_encoding_does_not_depend_on_the_batch():
    symbols, lengths, _, _ = batch()
    model = Tacotron2(TINY, 30, 20).eval()
    together, _, _ = model.encode(symbols, lengths, None)
    alone, _, _ = model.encode(symbols[1:, :6], lengths[1:], None)
    assert torch.allclose(together[1, :6], alone[0], atol=1e-5)


def test_guided_attention_penalises_off_diagonal_weights():
    weights = guided_attention_weights(torch.tensor([10]), torch.tensor([20]), 12, 22, 0.2)
    assert weights.shape == (1, 22, 12)
    assert float(weights[0, 0, 0]) == pytest.approx(0.0) and float(weights[0, 18, 9]) == pytest.approx(0.0, abs=1e-6)
    assert float(weights[0, 19, 9]) < 0.05  # near the diagonal: little
    assert float(weights[0, 0, 9]) > 0.9  # the first step on the last symbol
    assert float(weights[0, 20:].abs().max()) == 0.0 and float(weights[0, :, 10:].abs().max()) == 0.0


def test_presets_and_nvidia_parameter_names():
    base = TACOTRON2_PRESETS["base"]
    assert (base.symbols_embedding, base.encoder_channels, base.attention_rnn, base.decoder_rnn, base.prenet,
            base.attention, base.location_filters, base.location_kernel, base.reduction) == \
        (512, 512, 1024, 1024, 256, 128, 32, 31, 1)
    names = set(Tacotron2(base, 148, 80).state_dict())
    for name in ("embedding.weight", "encoder.convolutions.2.0.conv.weight", "encoder.convolutions.2.1.running_mean",
                 "encoder.lstm.weight_hh_l0_reverse", "decoder.prenet.layers.1.linear_layer.weight",
                 "decoder.attention_rnn.weight_ih", "decoder.attention_layer.query_layer.linear_layer.weight",
                 "decoder.attention_layer.memory_layer.linear_layer.weight",
                 "decoder.attention_layer.v.linear_layer.weight",
                 "decoder.attention_layer.location_layer.location_conv.conv.weight",
                 "decoder.attention_layer.location_layer.location_dense.linear_layer.weight",
                 "decoder.decoder_rnn.weight_hh", "decoder.linear_projection.linear_layer.bias",
                 "decoder.gate_layer.linear_layer.weight", "postnet.convolutions.4.0.conv.weight",
                 "postnet.convolutions.4.1.weight"):
        assert name in names, name
    assert TACOTRON2_PRESETS["small"].guided_attention_weight > 0
    with pytest.raises(Exception, match="model.reduction"):
        Tacotron2Config(reduction=0)


# -- train-acoustic --model tacotron2, synthesis, GTA, refusals -------------------------------------

T2_TINY = ["model.symbols_embedding=32", "model.encoder_channels=32", "model.attention_rnn=48", "model.decoder_rnn=48",
           "model.prenet=32", "model.attention=16", "model.location_filters=8", "model.postnet_channels=32",
           "model.max_decoder_steps=30", "train.max_frames_per_batch=900", "train.log_every=1",
           "train.checkpoint_every=2", "train.val_every=2"]


@pytest.fixture(scope="module")
def tacotron2_run(mini_work, tmp_path_factory):
    from conftest import private_work
    from typer.testing import CliRunner

    from ttskit.cli import app

    work = private_work(mini_work, tmp_path_factory.mktemp("t2work"))  # --export-gta writes into it
    run = tmp_path_factory.mktemp("t2") / "run"
    result = CliRunner().invoke(app, ["train-acoustic", str(work), "-o", str(run), "--model", "tacotron2",
                                      "--max-steps", "2", "--export-gta", *sum((["--set", v] for v in T2_TINY), [])])
    assert result.exit_code == 0, result.output
    return work, run


def test_cli_trains_resumes_and_exports_gta(tacotron2_run):
    import json

    import numpy as np
    from typer.testing import CliRunner

    from ttskit.checkpoints.store import load_checkpoint
    from ttskit.cli import app

    work, run = tacotron2_run
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in records if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2]
    assert all({"mel_mse", "postnet_mse", "gate_bce", "grad_norm"} <= set(m) for m in steps)
    assert any("val_loss" in m for m in records)
    gta = sorted((work / "gta").glob("*.npy"))  # teacher-forced: exactly the recorded frames
    assert gta and np.load(gta[0]).shape == np.load(work / "mel" / gta[0].name).shape
    # --resume without --model continues the run's own family.
    result = CliRunner().invoke(app, ["train-acoustic", str(work), "-o", str(run), "--max-steps", "3", "--resume"])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(run / "checkpoints" / "step_00000003.pt")
    assert "attention_rnn" in state["run_config"]["model"]
    refused = CliRunner().invoke(app, ["train-acoustic", str(work), "-o", str(run), "--max-steps", "4", "--resume",
                                       "--model", "fastspeech2"])
    assert refused.exit_code == 2 and "another model" in refused.output


def test_synthesis_speed_and_refusals(tacotron2_run, tmp_path):
    import soundfile as sf
    from typer.testing import CliRunner

    from ttskit.cli import app
    from ttskit.synthesis import Synthesizer

    _, run = tacotron2_run
    synth = Synthesizer.from_checkpoints(run, device="cpu")
    normal = synth.tts("Cats sat.")
    assert any("max_decoder_steps (30)" in w for w in synth.warnings)  # untrained: it runs to the bound
    assert len(normal) == 30 * 2 * 256  # 30 steps of 2 frames (the small preset's reduction)
    assert len(synth.tts("Cats sat.", speed=2.0)) == 30 * 256  # the mel stretched to half
    wav = tmp_path / "t.wav"
    result = CliRunner().invoke(app, ["synth", "Cats sat.", "-o", str(wav), "--acoustic", str(run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "max_decoder_steps" in result.output and len(sf.read(str(wav))[0]) == len(normal)
    result = CliRunner().invoke(app, ["synth", "Cats sat.", "-o", str(tmp_path / "p.wav"), "--acoustic", str(run),
                                      "--pitch", "3"])
    assert result.exit_code == 2 and "not supported by tacotron2" in result.output
    assert not (tmp_path / "p.wav").exists()
    from ttskit.deploy.onnx_export import ExportError, export_voice

    with pytest.raises(ExportError, match="Tacotron2 is not supported"):
        export_voice(run, run, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()
