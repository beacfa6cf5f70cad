"""The landmark fit's model: MediaPipe's mean face on the head, moved by the head's own deltas.

`correspondence.mean_face(head)` is the neutral shape; the head's identity and expression deltas at the
bound points (interpolated from the mesh) move it linearly, and the iris points turn with the gaze about
the eye centres exactly as `HeadModel.posed` turns the eyeballs. Built once per head model id.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from avatar import camera as cam
from avatar.expressions import ARKIT_NAMES, NUM_EXPRESSIONS
from avatar.fit.correspondence import LEFT_IRIS, MESH_POINTS, RIGHT_IRIS, correspondence, mean_face
from avatar.head_model import HeadModel

# Expressions the fit leaves at 0: gaze is the eye 4-vector, and no landmark sees the tongue.
UNFITTED = tuple(i for i, n in enumerate(ARKIT_NAMES) if n.startswith("eyeLook") or n == "tongueOut")
FITTED = np.array([i for i in range(NUM_EXPRESSIONS) if i not in UNFITTED])
# Prior on the weights, in the residuals' unit (fractions of the image side) per unit of weight.
EXPRESSION_PRIOR = 0.01
# A blendshape whose landmark motion at weight 1 (root of the summed squared motions of all points, as a
# fraction of the image seen by the default camera) is below a floor is pulled toward 0 proportionally
# harder (up to 10x). With the identity free (a lone portrait) the floor is CLEAR_MOTION: so small a motion
# is indistinguishable from the person's own proportions, and weight 0 must stay a neutral face. With the
# identity held (a clip: its neutral offsets and rest expression carry those proportions) only landmark
# noise can fake a weight, and the floor is NOISE_MOTION: ~1 px of noise per coordinate of a 512 crop
# (0.002) leaves a weight whose motion is 0.02 a spread of ~0.1. A channel alone keeps s^2 / (s^2 + p^2)
# of its weight (s its motion, p its prior): browInnerUp and browDown (s 0.023-0.026) keep ~0.85 instead of
# ~0.1, eyeSquint (0.013) ~0.4 instead of ~0, while what the landmarks barely see (jawForward, mouthPress)
# stays held.
CLEAR_MOTION = 0.2
NOISE_MOTION = 0.02


@dataclass(frozen=True, eq=False)
class LandmarkModel:
    """The landmark model: MediaPipe's mean face in head coordinates (correspondence.mean_face), moved by
    the head's identity and expression deltas at the bound points and turned with the gaze."""

    head: HeadModel
    base: np.ndarray            # (478, 3) the mean face
    identity: np.ndarray        # (K, 478, 3)
    expression: np.ndarray      # (52, 478, 3)
    eye: np.ndarray             # (478,) -1 skin, 0 left eyeball, 1 right eyeball
    eye_centre_identity: np.ndarray  # (K, 2, 3)
    eye_offset: np.ndarray      # (2, 3) mean-face iris centre minus the head's bound iris centre
    expression_prior: np.ndarray  # (len(FITTED),) prior strength per fitted blendshape, identity free
    held_expression_prior: np.ndarray  # (len(FITTED),) the same with the identity held (a clip's)


_models: dict[str, LandmarkModel] = {}


def landmark_model(head: HeadModel) -> LandmarkModel:
    """The model of `head`, built on first use and kept per head model id."""
    found = _models.get(head.model_id)
    if found is None or found.head is not head:
        corr = correspondence(head)
        k = len(head.identity_names)
        centre_basis = (head.eye_center_identity_basis if head.eye_center_identity_basis is not None
                        else np.zeros((k, 2, 3)))
        base = mean_face(head)
        eye_offset = base[[LEFT_IRIS, RIGHT_IRIS]] - corr.points(head, head.vertices)[[LEFT_IRIS, RIGHT_IRIS]]
        identity = corr.interpolate(head, head.identity_basis.astype(np.float64))
        expression = corr.interpolate(head, head.expression_basis.astype(np.float64))
        found = LandmarkModel(head, np.ascontiguousarray(base), np.ascontiguousarray(identity),
                              np.ascontiguousarray(expression), corr.eye.astype(np.int64),
                              np.ascontiguousarray(centre_basis, np.float64), eye_offset,
                              _expression_prior(expression, CLEAR_MOTION),
                              _expression_prior(expression, NOISE_MOTION))
        _models[head.model_id] = found
    return found


def _expression_prior(expression: np.ndarray, clear: float) -> np.ndarray:
    """Prior strength per fitted blendshape from its landmark motion seen by the default camera, stronger
    below `clear` (see CLEAR_MOTION)."""
    pixels_per_unit = cam.focal_from_fov(cam.DEFAULT_FOV_DEG) / cam.DEFAULT_RADIUS
    motion = np.linalg.norm(expression[FITTED][:, :MESH_POINTS, :2].reshape(len(FITTED), -1), axis=1)
    prior: np.ndarray = EXPRESSION_PRIOR * np.clip(clear / np.maximum(motion * pixels_per_unit, 1e-9), 1.0, 10.0)
    return prior


def model_points(head: HeadModel, identity: ArrayLike | None = None, expression: ArrayLike | None = None,
                 eye: ArrayLike | None = None) -> np.ndarray:
    """The fit's 478 model points (478, 3) in head coordinates for these parameters (see LandmarkModel).

    They differ from the head's own surface points (`correspondence(head).points(head, head.posed(...))`)
    by a fixed offset per point: the mean face's difference from the head's proportions."""
    m = landmark_model(head)
    k = len(head.identity_names)
    ident = np.zeros(k) if identity is None else np.asarray(identity, np.float64)
    expr = np.zeros(NUM_EXPRESSIONS) if expression is None else np.asarray(expression, np.float64)
    gaze = np.zeros(4) if eye is None else np.asarray(eye, np.float64)
    points, _ = pose_points(m, ident, expr, gaze)
    return points


def eye_rotation(down: float, right: float) -> np.ndarray:
    """The eyeball rotation of HeadModel.posed: pitch about x (+ looks down), then yaw about y (+ toward +x)."""
    cp, sp, cy, sy = math.cos(down), math.sin(down), math.cos(right), math.sin(right)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rotation: np.ndarray = ry @ rx
    return rotation


# Per eye: (indices of its points, its rotation (3, 3), the points' offsets from its centre before rotating).
EyePose = tuple[np.ndarray, np.ndarray, np.ndarray]


def pose_points(m: LandmarkModel, identity: np.ndarray, expression: np.ndarray,
                eye: np.ndarray) -> tuple[np.ndarray, list[EyePose]]:
    """Points (478, 3) and, per eye, its EyePose."""
    k = len(identity)
    flat = (m.base.reshape(-1) + identity @ m.identity.reshape(k, -1)
            + expression @ m.expression.reshape(NUM_EXPRESSIONS, -1))
    p: np.ndarray = flat.reshape(-1, 3)
    centres = (m.head.eye_centers.astype(np.float64) + m.eye_offset
               + (identity @ m.eye_centre_identity.reshape(k, -1)).reshape(2, 3))
    eyes: list[EyePose] = []
    for side in (0, 1):
        idx = np.flatnonzero(m.eye == side)
        rot = eye_rotation(eye[2 * side], eye[2 * side + 1])
        rest = p[idx] - centres[side]
        p[idx] = rest @ rot.T + centres[side]
        eyes.append((idx, rot, rest))
    return p, eyes
