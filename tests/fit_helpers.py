"""Landmarks made from the head model itself, for the fit's and the tracker's tests."""
from __future__ import annotations

import numpy as np

from avatar import camera as cam

SIZE = 512   # side of the square crop the landmarks are pixels of


def synthetic_landmarks(points: np.ndarray, orbit: cam.Orbit, shift=(0.0, 0.0, 0.0), noise=0.0, seed=0):
    """MediaPipe-style (478, 3) crop pixels of world points seen by an orbit camera, plus Gaussian noise."""
    vec = cam.camera_vector(orbit, shift)
    uv, depth = cam.project(points, vec)
    f = cam.focal_from_fov(orbit.fov_deg)
    z = f * (depth - depth.mean()) / depth.mean()
    out = np.column_stack([uv, z]) * SIZE
    out[:, :2] += np.random.default_rng(seed).normal(0.0, noise, (len(out), 2))
    return out
