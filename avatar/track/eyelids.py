"""Eye apertures from MediaPipe's iris model: its eye contour, not the face mesh's lids.

The 468-point mesh model (the one without attention, which is the one LiteRT runs here) barely closes
its lids: on a fully closed eye its lid gap shrinks by a fifth to a half. The iris model, run on the same
eye crops as avatar.portrait.face_mesh's iris step, also returns 71 eye-contour points whose first 16 are
the lid ring (MediaPipe's refined mesh takes its lids from them); on a closed eye their gap falls to about
a third of the open gap. The tracker reads blinks from these apertures (avatar.track.blink).
"""
from __future__ import annotations

import numpy as np

from avatar.portrait.face_mesh import EYE_CORNERS, eye_model

# Contour indices (the first 16 trace the lids, as the mesh's lid ring 33, 7, 163, 144, 145, 153, 154,
# 155, 133 (lower lid from the outer corner), 246, 161, 160, 159, 158, 157, 173 (upper lid)): the two
# corners, and three upper-lid points with the lower-lid points facing them.
CORNERS = (0, 8)
UPPER, LOWER = (11, 12, 13), (3, 4, 5)


def apertures(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(2,) eye aspect ratios (mean lid gap / corner distance) of the subject's (right, left) eye, from the
    iris model's contours on the eyes of 478 face-mesh points (image pixels)."""
    out = []
    for left_corner, right_corner, mirror in EYE_CORNERS:
        c = _contour(rgb, points, left_corner, right_corner, mirror)[:, :2]
        width = np.linalg.norm(c[CORNERS[0]] - c[CORNERS[1]])
        gap = np.linalg.norm(c[list(UPPER)] - c[list(LOWER)], axis=1).mean()
        out.append(gap / width if width > 0 else 0.0)
    return np.asarray(out)


def _contour(rgb: np.ndarray, mesh: np.ndarray, left_corner: int, right_corner: int, mirror: bool) -> np.ndarray:
    """(71, 3) eye-contour points of one eye in image pixels (the iris model's other output)."""
    return eye_model(rgb, mesh, left_corner, right_corner, mirror)[0]
