"""Renderer speed and image agreement: `python -m benchmarks.render` prints one JSON line.

All on the synthetic avatar, a moving camera and a changing expression every frame (the streaming
case: no cache hits), medians over the frames:
  fps_256 / fps_512       the accelerated renderer as it runs by default (`march` says which march:
                          the fused kernel, or torch when the kernel is not built), wall clock
  cpu_ms_256              CPU time of one 256² frame of the same (all threads; load-independent)
  torch_march_fps_256     the accelerated renderer with the pure-torch march, same frames
  reference_fps_256       the plain 48+48-sample renderer, same frames, same run; speedup is
                          fps_256 / reference_fps_256, speedup_cpu the same in CPU time
  psnr_vs_reference       accelerated frames against the plain renderer's, over black (dB, min)
  psnr_vs_dense           accelerated frames against a dense 256+128-sample render (min), and
                          reference_psnr_vs_dense the plain renderer's: the plain renderer's 48+48
                          samples leave thin parts to chance, so it is the less exact of the two
  psnr_512_vs_native      512² frames (128² neural, edge-aware upsampler) against a native 512²-neural
                          render of the same frame (min); psnr_512_bilinear_vs_native with plain
                          bilinear upsampling; fps_512_over_256 = fps_512 / fps_256, and the same
                          ratio in CPU time (cpu_512_over_256 = cpu_ms_256 / cpu_ms_512), which a
                          loaded machine disturbs less; 256² and 512² frames are timed alternately
  first_frame_s           an avatar not loaded yet: load from disk + renderer + occupancy grid + the
                          first 256² frame (median of 3 avatars, in a warm process); first_frame_parts_s
                          splits it
  rasterize_ms            one CPU rasterization of the posed head mesh into the 256x256 front plane
The machine may be shared: load_average_1min is reported, and only ratios within one run compare.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time

# torch's own ops run on one OpenMP thread: on the shared 2-core machine two threads that synchronise
# per op measured several times slower. The march kernel brings its own threads (Renderer.march_threads).
# OpenMP reads this once, when torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from avatar import camera, raster
from avatar.asset import load_avatar, save_avatar
from avatar.render import Renderer
from avatar.synthetic import synthetic_avatar

FRAMES = 12
REFERENCE_FRAMES = 3
NATIVE_FRAMES = 3
DENSE_SAMPLES = (256, 128)  # enough to resolve the hull's walls: the truth both renderers are held to
FIRST_FRAME_AVATARS = 3


def _frames(n: int):
    for k in range(n):
        yaw = -30 + 60 * k / max(1, n - 1)
        expr = np.zeros(52, np.float32)
        expr[24] = 0.5 + 0.5 * np.sin(k)          # jawOpen
        expr[8] = expr[9] = (k % 4) / 4            # blinks
        expr[43] = expr[44] = 0.5 * (k % 3) / 2    # smile
        yield camera.camera_vector(yaw_deg=yaw, pitch_deg=5 * np.sin(k)), expr


def _timed(renderer: Renderer, n: int, size: int, **kwargs) -> tuple[float, float, list]:
    """(median fps, median CPU ms, frames) over n frames."""
    wall, cpu, out = [], [], []
    for cam, expr in _frames(n):
        w, c = time.perf_counter(), time.process_time()
        out.append(renderer.render(cam, expr, size=size, **kwargs))
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return 1.0 / statistics.median(wall), 1000 * statistics.median(cpu), out


def _timed_sizes(renderer: Renderer, n: int, sizes: tuple[int, ...]) -> list[tuple[float, float]]:
    """(median fps, median CPU ms) per size over n frames, each frame rendered at every size in turn, so
    a change in the machine's load falls on all sizes alike."""
    wall: dict[int, list[float]] = {size: [] for size in sizes}
    cpu: dict[int, list[float]] = {size: [] for size in sizes}
    for cam, expr in _frames(n):
        for k, size in enumerate(sizes):
            # Later sizes nudge one weight: the composer's cache must not serve them the first one's plane.
            e = expr.copy()
            e[0] += 1e-3 * k
            w, c = time.perf_counter(), time.process_time()
            renderer.render(cam, e, size=size)
            wall[size].append(time.perf_counter() - w)
            cpu[size].append(time.process_time() - c)
    return [(1.0 / statistics.median(wall[size]), 1000 * statistics.median(cpu[size])) for size in sizes]


def _psnr(a, b) -> float:
    mse = float(((a.over() - b.over()) ** 2).mean())
    return 10 * math.log10(1 / max(mse, 1e-12))


def _first_frame(store: str) -> tuple[float, dict]:
    parts = {"load": [], "renderer": [], "occupancy_and_frame": []}
    totals = []
    for seed in range(1, FIRST_FRAME_AVATARS + 1):
        path = save_avatar(synthetic_avatar(seed), store)
        t0 = time.perf_counter()
        avatar = load_avatar(path)
        t1 = time.perf_counter()
        renderer = Renderer(avatar)
        t2 = time.perf_counter()
        renderer.render(camera.camera_vector(), size=256)
        t3 = time.perf_counter()
        for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
            parts[key].append(value)
        totals.append(t3 - t0)
    return statistics.median(totals), {k: round(statistics.median(v), 3) for k, v in parts.items()}


def main() -> None:
    avatar = synthetic_avatar(0)
    renderer = Renderer(avatar)
    torch_march = Renderer(avatar, march="torch")
    for r in (renderer, torch_march):
        r.render(camera.camera_vector(), size=64)  # builds the per-avatar occupancy grid once
    (fps_256, cpu_256), (fps_512, cpu_512) = _timed_sizes(renderer, FRAMES, (256, 512))
    torch_fps_256, torch_cpu_256, _ = _timed(torch_march, FRAMES, 256)
    reference_fps_256, reference_cpu_256, reference = _timed(renderer, REFERENCE_FRAMES, 256, reference=True)
    _, _, fast = _timed(renderer, REFERENCE_FRAMES, 256)
    psnr_reference = min(_psnr(a, b) for a, b in zip(fast, reference))
    _, _, dense = _timed(renderer, REFERENCE_FRAMES, 256, reference=True, reference_samples=DENSE_SAMPLES)

    _, _, native = _timed(renderer, NATIVE_FRAMES, 512, neural_resolution=512)
    _, _, edge = _timed(renderer, NATIVE_FRAMES, 512)
    _, _, bilinear = _timed(renderer, NATIVE_FRAMES, 512, upsampler="bilinear")

    with tempfile.TemporaryDirectory(prefix="avatarforge-bench-") as store:
        first_frame, first_parts = _first_frame(store)

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
        "march": renderer.march,
        "march_threads": renderer.march_threads,
        "fps_256": round(fps_256, 2),
        "fps_512": round(fps_512, 2),
        "cpu_ms_256": round(cpu_256, 1),
        "torch_march_fps_256": round(torch_fps_256, 2),
        "torch_march_cpu_ms_256": round(torch_cpu_256, 1),
        "reference_fps_256": round(reference_fps_256, 3),
        "reference_cpu_ms_256": round(reference_cpu_256, 1),
        "speedup": round(fps_256 / reference_fps_256, 2),
        "speedup_cpu": round(reference_cpu_256 / cpu_256, 2),
        "torch_march_speedup": round(torch_fps_256 / reference_fps_256, 2),
        "psnr_vs_reference": round(psnr_reference, 2),
        "psnr_vs_dense": round(min(_psnr(a, b) for a, b in zip(fast, dense)), 2),
        "reference_psnr_vs_dense": round(min(_psnr(a, b) for a, b in zip(reference, dense)), 2),
        "fps_512_over_256": round(fps_512 / fps_256, 3),
        "cpu_ms_512": round(cpu_512, 1),
        "cpu_512_over_256": round(cpu_256 / cpu_512, 3),
        "psnr_512_vs_native": round(min(_psnr(a, b) for a, b in zip(edge, native)), 2),
        "psnr_512_bilinear_vs_native": round(min(_psnr(a, b) for a, b in zip(bilinear, native)), 2),
        "first_frame_s": round(first_frame, 3),
        "first_frame_parts_s": first_parts,
        "rasterize_ms": round(1000 * statistics.median(times), 2),
        "neural_resolution": renderer.neural_resolution,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "faces": len(head.faces),
    }))


if __name__ == "__main__":
    main()
