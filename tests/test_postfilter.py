"""Mel sharpening: the mel's fine detail over time and over bands is scaled and each frame keeps
its loudness, the vocoder hears the sharpened mel on the user's path (synth, eval, a packed voice's own
setting, an exported voice's card), and a bad factor is refused before anything is made."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_acoustic_run
from typer.testing import CliRunner

from ttskit.cli import app
from ttskit.synthesis import Synthesizer
from ttskit.synthesis.postfilter import (
    DETAIL_BANDS,
    DETAIL_FRAMES,
    SharpeningError,
    check_sharpening,
    moving_average,
    sharpen_mel,
)
from ttskit.synthesis.voices import find_voice

runner = CliRunner()


def test_sharpen_scales_the_fine_detail_and_keeps_each_frames_loudness():
    torch.manual_seed(0)
    mel = torch.randn(80, 60) - 5.0
    sharp = sharpen_mel(mel, 1.5)

    def detail(m):  # the residuals sharpening scales: over DETAIL_FRAMES frames and DETAIL_BANDS bands
        return (m - moving_average(m, DETAIL_FRAMES)) + (m - moving_average(m.T, DETAIL_BANDS).T)

    shift = sharp - (mel + 0.5 * detail(mel))  # the same for every band of a frame: the loudness moved back
    assert torch.allclose(shift, shift[:1].expand_as(shift), atol=1e-5)
    assert torch.allclose(torch.logsumexp(sharp, 0), torch.logsumexp(mel, 0), atol=1e-5)
    assert detail(sharp).std() > 1.4 * detail(mel).std()
    # What has no detail stays: a constant mel, and a slope over time or over bands away from the edges.
    flat = torch.full((80, 30), -4.0)
    assert torch.allclose(sharpen_mel(flat, 2.0), flat, atol=1e-5)
    slope, edge = -6.0 + 0.05 * torch.arange(30.0)[None].expand(80, 30), DETAIL_FRAMES // 2
    assert torch.allclose(sharpen_mel(slope, 2.0)[:, edge:-edge], slope[:, edge:-edge], atol=1e-4)
    assert torch.equal(sharpen_mel(mel, 1.0), mel) and sharpen_mel(mel[:, :0], 2.0).shape == (80, 0)
    assert sharpen_mel(mel[:, :1], 1.5).shape == (80, 1)  # shorter than the moving average
    for bad in (0.0, -1.0, 3.5, float("nan")):
        with pytest.raises(SharpeningError, match="must be above 0"):
            check_sharpening(bad)


def _heard_mels(synth: Synthesizer, text: str) -> list[torch.Tensor]:
    """The mels `synth`'s vocoder is given for `text`."""
    heard: list[torch.Tensor] = []
    each = synth.vocoder.each

    def listening(mels, f0s):
        heard.extend(m.clone() for m in mels)
        return each(mels, f0s)

    synth.vocoder.each = listening  # type: ignore[method-assign]
    try:
        synth.tts(text)
    finally:
        synth.vocoder.each = each  # type: ignore[method-assign]
    return heard


def test_the_vocoder_hears_the_sharpened_mel(mini_work, tmp_path):
    run = tiny_acoustic_run(mini_work, tmp_path / "run", 6)
    synth = Synthesizer.from_checkpoints(run, device="cpu")
    plain = _heard_mels(synth, "Cats sat on the mat.")
    synth.sharpen = 1.3
    sharp = _heard_mels(synth, "Cats sat on the mat.")
    assert len(plain) == len(sharp) == 1 and plain[0].shape == sharp[0].shape
    assert torch.allclose(sharp[0], sharpen_mel(plain[0], 1.3), atol=1e-5)
    with pytest.raises(SharpeningError):
        Synthesizer(synth.acoustic, synth.vocoder, synth.device, sharpen=0.0)


def test_sharpen_on_the_cli_and_in_a_packed_voice(tmp_path):
    """`synth --sharpen`, `pack-voice --sharpen` (the voice then applies it by default),
    `eval --sharpen` only with --synth; bad values are refused before any output is made."""
    voice = find_voice()
    bad = runner.invoke(app, ["synth", "Hello.", "-o", str(tmp_path / "x.wav"), "--sharpen", "0"])
    assert bad.exit_code != 0 and "must be above 0" in bad.output and not (tmp_path / "x.wav").exists()
    out = tmp_path / "sharp.wav"
    assert runner.invoke(app, ["synth", "Hello there.", "-o", str(out), "--sharpen", "1.2"]).exit_code == 0
    assert out.is_file()
    folder = tmp_path / "sharp-voice"
    result = runner.invoke(app, ["pack-voice", str(voice.acoustic), str(voice.vocoder), "-o", str(folder),
                                 "--name", "sharp", "--sharpen", "1.2"])
    assert result.exit_code == 0, result.output
    assert json.loads((folder / "voice.json").read_text())["synthesis"] == {"sharpen": 1.2}
    assert "mel sharpening (synthesis) | 1.2" in (folder / "MODEL_CARD.md").read_text()
    assert Synthesizer.from_voice(folder, device="cpu").sharpen == 1.2
    assert Synthesizer.from_voice(voice.name, device="cpu").sharpen == voice.sharpen
    card = json.loads((folder / "voice.json").read_text())
    card["synthesis"]["sharpen"] = 9
    (folder / "voice.json").write_text(json.dumps(card))
    broken = runner.invoke(app, ["synth", "Hello.", "-o", str(tmp_path / "y.wav"), "--voice", str(folder)])
    assert broken.exit_code != 0 and "synthesis.sharpen 9 is not usable" in broken.output
    assert not (tmp_path / "y.wav").exists()
    misplaced = runner.invoke(app, ["eval", "--ref", str(tmp_path), "--hyp", str(tmp_path), "--sharpen", "1.2"])
    assert misplaced.exit_code != 0 and "goes with --synth" in misplaced.output
