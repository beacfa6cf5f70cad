"""Dense fit of a head model to MediaPipe's face mesh: identity, expression, pose, camera and gaze.

`fit_landmarks` solves a robust least-squares problem (scipy's trust-region solver, soft-L1 loss, an
analytic Jacobian; a rigid start, then a plain and a robust pass, bounds by a two-pass active set; warm
from a previous frame's fit, what sat at a bound there starts held at it) for:
  - identity (K parameters, pulled toward the mean head),
  - the 52 ARKit weights in [0, 1] (canonical order), pulled toward 0 so weight 0 stays a neutral face
    (channels with little landmark motion harder while the identity is free; see landmark_model);
    eyeLook* and tongueOut are not fitted (gaze is the eye 4-vector; the tongue is never a landmark),
    and two that pull one feature opposite ways (a corner's smile and frown) are not read together,
  - the eye 4-vector (FaceVerse layout, see HeadModel.posed) from the iris points,
  - the portrait camera: rotation, position and focal length.
Identity and expression are solved together, so a smiling photo gives smile weights and a neutral
identity: the portrait's expression is removed from the identity.

Camera convention (as the portrait generator uses it): the head stays canonical in its box and the pose
goes into the camera, an orbit (yaw, pitch, roll, radius, fov) plus a sideways shift of the camera in
world x/y, so `FaceFit.camera` is the EG3D 25-vector of `avatar.camera.camera_vector(orbit, shift)`.
`FaceFit.head_pose` is the same pose seen the other way round: the head's rotation (yaw, pitch, roll
radians, `avatar.camera.head_rotation` convention) in front of a frontal camera.

The model is MediaPipe's mean face laid on the head (correspondence.mean_face) and moved by the head's own
identity, expression and gaze deltas at the bound points, so a mean face fits with weight 0 everywhere.
The head's own proportions differ from the mean face; `shape_offsets` carries that difference (and what
the identity basis cannot reach) onto the mesh.

Input: MediaPipe's points in pixels of a square crop of side `image_size`, x right, y down, z relative depth
in the same pixel scale (negative toward the camera). x and y drive the fit; z is used weakly (it is
relative and noisy; `shape_offsets` takes the profile from it), more with the identity free (the identity's
profile components are seen only in depth), and not at all when the points carry none (a caller's 2-D
landmarks, padded with zeros); the face-oval points (they slide along the cheek) and the rings round the
eyes (they do not follow the lids) weigh less. The lid margins are best taken from the iris
model's eye contours (avatar.portrait.face_mesh.refined_lids): the mesh's own lids barely close on a blink.
Of the iris rings only their centres are used (pipelines order the ring points differently).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from avatar import camera as cam
from avatar.expressions import NUM_EXPRESSIONS, index_of
from avatar.fit.checks import (
    LandmarkFitError,
    check_identity,
    check_landmarks,
    check_neutral,
    check_size,
    landmark_depth,
)
from avatar.fit.correspondence import (
    FACE_OVAL,
    IRIS_CENTRES,
    IRIS_RINGS,
    MESH_POINTS,
    NUM_POINTS,
    PERIOCULAR,
    REGIONS,
)
from avatar.fit.landmark_model import (
    FITTED,
    EyePose,
    LandmarkModel,
    eye_rotation,
    landmark_model,
    model_points,
    pose_points,
)
from avatar.head_model import HeadModel

__all__ = ["FaceFit", "LandmarkFitError", "fit_landmarks", "model_points", "relative_depth"]

# Weights of the residuals, relative to one mesh point's x or y. The face oval slides along the cheek and
# the periocular rings do not follow the lids (correspondence.PERIOCULAR): at full weight they hold a
# blink open (measured: eyeBlink 0.0 on closed eyes of talking-head clips, 0.8-1.0 at this weight).
CONTOUR_WEIGHT = 0.3
PERIOCULAR_WEIGHT = 0.3
IRIS_WEIGHT = 1.0
# Depth, against one mesh point's x or y. With the identity held (a clip's frames) depth steers only pose
# and expression, where MediaPipe's per-frame z noise would move the weights: it weighs little. With the
# identity free (a lone portrait) it is the only evidence of the identity's profile components, which x and
# y do not see (the embedded model's lip fullness moves its points in depth alone): weighed as lightly, the
# identity prior holds them at the mean head. shape_offsets corrects the depth at the landmarks only, fading
# out a few centimetres beyond them; the identity carries the profile to the head round them.
DEPTH_WEIGHT = 0.15
FREE_DEPTH_WEIGHT = 0.6
# Priors, in the residuals' unit (fractions of the image side) per unit of the parameter.
IDENTITY_PRIOR = 0.01
EYE_PRIOR = 0.002
FOCAL_PRIOR = 1.0          # per unit of log focal length, toward the EG3D default field of view: a turned
                           # head (or a painting) is explained by perspective otherwise (Vermeer fitted 40 deg)
ROBUST_SCALE = 0.008       # soft-L1 knee: residuals beyond ~4 px of a 512 crop count linearly
_FITTED_INDEX = {int(k): j for j, k in enumerate(FITTED)}
_MOUTH_CLOSE, _JAW_OPEN = index_of("mouthClose"), index_of("jawOpen")
# Antagonists: blendshapes that pull the same feature opposite ways. Together they cancel on this rig and sum
# to a motion neither names (a smile and a frown on one corner carried it out and back, and stood in for
# mouthStretch in most of a talking clip's frames); an engine's rig, driven by the exported weights, does not
# cancel them the same way. Both on together costs BOUND_PENALTY per unit of their product.
ANTAGONISTS = tuple((_FITTED_INDEX[index_of(a)], _FITTED_INDEX[index_of(b)]) for a, b in (
    ("mouthSmileLeft", "mouthFrownLeft"), ("mouthSmileRight", "mouthFrownRight"),
    ("mouthLeft", "mouthRight"), ("jawLeft", "jawRight")))
_LOG_MIN_DISTANCE = math.log(1.2)   # camera to head centre, world units (the box's corner is at 0.87)
# Bounds: head pose (radians), eye rotations (radians), field of view (degrees).
MAX_YAW, MAX_PITCH, MAX_ROLL = math.radians(75), math.radians(60), math.radians(75)
MAX_EYE = 0.7
FOV_RANGE = (4.0, 45.0)
RIGID_ITERATIONS, LINEAR_ITERATIONS, COLD_ITERATIONS, WARM_ITERATIONS = 15, 6, 40, 12
BOUND_PENALTY = 1.0        # residual per unit of mouthClose beyond jawOpen, or of log distance too close
TOLERANCE = 1e-3           # relative change of cost or parameters that ends the solve


@dataclass(frozen=True)
class FaceFit:
    """The fitted head and portrait camera. Angles in radians unless named _deg; errors as fractions of the
    crop side (RMS of the 2D distances between the model's projected points and the landmarks)."""

    camera: np.ndarray          # (25,) float32 EG3D portrait camera
    orbit: cam.Orbit            # its orbit parameters (degrees, radius, fov)
    shift: np.ndarray           # (3,) float64 camera shift in world units (z is 0)
    fov_deg: float
    head_pose: np.ndarray       # (3,) float64 yaw, pitch, roll of the head before a frontal camera
    identity: np.ndarray        # (K,) float32
    expression: np.ndarray      # (52,) float32 in [0, 1], canonical ARKit order
    eye: np.ndarray             # (4,) float32 FaceVerse eye vector (left down, left right, right down, right right)
    residual: float             # RMS over the mesh points and iris centres
    errors: dict[str, float] = field(default_factory=dict)  # region (eyes, brows, nose, mouth, contour) -> RMS


def fit_landmarks(head: HeadModel, landmarks: ArrayLike, image_size: float, *, identity: ArrayLike | None = None,
                  prior: FaceFit | None = None, neutral: ArrayLike | None = None) -> FaceFit:
    """Fit `head` to MediaPipe landmarks (478 or 468 rows of x, y[, z] pixels in a square crop).

    identity: hold the identity fixed at this (K,) vector (video tracking, one identity per clip).
    prior: a previous fit (e.g. the last frame's) to start from; its field of view is kept.
    neutral: (478, 3) head-unit offsets added to the model points (`neutral_offsets`: what the identity
    basis cannot reach of one person's neutral face, estimated once per clip); rows past the mesh are unused.
    Raises LandmarkFitError (a ValueError) on malformed input.
    """
    size = check_size(image_size)
    pts = check_landmarks(landmarks, size)
    model = landmark_model(head)
    fixed_identity = None if identity is None else check_identity(head, identity)
    if prior is not None and not isinstance(prior, FaceFit):
        raise LandmarkFitError(f"prior must be a FaceFit from an earlier fit, got {type(prior).__name__}")
    problem = _Problem(model, pts / size, fixed_identity, fixed_fov=None if prior is None else prior.fov_deg,
                       neutral=check_neutral(neutral))
    x0 = problem.start(prior)
    if prior is None:
        x0 = _solve(problem, x0, problem.free()[problem.free() < 7], RIGID_ITERATIONS)
    x = _warm_solve(problem, x0) if prior is not None else _bounded_solve(problem, x0, COLD_ITERATIONS)
    return problem.result(x)


def relative_depth(depth: np.ndarray, focal: float) -> np.ndarray:
    """MediaPipe-style relative depth of points at camera depths `depth` (any unit) seen with the normalised
    `focal`: image units (fractions of the side, x and y's scale at the points' mean depth), zero mean."""
    mean = depth.mean()
    z: np.ndarray = focal * (depth - mean) / mean
    return z


def _bounded_solve(problem: _Problem, x0: np.ndarray, max_nfev: int) -> np.ndarray:
    """Least squares within the parameters' bounds by a two-pass active set.

    A bounded trust region crawls when most of the 52 weights sit at 0, and steep penalties wreck its
    steps; an unbounded solve converges in a few steps. So: solve freely, clip, hold what left its bounds
    at the bound, and solve again for the rest.
    """
    lo, hi = problem.bounds()
    free = problem.free()
    # Plain least squares first: from a start far off, the robust loss's local model is poor and the
    # trust region shrinks to nothing; the robust pass then only has outliers to deal with.
    x: np.ndarray = _solve(problem, x0, free, LINEAR_ITERATIONS, loss="linear")
    x = _solve(problem, x, free, max_nfev)
    outside = (x < lo) | (x > hi)
    x = np.clip(x, lo, hi)
    if outside[free].any():
        x = _solve(problem, x, free[~outside[free]], max_nfev)
        x = np.clip(x, lo, hi)
    return x


def _warm_solve(problem: _Problem, x0: np.ndarray) -> np.ndarray:
    """_bounded_solve from a previous frame's fit: what sat at a bound there is held at it from the start
    (most of the 52 weights sit at 0 from frame to frame), and released when the cost's slope pulls it
    inward; the rest is solved robustly at once (the start is close: no plain pass). Measured on the
    reference clips: 2 solves of fewer parameters a frame instead of 3 of all, 25 -> 11.5 ms CPU a fit, the
    landmark error no larger."""
    lo, hi = problem.bounds()
    free = problem.free()
    at_lo, at_hi = x0 <= lo, x0 >= hi
    held = (at_lo | at_hi)[free]
    x = _solve(problem, x0, free[~held], WARM_ITERATIONS)
    r = problem.residuals(x)
    slope = problem.jacobian(x)[:, free[held]].T @ (r / np.sqrt(1.0 + (r / ROBUST_SCALE) ** 2))
    release = np.zeros_like(held)
    release[held] = np.where(at_lo[free[held]], slope < 0, slope > 0)
    outside = ((x < lo) | (x > hi))[free]
    x = np.clip(x, lo, hi)
    if release.any() or outside.any():
        x = _solve(problem, x, free[~(held & ~release) & ~outside], WARM_ITERATIONS)
    clipped: np.ndarray = np.clip(x, lo, hi)
    return clipped


def _solve(problem: _Problem, x0: np.ndarray, columns: np.ndarray, max_nfev: int, loss: str = "soft_l1"
           ) -> np.ndarray:
    """Robust least squares over the parameters in `columns`, the others held at x0."""
    def full(xs: np.ndarray) -> np.ndarray:
        x: np.ndarray = x0.copy()
        x[columns] = xs
        return x

    sol = least_squares(lambda xs: problem.residuals(full(xs)), x0[columns],
                        jac=lambda xs: problem.jacobian(full(xs))[:, columns], method="trf", loss=loss,
                        f_scale=ROBUST_SCALE, x_scale=1.0, xtol=TOLERANCE, ftol=TOLERANCE, max_nfev=max_nfev)
    return full(sol.x)


# -- the least-squares problem ---------------------------------------------------------------------

class _Problem:
    """Parameters: [head yaw, pitch, roll (radians), a, b, log s, log f | identity | expression | eye].

    The camera is parametrised for conditioning: the world origin sits at camera coordinates
    t = (a, b, 1) * tz with tz = f / s, so s is the image scale of the head and f the focal length
    (normalised, as in avatar.camera.intrinsics).
    """

    def __init__(self, model: LandmarkModel, target: np.ndarray, identity: np.ndarray | None,
                 fixed_fov: float | None, neutral: np.ndarray | None = None):
        self.m = model
        self.neutral = neutral
        self.k = len(model.head.identity_names)
        self.fixed_identity = identity
        self.fixed_fov = fixed_fov
        self.n_id = 0 if identity is not None else self.k
        self.n_ex = len(FITTED)
        # A held identity is a clip's: its neutral offsets and rest expression take the person's own
        # proportions, so the weights need guarding against landmark noise only (landmark_model).
        self.expression_prior = model.held_expression_prior if identity is not None else model.expression_prior
        n = len(target)
        xy = target[:, :2].copy()
        weights = np.ones(n)
        weights[list(FACE_OVAL)] = CONTOUR_WEIGHT
        weights[list(PERIOCULAR)] = PERIOCULAR_WEIGHT
        self.rows = np.arange(MESH_POINTS)                         # the points the residuals use
        if n == NUM_POINTS:
            # The ring's order differs between MediaPipe pipelines: only its centre is used, averaged
            # with the iris centre point.
            for centre, ring in zip(IRIS_CENTRES, IRIS_RINGS):
                xy[centre] = 0.5 * (xy[centre] + xy[list(ring)].mean(axis=0))
            weights[list(IRIS_CENTRES)] = IRIS_WEIGHT
            self.rows = np.r_[self.rows, list(IRIS_CENTRES)]
        self.xy, self.w = xy[self.rows], weights[self.rows]
        mesh = np.arange(MESH_POINTS)
        self.z = landmark_depth(target)
        self.depth_weight = DEPTH_WEIGHT if identity is not None else FREE_DEPTH_WEIGHT
        self.z_rows = mesh                                         # rows of self.rows with a depth
        self.log_f0 = math.log(cam.focal_from_fov(cam.DEFAULT_FOV_DEG if fixed_fov is None else fixed_fov))

    def points(self, ident: np.ndarray, expr: np.ndarray, eye: np.ndarray) -> tuple[np.ndarray, list[EyePose]]:
        """pose_points plus the clip's neutral offsets on the mesh points (the irises turn with the gaze)."""
        p, eyes = pose_points(self.m, ident, expr, eye)
        if self.neutral is not None:
            p[:MESH_POINTS] += self.neutral[:MESH_POINTS]
        return p, eyes

    # parameter vector layout
    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(camera (7,), identity (K,), expression (52,), eye (4,)) of a parameter vector."""
        i = 7
        ident = self.fixed_identity if self.fixed_identity is not None else x[i:i + self.k]
        i += self.n_id
        expr = np.zeros(NUM_EXPRESSIONS)
        expr[FITTED] = x[i:i + self.n_ex]
        i += self.n_ex
        return x[:7], ident, expr, x[i:i + 4]

    def size(self) -> int:
        return 7 + self.n_id + self.n_ex + 4

    def free(self) -> np.ndarray:
        """Indices of the parameters the solver moves (the focal length stays when a prior fixed it)."""
        every = np.arange(self.size())
        return every[every != 6] if self.fixed_fov is not None else every

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.full(self.size(), -np.inf)
        hi = np.full(self.size(), np.inf)
        lo[:3], hi[:3] = (-MAX_YAW, -MAX_PITCH, -MAX_ROLL), (MAX_YAW, MAX_PITCH, MAX_ROLL)
        lo[3:5], hi[3:5] = -1.0, 1.0
        f_lo, f_hi = (math.log(cam.focal_from_fov(v)) for v in FOV_RANGE[::-1])
        if self.fixed_fov is not None:
            f_lo = f_hi = self.log_f0
        lo[6], hi[6] = f_lo, f_hi
        i = 7
        lo[i:i + self.n_id], hi[i:i + self.n_id] = self.m.head.identity_range
        i += self.n_id
        lo[i:i + self.n_ex], hi[i:i + self.n_ex] = 0.0, 1.0
        i += self.n_ex
        lo[i:], hi[i:] = -MAX_EYE, MAX_EYE
        return lo, hi

    # camera
    @staticmethod
    def rotation(c: np.ndarray) -> np.ndarray:
        """cam2world rotation of the camera that sees the still head as a frontal camera sees the head
        turned by the head pose c[:3] (avatar.camera.apply_head_pose)."""
        rot: np.ndarray = cam.head_rotation(*c[:3]).T @ _FRONTAL
        return rot

    @staticmethod
    def project(p: np.ndarray, rot: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Normalised image points (P, 2), camera-space points (P, 3) and the focal length."""
        a, b, log_s, log_f = c[3:7]
        f = math.exp(log_f)
        tz = f / math.exp(log_s)
        q = p @ rot + np.array([a * tz, b * tz, tz])
        uv = f * q[:, :2] / q[:, 2:3] + 0.5
        return uv, q, f

    def data_residuals(self, p: np.ndarray, c: np.ndarray, rot: np.ndarray | None = None) -> np.ndarray:
        uv, q, f = self.project(p[self.rows], self.rotation(c) if rot is None else rot, c)
        r = [((uv - self.xy) * self.w[:, None]).reshape(-1)]
        if self.z is not None:
            r.append(self.depth_weight * (relative_depth(q[self.z_rows, 2], f) - self.z))
        return np.concatenate(r)

    def residuals(self, x: np.ndarray) -> np.ndarray:
        c, ident, expr, eye = self.split(x)
        p, _ = self.points(ident, expr, eye)
        fitted = expr[FITTED]
        priors = [self.expression_prior * fitted, EYE_PRIOR * eye, [FOCAL_PRIOR * (c[6] - self.log_f0)]]
        if self.fixed_identity is None:
            priors.insert(0, IDENTITY_PRIOR * ident)
        antagonists = [BOUND_PENALTY * fitted[a] * fitted[b] for a, b in ANTAGONISTS]
        # ARKit's mouthClose closes the lips over an open jaw: never more than jawOpen.
        closing = BOUND_PENALTY * max(expr[_MOUTH_CLOSE] - expr[_JAW_OPEN], 0.0)
        # The camera stays well outside the head's box (log distance = log f - log s).
        too_close = BOUND_PENALTY * min(c[6] - c[5] - _LOG_MIN_DISTANCE, 0.0)
        return np.concatenate([self.data_residuals(p, c)] + [np.asarray(v, np.float64) for v in priors]
                              + [antagonists, [closing, too_close]])

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        c, ident, expr, eye = self.split(x)
        p, eyes = self.points(ident, expr, eye)
        rot = self.rotation(c)
        uv, q, f = self.project(p[self.rows], rot, c)
        world = p[self.rows]
        a, b, log_s, _ = c[3:7]
        tz = f / math.exp(log_s)
        # Camera-space derivatives of the points, (n_params, P, 3), one block per parameter group.
        dq = np.empty((self.size(), len(self.rows), 3))
        h = 1e-6
        for j in range(3):                                                  # orbit angles
            cj = c.copy()
            cj[j] += h
            dq[j] = world @ ((self.rotation(cj) - rot) / h)
        dq[3] = (tz, 0.0, 0.0)
        dq[4] = (0.0, tz, 0.0)
        dq[5] = (-a * tz, -b * tz, -tz)
        dq[6] = (a * tz, b * tz, tz)                                       # plus f's own factor, below
        dq[7:] = self._point_derivatives(eyes, eye)[:, self.rows] @ rot
        inv_z = 1.0 / q[:, 2]
        du = f * (dq[..., 0] - q[:, 0] * inv_z * dq[..., 2]) * inv_z       # (n_params, P)
        dv = f * (dq[..., 1] - q[:, 1] * inv_z * dq[..., 2]) * inv_z
        du[6] += uv[:, 0] - 0.5
        dv[6] += uv[:, 1] - 0.5
        n_rows = len(self.rows)
        n_data = 2 * n_rows + (0 if self.z is None else len(self.z_rows))
        jac = np.zeros((n_data + self.size() - 7 + 1 + len(ANTAGONISTS) + 2, self.size()))
        jac[0:2 * n_rows:2], jac[1:2 * n_rows:2] = (du * self.w).T, (dv * self.w).T
        if self.z is not None:
            depth = q[self.z_rows, 2]
            mean = depth.mean()
            dd = dq[:, self.z_rows, 2]
            dmean = dd.mean(axis=1, keepdims=True)
            dz = f * (dd - dmean) / mean - f * (depth - mean) / mean ** 2 * dmean
            dz[6] += f * (depth - mean) / mean
            jac[2 * n_rows:n_data] = self.depth_weight * (dz - dz.mean(axis=1, keepdims=True)).T
        row, col = n_data, 7                                                # priors
        if self.fixed_identity is None:
            jac[row + np.arange(self.k), col + np.arange(self.k)] = IDENTITY_PRIOR
            row, col = row + self.k, col + self.k
        jac[row + np.arange(self.n_ex), col + np.arange(self.n_ex)] = self.expression_prior
        row, col = row + self.n_ex, col + self.n_ex
        jac[row + np.arange(4), col + np.arange(4)] = EYE_PRIOR
        jac[row + 4, 6] = FOCAL_PRIOR
        first, fitted = 7 + self.n_id, expr[FITTED]
        for k, (a, b) in enumerate(ANTAGONISTS):
            jac[row + 5 + k, first + a] = BOUND_PENALTY * fitted[b]
            jac[row + 5 + k, first + b] = BOUND_PENALTY * fitted[a]
        if expr[_MOUTH_CLOSE] > expr[_JAW_OPEN]:
            jac[-2, first + _FITTED_INDEX[_MOUTH_CLOSE]] = BOUND_PENALTY
            jac[-2, first + _FITTED_INDEX[_JAW_OPEN]] = -BOUND_PENALTY
        if c[6] - c[5] < _LOG_MIN_DISTANCE:
            jac[-1, 5], jac[-1, 6] = -BOUND_PENALTY, BOUND_PENALTY
        return jac

    def _point_derivatives(self, eyes: list[EyePose], eye: np.ndarray) -> np.ndarray:
        """(n_id + n_ex + 4, 478, 3): derivatives of the world points by the non-camera parameters."""
        m = self.m
        parts = []
        if self.fixed_identity is None:
            d_id = m.identity.copy()
            for side, (idx, rot, _) in enumerate(eyes):
                # p' = c + R (p - c): identity moves the point and the rotation centre.
                dc = m.eye_centre_identity[:, side]                         # (K, 3)
                d_id[:, idx] = d_id[:, idx] @ rot.T + (dc - dc @ rot.T)[:, None, :]
            parts.append(d_id)
        d_ex = m.expression[FITTED].copy()
        for idx, rot, _ in eyes:
            d_ex[:, idx] = d_ex[:, idx] @ rot.T
        parts.append(d_ex)
        d_eye = np.zeros((4, NUM_POINTS, 3))
        h = 1e-6
        for side, (idx, rot, rest) in enumerate(eyes):
            down, right = eye[2 * side], eye[2 * side + 1]
            for j, (dd, dr) in enumerate(((h, 0.0), (0.0, h))):
                d_eye[2 * side + j, idx] = (rest @ eye_rotation(down + dd, right + dr).T - rest @ rot.T) / h
        parts.append(d_eye)
        return np.concatenate(parts)

    # start and result
    def start(self, prior: FaceFit | None) -> np.ndarray:
        x = np.zeros(self.size())
        if prior is not None:
            x[:7] = _camera_params(prior.camera)
            i = 7
            if self.fixed_identity is None:
                x[i:i + self.k] = prior.identity
                i += self.k
            x[i:i + self.n_ex] = prior.expression[FITTED]
            x[i + self.n_ex:] = prior.eye
        else:
            x[:7] = self._initial_camera()
        return np.clip(x, *self.bounds())

    def _initial_camera(self) -> np.ndarray:
        """A weak-perspective (affine) camera from the neutral mean head, made into our parameters."""
        ident = np.zeros(self.k) if self.fixed_identity is None else self.fixed_identity
        p, _ = self.points(ident, np.zeros(NUM_EXPRESSIONS), np.zeros(4))
        mesh = slice(0, MESH_POINTS)                                # the first rows are the mesh points
        src = np.hstack([p[mesh], np.ones((MESH_POINTS, 1))])
        sol, *_ = np.linalg.lstsq(src * self.w[mesh, None], self.xy[mesh] * self.w[mesh, None], rcond=None)
        a = sol[:3].T                                               # (2, 3) rows: image x, y per world axis
        scale = 0.5 * (np.linalg.norm(a[0]) + np.linalg.norm(a[1]))
        r1 = a[0] / np.linalg.norm(a[0])
        r2 = a[1] - (a[1] @ r1) * r1
        r2 /= np.linalg.norm(r2)
        rot = np.stack([r1, r2, np.cross(r1, r2)], axis=1)          # cam2world: columns x right, y down, z forward
        f = math.exp(self.log_f0)
        offset = (sol[3] - 0.5) / f
        return np.array([*_head_pose(rot), offset[0], offset[1], math.log(scale), self.log_f0])

    def result(self, x: np.ndarray) -> FaceFit:
        c, ident, expr, eye = self.split(x)
        p, _ = self.points(ident, expr, eye)
        uv, _, _ = self.project(p[self.rows], self.rotation(c), c)
        dist = np.linalg.norm(uv - self.xy, axis=1)
        position = {int(point): row for row, point in enumerate(self.rows)}
        errors = {name: float(np.sqrt(np.mean(dist[[position[i] for i in idx if i in position]] ** 2)))
                  for name, idx in REGIONS.items()}
        orbit, shift = _orbit_and_shift(c)
        return FaceFit(camera=cam.camera_vector(orbit, shift), orbit=orbit, shift=shift, fov_deg=orbit.fov_deg,
                       head_pose=np.array(c[:3], np.float64), identity=np.asarray(ident, np.float32).copy(),
                       expression=expr.astype(np.float32), eye=np.asarray(eye, np.float32).copy(),
                       residual=float(np.sqrt(np.mean(dist ** 2))), errors=errors)


# -- camera conversions ----------------------------------------------------------------------------

def _orbit_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """Orbit yaw, pitch, roll (radians) of a camera with this cam2world rotation."""
    away = -rot[:, 2]                                               # from the head toward the camera
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = rot, cam.DEFAULT_RADIUS * away
    vec = np.concatenate([c2w.reshape(-1), cam.intrinsics().reshape(-1)])
    o = cam.orbit_from_camera_vector(vec)
    return math.radians(o.yaw_deg), math.radians(o.pitch_deg), math.radians(o.roll_deg)


def _orbit_and_shift(c: np.ndarray) -> tuple[cam.Orbit, np.ndarray]:
    """Our camera parameters as an orbit about the origin plus a shift of the camera in world x/y."""
    rot = _Problem.rotation(c)
    a, b, log_s, log_f = c[3:7]
    f = math.exp(log_f)
    tz = f / math.exp(log_s)
    origin = -rot @ np.array([a * tz, b * tz, tz])                 # camera centre in the world
    away = -rot[:, 2]
    radius = origin[2] / away[2]
    shift = np.array([origin[0] - radius * away[0], origin[1] - radius * away[1], 0.0])
    yaw, pitch, roll = (math.degrees(v) for v in _orbit_angles(rot))
    try:
        orbit = cam.Orbit(yaw, pitch, roll, float(radius), cam.fov_from_focal(f)).validate()
    except cam.CameraError as exc:
        raise LandmarkFitError(f"the landmarks give no usable portrait camera ({exc})") from None
    return orbit, shift


def _camera_params(vec: np.ndarray) -> np.ndarray:
    """Inverse of _orbit_and_shift for a FaceFit camera: our 7 camera parameters."""
    v = np.asarray(vec, np.float64)
    c2w, k = v[:16].reshape(4, 4), v[16:].reshape(3, 3)
    rot = c2w[:3, :3]
    t = -rot.T @ c2w[:3, 3]
    f = k[1, 1]
    return np.array([*_head_pose(rot), t[0] / t[2], t[1] / t[2], math.log(f / t[2]), math.log(f)])


_FRONTAL = cam.orbit_to_cam2world(cam.Orbit())[:3, :3]


def _head_pose(rot: np.ndarray) -> np.ndarray:
    """Head yaw, pitch, roll (radians) that a frontal camera would see as this camera (cam2world rotation)
    sees the still head."""
    return np.array(cam.head_pose_from_rotation(_FRONTAL @ rot.T))
