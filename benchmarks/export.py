"""Export benchmark: one JSON line with seconds_glb, mb_glb, seconds_triplane (budget: GLB <= 15 s, <= 15 MB).

Run: .venv/bin/python -m benchmarks.export  (synthetic avatar on the embedded head model, default options)
"""
from __future__ import annotations

import json
import time

from avatar.synthetic import synthetic_avatar
from exporter.glb import build_glb
from exporter.options import ExportOptions
from exporter.triplane import export_triplane


def main() -> None:
    avatar = synthetic_avatar(seed=1)
    options = ExportOptions()
    start, cpu_start = time.perf_counter(), time.process_time()
    glb = build_glb(avatar, options)
    seconds_glb = time.perf_counter() - start
    # CPU seconds (all threads) tell a slow run on a busy machine from a slow exporter.
    cpu_seconds_glb = time.process_time() - cpu_start
    start = time.perf_counter()
    files = export_triplane(avatar)
    seconds_triplane = time.perf_counter() - start
    print(json.dumps({
        "seconds_glb": round(seconds_glb, 3),
        "mb_glb": round(len(glb) / 1e6, 3),
        "cpu_seconds_glb": round(cpu_seconds_glb, 3),
        "seconds_triplane": round(seconds_triplane, 3),
        "mb_triplane": round(sum(len(d) for d in files.values()) / 1e6, 3),
        "texture_size": options.texture_size,
        "static_triangle_budget": options.static_triangle_budget,
        "budget": {"seconds_glb": 15, "mb_glb": 15},
    }))


if __name__ == "__main__":
    main()
