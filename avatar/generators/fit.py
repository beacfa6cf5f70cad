"""Fit the head model to a portrait's features: the portrait camera and the identity parameters.

The head stays canonical in its box; the pose, scale and framing of the photo go into the portrait
camera (orbit angles, distance, a sideways shift), so renders from the default camera show the head
upright and centred while renders from the portrait camera reproduce the photo.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from avatar import camera as cam
from avatar.head_model import HeadModel

# Feature name in the prepared portrait -> how to read it off the head model's landmarks.
FEATURE_LANDMARKS = {
    "eye_left": ("pupil_left",),
    "eye_right": ("pupil_right",),
    "mouth_left": ("mouth_corner_left",),
    "mouth_right": ("mouth_corner_right",),
    "mouth_center": ("lip_upper", "lip_lower"),
}
IDENTITY_PRIOR = 0.02   # pull of each identity parameter toward the mean head, in crop fractions
POSE_PRIOR_DEG = 0.002  # pull of yaw/pitch toward frontal, per degree (photos are near-frontal)
BOUNDS = {"yaw": 25.0, "pitch": 25.0, "roll": 35.0, "radius": (1.6, 4.5), "shift": 0.3}


@dataclass(frozen=True)
class FitResult:
    camera: np.ndarray      # (25,) portrait camera
    orbit: cam.Orbit
    shift: np.ndarray       # (3,) camera shift
    identity: np.ndarray    # (K,)
    residual: float         # RMS landmark error as a fraction of the crop size
    errors: dict            # feature -> error as a fraction of the crop size


def landmark_points(head: HeadModel, identity: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for feature, names in FEATURE_LANDMARKS.items():
        idx = [head.landmarks[n] for n in names]
        pts = head.vertices[idx] + np.tensordot(identity, head.identity_basis[:, idx], axes=1)
        out[feature] = pts.mean(axis=0)
    return out


def _unpack(theta: np.ndarray, fov_deg: float):
    yaw, pitch, roll, radius, sx, sy = theta[:6]
    return cam.Orbit(yaw, pitch, roll, radius, fov_deg), np.array([sx, sy, 0.0]), theta[6:]


def fit_head(head: HeadModel, features: dict, crop_size: int, fov_deg: float = cam.DEFAULT_FOV_DEG) -> FitResult:
    """Least-squares fit of camera (yaw, pitch, roll, radius, shift) and identity to the 2D features."""
    names = list(FEATURE_LANDMARKS)
    target = np.stack([np.asarray(features[n], dtype=np.float64) / crop_size for n in names])
    k = len(head.identity_names)

    def residuals(theta):
        orbit, shift, identity = _unpack(theta, fov_deg)
        vec = cam.camera_vector(orbit, shift)
        pts = landmark_points(head, identity)
        uv, _ = cam.project(np.stack([pts[n] for n in names]), vec)
        return np.concatenate([(uv - target).reshape(-1), IDENTITY_PRIOR * identity,
                               POSE_PRIOR_DEG * theta[:2]])

    x0 = np.concatenate([[0.0, 0.0, 0.0, cam.DEFAULT_RADIUS, 0.0, 0.0], np.zeros(k)])
    lo = np.concatenate([[-BOUNDS["yaw"], -BOUNDS["pitch"], -BOUNDS["roll"], BOUNDS["radius"][0],
                          -BOUNDS["shift"], -BOUNDS["shift"]], np.full(k, head.identity_range[0])])
    hi = np.concatenate([[BOUNDS["yaw"], BOUNDS["pitch"], BOUNDS["roll"], BOUNDS["radius"][1],
                          BOUNDS["shift"], BOUNDS["shift"]], np.full(k, head.identity_range[1])])
    sol = least_squares(residuals, x0, bounds=(lo, hi), x_scale="jac", method="trf", max_nfev=400)
    orbit, shift, identity = _unpack(sol.x, fov_deg)
    vec = cam.camera_vector(orbit, shift)
    pts = landmark_points(head, identity)
    uv, _ = cam.project(np.stack([pts[n] for n in names]), vec)
    err = np.linalg.norm(uv - target, axis=1)
    return FitResult(vec, orbit, shift, identity.astype(np.float32), float(np.sqrt((err ** 2).mean())),
                     {n: float(e) for n, e in zip(names, err)})
