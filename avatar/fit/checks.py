"""Input checks of the landmark fit: every bad input is a LandmarkFitError (a ValueError) with a sentence."""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from avatar.fit.correspondence import MESH_POINTS, NUM_POINTS
from avatar.head_model import HeadModel

MAX_OUTSIDE = 0.15         # points may lie this far (fraction of the side) outside the crop
DEPTH_FLOOR = 0.01         # a face's depth spans ~0.5 of its width: a z column spanning less is no depth


class LandmarkFitError(ValueError):
    """Landmarks (or a prior) that cannot be fitted; the message says why."""


def check_size(image_size: float) -> float:
    try:
        size = float(image_size)
    except (TypeError, ValueError):
        raise LandmarkFitError(f"image_size must be a positive number of pixels, got {image_size!r}") from None
    if not (math.isfinite(size) and size >= 16):
        raise LandmarkFitError(f"image_size must be a finite number of pixels >= 16, got {image_size!r}")
    return size


def check_landmarks(landmarks: ArrayLike, size: float) -> np.ndarray:
    try:
        pts = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError):
        raise LandmarkFitError("landmarks must be a numeric array of shape (478, 3) or (468, 3)") from None
    if pts.ndim != 2 or pts.shape[0] not in (MESH_POINTS, NUM_POINTS) or pts.shape[1] not in (2, 3):
        raise LandmarkFitError(f"landmarks must have shape (478, 3) or (468, 3) (MediaPipe face mesh, pixels), "
                               f"got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise LandmarkFitError("landmarks contain NaN or infinite values")
    margin = MAX_OUTSIDE * size
    outside = np.any((pts[:, :2] < -margin) | (pts[:, :2] > size + margin), axis=1)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise LandmarkFitError(f"{int(outside.sum())} landmarks lie outside the {size:g} x {size:g} crop (first: "
                               f"point {first} at {pts[first, :2].tolist()}); landmarks are crop pixels")
    spread = np.ptp(pts[:MESH_POINTS, :2], axis=0)
    if spread.min() < 0.02 * size:
        raise LandmarkFitError(f"landmarks span only {spread.min():.3g} pixels: they do not describe a face")
    return pts


def landmark_depth(points: np.ndarray) -> np.ndarray | None:
    """The mesh points' relative depth column (MediaPipe's z: the x/y scale, negative toward the camera),
    zero mean; None when the landmarks carry none (a caller's 2-D landmarks, padded with zeros)."""
    if points.shape[1] < 3:
        return None
    z = points[:MESH_POINTS, 2]
    if np.ptp(z) <= DEPTH_FLOOR * np.ptp(points[:MESH_POINTS, :2], axis=0).max():
        return None
    centred: np.ndarray = z - z.mean()
    return centred


def check_identity(head: HeadModel, identity: ArrayLike) -> np.ndarray:
    ident = np.asarray(identity, dtype=np.float64).reshape(-1)
    k = len(head.identity_names)
    if ident.shape != (k,) or not np.all(np.isfinite(ident)):
        raise LandmarkFitError(f"identity must be {k} finite values for head model {head.model_id!r}, "
                               f"got shape {np.shape(identity)}")
    lo, hi = head.identity_range
    clipped: np.ndarray = np.clip(ident, lo, hi)
    return clipped


def check_neutral(neutral: ArrayLike | None) -> np.ndarray | None:
    if neutral is None:
        return None
    out = np.asarray(neutral, dtype=np.float64)
    if out.shape != (NUM_POINTS, 3) or not np.all(np.isfinite(out)):
        raise LandmarkFitError(f"neutral must be (478, 3) finite offsets in head units, got shape {np.shape(neutral)}")
    return out
