"""Where the face's anchor points are, in original-image pixels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
    detected: dict[str, bool] = field(default_factory=dict)  # feature name -> measured (True) or estimated (False)

    def points(self) -> dict[str, np.ndarray]:
        return {"eye_left": self.eye_left, "eye_right": self.eye_right, "mouth_left": self.mouth_left,
                "mouth_right": self.mouth_right, "mouth_center": self.mouth_center}
