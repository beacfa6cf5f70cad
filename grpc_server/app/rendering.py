"""One frame: wait for a render slot, render with a leased renderer. Shared by single renders and streams.

Rendering is CPU-bound, so only a few frames render at a time (`slots`) and the rest wait here, where
waiting is cheap and cancellable.

Cores: the march kernel releases the GIL and can spread one frame over several cores (helpers take ray
tiles from a shared counter and never spin, so a frame offered more cores than are free loses nothing).
How many cores a frame's march is offered is a policy (`MARCH_POLICIES`), measured one stream against
four in benchmarks.stream (`--policies`):
  all     every frame is offered every core;
  share   the cores divided among the frames rendering when it starts;
  demand  the cores divided among the frames asking (waiting for a slot or rendering), so a lone stream
          uses every core and, once as many frames ask as there are cores, each marches on one.
A lone stream gets every core under all three. Four streams on the shared 2-core machine (two slots,
the three side by side in each of 18 runs) got within about 5% of each other. Where the other tenants
left the machine mostly idle (load under 2, the case of a server's own machine), "demand" gave the most:
a paired median 5% more than "share" (the rule before) and than "all"; under heavy outside load "all"
gave the most, its extra runnable threads winning cores from the other processes. Four slots gave
fewer, two torch threads per render a third fewer. So "demand" is the default; `serve --march-policy`
(AVATARFORGE_MARCH_POLICY) picks another, to measure again on another machine.
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
from grpc_server.app.march_policy import DEFAULT_MARCH_POLICY, MARCH_POLICIES, march_threads
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
    """At most `slots` frames at once; each frame's march offered cores by `policy` (MARCH_POLICIES)."""

    def __init__(self, slots: int, policy: str = DEFAULT_MARCH_POLICY):
        self.policy = policy
        if self.policy not in MARCH_POLICIES:
            raise ValueError(f"march policy {self.policy!r} is not one of {', '.join(MARCH_POLICIES)}")
        self.slots = max(1, slots)
        self._slots = threading.BoundedSemaphore(self.slots)
        self._cores = os.cpu_count() or 1
        self._asking = 0     # frames waiting for a slot or rendering
        self._rendering = 0  # frames holding a slot
        self._lock = threading.Lock()

    def _count(self, asking: int, rendering: int) -> int:
        """Count frames in (or out); the cores a frame's march gets now."""
        with self._lock:
            self._asking += asking
            self._rendering += rendering
            return march_threads(self.policy, self._cores, self._rendering, self._asking, self.slots)

    def render(self, pool: RendererPool[Renderer], inputs: FrameInputs, options: RenderOptions,
               cancelled: Callable[[], bool]) -> RenderedFrame:
        """Raises Cancelled when `cancelled()` turns true while the frame waits for a slot."""
        waited_from = time.perf_counter()
        self._count(1, 0)
        try:
            while not self._slots.acquire(timeout=_POLL_S):
                if cancelled():
                    raise Cancelled("the call ended while waiting for a render slot")
            try:
                if cancelled():
                    raise Cancelled("the call ended while waiting for a render slot")
                start = time.perf_counter()
                torch_threads.apply()
                threads = self._count(0, 1)
                try:
                    with pool.lease() as renderer:
                        renderer.march_threads = threads
                        result = renderer.render(inputs.camera, expression=inputs.expression,
                                                 size=(options.height, options.width), head_pose=inputs.head_pose,
                                                 eye=inputs.eye, neural_resolution=options.neural_resolution or None,
                                                 upsampler=options.upsampler)
                finally:
                    self._count(0, -1)
            finally:
                self._slots.release()
        finally:
            self._count(-1, 0)
        done = time.perf_counter()
        return RenderedFrame(_array(result.rgb), _array(result.alpha), _array(result.depth),
                             render_ms=(done - start) * 1e3, wait_ms=(start - waited_from) * 1e3)
