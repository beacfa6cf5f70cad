"""The eyelids from MediaPipe's iris model: its eye contour, not the face mesh's lids.

The 468-point mesh model (the one without attention, which is the one LiteRT runs here) barely closes
its lids: on a fully closed eye its lid gap shrinks by a fifth to a half. The iris model, run by
avatar.portrait.face_mesh on each eye for the iris, also returns 71 eye-contour points (kept in
`FaceMesh.eye_contours`) whose first 16 are the lid ring; on a closed eye their gap falls to about a
third of the open gap. MediaPipe's own iris pipeline replaces the mesh's lid points by them; the tracker
does the same before the fit (`refined_lids`) and reads blinks from their apertures (`apertures`).
"""
from __future__ import annotations

import numpy as np

# The first 16 contour points of each eye (EYE_CORNERS order: subject's right eye, then left) are these
# mesh points: the outer corner, the lower lid, the inner corner, then the upper lid from the outer side.
LID_RING = ((33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173),
            (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398))
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


def refined_lids(points: np.ndarray, contours: np.ndarray) -> np.ndarray:
    """A copy of 478 face-mesh points (x, y, z) with the lid rings' x and y taken from the eye contours;
    the mesh's own depth is kept (the iris model's depth is relative to its own crop)."""
    out = np.array(points, dtype=np.float64, copy=True)
    for ring, contour in zip(LID_RING, np.asarray(contours)):
        out[list(ring), :2] = contour[:len(ring), :2]
    return out
