"""Renderer speed: `python -m benchmarks.render` prints one JSON line.

fps_256 / fps_512: accelerated renderer, a moving camera and a changing expression every frame (the
streaming case: no cache hits). reference_fps_256: the plain 48+48-sample renderer on the same frames
in the same run; speedup = fps_256 / reference_fps_256. rasterize_ms: one CPU rasterization of the
posed head mesh into the 256x256 front plane. All figures are medians.
"""
from __future__ import annotations

import json
import os
import statistics
import time

# The renderer's many small tensor ops run faster on one OpenMP thread than on two that synchronise
# per op (measured: about 2x on the 2-core machine); the server runs it that way, one render per core.
# OpenMP reads this once, when torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from avatar import camera, raster  # noqa: E402
from avatar.render import Renderer  # noqa: E402
from avatar.synthetic import synthetic_avatar  # noqa: E402

FRAMES = 12
REFERENCE_FRAMES = 3


def _frames(n: int):
    for k in range(n):
        yaw = -30 + 60 * k / max(1, n - 1)
        expr = np.zeros(52, np.float32)
        expr[24] = 0.5 + 0.5 * np.sin(k)          # jawOpen
        expr[8] = expr[9] = (k % 4) / 4            # blinks
        expr[43] = expr[44] = 0.5 * (k % 3) / 2    # smile
        yield camera.camera_vector(yaw_deg=yaw, pitch_deg=5 * np.sin(k)), expr


def _median_fps(renderer: Renderer, n: int, size: int, reference: bool = False) -> float:
    times = []
    for cam, expr in _frames(n):
        t = time.perf_counter()
        renderer.render(cam, expr, size=size, reference=reference)
        times.append(time.perf_counter() - t)
    return 1.0 / statistics.median(times)


def main() -> None:
    avatar = synthetic_avatar(0)
    renderer = Renderer(avatar)
    renderer.render(camera.camera_vector(), size=64)  # builds the per-avatar occupancy grid once
    fps_256 = _median_fps(renderer, FRAMES, 256)
    fps_512 = _median_fps(renderer, FRAMES, 512)
    reference_fps_256 = _median_fps(renderer, REFERENCE_FRAMES, 256, reference=True)

    head = renderer.head
    verts = torch.from_numpy(head.posed(np.full(52, 0.3, np.float32), avatar.identity))
    faces = torch.from_numpy(head.faces.astype(np.int32))
    clip = raster.orthographic_clip(verts, "xy")
    times = []
    for _ in range(10):
        t = time.perf_counter()
        raster.rasterize(clip, faces, 256, 256)
        times.append(time.perf_counter() - t)
    print(json.dumps({
        "fps_256": round(fps_256, 2),
        "fps_512": round(fps_512, 2),
        "reference_fps_256": round(reference_fps_256, 3),
        "speedup": round(fps_256 / reference_fps_256, 2),
        "rasterize_ms": round(1000 * statistics.median(times), 2),
        "neural_resolution": renderer.neural_resolution,
        "threads": torch.get_num_threads(),
        "faces": int(len(head.faces)),
    }))


if __name__ == "__main__":
    main()
