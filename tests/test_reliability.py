"""What ttskit guarantees when inputs are bad or a run is killed (docs/reliability.md): it never
replaces what was there, says what is wrong in one line, and loses nothing that was done."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_acoustic import TINY
from typer.testing import CliRunner

from ttskit.assets import MINI_LJSPEECH
from ttskit.checkpoints.store import CheckpointError, load_checkpoint, save_checkpoint
from ttskit.cli import app

runner = CliRunner()
OLD = Path(__file__).parent / "fixtures" / "checkpoints-0.1"
ACOUSTIC = str(OLD / "acoustic_step_00000002.pt")
SETS = sum((["--set", s] for s in TINY), [])


def synth(*args: str):
    return runner.invoke(app, ["synth", "Hi there.", "--acoustic", ACOUSTIC, "--device", "cpu", *args])


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


# --- outputs ---------------------------------------------------------------------------------

def test_outputs_never_replace_a_link_a_pipe_a_device_or_a_folder(tmp_path):
    target = tmp_path / "keep.wav"
    target.write_bytes(b"the user's file")
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    cases = [(link, "a symbolic link"), (fifo, "not a regular file"), (folder, "a folder")]
    if os.geteuid() == 0:  # a character device like /dev/null, made here, never the real one
        device = tmp_path / "null.wav"
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        cases.append((device, "not a regular file"))
    for path, what in cases:
        before = path.lstat()
        one_line_error(synth("-o", str(path)), str(path), what)
        after = path.lstat()
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino), path  # the same node, untouched
    assert link.is_symlink() and target.read_bytes() == b"the user's file"


def test_an_unwritable_output_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("the user's notes")
    one_line_error(synth("-o", str(blocker / "out.wav")), "is not a folder")
    one_line_error(synth("-o", str(tmp_path / "out.mp3")), "ending in .wav")
    # vocode: an existing non-wav file is neither replaced nor a traceback.
    one_line_error(runner.invoke(app, ["vocode", str(MINI_LJSPEECH / "wavs" / "SY01-00002.flac"), "-o", str(blocker),
                                       "--vocoder", str(OLD / "vocoder_generator_00000002.pt")]), "ending in .wav")
    assert blocker.read_text() == "the user's notes"
    if os.geteuid() != 0:  # root writes into read-only folders, so only a user can be refused here
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        one_line_error(synth("-o", str(locked / "out.wav")), "permission denied")


def test_written_files_follow_the_umask_and_keep_an_existing_mode(tmp_path):
    old = os.umask(0o022)
    try:
        assert synth("-o", str(tmp_path / "new.wav")).exit_code == 0
        assert stat.S_IMODE((tmp_path / "new.wav").stat().st_mode) == 0o644
        kept = tmp_path / "kept.wav"
        kept.write_bytes(b"")
        kept.chmod(0o640)
        assert synth("-o", str(kept)).exit_code == 0
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.stat().st_size > 1000
    finally:
        os.umask(old)


def test_device_names_are_checked(mini_work, tmp_path):
    one_line_error(runner.invoke(app, ["synth", "Hi.", "--acoustic", ACOUSTIC, "--device", "tpu", "-o",
                                       str(tmp_path / "a.wav")]), "choose cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        one_line_error(runner.invoke(app, ["synth", "Hi.", "--acoustic", ACOUSTIC, "--device", "cuda", "-o",
                                           str(tmp_path / "a.wav")]), "0 CUDA device(s) are visible")
    run = tmp_path / "run"
    one_line_error(runner.invoke(app, ["train-acoustic", str(mini_work), "-o", str(run), "--device", "tpu"]), "tpu")
    assert not run.exists()


def test_vocoding_a_folder_skips_a_bad_file_and_says_so(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(MINI_LJSPEECH / "wavs" / "SY01-00002.flac", inputs / "good.flac")
    (inputs / "broken.wav").write_bytes(b"RIFF junk")
    result = runner.invoke(app, ["vocode", str(inputs), "-o", str(tmp_path / "out"), "--vocoder",
                                 str(OLD / "vocoder_generator_00000002.pt"), "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert (tmp_path / "out" / "good.wav").is_file() and not (tmp_path / "out" / "broken.wav").exists()
    assert "broken.wav" in result.stderr and "1 of 2" in result.stderr


# --- checkpoints -----------------------------------------------------------------------------

def _overwrite_inside_largest_tensor(path: Path) -> None:
    """4 KB of other bytes in the middle of the biggest tensor record: the zip still opens."""
    with zipfile.ZipFile(path) as bundle:
        info = max(bundle.infolist(), key=lambda i: i.file_size)
    with open(path, "r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_length, extra_length = np.frombuffer(handle.read(4), dtype="<u2")
        start = info.header_offset + 30 + int(name_length) + int(extra_length)
        handle.seek(start + info.file_size // 2 - 2048)
        handle.write(np.random.default_rng(0).bytes(4096))


def _tiny_run(mini_work, run: Path, steps: int, *extra: str):
    return runner.invoke(app, ["train-acoustic", str(mini_work), "-o", str(run), "--max-steps", str(steps),
                               "--device", "cpu", *SETS, "--set", "train.checkpoint_every=2", *extra])


def test_a_damaged_checkpoint_is_named_and_resume_falls_back_to_an_intact_one(mini_work, tmp_path):
    run = tmp_path / "run"
    assert _tiny_run(mini_work, run, 4).exit_code == 0
    newest = run / "checkpoints" / "step_00000004.pt"
    _overwrite_inside_largest_tensor(newest)
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(newest)
    one_line_error(runner.invoke(app, ["synth", "Hi.", "--acoustic", str(newest), "-o", str(tmp_path / "x.wav")]),
                   "step_00000004.pt", "damaged")
    result = _tiny_run(mini_work, run, 6, "--resume")
    assert result.exit_code == 0, result.output
    assert "step_00000004.pt: damaged" in result.stderr and "resuming from step_00000002.pt" in result.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"loss"' in line]
    assert steps == [1, 2, 3, 4, 5, 6]  # 3 and 4 once each: the run went on from step 2
    assert load_checkpoint(run / "checkpoints" / "step_00000006.pt")["step"] == 6


def test_non_finite_weights_stop_the_run_with_a_reason_and_are_never_saved(mini_work, tmp_path):
    run = tmp_path / "run"
    assert _tiny_run(mini_work, run, 2).exit_code == 0
    path = run / "checkpoints" / "step_00000002.pt"
    state = load_checkpoint(path)
    for tensor in state["model"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    save_checkpoint(path, state)  # intact file, broken weights: what the NaN guard must not spread
    one_line_error(runner.invoke(app, ["synth", "Hi.", "--acoustic", str(path), "-o", str(tmp_path / "x.wav")]),
                   "step_00000002.pt: its weights hold NaN")
    result = _tiny_run(mini_work, run, 6, "--resume", "--set", "train.nan_patience=2")
    one_line_error(result, "non-finite steps in a row again right after going back to step_00000002.pt")
    assert "non-finite loss or gradient, step skipped" in result.stderr  # on the console, not only in the log
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*.pt")) == ["step_00000002.pt"]


def test_a_fresh_start_clears_a_failed_attempt_and_stale_temp_files(mini_work, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stale = run / "checkpoints" / ".step_00000002.pt.x1y2.tmp.pt"
    stale.write_bytes(b"half a checkpoint")
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 99.0}\n{"step": 2, "loss": 98.0}\n')
    assert _tiny_run(mini_work, run, 2).exit_code == 0
    assert not stale.exists()
    losses = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert [m["step"] for m in losses] == [1, 2] and all(m["loss"] < 90 for m in losses)


def test_resume_applies_a_new_learning_rate_and_refuses_what_it_cannot_honour(mini_work, tmp_path):
    run = tmp_path / "run"
    assert _tiny_run(mini_work, run, 2).exit_code == 0
    result = _tiny_run(mini_work, run, 4, "--resume", "--set", "train.learning_rate=0.01")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("event", "").startswith("learning rate 0.002 -> 0.01") for r in records)
    warmup = 10  # TINY's train.warmup_steps
    assert [round(r["lr"], 8) for r in records if "loss" in r and r["step"] > 2] == \
        [round(0.01 * s / warmup, 8) for s in (3, 4)]
    stored = load_checkpoint(run / "checkpoints" / "step_00000004.pt")["run_config"]["train"]["learning_rate"]
    assert stored == 0.01  # config.yaml and the state agree
    one_line_error(_tiny_run(mini_work, run, 6, "--resume", "--set", "train.seed=7"),
                   "train.seed cannot change when resuming")
    # A preset named on resume must be the run's own model (with the same --set, TINY's sizes are).
    one_line_error(runner.invoke(app, ["train-acoustic", str(mini_work), "-o", str(run), "--resume", "--preset",
                                       "base", "--max-steps", "6"]), "another model", "model.conv_filter")


def test_training_names_a_missing_or_truncated_feature_file_and_preprocess_remakes_it(mini_work, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(mini_work, work)
    rows = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    (work / "mel" / f"{rows[0]['id']}.npy").unlink()
    truncated = work / "pitch" / f"{rows[1]['id']}.npy"
    truncated.write_bytes(truncated.read_bytes()[:100])
    result = runner.invoke(app, ["train-acoustic", str(work), "-o", str(tmp_path / "run"), "--max-steps", "1", *SETS])
    one_line_error(result, "missing or damaged", "2 utterance(s)")
    assert not (tmp_path / "run").exists()
    corpus = tmp_path / "corpus"
    (corpus / "wavs").mkdir(parents=True)
    lines = {line.split("|")[0]: line for line in (MINI_LJSPEECH / "metadata.csv").read_text().splitlines()}
    ids = [json.loads(p.read_text())["id"] for p in sorted((work / "meta").glob("*.json"))]
    for uid in ids:
        shutil.copy(MINI_LJSPEECH / "wavs" / f"{uid}.flac", corpus / "wavs")
    (corpus / "metadata.csv").write_text("".join(lines[uid] + "\n" for uid in ids))
    again = runner.invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(work), "-j", "1"])
    assert again.exit_code == 0, again.output
    assert "re-made 2 utterance(s)" in again.stderr
    assert np.load(truncated).shape == np.load(mini_work / "pitch" / truncated.name).shape


# --- configs and corpora ---------------------------------------------------------------------

def test_config_files_are_utf8_with_a_bom_tolerated(mini_work, tmp_path):
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbftrain:\n  keep_last: 2\n")
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_text("train:\n  keep_last: 2\n", encoding="utf-16")
    one_line_error(runner.invoke(app, ["train-acoustic", str(mini_work), "-o", str(tmp_path / "r"), "--config",
                                       str(utf16)]), "utf16.yaml: not UTF-8 text (UTF-16")
    result = runner.invoke(app, ["train-acoustic", str(mini_work), "-o", str(tmp_path / "r"), "--config", str(bom),
                                 "--max-steps", "1", *SETS])
    assert result.exit_code == 0, result.output
    assert "keep_last: 2" in (tmp_path / "r" / "config.yaml").read_text()


def test_metadata_with_a_bom_a_latin1_line_and_unsafe_ids(tmp_path):
    corpus = tmp_path / "lj"
    (corpus / "wavs").mkdir(parents=True)
    rows = (MINI_LJSPEECH / "metadata.csv").read_text(encoding="utf-8").splitlines()[:3]
    for row in rows:
        shutil.copy(MINI_LJSPEECH / "wavs" / f"{row.split('|')[0]}.flac", corpus / "wavs")
    outside = tmp_path / "secret.flac"
    shutil.copy(MINI_LJSPEECH / "wavs" / f"{rows[0].split('|')[0]}.flac", outside)
    lines = [b"\xef\xbb\xbf" + rows[0].encode(), rows[1].encode(), "caf\u00e9|Caf\u00e9 au lait.".encode("latin-1"),
             f"../secret|{rows[2].split('|', 1)[1]}".encode(), rows[2].encode()]
    (corpus / "metadata.csv").write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "w"
    result = runner.invoke(app, ["preprocess", "ljspeech", str(corpus), "-o", str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    reasons = {s["id"]: s["reason"] for s in report["skipped"]}
    assert rows[0].split("|")[0] not in reasons  # the first clip is not lost to the BOM
    assert reasons["metadata.csv:3"] == "line 3 of metadata.csv is not UTF-8 text (save the file as UTF-8)"
    assert "path separator or '..'" in reasons["metadata.csv:4"]
    assert report["counts"]["ok"] + len(reasons) == 5


def test_list_paths_stay_inside_the_list_folder(tmp_path):
    from ttskit.data.corpora import BadEntry, read_list

    (tmp_path / "c").mkdir()
    listing = tmp_path / "c" / "list.txt"
    listing.write_text("../x.wav|Outside.\n/etc/passwd|Absolute.\nin.wav|Inside.\n")
    entries = list(read_list(listing))
    assert [type(e).__name__ for e in entries] == ["BadEntry", "BadEntry", "Utterance"]
    assert all("outside" in e.reason for e in entries if isinstance(e, BadEntry))


# --- download --------------------------------------------------------------------------------

def _archive(tmp_path: Path, name: str = "LJSpeech-1.1") -> tuple[Path, str]:
    import hashlib
    import tarfile

    source = tmp_path / "src" / name
    source.mkdir(parents=True)
    (source / "metadata.csv").write_text("a|b|c\n")
    archive = tmp_path / "LJSpeech-1.1.tar.bz2"
    with tarfile.open(archive, "w:bz2") as bundle:
        bundle.add(source, arcname=name)
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_download_never_deletes_a_folder_it_did_not_make(tmp_path):
    archive, digest = _archive(tmp_path)
    mine = tmp_path / "data" / "LJSpeech-1.1"
    mine.mkdir(parents=True)
    (mine / "my_notes.txt").write_text("keep me")
    result = runner.invoke(app, ["download", "ljspeech", "-o", str(tmp_path / "data"), "--url",
                                 archive.as_uri(), "--sha256", digest])
    one_line_error(result, "already exists and was not made by `ttskit download`")
    assert (mine / "my_notes.txt").read_text() == "keep me"
    one_line_error(runner.invoke(app, ["download", "ljspeech", "-o", str(tmp_path / "d2"), "--url", "notaurl",
                                       "--sha256", digest]), "'notaurl': not a URL")


def test_a_refused_archive_leaves_nothing_behind(tmp_path):
    import hashlib

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("LJSpeech-1.1/metadata.csv", "a|b|c\n")
        bundle.writestr("../escape.txt", "out")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    data = tmp_path / "data"
    one_line_error(runner.invoke(app, ["download", "ljspeech", "-o", str(data), "--url", archive.as_uri(),
                                       "--sha256", digest]), "refuses to extract")
    assert not any(p.name.startswith(".extracting") for p in data.iterdir())
    assert not (tmp_path / "escape.txt").exists()


# --- processes -------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc (Linux)")
def test_preprocess_workers_exit_when_their_parent_is_killed(tmp_path):
    parent = subprocess.Popen([sys.executable, "-m", "ttskit", "preprocess", "ljspeech", str(MINI_LJSPEECH), "-o",
                               str(tmp_path / "w"), "-j", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline and not (tmp_path / "w" / "meta").is_dir():
            time.sleep(0.2)
        # The pool's workers and multiprocessing's resource tracker.
        workers = [p for p in _children(parent.pid) if "multiprocessing" in
                   (Path("/proc") / str(p) / "cmdline").read_bytes().decode(errors="replace")]
        assert len(workers) >= 2, "the pool's workers should be running by now"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), "orphaned preprocess workers are still running"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_an_output_folder_is_judged_by_the_files_written_into_it(tmp_path):
    from ttskit.audio.io import OutputError, check_output_folder

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "output.wav").symlink_to(tmp_path / "elsewhere.wav")  # not among this run's outputs
    check_output_folder(folder)
    check_output_folder(tmp_path / "new" / "deeper")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(OutputError, match="not a folder"):
        check_output_folder(tmp_path / "file" / "sub")
