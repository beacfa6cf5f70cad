"""Identity corrections from what the landmark fit leaves over: per vertex for a portrait, per point for a clip.

`neutral_offsets` is the same idea for video: the person's rest face, so the fit's neutral becomes this
person's and their proportions are not read as expression (fit_landmarks(neutral=)). It is what every
frame shares: the median of what the fits leave over, plus the expression present even in the frames
that have least of it (a low quantile per channel: heavy lids read as a constant half blink otherwise,
while a passing smile or an open jaw stays expression).

The head model's identity basis is small, so after `fit_landmarks` the head's own surface points (the
MediaPipe correspondences) still miss the photo's landmarks by a few pixels. `shape_offsets` measures
those misses in 3D (along the portrait camera's image plane, and in depth to the landmarks' own relative
depth when they carry one), and spreads them over the mesh with a thin-plate spline that fades to zero
away from the face. Eyeballs, teeth and tongue move rigidly (by the correction at their centre) and keep
their shape.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.interpolate import RBFInterpolator
from scipy.spatial import cKDTree

from avatar import camera as cam
from avatar.fit.checks import LandmarkFitError, check_landmarks, landmark_depth
from avatar.fit.correspondence import MESH_POINTS, correspondence
from avatar.fit.landmark_fit import FaceFit, relative_depth
from avatar.fit.landmark_model import model_points
from avatar.head_model import HeadModel

FADE_WIDTH = 0.015        # head units (~ 1 cm life size): the correction fades out over ~3x this outside the face
SMOOTHING = 1e-4          # thin-plate smoothing (head units squared): landmarks are noisy, the head must stay smooth
RIGID_PARTS = ("eyeball_left", "eyeball_right", "teeth", "tongue")
LID_REACH = 1.6           # skin within this many eyeball radii of an eyeball's centre carries it
REST_QUANTILE = 0.1       # per channel, this quantile of a clip's frames' weights is the person's rest face


def shape_offsets(head: HeadModel, fit: FaceFit, landmarks: ArrayLike, image_size: float) -> np.ndarray:
    """(N, 3) float32 offsets to add to `head.identity_vertices(fit.identity)` so that the head, posed
    with the fit's expression and seen by the fit's camera, lands on the photo's landmarks.

    landmarks and image_size as for `fit_landmarks`. The offsets are zero far from the face.
    """
    if not isinstance(fit, FaceFit):
        raise LandmarkFitError(f"fit must be a FaceFit, got {type(fit).__name__}")
    size = float(image_size)
    pts = check_landmarks(landmarks, size)
    corr = correspondence(head)
    # The mesh points only: an iris point's miss is gaze, not shape (the eyeballs follow their lids).
    mesh = slice(0, MESH_POINTS)
    posed = corr.points(head, head.posed(fit.expression, fit.identity, fit.eye))[mesh]
    depth = _seen_depth(pts / size, posed, fit.camera)
    residual = _back_project(pts[mesh, :2] / size, posed, fit.camera, depth) - posed
    neutral = corr.points(head, head.identity_vertices(fit.identity))[mesh]
    vertices = head.identity_vertices(fit.identity).astype(np.float64)
    offsets = np.zeros_like(vertices)
    tree = cKDTree(neutral)
    near = np.flatnonzero(tree.query(vertices, distance_upper_bound=3 * FADE_WIDTH)[0] < np.inf)
    spline = RBFInterpolator(neutral, residual, kernel="thin_plate_spline", smoothing=SMOOTHING)
    offsets[near] = spline(vertices[near]) * _fade(tree, vertices[near])[:, None]
    skin = head.part_vertices("skin")
    for part in RIGID_PARTS:
        idx = head.part_vertices(part)
        if not len(idx):
            continue
        centre = vertices[idx].mean(axis=0, keepdims=True)
        if part.startswith("eyeball"):
            # An eyeball moves with the lids round it: moved by the correction at its centre, the lids'
            # own correction (which differs) would let it poke through them.
            radius = np.linalg.norm(vertices[idx] - centre, axis=1).max()
            lids = skin[np.linalg.norm(vertices[skin] - centre, axis=1) < LID_REACH * radius]
            offsets[idx] = offsets[lids].mean(axis=0) if len(lids) else 0.0
        else:
            offsets[idx] = spline(centre) * _fade(tree, centre)[:, None]
    return offsets.astype(np.float32)


def neutral_offsets(head: HeadModel, fits: list[FaceFit], landmarks: Sequence[ArrayLike],
                    image_size: float) -> np.ndarray:
    """(478, 3) float64 head-unit offsets for `fit_landmarks(..., neutral=)`: per mesh point, the median
    over the frames of the landmark's miss (moved into the head's frame along each frame's image plane at
    the point's depth) plus the motion of the rest expression (zero for the iris rows). `fits` were made
    with one identity and without a neutral, one per `landmarks`."""
    if not fits or len(fits) != len(landmarks):
        raise LandmarkFitError("neutral_offsets needs one fit per set of landmarks, and at least one")
    size = float(image_size)
    mesh = slice(0, MESH_POINTS)
    misses = []
    for fit, lm in zip(fits, landmarks):
        if not isinstance(fit, FaceFit):
            raise LandmarkFitError(f"fits must be FaceFits, got {type(fit).__name__}")
        pts = check_landmarks(lm, size)
        model = model_points(head, fit.identity, fit.expression, fit.eye)[mesh]
        misses.append(_back_project(pts[mesh, :2] / size, model, fit.camera) - model)
    rest = np.quantile([fit.expression for fit in fits], REST_QUANTILE, axis=0)
    identity = fits[0].identity
    shared = model_points(head, identity, rest) - model_points(head, identity)
    out: np.ndarray = np.zeros_like(shared)
    out[mesh] = np.median(misses, axis=0) + shared[mesh]
    return out


def _fade(tree: cKDTree, x: np.ndarray) -> np.ndarray:
    """1 inside the landmark cloud, falling smoothly to 0 outside it (a saturated Gaussian density:
    a distance to the nearest point would dimple the surface between points)."""
    pairs = cKDTree(x).sparse_distance_matrix(tree, 3 * FADE_WIDTH, output_type="coo_matrix")
    density = np.bincount(pairs.row, weights=np.exp(-0.5 * (pairs.data / FADE_WIDTH) ** 2), minlength=len(x))
    fade: np.ndarray = 1.0 - np.exp(-2.0 * density)
    return fade


def _seen_depth(landmarks: np.ndarray, points: np.ndarray, camera_vector: np.ndarray) -> np.ndarray | None:
    """Camera depths of the model's mesh `points` moved to the landmarks' own relative depth (normalised
    landmarks, as fit_landmarks reads them), about the points' mean depth; None when the landmarks carry
    no depth. The fit weighs depth below x and y (landmark_fit.FREE_DEPTH_WEIGHT) and the identity basis
    is small, so the fitted profile is mostly the model's: the nose's length or the cheeks' set, which a
    turned view shows, would otherwise be the average head's."""
    seen = landmark_depth(landmarks)
    if seen is None:
        return None
    v = np.asarray(camera_vector, np.float64)
    _, depth = cam.project(points, v)
    focal = v[16]
    moved: np.ndarray = depth + (seen - relative_depth(depth, focal)) * depth.mean() / focal
    return moved


def _back_project(uv: np.ndarray, points: np.ndarray, camera_vector: np.ndarray,
                  depth: np.ndarray | None = None) -> np.ndarray:
    """World points on the camera rays through normalised pixels `uv`, at camera depths `depth` (by
    default those of `points`)."""
    v = np.asarray(camera_vector, np.float64)
    c2w, k = v[:16].reshape(4, 4), v[16:].reshape(3, 3)
    if depth is None:
        _, depth = cam.project(points, v)
    cam_pts = np.stack([(uv[:, 0] - k[0, 2]) / k[0, 0] * depth, (uv[:, 1] - k[1, 2]) / k[1, 1] * depth, depth], 1)
    world: np.ndarray = cam_pts @ c2w[:3, :3].T + c2w[:3, 3]
    return world
