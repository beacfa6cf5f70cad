"""Smoothing a face mesh in the face's own frame: the whole face's motion slowly, its shape lightly.

A face mesh moves in two ways at once: the whole face moves as a body (the head turns, nods, comes
closer), and the face changes its shape on it (brows rise, the jaw drops, lips and lids move). Most of a
still face's jitter is the first kind (a wobble of the whole face), which a slow filter opened on the
body's speed removes; filtering each point in the image with that slow filter also holds back the
second kind, so brows and the jaw outline lag their own motion by several frames. `FaceFrameFilter`
separates the two: per frame it fits the similarity (rotation, scale, translation) that carries a
reference face (the stretch's first) onto the mesh's anchor points, filters the reference so moved with
the slow filter (one shared speed), filters the shape (the mesh carried back into the reference's
frame) with light per-point filters, and puts the filtered shape back on the filtered motion.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.transform import Rotation

from avatar.track.filters import OneEuroFilter


def fit_similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares (scale, rotation (3, 3), translation (3,)) with target ≈ scale * source @ rotation.T +
    translation, for (P, 3) point sets in the same order."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - source_mean, target - target_mean
    rotation = Rotation.align_vectors(dst, src)[0].as_matrix()
    scale = float(np.sum(dst * (src @ rotation.T)) / max(float(np.sum(src * src)), 1e-12))
    return scale, rotation, target_mean - scale * source_mean @ rotation.T


class FaceFrameFilter:
    """Filters (N, 3) face meshes arriving at increasing times (seconds), in the unit of length the
    parameters' speeds are given in (the tracker's: inter-ocular distances).

    `motion`: One-Euro (min_cutoff, beta, d_cutoff) of the whole face's motion, scalars, one shared speed;
    `shape`: One-Euro parameters of the shape, scalars or (N * 3,) per channel (x, y, z per point), each
    channel on its own speed; `anchors`: indices of the points that fix the face's frame (those that move
    with the head and not with expression).
    """

    def __init__(self, motion: tuple[float, float, float], shape: tuple[ArrayLike, ArrayLike, ArrayLike],
                 anchors: ArrayLike):
        self.anchors = np.asarray(anchors)
        self._motion_parameters = motion
        self._motion: OneEuroFilter | None = None
        self._shape = OneEuroFilter(*shape)
        self._reference: np.ndarray | None = None

    def reset(self) -> None:
        self._reference = None
        self._shape.reset()
        if self._motion is not None:
            self._motion.reset()

    def __call__(self, points: ArrayLike, t: float) -> np.ndarray:
        points = np.asarray(points, np.float64)
        if self._reference is None:
            self._reference = points.copy()
            min_cutoff, beta, d_cutoff = self._motion_parameters
            self._motion = OneEuroFilter(min_cutoff, beta, d_cutoff, shared=np.ones(points.size, bool))
        assert self._motion is not None  # made with the reference
        reference = self._reference
        scale, rotation, shift = fit_similarity(reference[self.anchors], points[self.anchors])
        moved = scale * reference @ rotation.T + shift
        shape = ((points - shift) @ rotation / scale).reshape(-1)
        moved = self._motion(moved.reshape(-1), t).reshape(points.shape)
        shape = self._shape(shape, t).reshape(points.shape)
        # The filtered motion is a blend of similarities, itself one up to second order: fitted again to
        # carry the filtered shape.
        scale, rotation, shift = fit_similarity(reference, moved)
        out: np.ndarray = scale * shape @ rotation.T + shift
        return out
