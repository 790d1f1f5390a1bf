from __future__ import annotations

import pytest

from ttskit.config import AudioConfig, Config, ConfigError, TextConfig, dump_config, load_config


def test_defaults_are_hifigan_analysis():
    audio = Config().audio
    assert (audio.sample_rate, audio.n_fft, audio.hop_length, audio.win_length, audio.n_mels) == \
        (22050, 1024, 256, 1024, 80)
    assert (audio.fmin, audio.fmax, audio.mel_floor) == (0.0, 8000.0, 1e-5)


def test_yaml_overrides_defaults_and_set_overrides_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("audio:\n  hop_length: 200\n  n_fft: 800\n  win_length: 800\ntext:\n  frontend: chars\n")
    cfg = load_config(path, ["audio.n_mels=64", "text.lowercase=false"])
    assert cfg.audio.hop_length == 200 and cfg.audio.n_mels == 64 and cfg.audio.n_fft == 800
    assert cfg.text == TextConfig(frontend="chars", lowercase=False)
    assert cfg.audio.sample_rate == 22050  # untouched keys keep their defaults


def test_unknown_key_names_path_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("audio:\n  hop_lenght: 200\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "audio.hop_lenght" in str(err.value) and str(path) in str(err.value)


def test_unknown_section_and_wrong_types(tmp_path):
    with pytest.raises(ConfigError, match="unknown key vocoder"):
        load_config(None, ["vocoder.x=1"])
    with pytest.raises(ConfigError, match="audio.n_mels must be an integer"):
        load_config(None, ["audio.n_mels=eighty"])
    with pytest.raises(ConfigError, match="audio.n_mels must be an integer"):
        load_config(None, ["audio.n_mels=true"])
    with pytest.raises(ConfigError, match="text.frontend must be one of"):
        load_config(None, ["text.frontend=klingon"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, ["audio.n_mels"])


def test_invalid_values_are_rejected_with_the_key():
    with pytest.raises(ConfigError, match="audio.fmax"):
        AudioConfig(sample_rate=16000, fmax=9000.0)
    with pytest.raises(ConfigError, match="audio.win_length"):
        load_config(None, ["audio.win_length=2048"])


def test_dump_loads_back_identical(tmp_path):
    cfg = load_config(None, ["audio.fmax=null", "audio.trim_top_db=30", "text.frontend=chars"])
    path = tmp_path / "dump.yaml"
    path.write_text(dump_config(cfg))
    again = load_config(path)
    assert again == cfg and again.audio.fmax is None
    assert again.audio.fmax_hz == 11025.0  # derived, not stored


def test_derived_values_are_computed():
    audio = AudioConfig(sample_rate=24000, hop_length=300, n_fft=1200, win_length=1200)
    assert audio.n_freqs == 601
    assert audio.frame_shift_s == pytest.approx(0.0125)
    assert audio.num_frames(24000) == 80
    assert "n_freqs" not in dump_config(Config())


def test_differences_name_the_paths():
    from ttskit.config import differences

    assert differences({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 2, "c": [1, 3]}}) == [("a.b", 1, 2), ("a.c[1]", 2, 3)]
    assert differences({"v": [1]}, {"v": [1, 2]}) == [("v length", 1, 2)]
    assert differences({"x": 1}, {"x": 1}) == []


@pytest.mark.parametrize("setting, message", [
    ("train.checkpoint_every=0", "train.checkpoint_every: must be at least 1"),
    ("train.log_every=0", "train.log_every: must be at least 1"),
    ("train.val_every=0", "train.val_every: must be at least 1"),
    ("train.num_workers=-1", "train.num_workers: must be >= 0"),
    ("train.betas=[2,3]", "train.betas: must both be in [0, 1)"),
    ("train.grad_clip=-1", "train.grad_clip: must be positive, or null for none"),
])
def test_training_ranges_are_checked_at_load_for_both_trainers(mini_work, tmp_path, setting, message):
    from typer.testing import CliRunner

    from ttskit.cli import app

    for command in ("train-acoustic", "train-vocoder"):
        run = tmp_path / command
        result = CliRunner().invoke(app, [command, str(mini_work), "-o", str(run), "--set", setting])
        assert result.exit_code == 2, result.output
        assert message in result.stderr and "Traceback" not in result.stderr
        assert not run.exists()  # refused before anything was written


@pytest.mark.parametrize("command, setting, message", [
    ("train-acoustic", "model.dropout=1.5", "model.dropout: must be in [0, 1)"),
    ("train-acoustic", "model.heads=3", "model.heads: must divide model.hidden"),
    ("train-vocoder", "model.upsample_initial_channel=0", "model.upsample_initial_channel: must be at least 1"),
])
def test_model_sizes_are_checked_at_load(mini_work, tmp_path, command, setting, message):
    from typer.testing import CliRunner

    from ttskit.cli import app

    result = CliRunner().invoke(app, [command, str(mini_work), "-o", str(tmp_path / "run"), "--set", setting])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr, result.output
    assert not (tmp_path / "run").exists()


def test_exponent_numbers_without_a_dot_are_numbers():
    # YAML 1.1 reads 1e-5 as a string; a float setting takes it as the number it is.
    assert load_config(None, ["audio.mel_floor=1e-5"]).audio.mel_floor == 1e-5
    with pytest.raises(ConfigError, match="audio.mel_floor must be a number"):
        load_config(None, ["audio.mel_floor=tiny"])
