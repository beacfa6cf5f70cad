"""FFHQ-style framing: an oriented square fixed by the eye line and the eye-to-mouth direction."""
from __future__ import annotations

import cv2
import numpy as np

from .geometry import FaceGeometry

CROP_SIZE = 512
# Half the square's side is the larger of these multiples of the eye spacing and of the eye-to-mouth distance;
# the centre sits this fraction of the eye-to-mouth vector below the eyes. (Framing of the FFHQ data set.)
HALF_SIDE_PER_EYE_SPACING = 2.0
HALF_SIDE_PER_EYE_TO_MOUTH = 1.8
CENTRE_SHIFT_TOWARD_MOUTH = 0.1


def alignment_affine(geom: FaceGeometry, size: int = CROP_SIZE) -> np.ndarray:
    """(2, 3) affine from original pixels to crop pixels: a similarity (rotation, uniform scale, shift)."""
    eye_mid = 0.5 * (geom.eye_left + geom.eye_right)
    across = geom.eye_left - geom.eye_right            # image-left eye -> image-right eye
    to_mouth = 0.5 * (geom.mouth_left + geom.mouth_right) - eye_mid
    # The square's x axis blends the eye line with the eye-mouth axis turned by 90 degrees, so that a
    # noisy eye line alone does not tilt the crop.
    x_axis = across + np.array([to_mouth[1], -to_mouth[0]])
    x_axis /= np.hypot(*x_axis)
    half = max(HALF_SIDE_PER_EYE_SPACING * np.hypot(*across), HALF_SIDE_PER_EYE_TO_MOUTH * np.hypot(*to_mouth))
    x_axis *= half
    y_axis = np.array([-x_axis[1], x_axis[0]])         # x turned +90 degrees: pointing toward the chin
    centre = eye_mid + CENTRE_SHIFT_TOWARD_MOUTH * to_mouth
    src = np.float32([centre - x_axis - y_axis, centre + x_axis - y_axis, centre - x_axis + y_axis])
    dst = np.float32([[0, 0], [size, 0], [0, size]])
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def warp(image: np.ndarray, affine: np.ndarray, size: int = CROP_SIZE,
         border: int = cv2.BORDER_REFLECT) -> np.ndarray:
    """Resample `image` into the crop, pre-shrinking big sources so the warp does not alias."""
    scale = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
    if scale < 0.5:
        f = 2.0 * scale
        h, w = image.shape[:2]
        small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        back = np.diag([w / small.shape[1], h / small.shape[0], 1.0])  # small pixels -> original pixels
        affine = affine @ back
        image = small
    return cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ affine[:, :2].T + affine[:, 2]


def box_through_affine(affine: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Axis-aligned bounds, in the crop, of a box given in original pixels."""
    x, y, w, h = box
    corners = apply_affine(affine, np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
