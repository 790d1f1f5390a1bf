"""`ttskit serve`, started on a free loopback port and driven by a real HTTP client: every
endpoint, streaming (the first sentence arrives before the last is made), concurrent requests
batched and equal to sequential ones, overload (503 + Retry-After), bad requests (4xx JSON naming
the field, the server still up), a client that leaves mid-stream, and SIGTERM finishing the
request in flight."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
from conftest import tiny_acoustic_run
from typer.testing import CliRunner

from ttskit.cli import app
from ttskit.models.vocoder import Vocoder
from ttskit.synthesis import Synthesizer

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
from ttskit.deploy.server import Server, ServerLimits, create_app  # noqa: E402

runner = CliRunner()
HIFIGAN_TINY = ["model.upsample_initial_channel=32", "train.segment_samples=2048", "train.batch_size=2",
                "train.val_every=100", "train.checkpoint_every=1", "train.num_workers=0",
                "train.discriminator_start_step=100"]
SENTENCES = ["Cats sat on the mat.", "Dogs did not.", "Birds sang in the trees all morning long.", "Then it rained.",
             "Nobody minded much."]
LONG_TEXT = " ".join(SENTENCES)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlowVocoder(Vocoder):
    """A vocoder that takes `delay` seconds per call: sentences whose timing a test can see."""

    def __init__(self, inner: Vocoder, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.audio, self.source, self.device, self.uses_f0 = inner.audio, inner.source, inner.device, inner.uses_f0

    def __call__(self, mel, f0=None, voiced=None):
        time.sleep(self.delay)
        return self.inner(mel, f0, voiced)


@pytest.fixture(scope="module")
def runs(mini_work, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    acoustic = tiny_acoustic_run(mini_work, folder / "acoustic", 6)
    result = runner.invoke(app, ["train-vocoder", str(mini_work), "-o", str(folder / "vocoder"), "--model",
                                 "hifigan-v3", "--max-steps", "1", "--device", "cpu",
                                 *sum((["--set", v] for v in HIFIGAN_TINY), [])])
    assert result.exit_code == 0, result.output
    return acoustic, folder / "vocoder"


class Running:
    """A uvicorn server in a thread of this process, on a free port."""

    def __init__(self, server: Server) -> None:
        self.server, self.port = server, free_port()
        config = uvicorn.Config(create_app(server), host="127.0.0.1", port=self.port, log_level="warning")
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.uvicorn.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=20)


def start(runs, delay: float = 0.0, **limits) -> Running:
    acoustic, vocoder = runs
    synth = Synthesizer.from_checkpoints(acoustic, vocoder, device="cpu")
    if delay:
        synth.vocoder = SlowVocoder(synth.vocoder, delay)
    return Running(Server({"tiny": synth}, ServerLimits(**limits)))


@pytest.fixture(scope="module")
def server(runs):
    running = start(runs, max_wait_ms=30.0)
    yield running
    running.stop()


def wav_of(content: bytes) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(content), dtype="float32")


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    error = float(np.sum((reference.astype(np.float64) - other) ** 2))
    return 10 * math.log10(float(np.sum(reference.astype(np.float64) ** 2)) / max(error, 1e-30))


def test_every_endpoint(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["voices"] == ["tiny"]
        voices = client.get("/voices").json()
        assert voices["default"] == "tiny" and voices["voices"][0]["sample_rate"] == 22050
        page = client.get("/")
        assert page.status_code == 200 and "<textarea" in page.text and "/api/tts" in page.text
        # OpenAI's request shape, as its client sends it: an OpenAI voice name gets the default voice.
        speech = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Cats sat.", "voice": "alloy"})
        assert speech.status_code == 200 and speech.headers["content-type"] == "audio/wav"
        wave, rate = wav_of(speech.content)
        assert rate == 22050 and len(wave) > 0
        pcm = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Cats sat.", "voice": "alloy",
                                                    "response_format": "pcm"})
        assert pcm.headers["x-sample-rate"] == "24000"  # OpenAI's pcm: 16-bit at 24 kHz
        assert abs(len(pcm.content) / 2 - len(wave) * 24000 / 22050) <= 2
        plain = wav_of(client.post("/api/tts", json={"text": "Cats sat."}).content)[0]
        fast = wav_of(client.post("/api/tts", json={"text": "Cats sat.", "speed": 2.0, "pitch": 3.0,
                                                    "energy": 1.2, "speaker": 0}).content)[0]
        assert len(fast) == len(plain) // 2  # 6 frames a phoneme at speed 1, 3 at speed 2
        samples = sf.read(io.BytesIO(client.post("/api/tts", json={"text": "Cats sat."}).content), dtype="int16")[0]
        assert client.post("/api/tts", json={"text": "Cats sat.", "format": "pcm"}).content == samples.tobytes()


def test_front_end_notes_go_back_with_the_answer_and_do_not_pile_up(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(3):
            response = client.post("/api/tts", json={"text": "Cats sat \u2603 on the mat."})
            assert response.status_code == 200
            notes = json.loads(response.headers["x-warnings"])
            assert len(notes) == 1 and "U+2603" in notes[0]
    assert server.server.voices["tiny"].synth.warnings == []


def test_two_workers_answer_as_one_does(runs):
    running = start(runs, workers=2)
    try:
        requests = [{"text": text, "speed": speed} for text, speed in zip(SENTENCES * 2, [1.0, 1.3] * 5)]
        with httpx.Client(base_url=running.url, timeout=60) as client:
            sequential = [wav_of(client.post("/api/tts", json=r).content)[0] for r in requests]
            with ThreadPoolExecutor(len(requests)) as pool:
                together = list(pool.map(lambda r: wav_of(client.post("/api/tts", json=r).content)[0], requests))
            assert client.get("/health").json()["batching"]["tiny"]["sentences"] == 2 * len(requests)
        for alone, concurrent in zip(sequential, together):
            assert alone.shape == concurrent.shape and snr_db(alone, concurrent) >= 40
    finally:
        running.stop()


def test_the_first_sentence_arrives_before_the_last_is_made(runs):
    running = start(runs, delay=0.25)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            started = time.perf_counter()
            first = None
            with client.stream("POST", "/api/tts", json={"text": LONG_TEXT, "format": "pcm"}) as response:
                assert response.headers["x-sentences"] == str(len(SENTENCES))
                for chunk in response.iter_raw():
                    if chunk and first is None:
                        first = time.perf_counter() - started
                        rendered = client.get("/health").json()["batching"]["tiny"]["sentences"]
            total = time.perf_counter() - started
        # The first sentence took one vocoder call (0.25 s), the other four four more.
        assert first is not None and first < total - 0.5, (first, total)
        assert rendered < len(SENTENCES)
    finally:
        running.stop()


def test_concurrent_requests_are_batched_and_equal_sequential_ones(server):
    requests = [{"text": text, "speed": speed, "pitch": pitch}
                for text, speed, pitch in zip(SENTENCES * 2, [1.0, 1.2, 0.9, 1.0, 1.5] * 2, [0, 2, -2, 0, 1] * 2)]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        sequential = [wav_of(client.post("/api/tts", json=r).content)[0] for r in requests]
        before = client.get("/health").json()["batching"]["tiny"]["largest_batch"]
        with ThreadPoolExecutor(len(requests)) as pool:
            together = list(pool.map(lambda r: wav_of(client.post("/api/tts", json=r).content)[0], requests))
        largest = client.get("/health").json()["batching"]["tiny"]["largest_batch"]
    assert before == 1 and largest > 1  # requests that arrived together shared a model call
    for alone, batched in zip(sequential, together):
        assert alone.shape == batched.shape  # the same durations
        assert snr_db(alone, batched) >= 40


def test_overload_gets_503_with_retry_after_and_recovers(runs):
    running = start(runs, delay=0.4, max_requests=1)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            with client.stream("POST", "/api/tts", json={"text": LONG_TEXT}) as held:
                assert held.status_code == 200
                busy = client.post("/api/tts", json={"text": "Cats sat."})
                assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
                assert "busy" in busy.json()["error"]["message"]
                held.read()
            assert client.post("/api/tts", json={"text": "Cats sat."}).status_code == 200
    finally:
        running.stop()


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("/api/tts", {"text": ""}, 422, "text"),
    ("/api/tts", {"text": "   "}, 422, "text"),
    ("/api/tts", {}, 422, "text"),
    ("/api/tts", {"text": 5}, 422, "text"),
    ("/api/tts", {"text": "?!..."}, 422, "text"),
    ("/api/tts", {"text": "Hi.", "voice": "nobody"}, 404, "voice"),
    ("/api/tts", {"text": "Hi.", "speaker": "nobody"}, 422, "speaker"),
    ("/api/tts", {"text": "Hi.", "speed": 0}, 422, "speed"),
    ("/api/tts", {"text": "Hi.", "speed": -1.5}, 422, "speed"),
    ("/api/tts", {"text": "Hi.", "speed": "fast"}, 422, "speed"),
    ("/api/tts", {"text": "Hi.", "pitch": True}, 422, "pitch"),
    ("/api/tts", {"text": "Hi.", "format": "mp3"}, 422, "format"),
    ("/api/tts", {"text": "x" * 5001}, 413, "text"),
    ("/v1/audio/speech", {"input": "Hi.", "speed": 4.5}, 422, "speed"),
    ("/v1/audio/speech", {"input": "Hi.", "response_format": "opus"}, 422, "response_format"),
    ("/v1/audio/speech", {"text": "Hi."}, 422, "input"),
])
def test_bad_requests_get_4xx_json_naming_the_field(server, path, body, status, field):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post(path, json=body)
        assert response.status_code == status, response.text
        assert response.json()["error"]["field"] == field and response.json()["error"]["message"]
        assert client.get("/health").status_code == 200


def test_controls_a_voice_cannot_honour_are_refused(runs):
    """A Tacotron2 voice predicts no pitch or energy: its engine says so, the server answers 422."""

    class NoPitch:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, *args):
            return self.inner(*args)

        @staticmethod
        def unsupported(pitch, energy):
            return None if pitch == 0.0 and energy == 1.0 else "--pitch and --energy are not supported by tacotron2"

    running = start(runs)
    try:
        synth = running.server.voices["tiny"].synth
        synth.engine = NoPitch(synth.engine)
        with httpx.Client(base_url=running.url, timeout=30) as client:
            refused = client.post("/api/tts", json={"text": "Cats sat.", "pitch": 2.0})
            assert refused.status_code == 422 and refused.json()["error"]["field"] == "pitch"
            assert "tacotron2" in refused.json()["error"]["message"]
            assert client.post("/api/tts", json={"text": "Cats sat.", "speed": 1.5}).status_code == 200
    finally:
        running.stop()


def test_bodies_that_are_not_json_or_too_big(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/api/tts", content=b"{not json").status_code == 400
        assert client.post("/api/tts", json=["a", "list"]).status_code == 422
        huge = client.post("/api/tts", content=b'{"text": "' + b"a" * 70000 + b'"}')
        assert huge.status_code == 413 and "bytes" in huge.json()["error"]["message"]
        assert client.post("/api/tts", json={"text": "Cats sat."}).status_code == 200


def test_a_client_that_leaves_mid_stream_frees_its_work(runs):
    running = start(runs, delay=0.3)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            with client.stream("POST", "/api/tts", json={"text": LONG_TEXT * 3}) as response:
                next(response.iter_raw())  # the header, then leave
        with httpx.Client(base_url=running.url, timeout=30) as client:
            started = time.perf_counter()
            assert client.post("/api/tts", json={"text": "Cats sat."}).status_code == 200
            # Had the 15 sentences of the request that left been rendered anyway, this one would
            # have waited behind them (0.3 s each, 4.5 s in all).
            assert time.perf_counter() - started < 2.0
            deadline = time.time() + 10
            while (health := client.get("/health").json())["in_flight"] and time.time() < deadline:
                time.sleep(0.1)
        assert health["in_flight"] == 0 and health["batching"]["tiny"]["sentences"] <= 2
    finally:
        running.stop()


def test_sigterm_finishes_the_request_in_flight(runs, tmp_path):
    acoustic, vocoder = runs
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "ttskit", "serve", "--acoustic", str(acoustic), "--vocoder",
                                str(vocoder), "--port", str(port), "--device", "cpu", "--workers", "2",
                                "--max-requests", "8", "--max-chars", "9000", "--max-batch", "4",
                                "--max-wait-ms", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline and process.poll() is None, process.stdout.read().decode()
            time.sleep(0.2)
        limits = httpx.get(f"{url}/health", timeout=5).json()["limits"]  # the options took effect
        assert (limits["workers"], limits["max_requests"], limits["max_chars"], limits["max_batch"],
                limits["max_wait_ms"]) == (2, 8, 9000, 4, 2.0)
        expected = wav_of(httpx.post(f"{url}/api/tts", json={"text": LONG_TEXT * 4}, timeout=60).content)[0]
        with httpx.Client(base_url=url, timeout=60) as client:
            with client.stream("POST", "/api/tts", json={"text": LONG_TEXT * 4}) as response:
                chunks = iter(response.iter_raw())
                received = next(chunks)
                process.send_signal(signal.SIGTERM)
                received += b"".join(chunks)
        assert len(wav_of(received)[0]) == len(expected)  # the whole answer, not a cut one
        # Then it exits: uvicorn re-raises the signal once it has shut down, as a process ended by
        # SIGTERM should report it.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        printed = process.stdout.read().decode()
        assert "Traceback" not in printed and "2 worker(s)" in printed
    finally:
        if process.poll() is None:
            process.kill()


CHROMIUM = next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_the_page_in_headless_chromium(server, tmp_path):
    """The page loads the voice list by script and renders; the screenshot is kept with the
    test's files (docs/img/serve-page.png is one of the shipped voice)."""
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
              f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", f"{server.url}/"], capture_output=True, text=True, timeout=60)
    assert '<option value="tiny"' in dom.stdout, dom.stderr[-2000:]
    assert "1 voice(s) loaded" in dom.stdout
    shot = tmp_path / "page.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=900,600", f"{server.url}/"],
                   capture_output=True, timeout=60)
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert image.shape == (600, 900) and image.std() > 5  # text and controls, not a blank page


def test_serve_refuses_bad_options_before_listening(tmp_path):
    import torch

    from ttskit.cli.serve_cmd import worker_threads

    threads = torch.get_num_threads()  # serve sets the process's torch threads before loading voices
    try:
        for args, message in ((["--voice", str(tmp_path / "nobody")], "no voice"),
                              (["--workers", "0"], "--workers must be at least 1"),
                              (["--max-chars", "0"], "--max-chars must be at least 1"),
                              (["--vocoder", "griffin-lim"], "--vocoder goes with --acoustic")):
            result = runner.invoke(app, ["serve", *args, "--port", "1"])
            assert result.exit_code == 2 and message in result.output, (args, result.output)
    finally:
        torch.set_num_threads(threads)
    assert worker_threads(None, "cuda") == (1, worker_threads(1, None)[1])  # one worker on a GPU, all threads
    assert worker_threads(2, None)[0] == 2 and worker_threads(2, None)[1] >= 1
