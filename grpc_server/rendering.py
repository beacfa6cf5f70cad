"""One frame: wait for a render slot, render with a leased renderer, encode. Shared by Render and RenderStream.

Rendering is CPU-bound, so the server renders only a few frames at a time (`slots`) and lets the rest
wait here, where waiting is cheap and cancellable.

Cores: the march kernel releases the GIL and can spread one frame over several cores. A frame gets
the machine's cores divided among the frames rendering at that moment: a lone stream uses every core
for its frames, several streams each get their share, so the cores are never oversubscribed (measured
in benchmarks.stream: one stream against four).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from grpc_server import frames, torch_threads
from grpc_server.convert import FrameInputs
from grpc_server.errors import Cancelled
from grpc_server.frames import FrameSpec
from grpc_server.limits import LimitExceeded
from grpc_server.store import RendererPool

_POLL_S = 0.1


@dataclass
class RenderedFrame:
    encoded: frames.EncodedFrame
    render_ms: float
    wait_ms: float


def _numpy(x) -> np.ndarray | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class FrameRenderer:
    def __init__(self, slots: int, max_message_bytes: int):
        self._slots = threading.BoundedSemaphore(max(1, slots))
        self._max_message_bytes = max_message_bytes
        self._cores = os.cpu_count() or 1
        self._rendering = 0
        self._lock = threading.Lock()

    def _begin(self) -> int:
        """Count this frame in and return the cores it may use."""
        with self._lock:
            self._rendering += 1
            return max(1, self._cores // self._rendering)

    def _end(self) -> None:
        with self._lock:
            self._rendering -= 1

    def render(self, pool: RendererPool, inputs: FrameInputs, spec: FrameSpec,
               cancelled: Callable[[], bool]) -> RenderedFrame:
        waited_from = time.perf_counter()
        while not self._slots.acquire(timeout=_POLL_S):
            if cancelled():
                raise Cancelled("the call ended while waiting for a render slot")
        try:
            if cancelled():
                raise Cancelled("the call ended while waiting for a render slot")
            start = time.perf_counter()
            torch_threads.apply()
            cores = self._begin()
            try:
                with pool.lease() as renderer:
                    renderer.march_threads = cores
                    result = renderer.render(inputs.camera, expression=inputs.expression,
                                             size=(spec.height, spec.width), head_pose=inputs.head_pose,
                                             eye=inputs.eye)
            finally:
                self._end()
        finally:
            self._slots.release()
        # Encoding runs outside the slot: cv2 releases the GIL and overlaps with the next render.
        encoded = frames.encode(_numpy(result.rgb), _numpy(result.alpha), _numpy(result.depth), spec)
        size = len(encoded.data) + len(encoded.depth) + len(encoded.alpha) + 256
        if size > self._max_message_bytes:
            raise LimitExceeded(f"the encoded frame is {size} bytes, above the {self._max_message_bytes}-byte "
                                f"message limit; ask for a smaller size or another encoding")
        done = time.perf_counter()
        return RenderedFrame(encoded, render_ms=(done - start) * 1e3, wait_ms=(start - waited_from) * 1e3)
