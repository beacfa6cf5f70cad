"""Rotated square regions of an image, resampled to a model's input and mapped back.

Conventions: image pixels with x right, y down, pixel centres at integer coordinates (OpenCV's warpAffine).
A region's `angle` is the rotation of the face in the image in radians, positive = clockwise on screen (the
direction of +y from +x); sampling the region undoes it, so the face stands upright in the model input.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike

from .align import warp


@dataclass(frozen=True)
class Roi:
    centre: np.ndarray   # (2,) x, y in image pixels
    side: float          # side of the square in image pixels
    angle: float = 0.0   # radians

    def affine(self, size: int) -> np.ndarray:
        """(2, 3) map from image pixels to the pixels of a size x size sample of the region."""
        scale = size / self.side
        c, s = np.cos(self.angle), np.sin(self.angle)
        # Rotate by -angle about the centre, scale, then put the centre in the middle of the sample.
        linear = scale * np.array([[c, s], [-s, c]])
        shift = np.array([size / 2.0, size / 2.0]) - linear @ np.asarray(self.centre, dtype=np.float64)
        affine: np.ndarray = np.c_[linear, shift]
        return affine


def roi_from_points(points: np.ndarray, angle: float, scale: float) -> Roi:
    """The square around `points` (N, 2) in the frame turned by `angle`, enlarged `scale` times (long side)."""
    c, s = np.cos(angle), np.sin(angle)
    to_frame = np.array([[c, s], [-s, c]])
    local = np.asarray(points, dtype=np.float64)[:, :2] @ to_frame.T
    lo, hi = local.min(axis=0), local.max(axis=0)
    centre = to_frame.T @ (0.5 * (lo + hi))
    return Roi(centre=centre, side=float(scale * max(hi - lo)), angle=float(angle))


def line_angle(start: np.ndarray, end: np.ndarray) -> float:
    """Angle of the line start -> end against the image x axis (the `angle` of a face whose eyes it joins)."""
    d = np.asarray(end, dtype=np.float64)[:2] - np.asarray(start, dtype=np.float64)[:2]
    return float(np.arctan2(d[1], d[0]))


def sample(image: np.ndarray, roi: Roi, size: int, border: int = cv2.BORDER_CONSTANT) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, C) resampling of the region and the (2, 3) affine image -> sample pixels used."""
    affine = roi.affine(size)
    return warp(image, affine, size, border), affine


def to_image(affine: np.ndarray, points: ArrayLike) -> np.ndarray:
    """Sample pixels (N, 2+) -> image pixels; extra columns (depth) are scaled by the region's zoom."""
    pts = np.asarray(points, dtype=np.float64)
    inverse = cv2.invertAffineTransform(affine)
    out: np.ndarray = pts.copy()
    out[:, :2] = pts[:, :2] @ inverse[:, :2].T + inverse[:, 2]
    if pts.shape[1] > 2:
        out[:, 2:] = pts[:, 2:] * np.sqrt(abs(np.linalg.det(inverse[:, :2])))
    return out
