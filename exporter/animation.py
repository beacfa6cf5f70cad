"""An animation: per-frame canonical ARKit weights, head rotation and gaze at frame times.

Head rotation is (yaw, pitch, roll) radians about the world's y, x and z axes, composed like FaceVerse's
R = Rz(roll)·Ry(yaw)·Rx(pitch); FaceVerse's rot (x, y, z) is therefore (pitch, yaw, roll). Gaze is the
FaceVerse eye 4-vector [left down, left toward +x, right down, right toward +x] in radians. Files become
animations in exporter.sources.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial.transform import Rotation

from avatar.expressions import NUM_EXPRESSIONS
from avatar.faceverse_coeffs import FaceVerseCoeffError, FaceVerseCoeffs, euler_xyz_to_matrix, expression_52
from exporter.options import DEFAULT_FRAME_RATE, ExportError

if TYPE_CHECKING:  # tracking loads its models' runtime; an animation from files never needs it
    from avatar.track import Track

MAX_FRAMES = 1_000_000


@dataclass(frozen=True, eq=False)
class Animation:
    times: np.ndarray                  # (T,) float32 seconds, strictly increasing, starting at 0
    weights: np.ndarray                # (T, 52) float32 canonical order, in [0, 1]
    head_rotation: np.ndarray | None   # (T, 3) float32 yaw, pitch, roll radians
    eye: np.ndarray | None             # (T, 4) float32 FaceVerse eye vector radians
    frame_rate: float = DEFAULT_FRAME_RATE

    def __post_init__(self) -> None:
        t = len(self.times)
        if t == 0 or t > MAX_FRAMES:
            raise ExportError(f"an animation needs between 1 and {MAX_FRAMES} frames, got {t}")
        if self.weights.shape != (t, NUM_EXPRESSIONS):
            raise ExportError(f"animation weights must be ({t}, 52), got {self.weights.shape}")
        for name in ("head_rotation", "eye"):
            value = getattr(self, name)
            width = 3 if name == "head_rotation" else 4
            if value is not None and (value.shape != (t, width) or not np.all(np.isfinite(value))):
                raise ExportError(f"animation {name} must be ({t}, {width}) finite radians, got {value.shape}")
        if not np.all(np.isfinite(self.times)) or np.any(np.diff(self.times) <= 0):
            raise ExportError("animation times must be finite and strictly increasing")

    @property
    def num_frames(self) -> int:
        return len(self.times)

    def head_quaternions(self) -> np.ndarray | None:
        """(T, 4) xyzw unit quaternions (glTF order) of the head rotation, or None."""
        if self.head_rotation is None:
            return None
        yaw, pitch, roll = self.head_rotation.T.astype(np.float64)
        matrices = euler_xyz_to_matrix(np.stack([pitch, yaw, roll], axis=1))
        quats = Rotation.from_matrix(matrices).as_quat()
        # Keep consecutive quaternions in one hemisphere so linear interpolation takes the short way.
        for i in range(1, len(quats)):
            if np.dot(quats[i], quats[i - 1]) < 0:
                quats[i] = -quats[i]
        return np.asarray(quats, dtype=np.float32)


def from_track(track: Track) -> Animation:
    """A tracked clip (avatar.track.Track): its smoothed weights, head pose and gaze at its frame times."""
    return Animation(times=np.asarray(track.times, np.float32), weights=np.asarray(track.weights, np.float32),
                     head_rotation=np.asarray(track.head_pose, np.float32), eye=np.asarray(track.eye, np.float32),
                     frame_rate=float(track.frame_rate))


def frame_times(count: int, frame_rate: float) -> np.ndarray:
    return (np.arange(count, dtype=np.float64) / float(frame_rate)).astype(np.float32)


def from_faceverse(coeffs: FaceVerseCoeffs, frame_rate: float = DEFAULT_FRAME_RATE,
                   mapping: np.ndarray | None = None) -> Animation:
    try:
        weights = expression_52(coeffs, mapping)
    except FaceVerseCoeffError as exc:
        raise ExportError(str(exc)) from None
    weights = weights.reshape(-1, NUM_EXPRESSIONS)
    rot = coeffs.rotation.reshape(-1, 3)
    head = np.stack([rot[:, 1], rot[:, 0], rot[:, 2]], axis=1).astype(np.float32)
    return Animation(times=frame_times(len(weights), frame_rate), weights=weights, head_rotation=head,
                     eye=coeffs.eye.reshape(-1, 4).astype(np.float32), frame_rate=float(frame_rate))


def pose_columns_to_eye(eye_cols: np.ndarray) -> np.ndarray:
    """Live Link (LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEye...) -> FaceVerse eye 4-vector."""
    eye_cols = np.asarray(eye_cols).reshape(-1, 6)
    return np.stack([eye_cols[:, 1], eye_cols[:, 0], eye_cols[:, 4], eye_cols[:, 3]], axis=1).astype(np.float32)


def eye_to_pose_columns(eye: np.ndarray) -> np.ndarray:
    eye = np.asarray(eye).reshape(-1, 4)
    zero = np.zeros(len(eye), eye.dtype)
    return np.stack([eye[:, 1], eye[:, 0], zero, eye[:, 3], eye[:, 2], zero], axis=1)
