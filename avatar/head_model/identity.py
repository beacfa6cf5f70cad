"""Identity (shape) parameters of the embedded head: smooth fields, one unit = the extreme of the range."""
from __future__ import annotations

import numpy as np

from avatar.head_model.fields import bump, eye_exclusion, skin_only, symmetrize
from avatar.head_model.geometry import Rig, eye_centre, smoothstep

IDENTITY_NAMES: tuple[str, ...] = ("head_width", "face_height", "jaw_width", "nose_length", "eye_spacing",
                                   "brow_height", "lip_fullness", "chin_length")


def build_identity(rig: Rig) -> np.ndarray:
    """(K, N, 3) float32 deltas per unit of each parameter in IDENTITY_NAMES."""
    p = rig.vertices.astype(np.float64)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    n = len(p)
    ex = eye_exclusion(rig)
    skin = skin_only(rig)
    lm = {k: p[v] for k, v in rig.landmarks.items()}
    eye_y = eye_centre(1)[1]
    chin_y = lm["chin"][1]
    fields = {}
    # Wider skull sides and ears; the face and eyes (|x| < 0.12) stay put.
    side = np.sign(x) * 0.12 * np.maximum(np.abs(x) - 0.12, 0.0) * smoothstep(0.1, 0.2, np.abs(x))
    fields["head_width"] = np.stack([side, np.zeros(n), np.zeros(n)], 1)
    # Longer lower face: everything below the eyes stretches down, the neck cap stays where it is.
    drop = 0.1 * (np.clip(y, chin_y, eye_y) - eye_y) * (1.0 - smoothstep(chin_y - 0.02, -0.48, y))
    fields["face_height"] = np.stack([np.zeros(n), drop, np.zeros(n)], 1)
    lower_face = smoothstep(-0.05, -0.18, y) * smoothstep(-0.05, 0.1, z) * (1.0 - smoothstep(-0.3, -0.42, y))
    fields["jaw_width"] = np.stack([0.12 * x * lower_face, np.zeros(n), np.zeros(n)], 1)
    nose = bump(p, lm["nose_tip"] + [0, 0.02, -0.01], (0.05, 0.09, 0.08)) * ex * skin
    fields["nose_length"] = nose[:, None] * np.array([0.0, -0.012, 0.014])
    spacing = np.zeros((n, 3))
    for s in (1, -1):
        w = 1.0 - smoothstep(0.07, 0.12, np.linalg.norm(p - eye_centre(s), axis=1))
        spacing[:, 0] += 0.01 * s * w
    fields["eye_spacing"] = spacing
    brows = (bump(p, lm["brow_left"], (0.09, 0.05, 0.08)) + bump(p, lm["brow_right"], (0.09, 0.05, 0.08))) * ex * skin
    fields["brow_height"] = brows[:, None] * np.array([0.0, 0.012, 0.0])
    line = 0.5 * (lm["lip_upper"] + lm["lip_lower"])
    lips = bump(p, line + [0, 0, 0.01], (0.1, 0.05, 0.06)) * skin * (rig.sack != 1)
    fields["lip_fullness"] = lips[:, None] * np.array([0.0, 0.0, 0.008])
    chin = bump(p, lm["chin"] + [0, 0.02, 0], (0.08, 0.07, 0.1)) * skin
    fields["chin_length"] = chin[:, None] * np.array([0.0, -0.015, 0.005])
    return np.stack([symmetrize(rig, fields[k]) for k in IDENTITY_NAMES]).astype(np.float32)
