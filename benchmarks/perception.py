"""Portrait perception: `python -m benchmarks.perception` prints one JSON line.

Milliseconds per stage of prepare() on the astronaut at 512 and 1024 pixels (1024 an upscale), median of
RUNS after one warm-up (model loading and pymatting's import are not counted): decode, detect (both
detectors), mesh (two passes, irises included), iris (the two iris crops alone), segmentation (the
selfie model on the 512 crop), matting (closed-form refinement), prepare (the whole call).
"""
from __future__ import annotations

import json
import statistics
import time

from avatar.portrait import prepare
from avatar.portrait.decode import decode_image
from avatar.portrait.detector import KEYPOINTS, detect_faces
from avatar.portrait.face_mesh import face_mesh, roi_around_box, with_irises
from avatar.portrait.roi import line_angle
from avatar.portrait.segmentation import person_matte, person_probability
from benchmarks.portraits import astronaut_png

RUNS = 5


def _median_ms(fn) -> float:
    fn()
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 1)


def _stage_ms(size: int) -> dict[str, float]:
    """Median milliseconds of each perception stage on one portrait of `size` pixels."""
    portrait = astronaut_png(size)
    rgb = decode_image(portrait)
    face = detect_faces(rgb)[0]
    roi = roi_around_box(face.box, line_angle(face.keypoints[KEYPOINTS.index("eye_right")],
                                              face.keypoints[KEYPOINTS.index("eye_left")]))
    mesh = face_mesh(rgb, roi).points
    prepared = prepare(portrait)
    stages = {
        "decode": lambda: decode_image(portrait),
        "detect": lambda: detect_faces(rgb),
        "mesh": lambda: face_mesh(rgb, roi),
        "iris": lambda: with_irises(rgb, mesh[:468]),
        "segmentation": lambda: person_probability(rgb, prepared.affine, 512),
        "matting": lambda: person_matte(rgb, prepared.affine, prepared.image, prepared.landmarks[:468, :2]),
        "prepare": lambda: prepare(portrait),
    }
    return {name: _median_ms(fn) for name, fn in stages.items()}


def main() -> None:
    out = {}
    for size in (512, 1024):
        for name, ms in _stage_ms(size).items():
            out[f"{name}_ms_{size}"] = ms
        out[f"matting_ms_{size}"] = round(out[f"matting_ms_{size}"] - out[f"segmentation_ms_{size}"], 1)
    print(json.dumps(out))

if __name__ == "__main__":
    main()
