"""Avatar creation: `python -m benchmarks.create` prints one JSON line.

seconds_512 / seconds_1024: the projective generator on the astronaut portrait (512 is its own size,
1024 an upscale) (median of runs); psnr_frontal (and psnr_frontal_1024): the avatar re-rendered from
its portrait camera with its own expression at 256x256 against the aligned portrait, inside the
face (the hull of the face mesh).
"""
from __future__ import annotations

import json
import statistics
import time

from avatar.generators import get_generator
from avatar.generators.quality import frontal_psnr
from avatar.portrait import prepare
from avatar.portrait.landmarks import face_hull_mask
from benchmarks.portraits import astronaut_png

RUNS = 2


def main() -> None:
    generator = get_generator("projective")
    out = {}
    for size in (512, 1024):
        portrait = astronaut_png(size)
        times = []
        for _ in range(RUNS):
            t = time.perf_counter()
            avatar = generator.create(portrait)
            times.append(time.perf_counter() - t)
        out[f"seconds_{size}"] = round(statistics.median(times), 2)
        key = "psnr_frontal" if size == 512 else f"psnr_frontal_{size}"
        prepared = prepare(portrait)
        face = face_hull_mask(prepared.landmarks, prepared.image.shape[0])
        out[key] = round(frontal_psnr(avatar, face), 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
