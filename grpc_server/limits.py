"""Server limits: upload sizes, frame sizes, concurrency. One place, so ServerInfo reports what is enforced."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from avatar.portrait.errors import PortraitLimits

MIN_FRAME_SIDE = 16
MAX_FRAME_SIDE = 2048
# Room for the protobuf framing and the small fields around a portrait or a frame's bytes.
MESSAGE_OVERHEAD = 64 * 1024


class LimitExceeded(Exception):
    """A request beyond a configured limit; the message says which and by how much."""

    status = "RESOURCE_EXHAUSTED"


@dataclass(frozen=True)
class ServerLimits:
    max_portrait_bytes: int = PortraitLimits().max_bytes
    max_portrait_pixels: int = PortraitLimits().max_pixels
    max_streams: int = 16
    max_frame_pixels: int = MAX_FRAME_SIDE * MAX_FRAME_SIDE
    # Applies to every message in both directions; a frame never exceeds it.
    max_message_bytes: int = 32 * 2**20
    # Creates and exports queued or running at once (each holds its input in memory while it waits).
    max_pending_jobs: int = 8
    # The same two limits for one client (its bearer token, else its address); 0 = the global limit.
    max_streams_per_client: int = 0
    max_jobs_per_client: int = 0

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0 \
                    or (value == 0 and not name.endswith("_per_client")):
                raise ValueError(f"limit {name} must be a positive integer, got {value!r}")
        if not self.max_streams_per_client:
            object.__setattr__(self, "max_streams_per_client", self.max_streams)
        if not self.max_jobs_per_client:
            object.__setattr__(self, "max_jobs_per_client", self.max_pending_jobs)
        if self.max_portrait_bytes + MESSAGE_OVERHEAD > self.max_message_bytes:
            raise ValueError(f"max_message_bytes ({self.max_message_bytes}) must exceed max_portrait_bytes "
                             f"({self.max_portrait_bytes}) by at least {MESSAGE_OVERHEAD} bytes, "
                             f"or no portrait of the allowed size could be uploaded")
        if self.max_frame_pixels < MIN_FRAME_SIDE * MIN_FRAME_SIDE:
            raise ValueError(f"max_frame_pixels must be at least {MIN_FRAME_SIDE * MIN_FRAME_SIDE}")

    def portrait_limits(self) -> PortraitLimits:
        return PortraitLimits(max_bytes=self.max_portrait_bytes, max_pixels=self.max_portrait_pixels)


class Slots:
    """A counter of concurrent uses that refuses instead of waiting (streams, pending creates)."""

    def __init__(self, capacity: int, what: str):
        self.capacity = capacity
        self._what = what
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    def acquire(self) -> None:
        with self._lock:
            if self._used >= self.capacity:
                raise LimitExceeded(f"too many concurrent {self._what} (limit {self.capacity}); try again later")
            self._used += 1

    def release(self) -> None:
        with self._lock:
            self._used -= 1

    def __enter__(self) -> Slots:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ClientSlots:
    """`Slots` per client key: one client cannot take every slot of a shared server."""

    def __init__(self, capacity: int, what: str):
        self.capacity = capacity
        self._what = what
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str) -> None:
        with self._lock:
            used = self._used.get(client, 0)
            if used >= self.capacity:
                raise LimitExceeded(f"too many concurrent {self._what} from this client (limit {self.capacity} "
                                    f"per client); try again later")
            self._used[client] = used + 1

    def release(self, client: str) -> None:
        with self._lock:
            left = self._used.get(client, 0) - 1
            if left > 0:
                self._used[client] = left
            else:
                self._used.pop(client, None)  # idle clients leave no entry behind

    def used(self, client: str) -> int:
        return self._used.get(client, 0)

