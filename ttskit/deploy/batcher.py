"""Dynamic batching for the server: sentences of requests that arrive together go through one
acoustic model call.

Each loaded voice has one `Batcher`: a worker thread that takes the oldest waiting sentence,
waits up to `max_wait_s` for more (of any request, any speaker or controls: the acoustic graph
takes them per utterance), sorts what it has by length and renders groups whose longest
sentence is at most `max_length_ratio` times their shortest (padding a 5-phoneme sentence to
120 would cost more than it saves). Results go back to the asyncio loop as futures. A sentence
whose request has gone (a client that disconnected) is dropped before it is rendered.

Admission is bounded (`admit`): at most `max_requests` requests in flight per server; more get
503 with Retry-After, so memory stays bounded whatever the load.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field

from ttskit.synthesis.synthesizer import Sentence, Synthesizer


@dataclass
class Job:
    sentence: Sentence
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class BatchStats:
    """What the batcher has done, for /health and the load benchmark."""

    batches: int = 0
    sentences: int = 0
    dropped: int = 0  # of requests that had gone
    largest_batch: int = 0
    busy_s: float = 0.0
    sizes: dict[int, int] = field(default_factory=dict)


def length_groups(jobs: list[Job], ratio: float, limit: int) -> list[list[Job]]:
    """`jobs` sorted by phoneme count, cut where a group would span more than `ratio` (longest /
    shortest) or hold more than `limit`."""
    groups: list[list[Job]] = []
    for job in sorted(jobs, key=lambda j: len(j.sentence.ids)):
        if groups and len(groups[-1]) < limit and len(job.sentence.ids) <= ratio * len(groups[-1][0].sentence.ids):
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


class Batcher:
    def __init__(self, synth: Synthesizer, max_batch: int = 16, max_wait_s: float = 0.004,
                 max_length_ratio: float = 2.0, workers: int = 1) -> None:
        self.synth, self.max_batch, self.max_wait_s, self.ratio = synth, max_batch, max_wait_s, max_length_ratio
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.stats = BatchStats()
        self.stats_lock = threading.Lock()
        # Several workers share the model (inference only reads it): on a CPU, two single-threaded
        # workers keep two cores busy where one two-threaded worker waits on the other threads of
        # the process (measured: docs/deploy.md).
        self.threads = [threading.Thread(target=self._run, name=f"batcher-{id(self):x}-{i}", daemon=True)
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def submit(self, sentences: list[Sentence]) -> list[asyncio.Future]:
        """Queue `sentences` (from the asyncio loop); each future resolves to the sentence with its audio."""
        loop = asyncio.get_running_loop()
        futures = []
        for sentence in sentences:
            future = loop.create_future()
            self.jobs.put(Job(sentence, future, loop))
            futures.append(future)
        return futures

    def close(self) -> None:
        """Stop the workers after the batches in hand; what is still queued is cancelled."""
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join(timeout=30)
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.loop.call_soon_threadsafe(_cancel, job.future)

    def _collect(self, first: Job) -> tuple[list[Job], bool]:
        """`first` and whatever else arrives within max_wait_s (up to a few batches' worth);
        True as well when the queue said stop."""
        jobs, deadline = [first], time.perf_counter() + self.max_wait_s
        while len(jobs) < 4 * self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                job = self.jobs.get(timeout=remaining) if remaining > 0 else self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self.jobs.get()
            if first is None:
                return
            jobs, stop = self._collect(first)
            live = [j for j in jobs if not j.future.done()]  # a cancelled future: its client has gone
            with self.stats_lock:
                self.stats.dropped += len(jobs) - len(live)
            for group in length_groups(live, self.ratio, self.max_batch):
                started = time.perf_counter()
                try:
                    self.synth.render([j.sentence for j in group])
                except Exception as err:  # handed to the request, which answers 500 with the message
                    for job in group:
                        job.loop.call_soon_threadsafe(_fail, job.future, err)
                    continue
                self._count(group, time.perf_counter() - started)
                for job in group:
                    job.loop.call_soon_threadsafe(_resolve, job.future, job.sentence)

    def _count(self, group: list[Job], seconds: float) -> None:
        with self.stats_lock:
            self.stats.busy_s += seconds
            self.stats.batches += 1
            self.stats.sentences += len(group)
            self.stats.largest_batch = max(self.stats.largest_batch, len(group))
            self.stats.sizes[len(group)] = self.stats.sizes.get(len(group), 0) + 1


def _resolve(future: asyncio.Future, sentence: Sentence) -> None:
    if not future.done():
        future.set_result(sentence)


def _fail(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _cancel(future: asyncio.Future) -> None:
    if not future.done():
        future.cancel()


class Ticket:
    """One admitted request; `release` may be called more than once (the stream's end and the
    response's background task both call it, so a stream that never started still leaves)."""

    def __init__(self, admission: Admission) -> None:
        self.admission, self.released = admission, False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission.active -= 1


class Admission:
    """At most `limit` requests in flight; `enter` gives None when full (the caller answers 503)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.active = limit, 0

    def enter(self) -> Ticket | None:
        if self.active >= self.limit:
            return None
        self.active += 1
        return Ticket(self)
