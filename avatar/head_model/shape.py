"""The embedded head's outer shape: a smooth union of simple solids, sampled along rays from the origin.

The head and neck are built as one signed-distance-like function (negative inside). The skin grid
is then placed where rays from the origin leave that solid, which keeps the grid a clean (theta, phi)
lattice: the solid is star-shaped about the origin by construction (every primitive contains the
origin's line of sight to its own surface), so each ray has one exit point.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Proportions in world units (life size = units * METRES_PER_UNIT). The skull is 0.54 units wide,
# i.e. 15.5 cm, and everything else is placed relative to life-size anatomy.
SKULL_HALF_WIDTH = 0.27
METRES_PER_UNIT = 0.155 / (2 * SKULL_HALF_WIDTH)

EYE_CENTER = np.array([0.105, 0.07, 0.262])   # left eye (+x); right eye mirrors x
EYEBALL_RADIUS = 0.042                         # ~12 mm
LID_RADIUS = 0.050                             # lid skin rests on this sphere around the eye centre
SACK_RADIUS = 0.0472                           # conjunctival sack behind the lids, outside the eyeball
EYE_SLIT_Y = EYE_CENTER[1] - 0.006             # where the closed lids meet
EYE_CORNER_DX = 0.043                          # half width of the eye opening (x from the eye centre)

MOUTH_Y = -0.168
MOUTH_HALF_WIDTH = 0.088
JAW_HINGE = np.array([0.0, 0.02, 0.0])        # temporomandibular axis (parallel to x), in front of the ears
NECK_AXIS_Z = -0.03
NECK_RADIUS = 0.175
NECK_BOTTOM = -0.485

Vec3 = tuple[float, float, float]
Field = Callable[[np.ndarray], np.ndarray]   # signed field of points (..., 3) -> (...)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    # Polynomial smooth minimum: a fillet of width ~k where two solids meet.
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    blended: np.ndarray = b + (a - b) * h - k * h * (1.0 - h)
    return blended


def _ellipsoid(p: np.ndarray, centre: Vec3, radii: Vec3) -> np.ndarray:
    # A distance bound that is exact on the surface and smooth elsewhere (written out per axis: hot path).
    qx = (p[..., 0] - centre[0]) / radii[0]
    qy = (p[..., 1] - centre[1]) / radii[1]
    qz = (p[..., 2] - centre[2]) / radii[2]
    k0 = np.sqrt(qx * qx + qy * qy + qz * qz)
    k1 = np.sqrt((qx / radii[0]) ** 2 + (qy / radii[1]) ** 2 + (qz / radii[2]) ** 2)
    bound: np.ndarray = k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)
    return bound


def _capsule(p: np.ndarray, a: Vec3, b: Vec3, radius: float) -> np.ndarray:
    start, end = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    pa, ba = p - start, end - start
    h = np.clip((pa @ ba) / (ba @ ba), 0.0, 1.0)
    distance: np.ndarray = np.linalg.norm(pa - h[..., None] * ba, axis=-1) - radius
    return distance


def _neck(p: np.ndarray) -> np.ndarray:
    # Vertical capped cylinder with a rounded bottom rim (so the neck cap meets the wall smoothly).
    rim = 0.02
    radial = np.hypot(p[..., 0], p[..., 2] - NECK_AXIS_Z) - (NECK_RADIUS - rim)
    top, bottom = 0.05, NECK_BOTTOM + rim
    vertical = np.maximum(p[..., 1] - top, bottom - p[..., 1])
    outside = np.hypot(np.maximum(radial, 0.0), np.maximum(vertical, 0.0))
    distance: np.ndarray = outside + np.minimum(np.maximum(radial, vertical), 0.0) - rim
    return distance


def _mirror_pair(p: np.ndarray, fn: Field) -> np.ndarray:
    # Evaluate a left-side feature on |x| so both sides are the same function (exact symmetry).
    return fn(np.stack([np.abs(p[..., 0]), p[..., 1], p[..., 2]], axis=-1))


def head_field(p: np.ndarray) -> np.ndarray:
    """Signed field of the head-and-neck solid (negative inside), p (..., 3) in world units."""
    skull = _ellipsoid(p, (0.0, 0.10, -0.03), (SKULL_HALF_WIDTH, 0.35, 0.335))
    face = _ellipsoid(p, (0.0, -0.03, 0.05), (0.215, 0.27, 0.27))
    jaw = _ellipsoid(p, (0.0, -0.19, 0.14), (0.17, 0.115, 0.18))
    muzzle = _ellipsoid(p, (0.0, -0.15, 0.22), (0.12, 0.1, 0.135))
    chin = _ellipsoid(p, (0.0, -0.262, 0.28), (0.06, 0.045, 0.05))
    brow = _ellipsoid(p, (0.0, 0.148, 0.255), (0.17, 0.036, 0.07))
    forehead = _ellipsoid(p, (0.0, 0.22, 0.16), (0.2, 0.16, 0.17))
    nose_ridge = _capsule(p, (0.0, 0.10, 0.300), (0.0, -0.025, 0.392), 0.02)
    nose_tip = _ellipsoid(p, (0.0, -0.035, 0.388), (0.026, 0.024, 0.030))
    upper_lip = _ellipsoid(p, (0.0, -0.147, 0.335), (0.065, 0.024, 0.03))
    lower_lip = _ellipsoid(p, (0.0, -0.190, 0.328), (0.058, 0.024, 0.03))
    cheeks = _mirror_pair(p, lambda q: _ellipsoid(q, (0.118, -0.04, 0.2), (0.085, 0.075, 0.095)))
    alae = _mirror_pair(p, lambda q: _ellipsoid(q, (0.024, -0.052, 0.36), (0.02, 0.017, 0.022)))
    ears = _mirror_pair(p, lambda q: _ellipsoid(q, (0.262, 0.045, -0.02), (0.032, 0.078, 0.046)))

    d = _smin(skull, forehead, 0.04)
    d = _smin(d, face, 0.06)
    d = _smin(d, jaw, 0.05)
    d = _smin(d, _neck(p), 0.06)
    d = _smin(d, muzzle, 0.05)
    d = _smin(d, chin, 0.04)
    d = _smin(d, brow, 0.04)
    d = _smin(d, cheeks, 0.05)
    d = _smin(d, nose_ridge, 0.05)
    d = _smin(d, nose_tip, 0.03)
    d = _smin(d, alae, 0.03)
    d = _smin(d, upper_lip, 0.025)
    d = _smin(d, lower_lip, 0.025)
    d = _smin(d, ears, 0.018)
    return d


def ray_exit(directions: np.ndarray, field: Field = head_field, t_max: float = 0.8, step: float = 0.02,
             iterations: int = 15) -> np.ndarray:
    """Distance along each unit direction (M, 3) from the origin to the outermost surface crossing."""
    ts = np.arange(t_max, 0.0, -step)
    samples = field(directions[:, None, :] * ts[None, :, None])
    inside = samples < 0.0
    if not inside.any(axis=1).all():
        raise RuntimeError("head field: a ray from the origin never enters the solid")
    first = inside.argmax(axis=1)          # outermost inside sample along each ray
    lo = ts[first]
    hi = np.minimum(lo + step, t_max)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        inner = field(directions * mid[:, None]) < 0.0
        lo = np.where(inner, mid, lo)
        hi = np.where(inner, hi, mid)
    exit_distance: np.ndarray = 0.5 * (lo + hi)
    return exit_distance
