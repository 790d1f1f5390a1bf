"""`ttskit serve`: keep voices loaded behind an HTTP API (OpenAI-compatible speech, ttskit's own)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ttskit.cli.common import DeviceOption, UserError, err_console, user_errors


def worker_threads(workers: int | None, device: str | None) -> tuple[int, int]:
    """(workers, torch threads each): by default one single-threaded worker per core on a CPU
    (the threads OMP_NUM_THREADS allows, else the cores), one worker on a GPU."""
    import os

    cores = int(os.environ.get("OMP_NUM_THREADS") or 0) or len(os.sched_getaffinity(0))
    on_gpu = device is not None and device.startswith("cuda")
    if workers is None:
        workers = 1 if on_gpu else cores
    if workers < 1:
        raise UserError("--workers must be at least 1")
    return workers, max(1, cores // workers)


def serve(
    voice: Annotated[Optional[list[str]], typer.Option(
        "--voice", help="A shipped voice, a voice folder or an exported (ONNX) folder; repeat for more. "
                        "Default: the default voice.")] = None,
    acoustic: Annotated[Optional[Path], typer.Option("--acoustic", "-a", exists=True,
                                                     help="A train-acoustic run, served beside the voices.")] = None,
    vocoder: Annotated[Optional[str], typer.Option("--vocoder", "-v", help="With --acoustic: its vocoder run "
                                                                           "(default griffin-lim).")] = None,
    backend: Annotated[str, typer.Option(help="auto, torch or onnx, for voice folders that have both.")] = "auto",
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_chars: Annotated[int, typer.Option(help="Characters of text per request.")] = 5000,
    max_requests: Annotated[int, typer.Option(help="Requests in flight before 503 + Retry-After.")] = 64,
    max_batch: Annotated[int, typer.Option(help="Sentences per model call (dynamic batching).")] = 16,
    max_wait_ms: Annotated[float, typer.Option(help="How long the batcher waits for company for a sentence.")] = 4.0,
    workers: Annotated[Optional[int], typer.Option(
        help="Model workers per voice, each with cores/workers threads (default: one per core on a CPU, "
             "one on a GPU).")] = None,
    device: DeviceOption = None,
) -> None:
    """Serve voices over HTTP: POST /v1/audio/speech (OpenAI's speech API), POST /api/tts (every
    ttskit control), GET /voices, GET /health, and a page to try it at /. Audio streams sentence
    by sentence; concurrent requests are batched. `pip install "ttskit[serve]"`.

    Examples:
      ttskit serve
      ttskit serve --voice joe --voice joe-onnx --port 8080
      curl -s localhost:8000/v1/audio/speech -H 'Content-Type: application/json' \\
           -d '{"model": "tts-1", "input": "Hello there.", "voice": "alloy"}' -o hello.wav
    """
    with user_errors():
        try:
            import uvicorn

            from ttskit.deploy.server import Server, ServerLimits, create_app, load_voices
        except ImportError as err:
            raise UserError(f'ttskit serve needs FastAPI and uvicorn ({err.name} is missing): pip install '
                            '"ttskit[serve]"') from None
        if vocoder is not None and acoustic is None:
            raise UserError("--vocoder goes with --acoustic RUN; a voice brings its own vocoder")
        for name, value in (("--max-chars", max_chars), ("--max-requests", max_requests), ("--max-batch", max_batch)):
            if value < 1:
                raise UserError(f"{name} must be at least 1")
        workers, threads = worker_threads(workers, device)
        limits = ServerLimits(max_chars=max_chars, max_requests=max_requests, max_batch=max_batch,
                              max_wait_ms=max_wait_ms, workers=workers)
        import torch

        torch.set_num_threads(threads)
        with err_console.status("loading voices ..."):
            server = Server(load_voices(voice or [], acoustic, vocoder, backend, device), limits)  # type: ignore[arg-type]
        err_console.print(f"serving {', '.join(server.voices)} on http://{host}:{port}/ ({workers} worker(s) x "
                          f"{threads} thread(s); Ctrl-C or SIGTERM stops it, finishing the requests in flight)",
                          highlight=False, soft_wrap=True)
    uvicorn.run(create_app(server), host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)
