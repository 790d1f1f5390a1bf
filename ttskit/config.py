"""Typed configuration: frozen dataclasses per concern, loaded strictly from YAML.

Every stage reads the same `Config`; a checkpoint stores it as a plain dict and rebuilds it
with `config_from_dict`, so an unknown or mistyped key is caught wherever it comes from.
Values that follow from others (frequency bins, frame shift in seconds) are properties,
never fields, so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml

from ttskit.errors import TtskitError


class ConfigError(TtskitError, ValueError):
    """A configuration value or key is wrong; the message names the key path and the source."""


@dataclass(frozen=True)
class AudioConfig:
    """Waveform and mel-spectrogram parameters (defaults are HiFi-GAN's, so its checkpoints fit)."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0  # None means the Nyquist frequency
    # log(clamp(magnitude, min=mel_floor)); HiFi-GAN's value.
    mel_floor: float = 1e-5
    # Trim leading/trailing audio quieter than the peak by this many dB (None: keep all).
    trim_top_db: float | None = 40.0
    # Silence kept around trimmed speech, so the aligner still sees a short onset pause.
    trim_margin_s: float = 0.05
    # Scale each utterance so its peak is at this level (None: keep the recording's level).
    peak_normalize: float | None = None

    def __post_init__(self) -> None:
        require(self.sample_rate > 0, "audio.sample_rate", "must be positive")
        require(self.hop_length > 0, "audio.hop_length", "must be positive")
        require(0 < self.win_length <= self.n_fft, "audio.win_length", "must be in (0, n_fft]")
        require((self.n_fft - self.hop_length) % 2 == 0, "audio.hop_length",
                 "n_fft - hop_length must be even (the analysis pads (n_fft - hop) / 2 per side)")
        require(self.n_mels > 0, "audio.n_mels", "must be positive")
        require(0 <= self.fmin < self.fmax_hz, "audio.fmin", "must be in [0, fmax)")
        require(self.fmax_hz <= self.sample_rate / 2, "audio.fmax",
                 f"must not exceed the Nyquist frequency {self.sample_rate / 2:g} Hz")
        require(self.mel_floor > 0, "audio.mel_floor", "must be positive")
        if self.peak_normalize is not None:
            require(0 < self.peak_normalize <= 1, "audio.peak_normalize", "must be in (0, 1]")

    @property
    def fmax_hz(self) -> float:
        return self.sample_rate / 2 if self.fmax is None else float(self.fmax)

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frame_shift_s(self) -> float:
        return self.hop_length / self.sample_rate

    def num_frames(self, n_samples: int) -> int:
        """Mel frames for a wave of `n_samples` (padding (n_fft - hop)/2 per side, no centering)."""
        return n_samples // self.hop_length


# What defines a mel spectrogram's meaning: two stages (an acoustic model and a vocoder, a mel file
# and a vocoder) fit together only if these agree. Trimming and level settings do not matter here.
# fmax_hz, not fmax: None (Nyquist) and the Nyquist frequency written out mean the same.
MEL_FIELDS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax_hz", "mel_floor")


def mel_mismatches(a: AudioConfig, b: AudioConfig) -> list[tuple[str, Any, Any]]:
    """(audio.field, value in a, value in b) for each mel-defining setting that differs."""
    return [(f"audio.{name.removesuffix('_hz')}", getattr(a, name), getattr(b, name)) for name in MEL_FIELDS
            if getattr(a, name) != getattr(b, name)]


FrontendName = Literal["english", "chars", "espeak", "nvidia-chars"]


@dataclass(frozen=True)
class TextConfig:
    """Which text front end turns text into symbols, and its options."""

    frontend: FrontendName = "english"
    # english: keep CMUdict's lexical stress digits on vowels (AH0, AH1).
    stress: bool = True
    # espeak: the espeak-ng voice.
    language: str = "en-us"
    # chars: fold to lower case before splitting into characters.
    lowercase: bool = True


# none: no durations (Tacotron 2 learns its own alignment); tacotron2: durations from a trained
# Tacotron 2's attention (preprocess.teacher names its run).
AlignerName = Literal["pocketsphinx", "textgrid", "learned", "none", "tacotron2"]


@dataclass(frozen=True)
class TrainingBasics:
    """The keys everything ttskit trains has: the training runs' `train` sections
    (ttskit.skeleton.config.BaseTrainConfig) and the learned aligner's."""

    section: ClassVar[str] = "train"  # where the keys live in a config, for messages
    learning_rate: float = 1e-3
    checkpoint_every: int = 1000  # steps between checkpoints
    seed: int = 1234

    def __post_init__(self) -> None:
        require(self.learning_rate > 0, f"{self.section}.learning_rate", "must be positive")
        require(self.checkpoint_every >= 1, f"{self.section}.checkpoint_every", "must be at least 1")


@dataclass(frozen=True)
class LearnedAlignerConfig(TrainingBasics):
    """`--aligner learned`: an alignment model trained on the corpus itself (Badlani et al., 2021)."""

    section: ClassVar[str] = "preprocess.learned_aligner"
    learning_rate: float = 2e-3
    checkpoint_every: int = 100
    channels: int = 256  # text embedding and key encoder width
    attention_dim: int = 80
    # Scales the squared distance between mel and text encodings into attention logits (RAD-TTS's value).
    temperature: float = 0.0005
    # Beta-binomial prior's width (smaller: closer to the diagonal early in training).
    prior_scaling: float = 1.0
    batch_frames: int = 12000  # padded mel frames per batch
    # Binarization loss (soft attention pulled towards the MAS path) from this step on.
    binarization_start_step: int = 200
    binarization_weight: float = 1.0
    # An optional pause between two words (front ends without word boundaries) is kept as "sp"
    # when the aligner gives it at least this long; shorter, its frames join the word before.
    min_pause_s: float = 0.04
    # Stopping rule: the step budget, or no improvement of the windowed mean loss by more than
    # plateau_tolerance (relative) for `patience` windows of `window_steps` steps, after min_steps.
    max_steps: int = 4000
    min_steps: int = 500
    window_steps: int = 50
    patience: int = 4
    plateau_tolerance: float = 0.005

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.max_steps >= 1 and self.window_steps >= 1 and self.patience >= 1, "preprocess.learned_aligner",
                "max_steps, window_steps and patience must be >= 1")
        require(self.batch_frames >= 100, "preprocess.learned_aligner.batch_frames", "must be >= 100")


@dataclass(frozen=True)
class PreprocessConfig:
    """How `ttskit preprocess` turns a corpus into features and durations."""

    aligner: AlignerName = "pocketsphinx"
    # --aligner tacotron2: the Tacotron 2 run (or checkpoint) whose attention gives the durations.
    teacher: str = ""
    # yin: fast vectorised YIN (default); pyin: librosa's probabilistic YIN, slower and smoother.
    pitch_method: Literal["yin", "pyin"] = "yin"
    pitch_fmin: float = 60.0
    pitch_fmax: float = 800.0
    # phoneme: pitch and energy averaged over each symbol's frames (FastSpeech2, FastPitch); frame: per frame.
    feature_level: Literal["phoneme", "frame"] = "phoneme"
    min_duration_s: float = 0.5
    max_duration_s: float = 20.0
    # A non-pause phoneme longer than this, or a speaking rate outside the range, means a bad alignment.
    max_phone_s: float = 0.5
    min_phones_per_s: float = 4.0
    max_phones_per_s: float = 30.0
    # Trailing silence kept after a sentence-final . ? ! (the rest is cut, as is leading silence).
    max_trailing_pause_s: float = 0.15
    val_fraction: float = 0.05
    val_max: int = 100
    learned_aligner: LearnedAlignerConfig = field(default_factory=LearnedAlignerConfig)

    def __post_init__(self) -> None:
        require(0 < self.pitch_fmin < self.pitch_fmax, "preprocess.pitch_fmin", "must be in (0, pitch_fmax)")
        require(0 <= self.min_duration_s < self.max_duration_s, "preprocess.min_duration_s",
                 "must be in [0, max_duration_s)")
        require(0 <= self.val_fraction < 1, "preprocess.val_fraction", "must be in [0, 1)")
        require((self.aligner == "tacotron2") == bool(self.teacher), "preprocess.teacher",
                "--aligner tacotron2 needs --teacher RUN (a trained Tacotron 2), and --teacher needs --aligner tacotron2")
        require(self.aligner != "none" or self.feature_level == "frame", "preprocess.feature_level",
                "phoneme-level pitch and energy are averaged over durations, which --aligner none does not make; "
                "use --level frame")


@dataclass(frozen=True)
class Config:
    """Everything a stage needs; later stages add their sections here."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)


def require(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {problem}")


T = TypeVar("T")


def config_from_dict(cls: type[T], data: Mapping[str, Any], *, source: str = "<dict>",
                     prefix: str = "") -> T:
    """Build dataclass `cls` from `data`, refusing unknown keys and wrong types.

    Missing keys take their defaults. Errors name the dotted key path and `source`.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {prefix or 'top level'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"{source}: unknown key {where}{unknown[0]!s} "
                          f"(known keys{' in ' + prefix if prefix else ''}: {', '.join(fields)})")
    values = {}
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else name
        values[name] = _coerce(hints[name], value, path, source)
    try:
        return cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _coerce(tp: Any, value: Any, path: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, value if value is not None else {}, source=source, prefix=path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, path, source)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{source}: {path} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {path} must be a list, got {value!r}")
        args = typing.get_args(tp)
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            raise ConfigError(f"{source}: {path} must have {len(item_types)} items, got {len(value)}")
        return tuple(_coerce(t, v, f"{path}[{i}]", source) for i, (t, v) in enumerate(zip(item_types, value)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {path} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {path} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 3e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {path} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {path} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{source}: {path} has an unsupported type {tp!r}")  # a bug in a config class


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists), ready for YAML, JSON or a checkpoint."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def differences(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, old value, new value) for everything that differs between two plain values
    (nested dicts and lists, as configs, vocabularies and checkpoints hold them)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new))
                for d in differences(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))]
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [(f"{path} length" if path else "length", len(old), len(new))]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [(path, old, new)]


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn `["audio.hop_length=200", "text.frontend=chars"]` into a nested dict.

    Values are parsed as YAML scalars, so `true`, `3`, `2.5e-4`, `null` and `[1, 2]` work.
    """
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({err})") from None
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is set to a value and used as a section")
            node = child
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


C = TypeVar("C")


def load_config(path: Path | str | None = None, overrides: list[str] | tuple[str, ...] = (),
                cls: type[C] = Config, base: Any = None) -> C:  # type: ignore[assignment]
    """Defaults (or the config object `base`, e.g. a preset), then the YAML file at `path`, then
    `--set` overrides."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            loaded = yaml.safe_load(read_config_text(path))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        data = loaded or {}
    if base is not None:
        data = _merge(config_to_dict(base), data)
    if overrides:
        data = _merge(data, parse_overrides(overrides))
        source = f"{source} + --set"
    return config_from_dict(cls, data, source=source)


def read_config_text(path: Path) -> str:
    """A config file's text: UTF-8, a byte-order mark tolerated; anything else is a clear error."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        utf16 = path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise ConfigError(f"{path}: not UTF-8 text ({'UTF-16, ' if utf16 else ''}byte {err.start}); "
                          "save it as UTF-8") from None


def dump_config(config: Any) -> str:
    """YAML text that `load_config` reads back into an equal object."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
