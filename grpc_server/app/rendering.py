"""One frame: wait for a render slot, render with a leased renderer. Shared by single renders and streams.

Rendering is CPU-bound, so only a few frames render at a time (`slots`) and the rest wait here, where
waiting is cheap and cancellable.

Cores: the march kernel releases the GIL and can spread one frame over several cores. A frame gets
the machine's cores divided among the frames rendering at that moment: a lone stream uses every core
for its frames, several streams each get their share, so the cores are never oversubscribed (measured
in benchmarks.stream: one stream against four).
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from avatar.render import MAX_NEURAL_RESOLUTION, UPSAMPLERS, Renderer
from grpc_server import torch_threads
from grpc_server.app.errors import Cancelled, InvalidRequest
from grpc_server.app.renderers import RendererPool

_POLL_S = 0.1
MIN_NEURAL_RESOLUTION = 8


@dataclass(frozen=True)
class FrameInputs:
    """What changes from frame to frame, validated (see avatar.render.Renderer.render)."""

    camera: np.ndarray                           # (25,) float32 EG3D camera
    expression: np.ndarray                       # (52,) float32 ARKit weights in [0, 1], canonical order
    head_pose: tuple[float, float, float] | None  # yaw, pitch, roll radians; None = the rest pose
    eye: np.ndarray | None                       # (4,) float32 FaceVerse eye vector, radians


@dataclass(frozen=True)
class RenderOptions:
    """What stays fixed for a render or a whole stream.

    `neural_resolution` (pixels, 8..1024 on the frame's longer side; 0 = the renderer's default capped
    by the frame size) is where the volume is marched before it is resampled to (height, width) by
    `upsampler`: "edge" re-sharpens the silhouette from alpha, "bilinear" does not.
    """

    height: int
    width: int
    neural_resolution: int = 0
    upsampler: str = "edge"

    def __post_init__(self) -> None:
        nr = self.neural_resolution
        if nr and not MIN_NEURAL_RESOLUTION <= nr <= MAX_NEURAL_RESOLUTION:
            raise InvalidRequest(f"neural_resolution {nr} is outside {MIN_NEURAL_RESOLUTION}..{MAX_NEURAL_RESOLUTION} "
                                 f"pixels (0 = the server's default)")
        if self.upsampler not in UPSAMPLERS:
            raise InvalidRequest(f"unknown upsampler {self.upsampler!r}; use one of {', '.join(UPSAMPLERS)}")


@dataclass(frozen=True)
class RenderedFrame:
    """Premultiplied colour (H, W, 3), alpha (H, W) and camera distance (H, W), float32; timings in ms."""

    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray
    render_ms: float
    wait_ms: float


def _array(t: torch.Tensor) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy(), dtype=np.float32)


class FrameRenderer:
    def __init__(self, slots: int):
        self._slots = threading.BoundedSemaphore(max(1, slots))
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

    def render(self, pool: RendererPool[Renderer], inputs: FrameInputs, options: RenderOptions,
               cancelled: Callable[[], bool]) -> RenderedFrame:
        """Raises Cancelled when `cancelled()` turns true while the frame waits for a slot."""
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
                                             size=(options.height, options.width), head_pose=inputs.head_pose,
                                             eye=inputs.eye, neural_resolution=options.neural_resolution or None,
                                             upsampler=options.upsampler)
            finally:
                self._end()
        finally:
            self._slots.release()
        done = time.perf_counter()
        return RenderedFrame(_array(result.rgb), _array(result.alpha), _array(result.depth),
                             render_ms=(done - start) * 1e3, wait_ms=(start - waited_from) * 1e3)
