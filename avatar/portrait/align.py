"""FFHQ-style framing: an oriented square fixed by the eye line and the eye-to-mouth direction."""
from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike

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
    src = np.array([centre - x_axis - y_axis, centre + x_axis - y_axis, centre - x_axis + y_axis], np.float32)
    dst = np.array([[0, 0], [size, 0], [0, size]], np.float32)
    affine: np.ndarray = cv2.getAffineTransform(src, dst).astype(np.float64)
    return affine


def warp(image: np.ndarray, affine: np.ndarray, size: int = CROP_SIZE,
         border: int = cv2.BORDER_REFLECT) -> np.ndarray:
    """Resample `image` into a size x size output through `affine` (image pixels -> output pixels).

    Only the part of the image the output sees is touched (a face in a 40-megapixel photo costs no more
    than in a small one), and big shrinks go through an area-averaged copy so the result does not alias.
    """
    h, w = image.shape[:2]
    seen = apply_affine(cv2.invertAffineTransform(affine), [[0, 0], [size, 0], [0, size], [size, size]])
    margin = 2 + int(np.ceil(1.0 / max(float(np.sqrt(abs(np.linalg.det(affine[:, :2])))), 1e-6)))
    x0, y0 = np.maximum(np.floor(seen.min(axis=0)).astype(int) - margin, 0)
    x1, y1 = np.minimum(np.ceil(seen.max(axis=0)).astype(int) + margin, [w, h])
    inside = (seen.min(axis=0) >= 0).all() and (seen.max(axis=0) <= [w, h]).all()
    # A cut keeps CONSTANT and REPLICATE borders exact (they only read the edge the cut shares with the
    # image); a reflection reads pixels as far inside as the view reaches outside, so only an inside view is cut.
    cuttable = inside or border in (cv2.BORDER_CONSTANT, cv2.BORDER_REPLICATE)
    if cuttable and x1 > x0 and y1 > y0 and (x1 - x0, y1 - y0) != (w, h):
        image = image[y0:y1, x0:x1]
        affine = np.c_[affine[:, :2], affine[:, :2] @ [x0, y0] + affine[:, 2]]
    scale = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
    if scale < 0.5:
        f = 2.0 * scale
        h, w = image.shape[:2]
        small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        back = np.diag([w / small.shape[1], h / small.shape[0], 1.0])  # small pixels -> original pixels
        affine = affine @ back
        image = small
    warped: np.ndarray = cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)
    return warped


def apply_affine(affine: np.ndarray, points: ArrayLike) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    mapped: np.ndarray = pts @ affine[:, :2].T + affine[:, 2]
    return mapped


def box_through_affine(affine: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Axis-aligned bounds, in the crop, of a box given in original pixels."""
    x, y, w, h = box
    corners = apply_affine(affine, np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
