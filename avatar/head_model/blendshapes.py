"""The 52 ARKit blendshapes of the embedded head, as linear per-vertex deltas at weight 1.

Each target is a smooth, compactly supported deformation of its own region. Rigid motions (jaw,
eyeballs, eyelids) are expressed as the displacement to the rotated pose, so weight 1 is exactly that
pose. Every *Left target is authored once and its *Right twin is its mirror image, so pairs are
symmetric by construction; unpaired targets are symmetrized.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np
from numpy.typing import ArrayLike

from avatar.expressions import ARKIT_NAMES, NUM_EXPRESSIONS
from avatar.head_model.base import PART_ID
from avatar.head_model.fields import bump, eye_exclusion, mirrored, skin_only, symmetrize
from avatar.head_model.geometry import LID_OPEN_DOWN, LID_OPEN_UP, Rig, eye_centre, rotate_about_x, smoothstep
from avatar.head_model.shape import JAW_HINGE, MOUTH_HALF_WIDTH, NECK_AXIS_Z, NECK_RADIUS

JAW_OPEN_ANGLE = 0.30       # radians (~17 degrees): lips part by ~3 cm at life size
EYE_LOOK_ANGLE = 0.42       # radians (~24 degrees)
REGION_THRESHOLD = 0.02     # a vertex belongs to a target's region where its weight reaches this
# The brows move as whole features, as far as a face moves them: ARKit's weight 1 is the extreme of the motion.
# Bumps peaked on the brow's upper edge moved its lower edge half as far, its outer end not at all, and its
# points on average a quarter to two fifths as far as a face's own frown or raise, so a clip's fits sat at 1
# and the avatar's brows stayed short of the person's. Every point within BROW_CORE of the brow's line moves
# fully, the motion fading out by BROW_REACH (rig units: 0.0035 is 1 mm).
BROW_CORE, BROW_REACH = 0.03, 0.06
BROW_DOWN = np.array([-0.004, -0.020, 0.003])   # a full frown lowers the inner brow ~6 mm, pulls it in ~1 mm
BROW_UP = 0.024                                 # a full raise lifts the brow ~7 mm
# A full smile carries the mouth's corner ~9 mm up and out and ~3.5 mm back round the teeth, the cheek beside
# it going along (spontaneous smiles widen the mouth by ~27 %, its corners moving at ~47 degrees: Am J Orthod
# Dentofacial Orthop 2005;128:8-15).
SMILE = np.array([0.022, 0.024, -0.012])
SMILE_REACH = (0.07, 0.065, 0.08)


def _rotate_about_y(p: np.ndarray, centre: np.ndarray, angle: np.ndarray) -> np.ndarray:
    # Positive angle turns the +z direction toward +x.
    rel = p - centre
    ca, sa = np.cos(angle), np.sin(angle)
    out = rel.copy()
    out[..., 0] = rel[..., 0] * ca + rel[..., 2] * sa
    out[..., 2] = -rel[..., 0] * sa + rel[..., 2] * ca
    rotated: np.ndarray = out + centre
    return rotated


def _polyline_distance(p: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """(N,) distance of each point of `p` (N, 3) to the polyline through `knots` (K, 3)."""
    best = np.full(len(p), np.inf)
    for a, b in itertools.pairwise(knots):
        t = np.clip((p - a) @ (b - a) / ((b - a) @ (b - a)), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(p - (a + t[:, None] * (b - a)), axis=1))
    return best


class _Author:
    """Authoring context: the rig plus precomputed weight fields."""

    def __init__(self, rig: Rig):
        self.rig = rig
        p = rig.vertices.astype(np.float64)
        self.p = p
        lm = rig.landmarks
        self.lm = {k: p[v] for k, v in lm.items()}
        self.skin = skin_only(rig)
        self.ex = eye_exclusion(rig)
        line = 0.5 * (self.lm["lip_upper"] + self.lm["lip_lower"])
        self.lip_line = line
        ml = rig.mouth_lower
        self.mouth_lower = ml
        theta = np.nan_to_num(rig.theta, nan=0.0)
        lateral = 1.0 - smoothstep(0.85, 1.35, np.abs(theta))
        radial = np.hypot(p[:, 0], p[:, 2] - NECK_AXIS_Z)
        neck = np.maximum(smoothstep(NECK_RADIUS * 1.02, NECK_RADIUS * 1.35, radial), smoothstep(-0.3, -0.2, p[:, 1]))
        inner = rig.vertex_part != PART_ID["skin"]     # mouth cavity, teeth, tongue (eyeballs: below)
        self.jaw = np.where(inner, ml, ml * lateral * neck)
        self.jaw[(rig.vertex_part == PART_ID["eyeball_left"]) | (rig.vertex_part == PART_ID["eyeball_right"])] = 0
        # Lip band: a few millimetres either side of the lip line, across the mouth, front only.
        self.lips = ((1.0 - smoothstep(0.0, 0.05, np.abs(p[:, 1] - line[1])))
                     * (1.0 - smoothstep(MOUTH_HALF_WIDTH * 0.8, MOUTH_HALF_WIDTH * 1.4, np.abs(p[:, 0])))
                     * smoothstep(line[2] - 0.07, line[2] - 0.02, p[:, 2])
                     * rig.surface * (rig.sack != 2) * (rig.sack != 3))
        self.left_half = smoothstep(-0.03, 0.03, p[:, 0])

    @functools.cached_property
    def brow(self) -> tuple[np.ndarray, np.ndarray]:
        """The left brow's (weight, position along it) per vertex: weight 1 within BROW_CORE of the brow's line
        (inner end, middle, outer end above the eye's outer corner), 0 past BROW_REACH and on the lids;
        position 0 at the inner end, 1 at the outer (by x)."""
        lm = self.lm
        inner = lm["brow_inner_left"]
        outer = lm["eye_outer_left"] + [0.0, 0.042, -0.005]
        # The line runs on to the midline, where the left brow's half of the glabella hands over to the
        # right's (left_half): the skin between the brows moves with them, one smooth field (ending the field
        # at the inner brow sheared the glabella into a seam).
        midline = inner * [0.0, 1.0, 1.0]
        distance = _polyline_distance(self.p, np.stack([midline, inner, lm["brow_left"], outer]))
        along = np.clip((self.p[:, 0] - inner[0]) / (outer[0] - inner[0]), 0.0, 1.0)
        weight = (1.0 - smoothstep(BROW_CORE, BROW_REACH, distance)) * self.left_half * self.ex * self.skin
        return weight, along

    # -- building blocks -------------------------------------------------------------------------
    def translate(self, weight: np.ndarray, vec: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        return weight[:, None] * np.asarray(vec, dtype=np.float64), weight

    def jaw_rotation(self, angle: float) -> tuple[np.ndarray, np.ndarray]:
        w = self.jaw
        return rotate_about_x(self.p, JAW_HINGE, -angle * w) - self.p, w

    def lid(self, eye: int, side: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """Rotate one lid (side +1 upper, -1 lower) of eye 0 (left) / 1 (right) about the eye centre."""
        r = self.rig
        w = r.lid_profile[eye] * r.lid_reach[eye] * (r.lid_side[eye] == side)
        c = eye_centre(1 if eye == 0 else -1)
        return rotate_about_x(self.p, c, angle * w) - self.p, w

    def eyeball(self, eye: int, pitch_up: float, yaw_plus_x: float) -> tuple[np.ndarray, np.ndarray]:
        part = PART_ID["eyeball_left" if eye == 0 else "eyeball_right"]
        c = eye_centre(1 if eye == 0 else -1)
        w = (self.rig.vertex_part == part).astype(np.float64)
        q = rotate_about_x(self.p, c, np.full(len(self.p), pitch_up))
        q = _rotate_about_y(q, c, np.full(len(self.p), yaw_plus_x))
        return (q - self.p) * w[:, None], w


def _left_targets(a: _Author) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Targets authored on the subject's left (+x); their Right twins are mirrors."""
    p, lm, ex, skin = a.p, a.lm, a.ex, a.skin
    corner = lm["mouth_corner_left"]
    ml = a.mouth_lower
    t = {}
    w_brow, along = a.brow
    # The frown pulls the inner brow down and in most; the outer end follows at ~0.6 (a face's own: on
    # talking_d10's landmarks the outer brow moves 0.62 as far as the inner).
    t["browDownLeft"] = a.translate(w_brow * (1.0 - 0.4 * along), BROW_DOWN)
    t["browOuterUpLeft"] = a.translate(w_brow * smoothstep(0.2, 0.8, along), (0.0, BROW_UP, 0.0))
    t["cheekSquintLeft"] = a.translate(bump(p, (0.115, -0.02, 0.30), (0.06, 0.05, 0.08)) * ex * skin,
                                       (0.002, 0.012, 0.004))
    t["eyeBlinkLeft"] = a.lid(0, +1, -(LID_OPEN_UP + LID_OPEN_DOWN))
    t["eyeWideLeft"] = a.lid(0, +1, 0.22)
    t["eyeSquintLeft"] = a.lid(0, -1, 0.12)
    t["eyeLookUpLeft"] = a.eyeball(0, EYE_LOOK_ANGLE, 0.0)
    t["eyeLookDownLeft"] = a.eyeball(0, -EYE_LOOK_ANGLE, 0.0)
    t["eyeLookInLeft"] = a.eyeball(0, 0.0, -EYE_LOOK_ANGLE)      # toward the nose (-x for the left eye)
    t["eyeLookOutLeft"] = a.eyeball(0, 0.0, EYE_LOOK_ANGLE)

    def corner_w(radii: tuple[float, float, float]) -> np.ndarray:
        weight: np.ndarray = bump(p, corner, radii) * skin
        return weight

    t["mouthSmileLeft"] = a.translate(corner_w(SMILE_REACH), SMILE)
    t["mouthFrownLeft"] = a.translate(corner_w((0.06, 0.055, 0.07)), (0.002, -0.014, -0.002))
    t["mouthDimpleLeft"] = a.translate(corner_w((0.045, 0.04, 0.06)), (0.006, 0.0, -0.010))
    t["mouthStretchLeft"] = a.translate(corner_w((0.06, 0.06, 0.07)), (0.014, -0.008, -0.004))
    w_press = a.lips * a.left_half * (1.0 - smoothstep(0.0, 0.03, np.abs(p[:, 1] - a.lip_line[1])))
    press = np.stack([np.zeros(len(p)), 0.0012 * (2 * ml - 1), np.full(len(p), -0.004)], 1)
    t["mouthPressLeft"] = (press * w_press[:, None], w_press)
    t["mouthLowerDownLeft"] = a.translate(a.lips * ml * a.left_half, (0.0, -0.014, 0.002))
    t["mouthUpperUpLeft"] = a.translate(a.lips * (1 - ml) * a.left_half, (0.0, 0.012, 0.002))
    w_mouth = bump(p, a.lip_line, (0.15, 0.075, 0.12)) * skin
    t["mouthLeft"] = a.translate(w_mouth, (0.022, 0.0, -0.003))
    t["jawLeft"] = a.translate(a.jaw, (0.025, 0.0, 0.0))
    t["noseSneerLeft"] = a.translate(bump(p, (0.028, -0.03, 0.36), (0.035, 0.05, 0.06)) * ex * skin,
                                     (0.0, 0.010, 0.002))
    return t


def _centre_targets(a: _Author) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    p, ex, skin = a.p, a.ex, a.skin
    ml = a.mouth_lower
    n = len(p)
    t = {}
    w_brow, along = a.brow
    inner = w_brow * (1.0 - smoothstep(0.2, 0.8, along))    # with browOuterUp at 1 too, the whole brow
    t["browInnerUp"] = a.translate(inner + mirrored(a.rig, inner), (0.0, BROW_UP, 0.002))
    cheeks = np.zeros((n, 3))
    w_cheeks = np.zeros(n)
    for s in (1, -1):
        w = bump(p, (0.12 * s, -0.12, 0.26), (0.08, 0.08, 0.1)) * skin * ex
        cheeks += w[:, None] * np.array([0.6 * s, 0.0, 0.8]) * 0.022
        w_cheeks += w
    t["cheekPuff"] = (cheeks, w_cheeks)
    t["jawOpen"] = a.jaw_rotation(JAW_OPEN_ANGLE)
    t["jawForward"] = a.translate(a.jaw, (0.0, 0.0, 0.025))
    # Closing the lips over an open jaw: the lower lip undoes the jaw's rotation near the lip line.
    close_w = a.lips * ml * (1.0 - smoothstep(0.0, 0.06, a.lip_line[1] - p[:, 1]))
    jaw_delta, _ = a.jaw_rotation(JAW_OPEN_ANGLE)
    t["mouthClose"] = (-jaw_delta * close_w[:, None], close_w)
    side = 2 * ml - 1                       # +1 lower lip, -1 upper lip
    lips = a.lips
    funnel = np.stack([-0.25 * p[:, 0], -0.008 * side, np.full(n, 0.012)], 1) * lips[:, None]
    t["mouthFunnel"] = (funnel, lips)
    pucker = np.stack([-0.35 * p[:, 0], 0.002 * side, np.full(n, 0.018)], 1) * lips[:, None]
    t["mouthPucker"] = (pucker, lips)
    narrow = lips * (1.0 - smoothstep(0.0, 0.025, np.abs(p[:, 1] - a.lip_line[1])))
    t["mouthRollLower"] = a.translate(narrow * ml, (0.0, 0.003, -0.010))
    t["mouthRollUpper"] = a.translate(narrow * (1 - ml), (0.0, -0.003, -0.010))
    chin = bump(p, a.lip_line + [0, -0.06, -0.02], (0.09, 0.09, 0.1)) * skin
    t["mouthShrugLower"] = a.translate(np.maximum(chin, lips) * ml, (0.0, 0.010, 0.004))
    t["mouthShrugUpper"] = a.translate(lips * (1 - ml), (0.0, 0.007, 0.003))
    # Tongue out: the jaw drops a little and the tongue slides forward past the lips, tip first.
    tongue = a.rig.vertex_part == PART_ID["tongue"]
    z = p[:, 2]
    zt = z[tongue]
    reach = np.where(tongue, smoothstep(zt.min(), zt.max(), z), 0.0) ** 0.7
    jaw_d, jaw_w = a.jaw_rotation(0.16)
    out = jaw_d + np.stack([np.zeros(n), -0.012 * reach, 0.115 * reach], 1)
    t["tongueOut"] = (out, np.maximum(jaw_w, tongue.astype(np.float64)))
    return t


def build_blendshapes(rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """(basis (52, N, 3) float32, regions (52, N) bool) in canonical ARKit order."""
    a = _Author(rig)
    targets = _left_targets(a)
    for name in list(targets):
        delta, w = targets[name]
        twin = name[: -len("Left")] + "Right"
        targets[twin] = (mirrored(rig, delta), mirrored(rig, w))
    for name, (delta, w) in _centre_targets(a).items():
        targets[name] = (symmetrize(rig, delta), symmetrize(rig, w))
    missing = set(ARKIT_NAMES) - set(targets)
    if missing:
        raise RuntimeError(f"embedded head: blendshapes not authored: {sorted(missing)}")
    n = len(rig.vertices)
    basis = np.zeros((NUM_EXPRESSIONS, n, 3), np.float32)
    regions = np.zeros((NUM_EXPRESSIONS, n), bool)
    for k, name in enumerate(ARKIT_NAMES):
        delta, w = targets[name]
        basis[k] = delta
        regions[k] = w >= REGION_THRESHOLD * max(float(w.max()), 1e-12)
    return basis, regions
