"""The face mesh followed from frame to frame: each frame's crop is placed by the previous frame's mesh.

One mesh pass per frame while the face is held (the previous mesh is a better crop than a detector box);
when the mesh's face-presence score drops, or there is no previous mesh, the detectors search the frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.portrait.detector import KEYPOINTS, detect_faces
from avatar.portrait.face_mesh import (
    MESH_POINTS,
    OUTER_EYE_LEFT,
    OUTER_EYE_RIGHT,
    ROI_SCALE,
    FaceMesh,
    face_mesh,
    refined_lids,
    roi_around_box,
)
from avatar.portrait.locate import MIN_PRESENCE
from avatar.portrait.roi import line_angle, roi_from_points
from avatar.track.eyelids import apertures

# Detector candidates tried, largest first, when the face is (re)acquired.
MAX_CANDIDATES = 3


@dataclass
class MeshObservation:
    points: np.ndarray | None   # (478, 3) image pixels (face_mesh layout), None when no face was found
    presence: float             # the mesh's face-presence probability (0 when nothing was found)
    eye_contours: np.ndarray | None = None  # (2, 71, 3) the iris model's eye contours (FaceMesh.eye_contours)

    @property
    def apertures(self) -> np.ndarray | None:
        """(2,) eye aspect ratios, subject's (right, left) (avatar.track.eyelids)."""
        return None if self.eye_contours is None else apertures(self.eye_contours)

    def fit_points(self) -> np.ndarray | None:
        """The points the fit takes: the mesh with its lids from the eye contours (when there are any)."""
        if self.points is None or self.eye_contours is None:
            return self.points
        return refined_lids(self.points, self.eye_contours)


class MeshFollower:
    """Per-frame 478 landmarks of one face; `reset()` forgets the face (a new clip)."""

    def __init__(self) -> None:
        self._last: np.ndarray | None = None

    def reset(self) -> None:
        self._last = None

    def __call__(self, rgb: np.ndarray) -> MeshObservation:
        if self._last is not None:
            roi = roi_from_points(self._last[:MESH_POINTS], line_angle(self._last[OUTER_EYE_RIGHT],
                                                                       self._last[OUTER_EYE_LEFT]), ROI_SCALE)
            mesh = face_mesh(rgb, roi, passes=1)
            if mesh.presence >= MIN_PRESENCE:
                return self._found(mesh)
        self._last = None
        for candidate in detect_faces(rgb)[:MAX_CANDIDATES]:
            eyes = candidate.keypoints[KEYPOINTS.index("eye_right")], candidate.keypoints[KEYPOINTS.index("eye_left")]
            mesh = face_mesh(rgb, roi_around_box(candidate.box, line_angle(*eyes)))
            if mesh.presence >= MIN_PRESENCE:
                return self._found(mesh)
        return MeshObservation(None, 0.0)

    def _found(self, mesh: FaceMesh) -> MeshObservation:
        self._last = mesh.points
        return MeshObservation(mesh.points, mesh.presence, mesh.eye_contours)
