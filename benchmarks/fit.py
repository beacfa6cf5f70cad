"""Landmark fit benchmark: one JSON line with ms per fit, cold (one portrait) and warm-started with a fixed
identity (one video frame), plus the shape-offset correction (budget: cold < 300 ms, warm < 30 ms).

Run: .venv/bin/python -m benchmarks.fit  (synthetic 478-point landmarks of the embedded head: a clip of
60 frames with a turning head, an opening jaw and a blink, 0.7 px noise, 512 px crop)
"""
from __future__ import annotations

import json
import math
import time

import numpy as np

from avatar import camera as cam
from avatar.expressions import index_of
from avatar.fit import fit_landmarks, model_points, shape_offsets
from avatar.head_model import embedded_head_model

SIZE = 512
FRAMES = 60


def _frame(head, identity, k: int, rng) -> np.ndarray:
    expression = np.zeros(52)
    expression[index_of("jawOpen")] = 0.3 + 0.3 * math.sin(k / 6)
    expression[index_of("eyeBlinkLeft")] = expression[index_of("eyeBlinkRight")] = 1.0 if k % 20 in (9, 10) else 0.0
    orbit = cam.Orbit(20 * math.sin(k / 15), 5 * math.sin(k / 11), 3 * math.sin(k / 17))
    uv, depth = cam.project(model_points(head, identity, expression), cam.camera_vector(orbit))
    f = cam.focal_from_fov(orbit.fov_deg)
    z = f * (depth - depth.mean()) / depth.mean()
    out = np.column_stack([uv, z]) * SIZE
    out[:, :2] += rng.normal(0.0, 0.7, (len(out), 2))
    return out


def main() -> None:
    head = embedded_head_model()
    rng = np.random.default_rng(0)
    identity = rng.uniform(-0.5, 0.5, len(head.identity_names))
    frames = [_frame(head, identity, k, rng) for k in range(FRAMES)]
    fit_landmarks(head, frames[0], SIZE)                        # builds the correspondence (cached per head)

    start, cpu = time.perf_counter(), time.process_time()
    cold = [fit_landmarks(head, lm, SIZE) for lm in frames[:10]]
    cold_ms, cold_cpu_ms = ((time.perf_counter() - start) * 100, (time.process_time() - cpu) * 100)

    prior = cold[0]
    start, cpu = time.perf_counter(), time.process_time()
    residuals = []
    for lm in frames:
        prior = fit_landmarks(head, lm, SIZE, identity=cold[0].identity, prior=prior)
        residuals.append(prior.residual * SIZE)
    warm_ms = (time.perf_counter() - start) * 1000 / FRAMES
    warm_cpu_ms = (time.process_time() - cpu) * 1000 / FRAMES

    start = time.perf_counter()
    shape_offsets(head, cold[0], frames[0], SIZE)
    offsets_ms = (time.perf_counter() - start) * 1000
    print(json.dumps({
        "ms_cold": round(cold_ms, 1),
        "cpu_ms_cold": round(cold_cpu_ms, 1),
        "ms_warm": round(warm_ms, 1),
        "cpu_ms_warm": round(warm_cpu_ms, 1),
        "warm_residual_px_median": round(float(np.median(residuals)), 3),
        "ms_shape_offsets": round(offsets_ms, 1),
        "budget": {"ms_cold": 300, "ms_warm": 30},
    }))


if __name__ == "__main__":
    main()
