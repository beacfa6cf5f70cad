"""Creates and exports: work that takes seconds, run in a small worker pool so it never holds up streams.

A job reports progress through a callback; the caller sees the reports as a generator of Progress
whose return value is the job's result. The callback raises Cancelled once the caller is gone, which
is how a cancelled or timed-out create stops burning CPU: the work unwinds, nothing was saved yet.
"""
from __future__ import annotations

import math
import queue
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from grpc_server import torch_threads
from grpc_server.app.errors import Cancelled, ShuttingDown
from grpc_server.limits import ClientSlots, LimitExceeded, Slots

T = TypeVar("T")
ProgressFn = Callable[[str, float, str], None]
_POLL_S = 0.2


@dataclass(frozen=True)
class Progress:
    stage: str
    fraction: float  # 0..1
    message: str = ""


def progress_of(stage: str, fraction: float, message: str = "") -> Progress:
    """A Progress from what a generator reports: the fraction clamped to 0..1, NaN read as 0."""
    f = float(fraction)
    return Progress(str(stage), min(max(f, 0.0), 1.0) if not math.isnan(f) else 0.0, str(message))


def never() -> bool:
    return False


class Jobs:
    """At most `max_pending` jobs queued or running (`max_per_client` per client); `workers` run at once."""

    def __init__(self, workers: int, max_pending: int, max_per_client: int):
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="avatarforge-job")
        self.slots = Slots(max_pending, "avatar creations and exports")
        self.client_slots = ClientSlots(max_per_client, "avatar creations and exports")

    def run(self, work: Callable[[ProgressFn], T], client: str = "local",
            cancelled: Callable[[], bool] = never) -> Generator[Progress, None, T]:
        """Run `work(progress)` in the pool, yielding its progress; returns work's result.

        Refused (LimitExceeded) before it starts when the limits are reached; Cancelled as soon as
        `cancelled()` turns true (checked at every progress report and while waiting).
        """
        self.client_slots.acquire(client)
        try:
            self.slots.acquire()
        except LimitExceeded:
            self.client_slots.release(client)
            raise
        events: queue.Queue[Progress] = queue.Queue()

        def progress(stage: str, fraction: float, message: str = "") -> None:
            if cancelled():
                raise Cancelled("the call ended")
            events.put(progress_of(stage, fraction, message))

        def job() -> T:
            try:
                torch_threads.apply()
                return work(progress)
            finally:
                self.slots.release()
                self.client_slots.release(client)

        try:
            future = self._pool.submit(job)
        except RuntimeError:  # the pool was shut down
            self.slots.release()
            self.client_slots.release(client)
            raise ShuttingDown() from None
        while True:
            try:
                yield events.get(timeout=_POLL_S)
                continue
            except queue.Empty:
                pass
            if future.done() and events.empty():
                return future.result()
            if cancelled():
                raise Cancelled("the call ended")

    def close(self) -> None:
        """Queued jobs are dropped, running ones finish (their callers are gone by now)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
