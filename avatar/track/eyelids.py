"""Blinks from MediaPipe's iris model: the apertures of its eye contours, not of the face mesh's lids.

The 468-point mesh model (the one without attention, which is the one LiteRT runs here) barely closes
its lids: on a fully closed eye its lid gap shrinks by a fifth to a half. The iris model, run by
avatar.portrait.face_mesh on each eye for the iris, also returns 71 eye-contour points (kept in
`FaceMesh.eye_contours`) whose first 16 are the lid ring (face_mesh.LID_RING); on a closed eye their gap
falls to about a third of the open gap. The tracker fits lids taken from them (face_mesh.refined_lids, as
every fit does) and reads blinks from their apertures (`apertures`).
"""
from __future__ import annotations

import numpy as np

# Contour indices of the two corners, and of three upper-lid points with the lower-lid points facing them.
CORNERS = (0, 8)
UPPER, LOWER = (11, 12, 13), (3, 4, 5)


def apertures(contours: np.ndarray) -> np.ndarray:
    """(2,) eye aspect ratios (mean lid gap / corner distance) of the subject's (right, left) eye from the
    (2, 71, 3) eye contours (image pixels)."""
    out = []
    for c in np.asarray(contours)[:, :, :2]:
        width = np.linalg.norm(c[CORNERS[0]] - c[CORNERS[1]])
        gap = np.linalg.norm(c[list(UPPER)] - c[list(LOWER)], axis=1).mean()
        out.append(gap / width if width > 0 else 0.0)
    return np.asarray(out)
