"""Where the face is, in original-image pixels, and how each part was found."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Feature positions as fractions of a frontal face box (a Haar-style box spanning brows to chin), used
# when a feature cannot be measured. Checked against the detector's own eye/smile hits on frontal photos.
EYE_Y = 0.38
EYE_HALF_SPACING = 0.20
MOUTH_Y = 0.78
MOUTH_HALF_WIDTH = 0.18
# Eye-line-to-mouth distance relative to the eye spacing, for a mouth estimated from measured eyes.
MOUTH_BELOW_EYES = 0.95
MOUTH_HALF_WIDTH_PER_EYE_SPACING = 0.42

FEATURE_NAMES = ("eye_left", "eye_right", "mouth_left", "mouth_right", "mouth_center", "face_box")


@dataclass
class FaceGeometry:
    """Face features in original pixels. Left/right are the subject's own (subject's left = image right)."""

    face_box: np.ndarray          # (4,) x, y, w, h
    eye_left: np.ndarray          # (2,) x, y
    eye_right: np.ndarray
    mouth_left: np.ndarray
    mouth_right: np.ndarray
    mouth_center: np.ndarray
    detected: dict = field(default_factory=dict)  # feature name -> measured (True) or estimated (False)
    source: str = "detector"      # "detector" | "face_box" | "landmarks"

    def points(self) -> dict:
        return {"eye_left": self.eye_left, "eye_right": self.eye_right, "mouth_left": self.mouth_left,
                "mouth_right": self.mouth_right, "mouth_center": self.mouth_center}


def box_prior_eyes(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's left eye, subject's right eye) estimated from a frontal face box."""
    x, y, w, h = box
    cx = x + 0.5 * w
    ey = y + EYE_Y * h
    return np.array([cx + EYE_HALF_SPACING * w, ey]), np.array([cx - EYE_HALF_SPACING * w, ey])


def box_prior_mouth(box: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subject's left corner, subject's right corner, centre) estimated from a frontal face box."""
    x, y, w, h = box
    cx = x + 0.5 * w
    my = y + MOUTH_Y * h
    return (np.array([cx + MOUTH_HALF_WIDTH * w, my]), np.array([cx - MOUTH_HALF_WIDTH * w, my]),
            np.array([cx, my]))


def mouth_from_eyes(eye_left: np.ndarray, eye_right: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mouth estimated from the eyes, so a tilted head gets a tilted mouth."""
    across = eye_left - eye_right                  # image left -> image right for a frontal face
    down = np.array([-across[1], across[0]])       # across rotated +90 degrees: toward the chin (y down)
    centre = 0.5 * (eye_left + eye_right) + MOUTH_BELOW_EYES * down
    half = MOUTH_HALF_WIDTH_PER_EYE_SPACING * across
    return centre + half, centre - half, centre


def mouth_corners_from_centre(centre: np.ndarray, half_width: float, eye_left: np.ndarray,
                              eye_right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corners of a mouth of known centre and width, parallel to the eye line."""
    across = eye_left - eye_right
    norm = float(np.hypot(*across))
    unit = across / norm if norm > 0 else np.array([1.0, 0.0])
    return centre + half_width * unit, centre - half_width * unit
