"""Face landmarks in any image (aligned portraits, video frames, renders), for the fidelity benchmark.

An Observation is MediaPipe's 478 points (468 mesh + 10 iris, avatar.portrait.face_mesh) in one image's
pixels, plus what the benchmark derives from them: the inter-ocular distance, the face region (the
mesh's hull), the chin line and the mouth's opening.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.fidelity_metrics import hull_mask

MESH_POINTS = 468
# MediaPipe mesh indices (subject's own left/right): outer eye corners, chin, forehead top, inner lips.
EYE_OUTER_RIGHT, EYE_OUTER_LEFT = 33, 263
CHIN, FOREHEAD = 152, 10
LIP_UPPER, LIP_LOWER = 13, 14


@dataclass
class Observation:
    points: np.ndarray   # (478, 2) x, y pixels
    yaw_deg: float       # the head's turn measured from the mesh's depth (avatar.portrait.face_mesh.yaw_degrees)

    def scaled(self, factor: float) -> Observation:
        return Observation(self.points * factor, self.yaw_deg)

    @property
    def mesh(self) -> np.ndarray:
        """The 468 mesh points without the irises (which follow the gaze, not the head)."""
        return self.points[:MESH_POINTS]

    @property
    def interocular(self) -> float:
        """Distance between the outer eye corners, pixels."""
        return float(np.hypot(*(self.points[EYE_OUTER_LEFT] - self.points[EYE_OUTER_RIGHT])))

    def chin_and_up(self) -> tuple[np.ndarray, np.ndarray]:
        """The chin point and the unit direction from the chin toward the forehead."""
        up = self.points[FOREHEAD] - self.points[CHIN]
        return self.points[CHIN], up / max(np.hypot(*up), 1e-9)

    def face_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The face region: the hull of the mesh."""
        return hull_mask(self.mesh, shape)

    def mouth_open(self) -> float:
        """Inner-lip gap over the inter-ocular distance."""
        return float(np.hypot(*(self.points[LIP_LOWER] - self.points[LIP_UPPER]))) / self.interocular


def _observation(landmarks: np.ndarray) -> Observation:
    from avatar.portrait.face_mesh import yaw_degrees

    marks = np.asarray(landmarks, np.float64)
    return Observation(marks[:, :2].copy(), yaw_degrees(marks))


def from_prepared(prepared) -> Observation:
    """The face of a PreparedPortrait, in its crop's pixels."""
    return _observation(prepared.landmarks)


def observe(rgb: np.ndarray) -> Observation | None:
    """The face in an (H, W, 3) uint8 image (a frame or a render), or None when the detector and face
    mesh find none (or refuse it: several faces, too small, turned too far)."""
    from avatar.portrait import PortraitError
    from avatar.portrait.locate import locate_face

    try:
        return _observation(locate_face(rgb).landmarks)
    except PortraitError:
        return None
