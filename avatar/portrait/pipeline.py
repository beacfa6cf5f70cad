"""prepare(): portrait bytes -> aligned 512x512 crop, 478 landmarks, person matte and face features."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike

from .align import CROP_SIZE, alignment_affine, apply_affine, box_through_affine, warp
from .decode import decode_image_with_alpha
from .errors import PortraitError, PortraitLimits
from .face_mesh import refined_lids
from .geometry import FEATURE_NAMES
from .landmarks import geometry_from_landmarks, validate_face_box
from .locate import locate_face
from .segmentation import person_matte


@dataclass
class PreparedPortrait:
    """An aligned portrait. Positions are crop pixels; left/right are the subject's own."""

    image: np.ndarray           # (512, 512, 3) uint8 RGB
    matte: np.ndarray           # (512, 512) float32 in [0, 1], 1 = the person: head, hair, neck and the body
                                # the crop shows (clothing included); other people and background 0
    features: dict[str, Any]    # eye_left, eye_right (iris centres), mouth_left, mouth_right, mouth_center:
                                # (2,) float64 x, y; face_box: (4,) x, y, w, h (bounds of the mesh, or the
                                # caller's face_box); detected: {feature: measured (True) / estimated}
    landmarks: np.ndarray       # (478, 3) float64 crop pixels x, y and relative depth z in the same pixel
                                # scale (negative = toward the camera); MediaPipe layout: 0-467 face mesh,
                                # 468-472 subject's right iris (centre first), 473-477 left iris
    affine: np.ndarray          # (2, 3) float64, original (EXIF-upright) pixels -> crop pixels
    original_size: tuple[int, int]  # (W, H) of the EXIF-upright image
    source_sha256: str          # of the input bytes
    source: str = "detector"    # where the face position came from: "detector" | "face_box" | "landmarks"
    landmarks_source: str = "face_mesh"  # "face_mesh" (MediaPipe models) | "landmarks" (caller-supplied)
    matte_source: str = "segmentation"   # "segmentation" | "alpha" (the file's own transparency)
    eye_contours: np.ndarray | None = None  # (2, 71, 3) crop pixels: the iris model's eye contours
                                            # (avatar.portrait.face_mesh), None with caller landmarks

    def landmarks_with_lids(self) -> np.ndarray:
        """(478, 3) `landmarks` with the lids taken from the eye contours (face_mesh.refined_lids): what a
        fit reads, so a closed or downcast eye is not fitted as an open one."""
        if self.eye_contours is None:
            return self.landmarks
        return refined_lids(self.landmarks, self.eye_contours)

    def to_original(self, points: ArrayLike) -> np.ndarray:
        """Crop pixels -> original pixels, (N, 2)."""
        inverse = cv2.invertAffineTransform(self.affine)
        return apply_affine(inverse, points)


def prepare(data: bytes, limits: PortraitLimits = PortraitLimits(), face_box: ArrayLike | None = None,
            landmarks: ArrayLike | None = None
            ) -> PreparedPortrait:
    """Decode, validate, find the face, align to 512x512 and matte. Raises PortraitError on bad input and
    PerceptionUnavailable when the perception models are not installed.

    `face_box` (x, y, w, h) or `landmarks` (iBUG-68, MediaPipe-468/478; flat x, y pairs, (K, 2) or (K, 3))
    are in pixels of the EXIF-upright image; landmarks win over a face box, and either replaces face
    detection. MediaPipe-478 landmarks are used as given; 468 gain irises; iBUG-68 and a face box place the
    face mesh.
    """
    rgb, alpha = decode_image_with_alpha(data, limits)
    digest = hashlib.sha256(bytes(data)).hexdigest()
    height, width = rgb.shape[:2]

    face = locate_face(rgb, face_box=face_box, landmarks=landmarks)
    geom = geometry_from_landmarks(face.landmarks)
    if face_box is not None and landmarks is not None:
        geom.face_box = validate_face_box(face_box, width, height)

    affine = alignment_affine(geom, CROP_SIZE)
    crop = warp(rgb, affine, CROP_SIZE)
    depth_scale = np.sqrt(abs(np.linalg.det(affine[:, :2])))

    def into_crop(p: np.ndarray) -> np.ndarray:
        flat = p.reshape(-1, 3)
        moved: np.ndarray = np.c_[apply_affine(affine, flat[:, :2]), flat[:, 2] * depth_scale].reshape(p.shape)
        return moved

    points = into_crop(face.landmarks)
    contours = None if face.eye_contours is None else into_crop(face.eye_contours)
    features = {name: apply_affine(affine, point)[0] for name, point in geom.points().items()}
    features["face_box"] = box_through_affine(affine, geom.face_box)
    features["detected"] = {name: bool(geom.detected.get(name, False)) for name in FEATURE_NAMES}

    if alpha is not None:
        # The file's own transparency, warped into the crop, is a better matte than any segmentation.
        matte = np.clip(warp(alpha, affine, CROP_SIZE).astype(np.float32) / 255.0, 0.0, 1.0)
        matte_source = "alpha"
    else:
        matte, matte_source = person_matte(rgb, affine, crop, points[:468, :2]), "segmentation"

    return PreparedPortrait(image=crop, matte=matte, features=features, landmarks=points, affine=affine,
                            original_size=(width, height), source_sha256=digest, source=face.source,
                            landmarks_source=face.landmarks_source, matte_source=matte_source,
                            eye_contours=contours)


__all__ = ["PortraitError", "PortraitLimits", "PreparedPortrait", "prepare"]
