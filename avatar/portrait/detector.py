"""Faces in a whole image: MediaPipe's BlazeFace detectors (short range, plus full range for small faces).

Both are single-shot detectors over a fixed grid of anchors. Facts from MediaPipe's face_detection graphs:
input letterboxed to the model's square and scaled to [-1, 1]; per anchor 16 regressed values (box centre
offset x, y, box w, h, then six keypoints x, y) divided by the input size, relative to an anchor of unit
size; scores are logits (clipped to +-100, then a sigmoid); candidates merged by weighted non-max
suppression at IoU 0.3.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from .models import model
from .roi import Roi, sample, to_image

# Keypoint order of the detector; left/right are the subject's own (the subject's right eye is image left).
KEYPOINTS = ("eye_right", "eye_left", "nose_tip", "mouth_center", "ear_right", "ear_left")
NMS_IOU = 0.3
SCORE_CLIP = 100.0
# The turned searches only serve sideways or upside-down photos; demanding more of them keeps their extra
# false hits (textures that look like a face at some angle) out.
TURNED_MIN_SCORE = 0.75


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    size: int
    strides: tuple[int, ...]  # one entry per anchor layer; layers of equal stride share one grid
    anchors_per_layer: int    # 2 when MediaPipe's interpolated_scale_aspect_ratio adds a second anchor
    min_score: float


SHORT_RANGE = DetectorSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2, 0.5)
FULL_RANGE = DetectorSpec("face_detection_full_range_sparse.tflite", 192, (4,), 1, 0.6)


@dataclass
class Detection:
    """One face in image pixels."""

    box: np.ndarray        # (4,) x, y, w, h (axis aligned; roughly brows to chin, cheek to cheek)
    keypoints: np.ndarray  # (6, 2) x, y in KEYPOINTS order
    score: float           # 0..1

    @property
    def size(self) -> float:
        return float(max(self.box[2], self.box[3]))


def anchor_centres(spec: DetectorSpec) -> np.ndarray:
    """(num_anchors, 2) anchor centres in [0, 1] input coordinates, in the models' output order."""
    centres = []
    i = 0
    strides = spec.strides
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = (j - i) * spec.anchors_per_layer
        cells = int(np.ceil(spec.size / strides[i]))
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.c_[(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells]
        centres.append(np.repeat(grid, per_cell, axis=0))
        i = j
    return np.concatenate(centres)


def detect_faces(rgb: np.ndarray) -> list[Detection]:
    """All faces the detectors find, largest first.

    The detectors expect upright faces; the image is also searched turned by a quarter, half and three
    quarters (a scanned or sideways photo without an EXIF orientation), and each face keeps the turn that
    scores it best: an upside-down face is found by the upright search too, but with keypoints in the wrong
    places.
    """
    found = []
    for quarter_turns in range(4):
        candidates = [c for spec in (SHORT_RANGE, FULL_RANGE)
                      for c in _candidates(rgb, spec, quarter_turns * np.pi / 2,
                                           spec.min_score if quarter_turns == 0 else TURNED_MIN_SCORE)]
        found.extend(weighted_nms(candidates, NMS_IOU))
    faces: list[Detection] = []
    for face in sorted(found, key=lambda d: d.score, reverse=True):
        if all(iou(face.box, kept.box) <= NMS_IOU for kept in faces):
            faces.append(face)
    faces.sort(key=lambda d: d.size, reverse=True)
    return faces


def _candidates(rgb: np.ndarray, spec: DetectorSpec, angle: float, min_score: float) -> list[Detection]:
    """Raw detections in the whole image letterboxed to the model's input and turned by `angle`."""
    h, w = rgb.shape[:2]
    letterbox = Roi(centre=np.array([(w - 1) / 2.0, (h - 1) / 2.0]), side=float(max(w, h)), angle=angle)
    patch, affine = sample(rgb, letterbox, spec.size)
    tensor = patch.astype(np.float32)[None] / 127.5 - 1.0
    regressors, logits = model(spec.name)(tensor)
    scores = expit(np.clip(logits.reshape(-1), -SCORE_CLIP, SCORE_CLIP))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return []
    raw = regressors.reshape(-1, 16)[keep].astype(np.float64) / spec.size
    anchors = anchor_centres(spec)[keep]
    centre = anchors + raw[:, 0:2]
    half = 0.5 * raw[:, 2:4]
    # Outputs address pixel areas (pixel centres at i + 0.5); OpenCV's sampling puts them on integers.
    corners = np.stack([centre - half, centre + half], axis=1) * spec.size - 0.5   # (N, 2, 2) sample pixels
    keypoints = (anchors[:, None, :] + raw[:, 4:16].reshape(-1, 6, 2)) * spec.size - 0.5
    out = []
    for k in range(keep.size):
        ends = to_image(affine, corners[k])  # opposite corners, in some order after a turn
        lo, hi = ends.min(axis=0), ends.max(axis=0)
        out.append(Detection(box=np.r_[lo, hi - lo], keypoints=to_image(affine, keypoints[k]),
                             score=float(scores[keep[k]])))
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(detections: list[Detection], threshold: float) -> list[Detection]:
    """Best-first clusters of overlapping candidates, each replaced by its score-weighted mean
    (box and keypoints) with the best score: steadier than keeping the single best box."""
    remaining = sorted(detections, key=lambda d: d.score, reverse=True)
    merged = []
    while remaining:
        best = remaining[0]
        cluster = [d for d in remaining if iou(best.box, d.box) > threshold or d is best]
        remaining = [d for d in remaining if not any(d is c for c in cluster)]
        weights = np.array([d.score for d in cluster])
        weights /= weights.sum()
        box = np.einsum("n,nk->k", weights, np.stack([d.box for d in cluster]))
        keypoints = np.einsum("n,nkc->kc", weights, np.stack([d.keypoints for d in cluster]))
        merged.append(Detection(box=box, keypoints=keypoints, score=best.score))
    return merged
