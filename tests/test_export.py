"""ONNX export and the ONNX Runtime backend: the inference graphs equal the models they wrap, an
exported voice round-trips through ONNX Runtime with the same durations and audio within 40 dB of
torch, every control changes the output as in torch, batches equal single sentences, and bad
exports or voices get clear errors and leave nothing behind."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_acoustic_run
from typer.testing import CliRunner

from ttskit.checkpoints.acoustic import load_acoustic
from ttskit.cli import app
from ttskit.deploy.onnx_export import QUANTIZED_NOTE
from ttskit.models.fastspeech2 import PRESETS, Controls, FastSpeech2, explicit_attention
from ttskit.models.harmonic_noise import HarmonicNoiseConfig, HarmonicNoiseGenerator
from ttskit.models.inference_graph import AcousticGraph, HarmonicNoiseGraph
from ttskit.synthesis import Synthesizer
from ttskit.synthesis.engines import acoustic_graph
from ttskit.synthesis.onnx_backend import load_onnx_voice
from ttskit.synthesis.voices import SHIPPED, VoiceError, find_voice

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

runner = CliRunner()
FRAMES_PER_PHONEME = 6
HN_TINY = ["model.channels=32", "model.layers=2", "model.harmonics=40", "model.pitch_channels=16",
           "model.pitch_layers=1", "train.segment_samples=2048", "train.batch_size=2", "train.val_every=100",
           "train.checkpoint_every=1", "train.num_workers=0"]
HIFIGAN_TINY = ["model.upsample_initial_channel=32", "train.segment_samples=2048", "train.batch_size=2",
                "train.val_every=100", "train.checkpoint_every=1", "train.num_workers=0",
                "train.discriminator_start_step=100"]
TEXT = "Cats sat on the mat. Dogs did not."


def sets(values):
    return sum((["--set", v] for v in values), [])


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    error = float(np.sum((reference.astype(np.float64) - other) ** 2))
    return 10 * math.log10(float(np.sum(reference.astype(np.float64) ** 2)) / max(error, 1e-30))


@pytest.fixture(scope="module")
def acoustic(mini_work, tmp_path_factory):
    return tiny_acoustic_run(mini_work, tmp_path_factory.mktemp("acoustic") / "run", FRAMES_PER_PHONEME)


def _vocoder_run(mini_work, folder, model, tiny):
    run = folder / "run"
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(run), "--model", model,
                                 "--max-steps", "1", "--device", "cpu", *sets(tiny)])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def harmonic_noise(mini_work, tmp_path_factory):
    return _vocoder_run(mini_work, tmp_path_factory.mktemp("hn"), "harmonic-noise", HN_TINY)


@pytest.fixture(scope="module")
def hifigan(mini_work, tmp_path_factory):
    return _vocoder_run(mini_work, tmp_path_factory.mktemp("hifigan"), "hifigan-v3", HIFIGAN_TINY)


def _export(tmp_path, *args):
    out = tmp_path / "voice-onnx"
    result = runner.invoke(app, ["export", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


# -- the graphs against the models they wrap --------------------------------------------------------

def test_exported_attention_equals_the_fused_kernel_where_it_counts():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 2, 7, 16).unbind(0)
    padding = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=~padding[:, None, None, :])
    explicit = explicit_attention(q, k, v, padding)
    valid = ~padding  # queries; a padded query's output is zeroed by every caller
    assert torch.allclose(explicit.transpose(1, 2)[valid], fused.transpose(1, 2)[valid], atol=1e-6)
    assert not torch.allclose(explicit[1, :, :4], explicit_attention(q, k, v, torch.zeros_like(padding))[1, :, :4])
    everything_padded = explicit_attention(q, k, v, torch.ones_like(padding))
    assert torch.isfinite(everything_padded).all()  # no NaN for the graph to guard against



def _convolution_weight_ranks(model) -> list[int]:
    weights = {initializer.name: len(initializer.dims) for initializer in model.graph.initializer}
    weights |= {node.output[0]: len(node.attribute[0].t.dims) for node in model.graph.node if node.op_type == "Constant"}
    return [weights[node.input[1]] for node in model.graph.node if node.op_type == "Conv"]


class _ConvolutionStack(torch.nn.Module):
    """The shapes the exported graphs hold: an input convolution, a residual dilated one, a residual
    feed-forward pair with an activation between, and a strided one at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = torch.nn.Conv1d(5, 6, 3, padding=1)
        self.dilated = torch.nn.Conv1d(6, 6, 3, padding=2, dilation=2)
        self.up, self.down = torch.nn.Conv1d(6, 12, 5, padding=2), torch.nn.Conv1d(12, 6, 1)
        self.strided = torch.nn.Conv1d(6, 4, 4, stride=2, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        h = h + self.dilated(torch.nn.functional.leaky_relu(h, 0.1))
        h = h + self.down(torch.relu(self.up(h)))
        return torch.tanh(self.strided(h)), h.sum(1)


def test_convolutions_become_2d_ones_that_compute_the_same(tmp_path):
    from ttskit.deploy.graph_passes import convolutions_as_2d

    torch.manual_seed(0)
    module, x = _ConvolutionStack().eval(), torch.randn(2, 5, 37)
    path = tmp_path / "stack.onnx"
    torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y", "total"], dynamo=False,
                      dynamic_axes={"x": {0: "b", 2: "t"}, "y": {0: "b", 2: "t"}, "total": {0: "b", 1: "t"}},
                      opset_version=17)
    model = onnx.load(str(path))
    assert convolutions_as_2d(model) == 5 and set(_convolution_weight_ranks(model)) == {4}
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    # 4-D from the first convolution to the last: the activations and residual sums run before
    # the Squeezes, which then meet the next Unsqueezes and go. One Squeeze is left for each
    # 3-D reader (the tanh's output, the sum over channels).
    assert ops.count("Unsqueeze") == 1 and ops.count("Squeeze") == 2
    rewritten = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for frames in (37, 64):
        x = torch.randn(3, 5, frames)
        got = rewritten.run(["y", "total"], {"x": x.numpy()})
        with torch.no_grad():
            for value, expected in zip(got, module(x)):
                np.testing.assert_allclose(value, expected.numpy(), atol=1e-5)
    assert convolutions_as_2d(model) == 0  # nothing 1-D is left


@pytest.mark.parametrize("feature_level", ["phoneme", "frame"])
def test_acoustic_graph_equals_the_model_with_controls_per_utterance(feature_level):
    torch.manual_seed(0)
    model = FastSpeech2(PRESETS["small"], 30, 80, n_speakers=2, feature_level=feature_level).eval()
    with torch.no_grad():  # durations of a few frames each, so the utterances have length
        model.duration_predictor.output.bias.fill_(math.log(1 + 4))
    graph = AcousticGraph(model, [(120.0, 20.0), (200.0, 30.0)], 0.5, 2.0, silence=-11.5)
    phonemes = torch.randint(1, 30, (2, 9))
    lengths = torch.tensor([9, 5])
    speed, pitch, energy = torch.tensor([1.0, 1.7]), torch.tensor([0.0, 5.0]), torch.tensor([1.0, 1.3])
    with torch.inference_mode():
        mel, frame_lengths, f0, durations = graph(phonemes, lengths, torch.tensor([0, 1]), speed, pitch, energy)
        for row in range(2):  # each utterance alone, through the model's own forward and its controls
            ratio = 2 ** (pitch[row].item() / 12)
            mean, std = [(120.0, 20.0), (200.0, 30.0)][row]
            controls = Controls(duration_scale=1 / speed[row].item(), pitch_scale=ratio,
                                pitch_shift=mean * (ratio - 1) / std, energy_scale=energy[row].item(),
                                energy_shift=0.5 * (energy[row].item() - 1) / 2.0)
            n = int(lengths[row])
            out = model(phonemes[row:row + 1, :n], lengths[row:row + 1], torch.tensor([row]), controls=controls)
            frames = int(out.frame_lengths[0])
            assert frames == int(frame_lengths[row]) > 0
            assert torch.equal(out.durations[0], durations[row, :n])
            assert torch.allclose(out.mel_postnet[0].T, mel[row, :, :frames], atol=1e-4)
            assert (mel[row, :, frames:] == -11.5).all()  # padding is silence
            # F0: the predicted pitch with the controls, held over each phoneme (or per frame), in Hz.
            normalised = out.pitch[0] * ratio + mean * (ratio - 1) / std
            if feature_level == "phoneme":
                normalised = torch.repeat_interleave(normalised, out.durations[0])
            hz = (normalised[:frames] * std + mean).clamp(min=40.0)
            log = torch.nn.functional.pad(torch.log(hz)[None, None], (2, 2), mode="replicate")
            smoothed = torch.exp(torch.nn.functional.avg_pool1d(log, 5, 1))[0, 0]
            assert torch.allclose(f0[row, :frames], smoothed, rtol=1e-4)
            assert torch.allclose(f0[row, frames + 2:], f0[row, -1])  # the last value held past the end


def test_pitch_control_doubles_f0_at_an_octave(acoustic):
    synth = Synthesizer.from_checkpoints(acoustic, device="cpu")
    ids = synth.sentences([TEXT])[0].ids
    inputs = np.array([ids]), np.array([len(ids)]), np.zeros(1, np.int64), np.ones(1, np.float32)
    plain = synth.engine(*inputs, np.zeros(1, np.float32), np.ones(1, np.float32))
    octave = synth.engine(*inputs, np.full(1, 12.0, np.float32), np.ones(1, np.float32))
    assert plain.frames == octave.frames
    assert torch.allclose(octave.f0, 2 * plain.f0, rtol=1e-4)


@pytest.mark.parametrize("noise_fft,noise_hop,dilation", [(1024, 0, 0), (512, 128, 1)])
@pytest.mark.parametrize("frames", [1, 3, 40])
def test_harmonic_noise_graph_equals_the_generator_given_its_noise(frames, noise_fft, noise_hop, dilation):
    """The graph against the generator: the noise filtered at the mel hop, or at a shorter hop with
    the harmonics' voicing gate dilated."""
    torch.manual_seed(frames)
    config = HarmonicNoiseConfig(channels=32, layers=2, harmonics=40, pitch_channels=16, pitch_layers=1,
                                 noise_fft=noise_fft, noise_hop=noise_hop, voicing_dilation=dilation)
    generator = HarmonicNoiseGenerator(config, 80, 22050, 256).eval()
    mel = torch.randn(2, 80, frames) - 4
    f0 = 100 + 50 * torch.rand(2, frames)
    with torch.inference_mode():
        torch.manual_seed(7)
        expected = generator(mel, f0)[:, 0]
        torch.manual_seed(7)
        white = torch.rand(2, frames * 256) * 2 - 1  # what the generator drew
        # The graph takes the noise with its edges: as the generator pads it (reflected, or zeros
        # when it is too short to reflect).
        half = noise_fft // 2
        mode = "reflect" if frames * 256 > half else "constant"
        got = HarmonicNoiseGraph(generator)(mel, f0, torch.nn.functional.pad(white[:, None], (half, half), mode=mode)[:, 0])
    assert got.shape == expected.shape
    assert snr_db(expected.numpy(), got.numpy()) > 80


# -- export and ONNX Runtime -----------------------------------------------------------------------

def test_export_round_trips_through_onnx_runtime(acoustic, harmonic_noise, tmp_path):
    out = _export(tmp_path, "--acoustic", str(acoustic), "--vocoder", str(harmonic_noise), "--name", "tinyvoice")
    assert sorted(p.name for p in out.iterdir()) == ["acoustic.onnx", "vocoder.onnx", "voice.onnx.json"]
    for graph in ("acoustic.onnx", "vocoder.onnx"):
        onnx.checker.check_model(str(out / graph), full_check=True)
        assert onnx.load(str(out / graph)).opset_import[0].version == 17
    # The exported attention needs no NaN guard over its scores, and padding is zeroed by products.
    acoustic_ops = {node.op_type for node in onnx.load(str(out / "acoustic.onnx")).graph.node}
    assert "IsNaN" not in acoustic_ops and "Softmax" in acoustic_ops
    for graph in ("acoustic.onnx", "vocoder.onnx"):  # every convolution runs as a 2-D one (graph_passes)
        assert set(_convolution_weight_ranks(onnx.load(str(out / graph)))) == {4}
    card = json.loads((out / "voice.onnx.json").read_text())
    model = load_acoustic(acoustic, torch.device("cpu"))
    assert card["vocab"] == list(model.vocab.symbols) and card["sample_rate"] == 22050
    assert card["speakers"] == sorted(model.speakers, key=model.speakers.__getitem__)
    assert card["vocoder_model"]["uses_f0"] and card["vocoder_model"]["inputs"] == ["mel", "f0", "noise"]
    assert card["export_check"]["mel SNR dB"] >= 40 and card["export_check"]["wave SNR dB"] >= 40
    assert card["ttskit_version"] and card["opset"] == 17 and card["name"] == "tinyvoice"

    onnx_synth = Synthesizer.from_voice(out)
    torch_synth = Synthesizer.from_checkpoints(acoustic, harmonic_noise, device="cpu")
    assert onnx_synth.backend == "onnx" and torch_synth.backend == "torch"
    # The harmonic-plus-noise vocoder draws white noise: give both backends the same draws.
    torch.manual_seed(3)
    expected = torch_synth.tts(TEXT, speed=1.3, pitch=2.0, energy=1.2)
    torch.manual_seed(3)
    onnx_synth.vocoder.noise = _TorchNoise()
    got = onnx_synth.tts(TEXT, speed=1.3, pitch=2.0, energy=1.2)
    assert got.shape == expected.shape  # the same durations
    assert snr_db(expected, got) >= 40



def test_onnx_vocoder_runs_utterances_side_by_side_with_the_waves_of_one_at_a_time(acoustic, harmonic_noise,
                                                                                   tmp_path):
    """`Synthesizer.tts_many` on the ONNX backend vocodes a batch's utterances on as many
    single-threaded runs as it has threads; the noise is drawn in order, so each wave is the one a
    call of its own would make."""
    out = _export(tmp_path, "--acoustic", str(acoustic), "--vocoder", str(harmonic_noise))
    synth = Synthesizer.from_voice(out)
    sentences = synth.sentences(["Cats sat on the mat.", "Dogs did not.", "A bird flew over the old house."])
    frames = synth.engine(*_engine_inputs(sentences))
    mels = [frames.mel[row, :, :n] for row, n in enumerate(frames.frames)]
    f0s = [frames.f0[row, :n] for row, n in enumerate(frames.frames)]
    vocoder = load_onnx_voice(find_voice(str(out)), threads=2)[2]  # two threads whatever the machine has
    vocoder.noise = np.random.default_rng(5)
    alone = [vocoder(mel, f0)[0] for mel, f0 in zip(mels, f0s)]
    vocoder.noise = np.random.default_rng(5)
    side_by_side = vocoder.each(mels, f0s)
    assert "_session" in vars(vocoder.side_by_side) and vocoder.side_by_side.workers == 2  # it ran side by side
    assert [len(w) for w in side_by_side] == [len(w) for w in alone] == [n * 256 for n in frames.frames]
    for got, expected in zip(side_by_side, alone):
        assert snr_db(expected.numpy(), got.numpy()) >= 60



def test_onnx_acoustic_runs_a_batch_in_parts_side_by_side_with_the_whole_batchs_output(acoustic, hifigan,
                                                                                      tmp_path):
    out = _export(tmp_path, "--acoustic", str(acoustic), "--vocoder", str(hifigan))
    voice = find_voice(str(out))
    whole, parts = load_onnx_voice(voice, threads=1)[1], load_onnx_voice(voice, threads=2)[1]
    synth = Synthesizer.from_voice(out)
    texts = ["Cats sat.", "Dogs did not sit on the mat at all.", "A bird flew.", "The old house stood there.",
             "Rain.", "Nobody knew where the little road went after the bridge."]
    inputs = _engine_inputs(synth.sentences(texts))
    run, part_sizes = parts.side_by_side.run, []

    def counted(outputs, feeds):
        part_sizes.append([len(feed["phoneme_lengths"]) for feed in feeds])
        return run(outputs, feeds)

    parts.side_by_side.run = counted
    expected, got = whole(*inputs), parts(*inputs)
    assert "_session" in vars(parts.side_by_side)
    assert part_sizes == [[2, 2, 2]]  # parts of at most PART_SENTENCES, side by side
    assert got.frames == expected.frames and got.mel.shape == expected.mel.shape
    assert torch.allclose(got.mel, expected.mel, atol=1e-4)  # the mel floor past each length too
    for row, n in enumerate(expected.frames):
        assert torch.allclose(got.f0[row, :n], expected.f0[row, :n], atol=1e-3)

def _engine_inputs(sentences):
    lengths = np.array([len(s.ids) for s in sentences])
    phonemes = np.zeros((len(sentences), lengths.max()), np.int64)
    for row, sentence in enumerate(sentences):
        phonemes[row, :lengths[row]] = sentence.ids
    count = len(sentences)
    return (phonemes, lengths, np.zeros(count, np.int64), np.ones(count, np.float32), np.zeros(count, np.float32),
            np.ones(count, np.float32))

class _TorchNoise:
    """The noise the torch vocoder draws (torch.rand, reflected at the edges by its STFT), as the
    ONNX backend asks numpy's Generator.uniform for it (with half an STFT of context at each end)."""

    def uniform(self, low, high, size):
        batch, samples = size
        white = torch.rand(batch, samples - 1024) * (high - low) + low
        return torch.nn.functional.pad(white[:, None], (512, 512), mode="reflect")[:, 0].numpy()


def test_exported_controls_batches_long_form_and_streaming(acoustic, hifigan, tmp_path):
    out = _export(tmp_path, "--acoustic", str(acoustic), "--vocoder", str(hifigan))
    assert json.loads((out / "voice.onnx.json").read_text())["vocoder_model"]["inputs"] == ["mel"]
    onnx_synth = Synthesizer.from_voice(out)
    torch_synth = Synthesizer.from_checkpoints(acoustic, hifigan, device="cpu")
    hop = 256
    ids = onnx_synth.sentences(["Cats sat."])[0].ids
    normal = onnx_synth.tts("Cats sat.")
    assert len(normal) == len(ids) * FRAMES_PER_PHONEME * hop
    assert len(onnx_synth.tts("Cats sat.", speed=2.0)) == len(ids) * FRAMES_PER_PHONEME // 2 * hop  # half the frames
    for changed in (dict(pitch=7.0), dict(energy=1.5)):
        assert snr_db(torch_synth.tts("Cats sat.", **changed), onnx_synth.tts("Cats sat.", **changed)) >= 40
        assert not np.allclose(onnx_synth.tts("Cats sat.", **changed), normal, atol=1e-4)
    assert snr_db(torch_synth.tts(TEXT), onnx_synth.tts(TEXT)) >= 40
    # Batches (tts_many sorts sentences of several texts into one call) equal sentences alone.
    texts = ["Dogs did not.", TEXT, "A much longer line about cats and dogs and mats."]
    batched = onnx_synth.tts_many(texts)
    for text, wave in zip(texts, batched):
        assert snr_db(onnx_synth.tts(text), wave) >= 40
    streamed = np.concatenate(list(onnx_synth.stream(TEXT)))
    assert snr_db(onnx_synth.tts(TEXT), streamed) >= 40
    # The CLI on the folder, --backend onnx given explicitly.
    wav = tmp_path / "x.wav"
    result = runner.invoke(app, ["synth", TEXT, "-o", str(wav), "--voice", str(out), "--backend", "onnx",
                                 "--speed", "1.2"])
    assert result.exit_code == 0, result.output
    assert np.isfinite(sf.read(str(wav))[0]).all()


def test_quantized_export_runs_int8_convolutions_with_the_same_durations(acoustic, hifigan, tmp_path):
    plain = _export(tmp_path / "a", "--acoustic", str(acoustic), "--vocoder", str(hifigan))
    small = _export(tmp_path / "b", "--acoustic", str(acoustic), "--vocoder", str(hifigan), "--quantize")
    card = json.loads((small / "voice.onnx.json").read_text())
    assert card["quantized"] == QUANTIZED_NOTE and card["export_check"]["int8 mel SNR dB"] >= 20
    nodes = onnx.load(str(small / "acoustic.onnx")).graph.node
    dequantized = {name for node in nodes if node.op_type == "DequantizeLinear" for name in node.output}
    int8_convolutions = {node.name for node in nodes if node.op_type == "Conv" and set(node.input) & dequantized}
    assert int8_convolutions and all(name.startswith(("/decoder/", "/postnet/")) for name in int8_convolutions)
    assert (small / "acoustic.onnx").stat().st_size < (plain / "acoustic.onnx").stat().st_size
    float_wave, int8_wave = Synthesizer.from_voice(plain).tts(TEXT), Synthesizer.from_voice(small).tts(TEXT)
    assert np.isfinite(int8_wave).all() and int8_wave.shape == float_wave.shape  # the same durations


@pytest.mark.skipif(not (SHIPPED / "joe" / "voice.json").is_file(), reason="no shipped voice in this installation")
def test_the_shipped_voice_exports_and_speaks_as_in_torch(tmp_path):
    # The shipped voice's weights, packed with a mel sharpening of its own: the exported card keeps it.
    joe = find_voice("joe")
    packed = tmp_path / "joe"
    result = runner.invoke(app, ["pack-voice", str(joe.acoustic), str(joe.vocoder), "-o", str(packed), "--name", "joe",
                                 "--licence", joe.card["licence"], "--sharpen", "1.2"])
    assert result.exit_code == 0, result.output
    out = _export(tmp_path, str(packed))
    assert (out / "MODEL_CARD.md").is_file()
    card = json.loads((out / "voice.onnx.json").read_text())
    assert card["name"] == "joe" and card["licence"] and card["synthesis"] == {"sharpen": 1.2}
    onnx_synth, torch_synth = Synthesizer.from_voice(out), Synthesizer.default(device="cpu")
    assert onnx_synth.sharpen == 1.2
    text = "Washing your car to make it rain doesn't work."
    sentence = onnx_synth.sentences([text])
    frames = {}
    for name, synth in (("onnx", onnx_synth), ("torch", torch_synth)):
        for speed in (1.0, 2.0):
            got = synth.engine(np.array([sentence[0].ids]), np.array([len(sentence[0].ids)]), np.zeros(1, np.int64),
                               np.full(1, speed, np.float32), np.zeros(1, np.float32), np.ones(1, np.float32))
            frames[name, speed] = got.frames[0]
    assert frames["onnx", 1.0] == frames["torch", 1.0] and frames["onnx", 2.0] == frames["torch", 2.0]
    assert abs(frames["onnx", 2.0] - frames["onnx", 1.0] / 2) <= 0.1 * frames["onnx", 1.0]  # about half


# -- errors --------------------------------------------------------------------------------------

def test_a_multi_band_melgan_exports_and_speaks_as_in_torch(acoustic, mini_work, tmp_path):
    tiny = ["model.channels=32", "model.stacks=1", "train.segment_samples=2048", "train.batch_size=2",
            "train.discriminator_max_channels=32", "train.val_utterances=1", "train.num_workers=0"]
    vocoder = _vocoder_run(mini_work, tmp_path / "mb", "mb-melgan", tiny)
    out = _export(tmp_path, "--acoustic", str(acoustic), "--vocoder", str(vocoder))
    card = json.loads((out / "voice.onnx.json").read_text())["vocoder_model"]
    assert card["architecture"] == "melgan" and card["config"]["subbands"] == 4
    torch_synth = Synthesizer.from_checkpoints(acoustic, vocoder, device="cpu")
    assert snr_db(torch_synth.tts(TEXT), Synthesizer.from_voice(out).tts(TEXT)) >= 40


def test_export_refuses_what_it_cannot_do_and_leaves_nothing(acoustic, hifigan, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["export", "--acoustic", str(acoustic), "--vocoder", str(hifigan), "-o", str(taken)])
    assert result.exit_code == 2 and "not empty" in result.output
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    result = runner.invoke(app, ["export", "--acoustic", str(acoustic), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "both --acoustic and --vocoder" in result.output
    assert not (tmp_path / "x").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no staging folder left behind


def test_voice_backend_errors_name_the_fix(acoustic, hifigan, tmp_path):
    if (SHIPPED / "joe" / "voice.json").is_file():
        with pytest.raises(VoiceError, match="ttskit export joe"):
            find_voice("joe", "onnx")
    out = _export(tmp_path, "--acoustic", str(acoustic), "--vocoder", str(hifigan))
    with pytest.raises(VoiceError, match="--backend onnx"):
        find_voice(out, "torch")
    with pytest.raises(VoiceError, match="unknown backend"):
        find_voice(out, "tensorrt")
    (out / "vocoder.onnx").unlink()
    result = runner.invoke(app, ["synth", TEXT, "-o", str(tmp_path / "y.wav"), "--voice", str(out)])
    assert result.exit_code == 2 and "vocoder.onnx" in result.output
    assert not (tmp_path / "y.wav").exists()


def test_graph_of_a_loaded_model_matches_its_checkpoint(acoustic):
    model = load_acoustic(acoustic, torch.device("cpu"))
    graph = acoustic_graph(model)
    assert not graph.training and graph.pitch_mean.shape == (len(model.speakers),)
