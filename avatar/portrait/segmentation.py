"""Person matte of the aligned crop: MediaPipe's selfie segmentation, refined by closed-form alpha matting.

The segmentation model takes a 256x256 RGB image in [0, 1] (square views here, so nothing is stretched)
and returns a 256x256 person probability that includes hair. Its edge is soft and blocky at hair strands,
so a trimap is built from it (certain person, certain background, an unknown band along the boundary) and
the unknown band is solved by closed-form matting (pymatting) on the crop's colours at full crop size.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from .align import warp
from .models import model

SEGMENTATION_MODEL, SEGMENTATION_SIZE = "selfie_segmentation.tflite", 256
# The second, wider view of the crop: the model was trained on selfies (head and shoulders in frame).
CONTEXT_ZOOM = 2.0
# Half-width of the band along the segmentation's 0.5 contour that is left to the matting (pixels of a 512
# crop): its edge is accurate to a few of its own (double-size) pixels, and hair strands extend it. Pixels
# farther from the contour keep the segmentation's side: closed-form matting over wide dark or flat areas
# spreads alpha along JPEG blocks instead of finding an edge.
UNKNOWN_BAND = 8
# Uncertain pixels (probability between these) within twice the band are left to the matting too: loose
# hair is where the segmentation hesitates.
UNSURE_LOW, UNSURE_HIGH = 0.2, 0.8
# The hull of the face mesh, shrunk by this fraction toward its centre, is certain person whatever the
# segmentation says (painted faces and low-contrast skin can leave holes).
FACE_CORE_SHRINK = 0.15
# Closed-form matting's regulariser (pymatting's default): larger = smoother alpha.
MATTING_EPSILON = 1e-7
# Alpha below this, once matted, is background (the matting's leak into flat backgrounds).
ALPHA_FLOOR = 0.02


def person_probability(rgb: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32 person probability in [0, 1] over the crop that `affine` (original pixels ->
    crop pixels) frames in the RGB image: the mean of the model's view of the crop itself (detail at the
    edge) and of a view CONTEXT_ZOOM times wider about the same centre (head and shoulders framed as in a
    selfie, where the model tells a dark background from dark hair or clothing far better)."""
    views = []
    for zoom in (1.0, CONTEXT_ZOOM):
        # crop pixels -> view pixels: shrink about the crop centre, then scale to the model's input size
        shift = 0.5 * size * (1.0 - 1.0 / zoom)
        shrink = np.array([[1.0 / zoom, 0.0, shift], [0.0, 1.0 / zoom, shift], [0.0, 0.0, 1.0]])
        to_view = np.diag([SEGMENTATION_SIZE / size, SEGMENTATION_SIZE / size, 1.0]) @ shrink
        view = warp(rgb, to_view[:2] @ np.vstack([affine, [0.0, 0.0, 1.0]]), SEGMENTATION_SIZE,
                    border=cv2.BORDER_REPLICATE)
        (prob,) = model(SEGMENTATION_MODEL)(view.astype(np.float32)[None] / 255.0)
        prob = np.clip(prob.reshape(SEGMENTATION_SIZE, SEGMENTATION_SIZE), 0.0, 1.0)
        views.append(cv2.warpAffine(prob, to_view[:2], (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REPLICATE))
    mean: np.ndarray = np.mean(views, axis=0).astype(np.float32)
    return mean


def trimap(prob: np.ndarray, face_points: np.ndarray) -> np.ndarray:
    """pymatting trimap (1 person, 0 background, 0.5 unknown) from a probability map and the face mesh's
    points (N, 2) in the same pixels."""
    size = prob.shape[0]
    band = max(2, round(UNKNOWN_BAND * size / 512))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    person = (prob >= 0.5).astype(np.uint8)
    near = cv2.dilate(person, kernel).astype(bool) & ~cv2.erode(person, kernel).astype(bool)
    wide = cv2.dilate(near.astype(np.uint8), kernel).astype(bool)
    unknown = near | (wide & (prob > UNSURE_LOW) & (prob < UNSURE_HIGH))
    out = np.where(unknown, 0.5, person.astype(np.float64))
    centre = face_points.mean(axis=0)
    core = centre + (1.0 - FACE_CORE_SHRINK) * (face_points - centre)
    core_mask = np.zeros(prob.shape, np.uint8)
    cv2.fillConvexPoly(core_mask, np.round(cv2.convexHull(core.astype(np.float32))).astype(np.int32), 1)
    out[core_mask > 0] = 1.0
    return out


def person_matte(rgb: np.ndarray, affine: np.ndarray, crop: np.ndarray, face_points: np.ndarray) -> np.ndarray:
    """(S, S) float32 alpha in [0, 1] for the aligned (S, S, 3) uint8 crop that `affine` cut from `rgb`;
    1 = the person whose face mesh points (crop pixels, (N, 2)) are given: head, hair, neck and whatever of
    the body the crop shows."""
    from pymatting import estimate_alpha_cf, jacobi  # imported on use: numba start-up is not free

    tri = trimap(person_probability(rgb, affine, crop.shape[0]), face_points)
    if (tri == 0.5).any():
        alpha = estimate_alpha_cf(crop.astype(np.float64) / 255.0, tri, preconditioner=jacobi,
                                  laplacian_kwargs={"epsilon": MATTING_EPSILON})
    else:
        alpha = tri
    alpha = np.where(alpha < ALPHA_FLOOR, 0.0, alpha)
    return _only_this_person(alpha, face_points).astype(np.float32)


def _only_this_person(alpha: np.ndarray, face_points: np.ndarray) -> np.ndarray:
    """Drop matte islands not connected to the face (other people, bright blobs in the background)."""
    labels, count = ndimage.label(alpha > 0)
    if count <= 1:
        return alpha
    centre = np.clip(np.round(face_points.mean(axis=0)).astype(int), 0, np.array(alpha.shape[::-1]) - 1)
    keep = labels[centre[1], centre[0]]
    return np.where(labels == keep, alpha, 0.0) if keep else alpha
