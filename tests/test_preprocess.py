from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ttskit.align.base import TimedSymbol, attach_pauses, to_frames
from ttskit.align.features import symbol_average
from ttskit.align.pocketsphinx_aligner import _merge_single_phone_words
from ttskit.align.textgrid import read_textgrid
from ttskit.assets import MINI_LJSPEECH
from ttskit.cli import app
from ttskit.config import AudioConfig, Config, load_config
from ttskit.data.preprocess import PreprocessError, Shard, merge, run_preprocess
from ttskit.work import read_jsonl

runner = CliRunner()
# Clips the aligner handles, chosen for variety: a question, commas, numbers, a one-phone word.
CLIPS = ["SY01-00000", "SY01-00001", "SY01-00002", "SY01-00005", "SY01-00006", "SY01-00009", "SY01-00061",
         "SY01-00078"]


def mini_texts() -> dict[str, str]:
    rows = (line.split("|") for line in (MINI_LJSPEECH / "metadata.csv").read_text().splitlines())
    return {row[0]: row[1] for row in rows}


def make_ljspeech(root: Path, clips: list[str] = CLIPS) -> Path:
    (root / "wavs").mkdir(parents=True)
    texts = mini_texts()
    for clip in clips:
        shutil.copy(MINI_LJSPEECH / "wavs" / f"{clip}.flac", root / "wavs" / f"{clip}.flac")
    (root / "metadata.csv").write_text("".join(f"{c}|{texts[c]}|{texts[c]}\n" for c in clips))
    return root


@pytest.fixture(scope="module")
def work(mini_work) -> Path:
    return mini_work


def test_work_folder_is_complete_and_self_describing(work):
    for name in ("config.yaml", "vocab.json", "speakers.json", "stats.json", "train.jsonl", "val.jsonl",
                 "report.md", "report.json", "report/pitch.png", "report/phoneme_durations.png"):
        assert (work / name).is_file(), name
    rows = read_jsonl(work / "train.jsonl") + read_jsonl(work / "val.jsonl")
    assert len(rows) == len(CLIPS) and len(read_jsonl(work / "val.jsonl")) == 1
    assert json.loads((work / "speakers.json").read_text()) == {"ljspeech": 0}
    assert load_config(work / "config.yaml") == Config()


def test_durations_sum_to_mel_frames_and_shapes_agree(work):
    vocab = json.loads((work / "vocab.json").read_text())["symbols"]
    for row in read_jsonl(work / "train.jsonl") + read_jsonl(work / "val.jsonl"):
        mel = np.load(work / "mel" / f"{row['id']}.npy")
        durations = np.load(work / "duration" / f"{row['id']}.npy")
        pitch = np.load(work / "pitch" / f"{row['id']}.npy")
        energy = np.load(work / "energy" / f"{row['id']}.npy")
        wave, rate = sf.read(str(work / row["wav"]))
        assert mel.shape == (80, row["n_frames"]) and mel.dtype == np.float32
        assert durations.sum() == row["n_frames"] == len(wave) // 256 and rate == 22050
        assert len(durations) == len(pitch) == len(energy) == len(row["phonemes"])  # phoneme level
        assert set(row["phonemes"]) <= set(vocab)
        assert (pitch > 50).all() and (pitch < 500).all() and (energy >= 0).all()
        speech = [d for s, d in zip(row["phonemes"], durations) if s not in ("sp", ".", "?", "!", "sil")]
        assert min(speech) >= 1  # the aligner gives every phone at least its 30 ms


def test_stats_match_the_arrays(work):
    stats = json.loads((work / "stats.json").read_text())
    values = []
    for row in read_jsonl(work / "train.jsonl") + read_jsonl(work / "val.jsonl"):
        durations = np.load(work / "duration" / f"{row['id']}.npy")
        values.append(np.load(work / "pitch" / f"{row['id']}.npy")[durations > 0])
    values = np.concatenate(values)
    assert stats["pitch"]["per_speaker"]["ljspeech"]["mean"] == pytest.approx(values.mean(), rel=1e-5)
    assert stats["pitch"]["per_speaker"]["ljspeech"]["std"] == pytest.approx(values.std(), rel=1e-4)
    assert stats["pitch"]["normalized_min"] < 0 < stats["pitch"]["normalized_max"]
    assert stats["feature_level"] == "phoneme"


def test_punctuation_pauses_get_measured_silence(work):
    rows = {r["id"]: r for r in read_jsonl(work / "train.jsonl") + read_jsonl(work / "val.jsonl")}
    row = rows["SY01-00001"]  # "Q: What's the difference ...?" has a colon pause and ends in ?
    durations = np.load(work / "duration" / "SY01-00001.npy")
    assert row["phonemes"][-1] == "?"
    pause = row["phonemes"].index("sp")
    assert durations[pause] > 5  # festival pauses after "Q:" for well over 60 ms


def test_resume_skips_finished_utterances(work, tmp_path):
    copy = tmp_path / "w"
    shutil.copytree(work, copy)
    for name in ("SY01-00002", "SY01-00005"):  # as if the run had been killed before these
        (copy / "meta" / f"{name}.json").unlink()
    (copy / "mel" / ".SY01-00002.npy.x.tmp.npy").write_bytes(b"half")  # a killed writer's leftover
    corpus = make_ljspeech(tmp_path / "lj")
    summary = run_preprocess("ljspeech", corpus, copy, Config(), jobs=1)
    assert (summary.processed, summary.resumed, summary.ok) == (2, len(CLIPS) - 2, len(CLIPS))
    assert not list((copy / "mel").glob(".*"))
    for kind in ("mel", "duration"):
        assert np.array_equal(np.load(copy / kind / "SY01-00002.npy"), np.load(work / kind / "SY01-00002.npy"))
    assert (copy / "train.jsonl").read_text() == (work / "train.jsonl").read_text()


def test_resume_after_a_real_kill(tmp_path):
    corpus = make_ljspeech(tmp_path / "lj")
    out = tmp_path / "w"
    command = [sys.executable, "-m", "ttskit", "preprocess", "ljspeech", str(corpus), "-o", str(out), "-j", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "meta").glob("*.json")) if (out / "meta").is_dir() else []) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = {p.stem for p in (out / "meta").glob("*.json")}
    assert 2 <= len(done_before) < len(CLIPS)
    # Every finished utterance has all of its files; nothing partial has a final name.
    for uid in done_before:
        meta = json.loads((out / "meta" / f"{uid}.json").read_text())
        if meta["status"] == "ok":
            assert all((out / kind / f"{uid}.npy").is_file() for kind in ("mel", "pitch", "energy", "duration"))
    result = runner.invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    assert f"resuming: {len(done_before)} of {len(CLIPS)}" in result.stderr
    assert len(read_jsonl(out / "train.jsonl")) + len(read_jsonl(out / "val.jsonl")) == len(CLIPS)


def test_shards_then_merge_equal_a_single_run(work, tmp_path):
    corpus = make_ljspeech(tmp_path / "lj")
    out = tmp_path / "w"
    for index in (1, 0):
        result = runner.invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(out), "-j", "1",
                                     "--shard", f"{index}/2"])
        assert result.exit_code == 0, result.output
        if index == 1:
            assert not (out / "train.jsonl").exists()
            with pytest.raises(PreprocessError, match=r"shards \[0\] of 2"):
                merge(out)
    result = runner.invoke(app, ["preprocess", "merge", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("train.jsonl", "val.jsonl", "stats.json", "vocab.json", "speakers.json"):
        assert (out / name).read_text() == (work / name).read_text(), name
    for uid in CLIPS:
        assert np.array_equal(np.load(out / "mel" / f"{uid}.npy"), np.load(work / "mel" / f"{uid}.npy"))


def test_parallel_jobs_give_the_same_result(work, tmp_path):
    corpus = make_ljspeech(tmp_path / "lj", CLIPS[:4])
    out = tmp_path / "w"
    run_preprocess("ljspeech", corpus, out, Config(), jobs=2)
    for uid in CLIPS[:4]:
        for kind in ("mel", "pitch", "energy", "duration"):
            assert np.array_equal(np.load(out / kind / f"{uid}.npy"), np.load(work / kind / f"{uid}.npy"))


def test_bad_inputs_are_skipped_with_reasons(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    good = MINI_LJSPEECH / "wavs" / "SY01-00002.flac"
    wave, rate = sf.read(str(good), dtype="float32")
    shutil.copy(good, root / "good.flac")
    (root / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    sf.write(str(root / "empty.wav"), np.zeros(0, dtype=np.float32), rate)
    sf.write(str(root / "silent.wav"), np.zeros(rate * 2, dtype=np.float32), rate)
    sf.write(str(root / "short.wav"), wave[:rate // 5], rate)
    sf.write(str(root / "stereo48k.wav"), np.stack([wave, wave], 1).repeat(2, axis=0), rate * 2)
    sf.write(str(root / "mismatch.wav"), wave, rate)
    listing = root / "list.txt"
    listing.write_text("\n".join([
        "good.flac|You are lost in the swamps of despair \u2603.",
        "missing.wav|This file is not there.",
        "corrupt.wav|A broken file.",
        "empty.wav|No samples at all.",
        "silent.wav|Only silence here.",
        "short.wav|Far too short.",
        "good.flac|spk2|",
        "stereo48k.wav|spk3|You are lost in the swamps of despair.",
        "mismatch.wav|spk4|The quick brown fox jumps over the lazy dog while seven wizards quietly hex the jukebox "
        "near the old harbour wall at midnight.",
        "too|many|fields|here",
    ]) + "\n")
    out = tmp_path / "w"
    result = runner.invoke(app, ["preprocess", "list", str(listing), "-o", str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    reasons = {s["id"]: s["reason"] for s in report["skipped"]}
    assert "file not found" in reasons["missing"] and "missing.wav" in reasons["missing"]
    assert "cannot be read as audio" in reasons["corrupt"]
    assert "contains no samples" in reasons["empty"]
    assert reasons["silent"] == "audio is silent"
    assert "outside [0.5, 20.0] s" in reasons["short"]
    assert reasons["spk2_good"] == "empty transcript"
    assert "alignment rejected" in reasons["spk4_mismatch"]
    assert "expected `audio_path|text`" in reasons["list.txt:10"]
    assert report["counts"] == {"total": 10, "ok": 2, "skipped": 8}
    assert any("U+2603" in w for w in report["warnings"])  # unknown character: kept, warned
    # The 48 kHz stereo copy becomes the same 22.05 kHz mono speech.
    assert abs(np.load(out / "mel" / "spk3_stereo48k.npy").shape[1] - np.load(out / "mel" / "good.npy").shape[1]) <= 2
    assert "Skipped" in (out / "report.md").read_text()


def test_nothing_usable_is_an_error(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "list.txt").write_text("missing.wav|Nothing here.\n")
    result = runner.invoke(app, ["preprocess", "list", str(root / "list.txt"), "-o", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "no usable utterances" in result.stderr and "file not found" in result.stderr


def test_vctk_layout_with_two_speakers(tmp_path):
    root = tmp_path / "vctk"
    texts = mini_texts()
    for speaker, clips in (("p225", CLIPS[:2]), ("p226", CLIPS[2:4])):
        (root / "wav48" / speaker).mkdir(parents=True)
        (root / "txt" / speaker).mkdir(parents=True)
        for n, clip in enumerate(clips, 1):
            shutil.copy(MINI_LJSPEECH / "wavs" / f"{clip}.flac", root / "wav48" / speaker / f"{speaker}_{n:03d}_mic1.flac")
            (root / "txt" / speaker / f"{speaker}_{n:03d}.txt").write_text(texts[clip] + "\n")
    shutil.copy(MINI_LJSPEECH / "wavs" / f"{CLIPS[5]}.flac", root / "wav48" / "p226" / "p226_003_mic1.flac")
    (root / "txt" / "p226" / "p226_003.txt").write_bytes(b"caf\xe9 in Latin-1, not UTF-8\n")
    shutil.copy(MINI_LJSPEECH / "wavs" / f"{CLIPS[6]}.flac", root / "wav48" / "p226" / "p226_004_mic1.flac")
    out = tmp_path / "w"
    result = runner.invoke(app, ["preprocess", "vctk", str(root), "-o", str(out), "-j", "1", "--level", "frame"])
    assert result.exit_code == 0, result.output
    reasons = {s["id"]: s["reason"] for s in json.loads((out / "report.json").read_text())["skipped"]}
    assert "cannot be read" in reasons["p226_003"] and "p226_003.txt" in reasons["p226_003"]
    assert "no transcript" in reasons["p226_004"]
    assert json.loads((out / "speakers.json").read_text()) == {"p225": 0, "p226": 1}
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats["pitch"]["per_speaker"]) == {"p225", "p226"} and stats["feature_level"] == "frame"
    row = read_jsonl(out / "train.jsonl")[0]
    assert len(np.load(out / "pitch" / f"{row['id']}.npy")) == row["n_frames"]  # frame level


def write_textgrid(path: Path, intervals: list[tuple[float, float, str]], short: bool = False) -> None:
    end = intervals[-1][1]
    if short:
        lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "0", str(end), "<exists>", "1",
                 '"IntervalTier"', '"phones"', "0", str(end), str(len(intervals))]
        for start, stop, label in intervals:
            lines += [str(start), str(stop), f'"{label}"']
    else:
        lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {end}",
                 "tiers? <exists>", "size = 2", "item []:", "    item [1]:", '        class = "IntervalTier"',
                 '        name = "words"', "        xmin = 0", f"        xmax = {end}",
                 "        intervals: size = 1", "        intervals [1]:", "            xmin = 0",
                 f"            xmax = {end}", '            text = "ignored"', "    item [2]:",
                 '        class = "IntervalTier"', '        name = "phones"', "        xmin = 0", f"        xmax = {end}",
                 f"        intervals: size = {len(intervals)}"]
        for n, (start, stop, label) in enumerate(intervals, 1):
            lines += [f"        intervals [{n}]:", f"            xmin = {start}", f"            xmax = {stop}",
                      f'            text = "{label}"']
    path.write_text("\n".join(lines) + "\n")


def test_textgrid_import_both_formats(tmp_path):
    intervals = [(0.0, 0.12, ""), (0.12, 0.3, "Y"), (0.3, 0.4, "UW1"), (0.4, 0.55, "sil"), (0.55, 0.7, "AA1"),
                 (0.7, 0.8, "R"), (0.8, 1.0, "sp")]
    for short in (False, True):
        path = tmp_path / f"t{short}.TextGrid"
        write_textgrid(path, intervals, short)
        tiers = read_textgrid(path)
        assert [i.label for i in tiers["phones"]] == ["", "Y", "UW1", "sil", "AA1", "R", "sp"]
        assert tiers["phones"][2].start == pytest.approx(0.3)


def test_textgrid_aligner_end_to_end(tmp_path, work):
    # TextGrids written from the pocketsphinx alignment of the same clips must give the same durations.
    corpus = make_ljspeech(tmp_path / "lj", CLIPS[:3])
    grids = tmp_path / "grids" / "ljspeech"
    grids.mkdir(parents=True)
    frame = 256 / 22050
    for row in read_jsonl(work / "train.jsonl") + read_jsonl(work / "val.jsonl"):
        if row["id"] not in CLIPS[:3]:
            continue
        durations = np.load(work / "duration" / f"{row['id']}.npy")
        ends = np.cumsum(durations) * frame
        labels = [{"sp": "sp", ".": "sil", "?": "sil", "!": "sil"}.get(s, s) for s in row["phonemes"]]
        intervals = [(float(e - d * frame), float(e), lab) for e, d, lab in zip(ends, durations, labels) if d > 0]
        write_textgrid(grids / f"{row['id']}.TextGrid", intervals)
    (grids / "SY01-00001.TextGrid").write_text(
        (grids / "SY01-00001.TextGrid").read_text().replace('"sp"', '"spn"', 1))
    out = tmp_path / "w"
    result = runner.invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(out), "-j", "1",
                                 "--aligner", "textgrid", "--textgrids", str(tmp_path / "grids")])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["ok"] == 2 and "spn" in report["skipped"][0]["reason"]
    for uid in ("SY01-00000", "SY01-00002"):
        ours = np.load(out / "duration" / f"{uid}.npy")
        theirs = np.load(work / "duration" / f"{uid}.npy")
        # Same phones and times: TextGrids hold no zero-length pauses (a comma said without a break),
        # and the sentence-end pause may keep a different share of the trailing silence.
        theirs = theirs[theirs > 0]
        assert len(ours) == len(theirs) and np.abs(ours[:-1] - theirs[:-1]).max() <= 1


def test_to_frames_has_no_drift():
    config = AudioConfig()
    # 200 phones of 10 ms (one aligner frame each) over 2 s: naive per-phone rounding would drift.
    timed = [TimedSymbol("AA1", i * 0.01, (i + 1) * 0.01) for i in range(200)]
    alignment = to_frames(timed, config, n_samples=3 * 22050)
    assert alignment.n_frames == round(2.0 * 22050 / 256) == alignment.durations.sum()
    boundaries = np.cumsum(alignment.durations)
    expected = np.round(np.arange(1, 201) * 0.01 * 22050 / 256)
    assert np.abs(boundaries - expected).max() <= 1
    assert (alignment.end_sample - alignment.start_sample) // 256 == alignment.n_frames


def test_attach_pauses_places_text_pauses_and_found_silences():
    words = [[TimedSymbol("HH", 0.0, 0.1), TimedSymbol("AY1", 0.1, 0.3)],
             [TimedSymbol("DH", 0.5, 0.6), TimedSymbol("EH1", 0.6, 0.8)],
             [TimedSymbol("Y", 0.8, 0.9), TimedSymbol("UW1", 0.9, 1.0)]]
    units = [["HH", "AY1"], ["sp"], ["DH", "EH1"], ["Y", "UW1"], ["."]]
    timed = attach_pauses(words, units, {1: (0.3, 0.5)}, trailing_silence=0.4, max_trailing_pause_s=0.15)
    assert [t.symbol for t in timed] == ["HH", "AY1", "sp", "DH", "EH1", "Y", "UW1", "."]
    assert (timed[2].start, timed[2].end) == (0.3, 0.5)
    assert timed[-1].end - timed[-1].start == pytest.approx(0.15)
    untext = attach_pauses(words, [["a"], ["b"], ["c"]], {2: (0.8, 0.85)}, 0.0, 0.15)
    assert [t.symbol for t in untext].count("sp") == 1  # a silence without punctuation becomes "sp"


def test_single_phone_words_are_merged_for_pocketsphinx():
    assert _merge_single_phone_words([["AY1"], ["L", "AH1", "V"], ["Y", "UW1"]]) == [[0, 1], [2]]
    assert _merge_single_phone_words([["S", "OW1"], ["D", "UW1"], ["AY1"]]) == [[0], [1, 2]]
    assert _merge_single_phone_words([["AH0"], ["AY1"], ["N", "OW1"]]) == [[0, 1], [2]]


def test_symbol_average_handles_zero_lengths():
    values = np.array([1, 1, 3, 3, 3, 6], dtype=np.float32)
    assert symbol_average(values, np.array([2, 0, 3, 1])).tolist() == [1.0, 3.0, 3.0, 6.0]


def test_shard_parsing():
    assert Shard.parse("2/4") == Shard(2, 4)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(PreprocessError):
            Shard.parse(bad)


def test_rerun_with_other_settings_is_refused_naming_them(work, tmp_path):
    copy = tmp_path / "w"
    shutil.copytree(work, copy)
    corpus = make_ljspeech(tmp_path / "lj")
    result = runner.invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(copy), "--level", "frame",
                                 "--set", "audio.fmax=7600"])
    assert result.exit_code == 2
    assert "audio.fmax: 8000.0 there, 7600.0 now" in result.stderr
    assert "preprocess.feature_level: 'phoneme' there, 'frame' now" in result.stderr


def test_pyin_and_peak_normalisation_through_the_cli(tmp_path):
    corpus = make_ljspeech(tmp_path / "lj", ["SY01-00002"])
    out = tmp_path / "w"
    result = runner.invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(out), "-j", "1", "--pitch", "pyin",
                                 "--set", "audio.peak_normalize=0.5"])
    assert result.exit_code == 0, result.output
    assert load_config(out / "config.yaml").preprocess.pitch_method == "pyin"
    wave, _ = sf.read(str(out / "wav" / "SY01-00002.wav"))
    assert np.max(np.abs(wave)) == pytest.approx(0.5, abs=0.01)
    pitch = np.load(out / "pitch" / "SY01-00002.npy")
    assert (pitch > 100).all() and (pitch < 300).all()


def test_preprocessing_in_this_process_leaves_its_thread_count_alone(tmp_path):
    """--jobs 1 runs the utterance processor here; the one-thread setting is for pool workers only."""
    import torch

    corpus = tmp_path / "lj"
    (corpus / "wavs").mkdir(parents=True)
    line = (MINI_LJSPEECH / "metadata.csv").read_text().splitlines()[0]
    shutil.copy(MINI_LJSPEECH / "wavs" / f"{line.split('|')[0]}.flac", corpus / "wavs")
    (corpus / "metadata.csv").write_text(line + "\n")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_preprocess("ljspeech", corpus, tmp_path / "w", Config(), jobs=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
