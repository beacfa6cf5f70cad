"""MediaPipe's 468-point face mesh and iris landmarks: 478 points (x, y, z) in image pixels.

Facts from MediaPipe's face_landmark / iris_landmark graphs: the mesh model takes a 192x192 RGB crop in
[0, 1] of a square around the face, turned so the eyes are level and enlarged 1.5x from the face box;
it returns 468 x (x, y, z) in crop pixels (z, relative depth, in the same scale; negative = toward the
camera) and a face-presence logit. The iris model takes a 64x64 crop in [0, 1] of a square 2.3x the eye
width around an eye's corners; it is trained on the image-left eye (corners 33, 133), so the image-right
eye (362, 263) is mirrored in and out. Its iris output is 5 x (x, y, z), the centre first.

Layout of the 478 points: 0-467 the mesh, 468-472 the iris of the subject's right eye (image left, corners
33/133), centre first, 473-477 the subject's left iris.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.special import expit

from .models import model
from .roi import Roi, line_angle, roi_from_points, sample, to_image

MESH_MODEL, MESH_SIZE, MESH_POINTS = "face_landmark.tflite", 192, 468
IRIS_MODEL, IRIS_SIZE = "iris_landmark.tflite", 64
CONTOUR_POINTS = 71  # eye-contour points the iris model returns beside its 5 iris points
ROI_SCALE = 1.5
IRIS_ROI_SCALE = 2.3
# Outer eye corners: their line fixes the roll of the re-crop from a first pass.
OUTER_EYE_RIGHT, OUTER_EYE_LEFT = 33, 263
EYE_CORNERS = ((33, 133, False), (362, 263, True))  # (image-left corner, image-right corner, mirror the crop)
# Subject's (right, left) pairs of mirror-symmetric points: outer and inner eye corners, mouth corners,
# cheek extremes. Their mean right-to-left vector gives the head's yaw.
SYMMETRIC_PAIRS = ((33, 263), (133, 362), (61, 291), (234, 454))
# The first 16 of the iris model's 71 eye-contour points are these mesh points (EYE_CORNERS order: subject's
# right eye, then left): the outer corner, the lower lid, the inner corner, then the upper lid from the
# outer side. The mean depth of the mesh's own ring anchors the iris depth.
LID_RING = ((33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173),
            (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398))
# Model outputs address pixel areas (0..size, pixel centre at i + 0.5); OpenCV's sampling puts pixel
# centres on integers.
HALF_PIXEL = 0.5


@dataclass
class FaceMesh:
    points: np.ndarray   # (478, 3) float64 image pixels x, y and relative depth z (same scale, - = nearer)
    presence: float      # the mesh model's face-presence probability for the final crop
    roi: Roi             # the crop the final pass saw
    # (2, 71, 3) the iris model's eye contours (image pixels), EYE_CORNERS order: subject's right eye, then
    # left; kept so callers that read the lids (the tracker) need not run the iris model again.
    eye_contours: np.ndarray | None = None


def roi_around_box(box: np.ndarray, angle: float = 0.0) -> Roi:
    """The mesh crop for a face box (x, y, w, h) of a detector or a caller, and the face's roll."""
    x, y, w, h = np.asarray(box, dtype=np.float64)
    return Roi(centre=np.array([x + 0.5 * w, y + 0.5 * h]), side=ROI_SCALE * float(max(w, h)), angle=angle)


def face_mesh(rgb: np.ndarray, roi: Roi, passes: int = 2) -> FaceMesh:
    """Mesh and irises of the face in `roi`; each pass after the first re-crops around the previous mesh."""
    points, presence = _mesh(rgb, roi)
    for _ in range(passes - 1):
        roi = roi_from_points(points, line_angle(points[OUTER_EYE_RIGHT], points[OUTER_EYE_LEFT]), ROI_SCALE)
        points, presence = _mesh(rgb, roi)
    points, contours = _with_eyes(rgb, points)
    return FaceMesh(points=points, presence=presence, roi=roi, eye_contours=contours)


def refined_lids(points: np.ndarray, contours: np.ndarray) -> np.ndarray:
    """A copy of 478 face-mesh points (x, y, z) with the lid rings' x and y taken from the (2, 71, 3) eye
    contours; the mesh's own depth is kept (the iris model's depth is relative to its own crop).

    The 468-point mesh model (the one without attention, which LiteRT runs) barely closes its lids: on a
    closed eye its lid gap shrinks by a fifth to a half, so a fit would call a closed or downcast eye open
    and bake it into the neutral face. The iris model's contour follows the lids (MediaPipe's own refined
    landmarks take the lids from it), so fits read it. It is not the mesh's own output: on a face turned
    45 degrees its far eye's contour is less sure than the mesh's lids."""
    out = np.array(points, dtype=np.float64, copy=True)
    for ring, contour in zip(LID_RING, np.asarray(contours)):
        out[list(ring), :2] = contour[:len(ring), :2]
    return out


def with_irises(rgb: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """(478, 3): the 468 mesh points (depth 0 when given as (468, 2)) followed by both irises."""
    return _with_eyes(rgb, mesh)[0]


def _with_eyes(rgb: np.ndarray, mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """with_irises' points, and the (2, 71, 3) eye contours the same iris-model runs gave."""
    mesh = np.asarray(mesh, dtype=np.float64)
    if mesh.shape[1] == 2:
        mesh = np.c_[mesh, np.zeros(len(mesh))]
    eyes = [eye_model(rgb, mesh, a, b, mirror) for a, b, mirror in EYE_CORNERS]
    irises = [_hang_iris(iris, mesh, mirror) for (_, iris), (_, _, mirror) in zip(eyes, EYE_CORNERS)]
    return np.concatenate([mesh[:MESH_POINTS], *irises]), np.stack([contour for contour, _ in eyes])


def yaw_degrees(points: np.ndarray) -> float:
    """Head yaw from the mesh's own depth: 0 frontal, positive when the subject's left side (image right)
    is farther from the camera than the right, i.e. the face turns toward image right."""
    pts = np.asarray(points, dtype=np.float64)
    across = np.mean([pts[left] - pts[right] for right, left in SYMMETRIC_PAIRS], axis=0)
    return float(np.degrees(np.arctan2(across[2], np.hypot(across[0], across[1]))))


def _mesh(rgb: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
    patch, affine = sample(rgb, roi, MESH_SIZE, border=cv2.BORDER_REPLICATE)
    raw, presence = model(MESH_MODEL)(patch.astype(np.float32)[None] / 255.0)
    local = raw.reshape(MESH_POINTS, 3).astype(np.float64)
    local[:, :2] -= HALF_PIXEL
    return to_image(affine, local), float(expit(presence.reshape(-1)[0]))


def eye_model(rgb: np.ndarray, mesh: np.ndarray, left_corner: int, right_corner: int, mirror: bool
              ) -> tuple[np.ndarray, np.ndarray]:
    """The iris model on one eye's crop: (71, 3) eye-contour points and (5, 3) iris points (centre and 4
    rim points), both in image pixels. The model is for a left eye: a right eye's crop is mirrored."""
    a, b = mesh[left_corner, :2], mesh[right_corner, :2]
    roi = Roi(centre=0.5 * (a + b), side=IRIS_ROI_SCALE * float(np.hypot(*(b - a))), angle=line_angle(a, b))
    patch, affine = sample(rgb, roi, IRIS_SIZE, border=cv2.BORDER_REPLICATE)
    if mirror:
        patch = patch[:, ::-1]
    contour, iris = model(IRIS_MODEL)(np.ascontiguousarray(patch, dtype=np.float32)[None] / 255.0)

    def to_picture(points: np.ndarray, count: int) -> np.ndarray:
        local = points.reshape(count, 3).astype(np.float64)
        if mirror:
            local[:, 0] = IRIS_SIZE - local[:, 0]
        local[:, :2] -= HALF_PIXEL
        return to_image(affine, local)
    return to_picture(contour, CONTOUR_POINTS), to_picture(iris, 5)


def _hang_iris(out: np.ndarray, mesh: np.ndarray, mirror: bool) -> np.ndarray:
    """(5, 3) iris centre and 4 rim points of one eye (eye_model's), in image pixels."""
    # The iris model's depth is relative to its own crop; hang it on the mesh's depth of the eye.
    out[:, 2] += mesh[list(LID_RING[int(mirror)]), 2].mean() - out[0, 2]
    return out
