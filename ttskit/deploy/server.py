"""`ttskit serve`: an HTTP server that keeps voices loaded, streams sentence by sentence and
batches requests that arrive together.

    POST /v1/audio/speech   the OpenAI speech API: {model, input, voice, response_format: wav|pcm,
                            speed}; pcm is 16-bit mono at 24 kHz as OpenAI's, wav at the voice's rate
    POST /api/tts           ttskit's controls: {text, voice, speaker, speed, pitch, energy, format}
    GET  /voices            the loaded voices
    GET  /health            status, queue and batching figures
    GET  /                  a page to try it: text box, voice picker, audio player

Audio leaves as it is made: the WAV header (sizes "unknown", as `ttskit synth -o -` writes)
and each sentence's PCM as soon as it is rendered, so the first byte waits for one sentence,
not the whole text. The first sentence of a request goes to the batcher alone and the rest
after it, so they batch with each other and with other requests' sentences without delaying the
first. Requests beyond `max_requests` in flight get 503 with Retry-After; bad requests get 4xx
JSON naming the field; a client that disconnects has its remaining sentences dropped.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction
from importlib import resources
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from ttskit import __version__
from ttskit.deploy.batcher import Admission, Batcher, Ticket
from ttskit.errors import TtskitError
from ttskit.synthesis.engines import unsupported_controls
from ttskit.synthesis.joining import Joiner
from ttskit.synthesis.synthesizer import CONTROL_RANGES, Sentence, SynthesisError, Synthesizer
from ttskit.synthesis.wav_stream import pcm16, wav_header

OPENAI_PCM_RATE = 24000  # OpenAI's pcm format: 24 kHz, 16-bit signed little-endian, mono
# OpenAI's own voice names: clients send one of these; they get the server's default voice.
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")


@dataclass
class ServerLimits:
    max_chars: int = 5000  # characters of text per request
    max_body_bytes: int = 64 * 1024
    max_requests: int = 64  # in flight; more get 503
    retry_after_s: int = 1
    max_batch: int = 16
    max_wait_ms: float = 4.0
    workers: int = 1  # model workers per voice (each renders a batch at a time)


class RequestError(Exception):
    """A request the server refuses: status, the field at fault and why."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def error_body(field: str | None, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "field": field}}


class Resampler:
    """The voice's rate to another by a polyphase filter (scipy, a librosa dependency), per
    sentence: each piece ends in a faded pause, so cutting between them adds no click."""

    def __init__(self, source: int, target: int) -> None:
        ratio = Fraction(target, source)
        self.up, self.down = ratio.numerator, ratio.denominator

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return wave
        from scipy.signal import resample_poly

        return resample_poly(wave, self.up, self.down).astype(np.float32)


class VoiceService:
    """One loaded voice, its batcher and what the server says of it."""

    def __init__(self, name: str, synth: Synthesizer, limits: ServerLimits) -> None:
        self.name, self.synth = name, synth
        self.batcher = Batcher(synth, limits.max_batch, limits.max_wait_ms / 1000, workers=limits.workers)

    def describe(self) -> dict[str, Any]:
        card = self.synth.voice.card if self.synth.voice is not None else {}
        return {"name": self.name, "backend": self.synth.backend, "speakers": self.synth.speakers,
                "sample_rate": self.synth.sample_rate, "description": card.get("description", ""),
                "licence": card.get("licence", "")}

    def sentences(self, text: str, text_field: str, speaker: str | None, speed: float, pitch: float,
                  energy: float) -> tuple[list[Sentence], list[str]]:
        """The request's sentences through the voice's front end, and its notes (unknown
        characters, ...); 4xx for a speaker the voice lacks, or text with nothing to pronounce."""
        try:
            _, index = self.synth.speaker_id(speaker)
        except SynthesisError as err:
            raise RequestError(422, "speaker", str(err)) from None
        if (problem := unsupported_controls(self.synth.engine, pitch, energy)) is not None:  # Tacotron2's
            raise RequestError(422, "pitch" if pitch != 0.0 else "energy", problem)
        try:
            found = self.synth.sentences([text], speaker=index, speed=speed, pitch=pitch, energy=energy)
        except SynthesisError as err:
            raise RequestError(422, text_field, str(err)) from None
        finally:
            # The front end's notes go back with this request's answer (X-Warnings); none stay
            # behind to grow over the server's life.
            notes, self.synth.warnings = list(self.synth.warnings), []
        return found, notes


class Server:
    """The voices, limits and admission behind the routes (`create_app`)."""

    def __init__(self, voices: dict[str, Synthesizer], limits: ServerLimits | None = None) -> None:
        if not voices:
            raise ValueError("a server needs at least one voice")
        self.limits = limits or ServerLimits()
        self.voices = {name: VoiceService(name, synth, self.limits) for name, synth in voices.items()}
        self.default = next(iter(self.voices))
        self.admission = Admission(self.limits.max_requests)
        self.served = 0

    def voice(self, name: str | None, field: str = "voice") -> VoiceService:
        if name is None or name == "" or (name in OPENAI_VOICES and name not in self.voices):
            return self.voices[self.default]
        if name not in self.voices:
            raise RequestError(404, field, f"unknown voice {name!r}; this server has {', '.join(self.voices)}")
        return self.voices[name]

    async def speak(self, service: VoiceService, sentences: list[Sentence], audio_format: str, ticket: Ticket,
                    resample_to: int | None = None) -> AsyncIterator[bytes]:
        """The stream of one request: header, then each sentence's PCM as soon as it is ready.
        Leaving early (the client went away) cancels the sentences not yet rendered."""
        rate = resample_to or service.synth.sample_rate
        resample = Resampler(service.synth.sample_rate, rate)
        joiner = Joiner(service.synth.sample_rate)
        pending: list[asyncio.Future] = []
        try:
            if audio_format == "wav":
                yield wav_header(rate)
            pending = service.batcher.submit(sentences[:1])
            for position in range(len(sentences)):
                sentence = await pending[position]
                if position == 0 and len(sentences) > 1:  # the rest now: they batch without delaying the first
                    pending += service.batcher.submit(sentences[1:])
                piece = joiner.piece(sentence.audio, sentence.text, position == len(sentences) - 1)
                yield pcm16(resample(piece))
            self.served += 1
        finally:
            for future in pending:
                future.cancel()
            ticket.release()

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "voices": list(self.voices),
                "in_flight": self.admission.active, "max_requests": self.limits.max_requests, "served": self.served,
                "limits": asdict(self.limits),
                "batching": {name: vars(s.batcher.stats) | {"queued": s.batcher.jobs.qsize()}
                             for name, s in self.voices.items()}}

    def close(self) -> None:
        for service in self.voices.values():
            service.batcher.close()


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(422, key, f"{key} must be a number, got {json.dumps(value)}")
    if not low <= value <= high:
        raise RequestError(422, key, f"{key} {value} is outside {low}-{high}")
    return float(value)


def _text(body: dict[str, Any], key: str, limits: ServerLimits) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise RequestError(422, key, f"{key} must be a string of text to say" + (" (it is missing)" if value is None
                                                                                 else f", got {type(value).__name__}"))
    if not value.strip():
        raise RequestError(422, key, f"{key} is empty: nothing to say")
    if len(value) > limits.max_chars:
        raise RequestError(413, key, f"{key} has {len(value)} characters; this server takes at most {limits.max_chars}"
                                     " per request (split the text, or start it with --max-chars)")
    return value


def _optional_string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, (str, int)) or isinstance(value, bool):
        raise RequestError(422, key, f"{key} must be a string, got {json.dumps(value)}")
    return None if value is None else str(value)


def _choice(body: dict[str, Any], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = body.get(key, default) or default
    if value not in allowed:
        raise RequestError(422, key, f"{key} {json.dumps(value)} is not supported; choose one of {', '.join(allowed)}")
    return str(value)


def create_app(server: Server) -> FastAPI:
    """The FastAPI application over `server` (FastAPI and uvicorn: `pip install "ttskit[serve]"`)."""

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        server.close()  # after uvicorn has let in-flight requests finish (or cancelled them)

    app = FastAPI(title="ttskit", version=__version__, lifespan=lifespan)

    @app.exception_handler(RequestError)
    async def refused(_: Request, err: RequestError) -> JSONResponse:
        headers = {"Retry-After": str(server.limits.retry_after_s)} if err.status == 503 else None
        return JSONResponse(error_body(err.field, err.message), status_code=err.status, headers=headers)

    async def json_body(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > server.limits.max_body_bytes:
            raise RequestError(413, None, f"the body has {declared} bytes; this server takes at most "
                                          f"{server.limits.max_body_bytes}")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > server.limits.max_body_bytes:
                raise RequestError(413, None, f"the body exceeds {server.limits.max_body_bytes} bytes")
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RequestError(400, None, f"the body is not JSON ({err})") from None
        if not isinstance(body, dict):
            raise RequestError(422, None, "the body must be a JSON object")
        return body

    def stream(service: VoiceService, said: tuple[list[Sentence], list[str]], audio_format: str,
               resample_to: int | None = None) -> StreamingResponse:
        sentences, notes = said
        ticket = server.admission.enter()
        if ticket is None:
            raise RequestError(503, None, f"the server is busy ({server.limits.max_requests} requests in flight); "
                                          f"retry after {server.limits.retry_after_s} s")
        media = "audio/wav" if audio_format == "wav" else "audio/pcm"
        rate = resample_to or service.synth.sample_rate
        return StreamingResponse(server.speak(service, sentences, audio_format, ticket, resample_to), media_type=media,
                                 headers={"X-Sample-Rate": str(rate), "X-Voice": service.name,
                                          "X-Sentences": str(len(sentences)),
                                          "X-Warnings": json.dumps(notes, ensure_ascii=True)[:2000]},
                                 background=BackgroundTask(ticket.release))

    @app.post("/v1/audio/speech")
    async def openai_speech(request: Request) -> StreamingResponse:
        body = await json_body(request)
        text = _text(body, "input", server.limits)
        _optional_string(body, "model")  # tts-1, gpt-4o-mini-tts, ...: every model is this server's voice
        service = server.voice(_optional_string(body, "voice"))
        audio_format = _choice(body, "response_format", "wav", ("wav", "pcm"))
        speed = _number(body, "speed", 1.0, 0.25, 4.0)  # OpenAI's range
        said = service.sentences(text, "input", None, speed, 0.0, 1.0)
        return stream(service, said, audio_format, OPENAI_PCM_RATE if audio_format == "pcm" else None)

    @app.post("/api/tts")
    async def tts(request: Request) -> StreamingResponse:
        body = await json_body(request)
        text = _text(body, "text", server.limits)
        service = server.voice(_optional_string(body, "voice"))
        speaker = _optional_string(body, "speaker")
        controls = tuple(_number(body, key, default, *CONTROL_RANGES[key])
                         for key, default in (("speed", 1.0), ("pitch", 0.0), ("energy", 1.0)))
        audio_format = _choice(body, "format", "wav", ("wav", "pcm"))
        return stream(service, service.sentences(text, "text", speaker, *controls), audio_format)

    @app.get("/voices")
    async def voices() -> dict[str, Any]:
        return {"default": server.default, "voices": [s.describe() for s in server.voices.values()]}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return server.health()

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return resources.files("ttskit.deploy").joinpath("page.html").read_text(encoding="utf-8")

    return app


def load_voices(voices: list[str], acoustic: Any = None, vocoder: Any = None,
                backend: Literal["auto", "torch", "onnx"] = "auto", device: str | None = None) -> dict[str, Synthesizer]:
    """name -> Synthesizer for `--voice` values (shipped names or folders) and an --acoustic run."""
    from pathlib import Path

    loaded: dict[str, Synthesizer] = {}
    for wanted in voices or ([] if acoustic is not None else [None]):
        synth = Synthesizer.from_voice(wanted, device, backend=backend)
        name = synth.voice.name if synth.voice is not None else str(wanted)
        if name in loaded:
            name = Path(str(wanted)).name
        if name in loaded:
            raise TtskitError(f"two voices are called {name!r}; give each once")
        loaded[name] = synth
    if acoustic is not None:
        loaded[Path(acoustic).name] = Synthesizer.from_checkpoints(acoustic, vocoder or "griffin-lim", device)
    return loaded
