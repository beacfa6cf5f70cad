"""Smooth, compactly supported weight fields and mirroring helpers shared by blendshapes and identity."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from avatar.head_model.base import PART_ID
from avatar.head_model.geometry import Rig, eye_centre, smoothstep
from avatar.head_model.shape import LID_RADIUS

MIRROR_X = np.array([-1.0, 1.0, 1.0])


def bump(p: np.ndarray, centre: ArrayLike, radii: ArrayLike) -> np.ndarray:
    """(1 - q^2)^3 inside the ellipsoid (centre, radii), exactly 0 outside: smooth with a hard edge to the region."""
    q2 = (((p - np.asarray(centre)) / np.asarray(radii)) ** 2).sum(axis=-1)
    weight: np.ndarray = np.clip(1.0 - q2, 0.0, None) ** 3
    return weight


def mirrored(rig: Rig, delta: np.ndarray) -> np.ndarray:
    """The per-vertex field reflected across x = 0 (a Left target becomes its Right twin)."""
    reflected: np.ndarray = delta[rig.mirror] * MIRROR_X if delta.ndim == 2 else delta[rig.mirror]
    return reflected


def symmetrize(rig: Rig, delta: np.ndarray) -> np.ndarray:
    symmetric: np.ndarray = 0.5 * (delta + mirrored(rig, delta))
    return symmetric


def eye_exclusion(rig: Rig) -> np.ndarray:
    """0 on and right next to the eyelids, eyeballs and eye sacks; 1 away from them.

    Keeps brow, cheek and nose shapes from pushing lid skin into an eyeball.
    """
    p = rig.vertices
    w = np.ones(len(p))
    for s in (1, -1):
        d = np.linalg.norm(p - eye_centre(s), axis=1)
        w *= smoothstep(LID_RADIUS + 0.006, LID_RADIUS + 0.03, d)
    w[rig.sack >= 2] = 0.0
    w[(rig.vertex_part == PART_ID["eyeball_left"]) | (rig.vertex_part == PART_ID["eyeball_right"])] = 0.0
    return w


def skin_only(rig: Rig) -> np.ndarray:
    """1 on the closed outer surface (skin, eye sacks, mouth cavity lining), 0 on eyeballs, teeth, tongue."""
    return rig.surface.astype(np.float64)
