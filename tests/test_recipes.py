"""The LJSpeech and VCTK recipes run end to end (tiny settings) on small corpora in their layouts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import yaml
from test_train_acoustic import TINY as ACOUSTIC_TINY
from test_train_vocoder import TINY as VOCODER_TINY

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def lj_corpus(root: Path, source: Path, count: int) -> Path:
    (root / "wavs").mkdir(parents=True)
    lines = (source / "metadata.csv").read_text().splitlines()[:count]
    for line in lines:
        shutil.copy(source / "wavs" / f"{line.split('|')[0]}.flac", root / "wavs")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def vctk_corpus(root: Path, source: Path, per_speaker: int) -> Path:
    """VCTK 0.92's layout: wav48_silence_trimmed/SPK/SPK_NNN_mic1.flac and txt/SPK/SPK_NNN.txt."""
    lines = (source / "metadata.csv").read_text().splitlines()
    for s, speaker in enumerate(("p901", "p902")):
        (root / "wav48_silence_trimmed" / speaker).mkdir(parents=True)
        (root / "txt" / speaker).mkdir(parents=True)
        for n, line in enumerate(lines[s * per_speaker:(s + 1) * per_speaker], start=1):
            uid, text = line.split("|")[0], line.split("|")[1]
            shutil.copy(source / "wavs" / f"{uid}.flac", root / "wav48_silence_trimmed" / speaker /
                        f"{speaker}_{n:03d}_mic1.flac")
            (root / "txt" / speaker / f"{speaker}_{n:03d}.txt").write_text(text + "\n")
    return root


def run_recipe(name: str, corpus: Path, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "CORPUS": str(corpus), "WORK": str(tmp_path / "work"), "RUNS": str(tmp_path / "runs"),
           "ACOUSTIC_PRESET": "small", "ACOUSTIC_STEPS": "2", "ACOUSTIC_SET": " ".join(ACOUSTIC_TINY),
           "VOCODER_MODEL": "hifigan-v3", "VOCODER_STEPS": "2", "VOCODER_SET": " ".join(VOCODER_TINY), **extra}
    return subprocess.run(["bash", str(RECIPES / name / "run.sh")], env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("name", ["ljspeech", "vctk"])
def test_recipe_runs_end_to_end(name, tmp_path, mini_corpus):
    corpus = lj_corpus(tmp_path / "LJSpeech-1.1", mini_corpus, 8) if name == "ljspeech" \
        else vctk_corpus(tmp_path / "VCTK-Corpus-0.92", mini_corpus, 4)
    extra = {"SPEAKER": "p902"} if name == "vctk" else {}
    result = run_recipe(name, corpus, tmp_path, **extra)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wave, rate = sf.read(tmp_path / "runs" / "sample.wav")
    assert rate == 22050 and len(wave) > 0
    assert any((tmp_path / "work" / "gta").glob("*.npy"))  # the vocoder trained on GTA mels
    assert "done: listen to" in result.stdout
    scores = json.loads((tmp_path / "runs" / "eval.json").read_text())  # the eval stage scored val.jsonl
    val_ids = [json.loads(line)["id"] for line in (tmp_path / "work" / "val.jsonl").read_text().splitlines()]
    assert [row["id"] for row in scores["utterances"]] == sorted(val_ids)
    if name == "vctk":
        return
    # Rerunning continues instead of refusing to overwrite: both trainings resume.
    again = run_recipe(name, corpus, tmp_path, ACOUSTIC_STEPS="3", VOCODER_STEPS="3", **extra)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from step_00000002.pt" in again.stderr


def test_fine_tune_recipe_measures_the_curve(tmp_path, mini_corpus):
    """recipes/fine-tune on a corpus brought along: two timed segments (the second a --resume),
    each scored on held-out clips, each model scored alone after the last (DIAGNOSE=1), the
    trainings' extra options passed on, the vocoder annealed from ANNEAL_FROM within the second
    segment, and tools/fine_tune_curve.py tables and draws the result."""
    out = tmp_path / "ft"
    lj_corpus(out / "corpus", mini_corpus, 10)
    held_out = (mini_corpus / "metadata.csv").read_text().splitlines()[-3:]
    (out / "heldout" / "wavs").mkdir(parents=True)
    for line in held_out:
        shutil.copy(mini_corpus / "wavs" / f"{line.split('|')[0]}.flac", out / "heldout" / "wavs")
    (out / "heldout" / "metadata.csv").write_text("\n".join(held_out) + "\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "CLIPS": "10", "HELDOUT": "3", "CHECK_MINUTES": "0.3 0.65",
           "ANNEAL_FROM": "0.45", "ANNEAL_RATE": "2e-4", "SHARED": str(tmp_path / "no-shared"), "DIAGNOSE": "1",
           "ACOUSTIC_OPTIONS": "--set train.learning_rate=7e-4", "VOCODER_OPTIONS": "--set train.pitch_loss_weight=0.5"}
    result = subprocess.run(["bash", str(RECIPES / "fine-tune" / "run.sh"), str(out)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resuming from" in (out / "acoustic_10.log").read_text()  # the second segment continued
    vocoder_log = (out / "vocoder_10.log").read_text()
    assert "fine-tuning" in vocoder_log and "learning rate 0.001 -> 0.0002" in vocoder_log  # the anneal
    for minutes in ("0.3", "0.65"):
        scores = json.loads((out / f"eval_10_{minutes}min.json").read_text())
        assert [row["id"] for row in scores["utterances"]] == sorted(line.split("|")[0] for line in held_out)
        assert 0 <= scores["summary"]["wer"] <= 2
    assert len(list((out / "data_10" / "wavs").iterdir())) == 10  # the data amount as asked
    assert yaml.safe_load((out / "acoustic_10" / "config.yaml").read_text())["train"]["learning_rate"] == 7e-4
    assert yaml.safe_load((out / "vocoder_10" / "config.yaml").read_text())["train"]["pitch_loss_weight"] == 0.5
    for alone in ("griffin-lim", "copy"):
        assert len(json.loads((out / f"eval_10_0.65min_{alone}.json").read_text())["utterances"]) == 3

    curve = subprocess.run([sys.executable, str(RECIPES.parent / "tools" / "fine_tune_curve.py"), str(out),
                            "--plot", str(tmp_path / "curve.png")], capture_output=True, text=True, timeout=120)
    assert curve.returncode == 0, curve.stderr
    rows = [line for line in curve.stdout.splitlines() if line.startswith("| 10 clips,")]
    assert [row.split("|")[2].strip() for row in rows] == ["0.3", "0.65"]
    alone = [line.split("|")[3].strip() for line in curve.stdout.splitlines() if line.startswith("| 10 clips | 0.65 |")]
    assert alone == ["acoustic model through Griffin-Lim", "vocoder, copy-synthesis"]
    assert (tmp_path / "curve.png").stat().st_size > 10_000


# A stand-in for shared/corpus/make_corpus.py (which needs Piper and minutes per clip): the same
# options, the embedded corpus' clips as the "reader", and a log of what the recipe asked for.
STAND_IN_MAKE_CORPUS = '''
import argparse, json, sys
from pathlib import Path
import soundfile as sf
parser = argparse.ArgumentParser()
for option in ("--out", "--voices"):
    parser.add_argument(option, required=True)
parser.add_argument("--piper-python")
for option in ("--count", "--offset", "--jobs"):
    parser.add_argument(option, type=int, required=True)
parser.add_argument("--sample-rate", type=int)
args = parser.parse_args()
with open(Path(__file__).with_name("calls.jsonl"), "a") as log:
    log.write(json.dumps(vars(args)) + "\\n")
source = Path({source!r})
lines = (source / "metadata.csv").read_text().splitlines()
# Training lines read the corpus from its start, held-out lines (offset 10,000 on) from its end.
lines = lines[:args.count] if args.offset < 10000 else lines[-args.count:]
out = Path(args.out)
(out / "wavs").mkdir(parents=True, exist_ok=True)
for line in lines:
    wave, rate = sf.read(source / "wavs" / (line.split("|")[0] + ".flac"))
    sf.write(out / "wavs" / (line.split("|")[0] + ".wav"), wave, rate)
(out / "metadata.csv").write_text("\\n".join(lines) + "\\n")
'''

HARMONIC_NOISE_TINY = ["model.channels=16", "model.layers=2", "model.harmonics=20", "model.pitch_channels=8",
                       "model.pitch_layers=1", "train.segment_samples=2048", "train.batch_size=2",
                       "train.val_utterances=1"]


def test_default_voice_recipe_builds_a_voice(tmp_path, mini_corpus):
    """recipes/default-voice end to end at tiny sizes: its corpus from make_corpus.py (a stand-in
    here) within the training lines and the held-out lines, every stage (vocoder, anneal, refine,
    acoustic, teacher-forced vocoder), the three scorings, and a packed voice that speaks."""
    shared = tmp_path / "shared"
    (shared / "corpus").mkdir(parents=True)
    (shared / "corpus" / "make_corpus.py").write_text(STAND_IN_MAKE_CORPUS.format(source=str(mini_corpus)))
    out = tmp_path / "default-voice"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SHARED": str(shared), "PIPER_PYTHON": sys.executable, "TRAIN_LINES": "12", "HELDOUT": "3",
           "ACOUSTIC_STEPS": "3", "VOCODER_STEPS": "2", "ANNEAL_STEPS": "2", "REFINE_STEPS": "2", "GTA_STEPS": "2",
           "ACOUSTIC_OPTIONS": " ".join(f"--set {value}" for value in ACOUSTIC_TINY),
           "VOCODER_OPTIONS": " ".join(f"--set {value}" for value in HARMONIC_NOISE_TINY)}
    result = subprocess.run(["bash", str(RECIPES / "default-voice" / "run.sh"), str(out)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    calls = [json.loads(line) for line in (shared / "corpus" / "calls.jsonl").read_text().splitlines()]
    assert [(c["count"], c["offset"], c["voices"]) for c in calls] == [(12, 0, "piper-joe"), (3, 10000, "piper-joe")]
    assert all(c["piper_python"] == sys.executable for c in calls)
    # Each vocoder stage started from the last one's generator, the last on teacher-forced mels.
    assert any((out / "work" / "gta").glob("*.npy"))
    for stage in ("vocoder-anneal", "vocoder-refine", "vocoder-gta"):
        assert (out / stage / "checkpoints" / "generator_00000002.pt").exists(), stage
    refine = yaml.safe_load((out / "vocoder-refine" / "config.yaml").read_text())
    assert (refine["model"]["noise_fft"], refine["model"]["noise_hop"], refine["model"]["voicing_dilation"]) \
        == (512, 128, 2)
    for name in ("recordings", "copy", "voice"):
        scores = json.loads((out / f"eval_{name}.json").read_text())
        assert len(scores["utterances"]) == 3, name

    card = json.loads((out / "voice" / "voice.json").read_text())
    assert card["name"] == "joe" and set(card["scores"]) == {"recordings", "copy-synthesis", "voice"}
    assert card["synthesis"] == {"sharpen": 1.4}  # the shipped voice's, scored with it
    assert "lines 1-12 read by Piper" in card["data"] and "10,001-10,003" in card["scores_note"]
    spoken = subprocess.run([str(Path(sys.executable).parent / "ttskit"), "synth", "Hello there.", "--voice",
                             str(out / "voice"), "-o", str(tmp_path / "hello.wav"), "--device", "cpu"],
                            capture_output=True, text=True, timeout=300)
    assert spoken.returncode == 0, spoken.stderr[-3000:]
    wave, rate = sf.read(tmp_path / "hello.wav")
    assert rate == 22050 and len(wave) > 0  # three steps of training: it speaks, not well


def test_slt_voice_recipe_fine_tunes_a_voice_from_the_default(tmp_path, mini_corpus):
    """recipes/slt-voice end to end with a few steps per stage: its corpus from make_corpus.py (a
    stand-in here) by the HTS voice at 22,050 Hz within the training lines and the held-out lines,
    both models fine-tuned from the shipped voice (full size: --init), the anneal, the teacher-forced
    stage, the three scorings, and a float16 voice that speaks."""
    shared = tmp_path / "shared"
    (shared / "corpus").mkdir(parents=True)
    (shared / "corpus" / "make_corpus.py").write_text(STAND_IN_MAKE_CORPUS.format(source=str(mini_corpus)))
    out = tmp_path / "slt-voice"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SHARED": str(shared), "TRAIN_LINES": "12", "HELDOUT": "3",
           "ACOUSTIC_STEPS": "2", "VOCODER_STEPS": "2", "ANNEAL_STEPS": "2", "GTA_STEPS": "2",
           "ACOUSTIC_OPTIONS": "--set train.max_frames_per_batch=1500 --set train.val_every=1",
           "VOCODER_OPTIONS": "--set train.segment_samples=2048 --set train.batch_size=2 --set train.val_utterances=1"}
    result = subprocess.run(["bash", str(RECIPES / "slt-voice" / "run.sh"), str(out)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    calls = [json.loads(line) for line in (shared / "corpus" / "calls.jsonl").read_text().splitlines()]
    assert [(c["count"], c["offset"], c["voices"], c["sample_rate"]) for c in calls] \
        == [(12, 0, "hts-slt", 22050), (3, 10000, "hts-slt", 22050)]
    assert "fine-tuning" in (out / "acoustic.log").read_text() and "fine-tuning" in (out / "vocoder.log").read_text()
    assert any((out / "work" / "gta").glob("*.npy"))
    for stage in ("vocoder", "vocoder-anneal", "vocoder-gta"):
        assert (out / stage / "checkpoints" / "generator_00000002.pt").exists(), stage
    anneal = yaml.safe_load((out / "vocoder-anneal" / "config.yaml").read_text())
    assert anneal["train"]["learning_rate"] == 1e-4 and anneal["model"]["voicing_dilation"] == 2  # joe's settings kept
    for name in ("recordings", "copy", "voice"):
        assert len(json.loads((out / f"eval_{name}.json").read_text())["utterances"]) == 3, name

    card = json.loads((out / "voice" / "voice.json").read_text())
    assert card["name"] == "slt" and card["weights"] == "float16"
    assert set(card["scores"]) == {"recordings", "copy-synthesis", "voice"} and "lines 1-12 read by hts-slt" in card["data"]
    spoken = subprocess.run([str(Path(sys.executable).parent / "ttskit"), "synth", "Hello there.", "--voice",
                             str(out / "voice"), "-o", str(tmp_path / "hello.wav"), "--device", "cpu"],
                            capture_output=True, text=True, timeout=300)
    assert spoken.returncode == 0, spoken.stderr[-3000:]
    wave, rate = sf.read(tmp_path / "hello.wav")
    assert rate == 22050 and len(wave) > 0
