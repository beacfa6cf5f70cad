"""prepare(): portrait bytes -> aligned 512x512 crop, matte and face features."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from .align import CROP_SIZE, alignment_affine, apply_affine, box_through_affine, warp
from .decode import decode_image_with_alpha
from .detect import detect_face, features_in_box
from .errors import PortraitError, PortraitLimits
from .geometry import FEATURE_NAMES
from .landmarks import geometry_from_landmarks, validate_face_box
from .matte import alpha_matte, foreground_matte


@dataclass
class PreparedPortrait:
    """An aligned portrait. Feature positions are crop pixels; left/right are the subject's own."""

    image: np.ndarray           # (512, 512, 3) uint8 RGB
    matte: np.ndarray           # (512, 512) float32 in [0, 1], 1 = head/hair/neck
    features: dict              # eye_left, eye_right, mouth_left, mouth_right, mouth_center: (2,) float64 x, y;
                                # face_box: (4,) x, y, w, h; detected: {feature: measured (True) / estimated}
    affine: np.ndarray          # (2, 3) float64, original (EXIF-upright) pixels -> crop pixels
    original_size: tuple        # (W, H) of the EXIF-upright image
    source_sha256: str          # of the input bytes
    source: str = "detector"    # where the geometry came from: "detector" | "face_box" | "landmarks"
    matte_source: str = "grabcut"  # "grabcut" | "alpha" (the file's own transparency) | "prior" (head shape,
                                   # when face and background colours are too alike to segment)

    def to_original(self, points) -> np.ndarray:
        """Crop pixels -> original pixels, (N, 2)."""
        inverse = cv2.invertAffineTransform(self.affine)
        return apply_affine(inverse, points)


def prepare(data: bytes, limits: PortraitLimits = PortraitLimits(), face_box=None, landmarks=None
            ) -> PreparedPortrait:
    """Decode, validate, locate the face, align to 512x512 and matte. Raises PortraitError on bad input.

    `face_box` (x, y, w, h) or `landmarks` (iBUG-68, MediaPipe-468/478; flat or (K, 2)) are in pixels of the
    EXIF-upright image; landmarks win over a face box, and either replaces face detection.
    """
    rgb, alpha = decode_image_with_alpha(data, limits)
    digest = hashlib.sha256(bytes(data)).hexdigest()
    height, width = rgb.shape[:2]

    if landmarks is not None:
        geom = geometry_from_landmarks(landmarks, width, height)
        if face_box is not None:
            geom.face_box = validate_face_box(face_box, width, height)
    elif face_box is not None:
        geom = features_in_box(rgb, validate_face_box(face_box, width, height), face_detected=False,
                               source="face_box")
    else:
        geom = detect_face(rgb)

    affine = alignment_affine(geom, CROP_SIZE)
    crop = warp(rgb, affine, CROP_SIZE)
    features = {name: apply_affine(affine, point)[0] for name, point in geom.points().items()}
    features["face_box"] = box_through_affine(affine, geom.face_box)
    features["detected"] = {name: bool(geom.detected.get(name, False)) for name in FEATURE_NAMES}

    if alpha is not None:
        matte = alpha_matte(warp(alpha, affine, CROP_SIZE))
        matte_source = "alpha"
    else:
        matte, matte_source = foreground_matte(crop, features)

    return PreparedPortrait(image=crop, matte=matte, features=features, affine=affine,
                            original_size=(width, height), source_sha256=digest, source=geom.source,
                            matte_source=matte_source)


__all__ = ["PreparedPortrait", "prepare", "PortraitError", "PortraitLimits"]
