"""Caller-supplied face boxes and landmarks (iBUG-68 or MediaPipe-478/468), validated; features from landmarks."""
from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike

from .errors import PortraitError
from .geometry import FaceGeometry

MIN_FACE_BOX_SIDE = 16
MIN_EYE_SPACING = 4.0

# iBUG 300-W 68-point layout (0-based): the subject's right eye is 36-41 (image left in a frontal photo),
# the left eye 42-47; outer lip corners 48 (subject's right) and 54 (subject's left); inner lip 60-67.
IBUG_RIGHT_EYE = list(range(36, 42))
IBUG_LEFT_EYE = list(range(42, 48))
IBUG_MOUTH_RIGHT, IBUG_MOUTH_LEFT = 48, 54
IBUG_INNER_LIP = list(range(60, 68))

# MediaPipe face mesh: eye corners 33/133 (subject's right eye, outer/inner) and 362/263 (left eye,
# inner/outer); mouth corners 61 (right) and 291 (left); inner lip centres 13 (upper) and 14 (lower);
# iris centres 468 (right) and 473 (left) in the 478-point refined mesh.
MP_RIGHT_EYE_CORNERS = (33, 133)
MP_LEFT_EYE_CORNERS = (362, 263)
MP_MOUTH_RIGHT, MP_MOUTH_LEFT = 61, 291
MP_LIP_CENTRES = (13, 14)
MP_RIGHT_IRIS, MP_LEFT_IRIS = 468, 473
MP_MESH_POINTS = 468

LAYOUTS = {68: "ibug68", 468: "mediapipe468", 478: "mediapipe478"}


def validate_face_box(face_box: ArrayLike, width: int, height: int) -> np.ndarray:
    """(x, y, w, h) in pixels of the upright image; at least half of it must lie inside the image."""
    try:
        box = np.asarray(face_box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise PortraitError("bad_face_box", f"face_box must be four numbers (x, y, w, h), got {face_box!r}") \
            from None
    if box.shape != (4,):
        raise PortraitError("bad_face_box", f"face_box must be four numbers (x, y, w, h), got {box.size}")
    if not np.all(np.isfinite(box)):
        raise PortraitError("bad_face_box", "face_box contains NaN or infinite values")
    x, y, w, h = box
    if min(w, h) < MIN_FACE_BOX_SIDE:
        raise PortraitError("bad_face_box", f"face_box {w:g} x {h:g} is too small (each side must be at least "
                                            f"{MIN_FACE_BOX_SIDE} pixels)")
    inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
    if inside_w * inside_h < 0.5 * w * h:
        raise PortraitError("bad_face_box", f"face_box ({x:g}, {y:g}, {w:g}, {h:g}) lies mostly outside the "
                                            f"{width} x {height} image")
    return box


def parse_landmarks(landmarks: ArrayLike, width: int, height: int) -> np.ndarray:
    """Caller-supplied 68 (iBUG), 468 or 478 (MediaPipe) points in pixels of the upright image, validated:
    (K, 2), or (K, 3) when MediaPipe depth was given."""
    pts = _as_points(landmarks)
    margin = 0.05 * max(width, height)  # detectors put a few jaw points just outside the frame
    outside = (pts[:, 0] < -margin) | (pts[:, 0] > width + margin) | \
              (pts[:, 1] < -margin) | (pts[:, 1] > height + margin)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise PortraitError("bad_landmarks", f"{int(outside.sum())} landmarks lie outside the {width} x {height} "
                                             f"image (first: point {first} at {pts[first, :2].tolist()}); "
                                             f"landmarks are in pixels of the EXIF-upright image")
    geometry_from_landmarks(pts)  # refuses normalised, mirrored or upside-down sets
    return pts


def geometry_from_landmarks(landmarks: np.ndarray) -> FaceGeometry:
    """FaceGeometry from (K, 2+) points, K = 68 (iBUG), 468 or 478 (MediaPipe; 478 gives the iris centres)."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    layout = LAYOUTS[len(pts)]
    if layout == "ibug68":
        eye_right = pts[IBUG_RIGHT_EYE].mean(axis=0)
        eye_left = pts[IBUG_LEFT_EYE].mean(axis=0)
        mouth_right, mouth_left = pts[IBUG_MOUTH_RIGHT], pts[IBUG_MOUTH_LEFT]
        mouth_center = pts[IBUG_INNER_LIP].mean(axis=0)
    else:
        if layout == "mediapipe478":
            eye_right, eye_left = pts[MP_RIGHT_IRIS], pts[MP_LEFT_IRIS]
        else:
            eye_right = pts[list(MP_RIGHT_EYE_CORNERS)].mean(axis=0)
            eye_left = pts[list(MP_LEFT_EYE_CORNERS)].mean(axis=0)
        mouth_right, mouth_left = pts[MP_MOUTH_RIGHT], pts[MP_MOUTH_LEFT]
        mouth_center = pts[list(MP_LIP_CENTRES)].mean(axis=0)

    spacing = float(np.hypot(*(eye_left - eye_right)))
    if spacing < MIN_EYE_SPACING:
        raise PortraitError("bad_landmarks", f"the eyes are only {spacing:.2f} pixels apart; landmarks must be in "
                                             f"pixels (not normalised 0..1) and follow the {layout} layout")
    # For a face the right way up the mouth lies on the chin side of the eye line (positive cross product).
    across = eye_left - eye_right
    to_mouth = 0.5 * (mouth_left + mouth_right) - 0.5 * (eye_left + eye_right)
    if across[0] * to_mouth[1] - across[1] * to_mouth[0] <= 0:
        raise PortraitError("bad_landmarks", f"the landmarks do not follow the {layout} layout (the mouth is not "
                                             f"below the eyes, or left and right are swapped)")
    face = pts[:MP_MESH_POINTS] if layout != "ibug68" else pts
    lo = face.min(axis=0)
    hi = face.max(axis=0)
    box = np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
    detected = {name: True for name in ("eye_left", "eye_right", "mouth_left", "mouth_right", "mouth_center",
                                        "face_box")}
    return FaceGeometry(face_box=box, eye_left=eye_left, eye_right=eye_right, mouth_left=mouth_left,
                        mouth_right=mouth_right, mouth_center=mouth_center, detected=detected)


def _as_points(landmarks: ArrayLike) -> np.ndarray:
    try:
        arr = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError):
        raise PortraitError("bad_landmarks", "landmarks must be numbers: a flat list of x, y pairs or a (K, 2) "
                                             "array") from None
    if arr.ndim == 1 and arr.size % 2 == 0:
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3) or arr.shape[0] not in LAYOUTS \
            or (arr.shape[1] == 3 and arr.shape[0] == 68):
        raise PortraitError("bad_landmarks", f"expected 68 (iBUG) x, y or 468 or 478 (MediaPipe) x, y (, z) "
                                             f"landmarks, got an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise PortraitError("bad_landmarks", "landmarks contain NaN or infinite values")
    return arr


def face_hull_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(S, S) bool: the hull of the face mesh's 468 points (pixels of a square S x S image)."""
    hull = cv2.convexHull(np.asarray(landmarks)[:MP_MESH_POINTS, :2].astype(np.float32)).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask > 0
