"""Animation sources -> one `Animation`: per-frame canonical ARKit weights, head rotation and gaze.

Sources (the file name's extension decides the parser):
- `.npy`: FaceVerse coefficients, one vector or (frames, D), layouts 490/609/610/621; several
  single-frame `.npy` files (or a directory of them, in name order) form a sequence.
- `.csv`: a Live Link Face recording (see exporter.livelink).
- `.json`: a list of name -> weight maps, one per frame; ARKit names in any case, plus optionally the
  Live Link head/eye column names (HeadYaw, LeftEyePitch, ...) in radians.
- a video clip (`.mp4`, `.mov`, `.webm`, ...; avatar.track.VIDEO_SUFFIXES): tracked by avatar.track, at
  the clip's own frame rate (the frame_rate argument does not apply).

Head rotation is (yaw, pitch, roll) radians about the world's y, x and z axes, composed like FaceVerse's
R = Rz(roll)·Ry(yaw)·Rx(pitch); FaceVerse's rot (x, y, z) is therefore (pitch, yaw, roll). Gaze is the
FaceVerse eye 4-vector [left down, left toward +x, right down, right toward +x] in radians.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from avatar.expressions import LIVELINK_HEAD_COLUMNS, NUM_EXPRESSIONS, ExpressionError, index_of, validate_weights
from avatar.faceverse_coeffs import (
    FaceVerseCoeffError, FaceVerseCoeffs, coeffs_from_npy_bytes, euler_xyz_to_matrix, expression_52, stack_frames,
)
from exporter.options import DEFAULT_FRAME_RATE, ExportError

MAX_FRAMES = 1_000_000


@dataclass(frozen=True, eq=False)
class Animation:
    times: np.ndarray                  # (T,) float32 seconds, strictly increasing, starting at 0
    weights: np.ndarray                # (T, 52) float32 canonical order, in [0, 1]
    head_rotation: np.ndarray | None   # (T, 3) float32 yaw, pitch, roll radians
    eye: np.ndarray | None             # (T, 4) float32 FaceVerse eye vector radians
    frame_rate: float = DEFAULT_FRAME_RATE

    def __post_init__(self):
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
        return quats.astype(np.float32)


def from_track(track) -> Animation:
    """A tracked clip (avatar.track.Track): its smoothed weights, head pose and gaze at its frame times."""
    return Animation(times=np.asarray(track.times, np.float32), weights=np.asarray(track.weights, np.float32),
                     head_rotation=np.asarray(track.head_pose, np.float32), eye=np.asarray(track.eye, np.float32),
                     frame_rate=float(track.frame_rate))


def from_clip(data: bytes, name: str, head=None, progress=None) -> Animation:
    """Track a video clip's bytes (see avatar.track). A clip that cannot be read is an ExportError; one
    beyond the tracker's limits stays a ClipTooLong (a resource limit, not bad input)."""
    from avatar.track import ClipError, clip_file, track_clip

    try:
        with clip_file(data, name) as path:
            return from_track(track_clip(path, head, progress=progress, name=name))
    except ClipError as exc:
        raise ExportError(str(exc)) from None


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


def _weights_and_pose_from_map(frame: dict, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    head_cols = {c.lower(): i for i, c in enumerate(LIVELINK_HEAD_COLUMNS)}
    weights = np.zeros(NUM_EXPRESSIONS, np.float64)
    pose = np.zeros(len(LIVELINK_HEAD_COLUMNS), np.float64)
    seen_pose = False
    for name, value in frame.items():
        if not isinstance(name, str):
            raise ExportError(f"{where}: keys must be blendshape names")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExportError(f"{where}: value of {name!r} is not a number: {value!r}")
        if name.lower() in head_cols:
            pose[head_cols[name.lower()]] = value
            seen_pose = True
            continue
        try:
            weights[index_of(name)] = value
        except ExpressionError as exc:
            raise ExportError(f"{where}: {exc}") from None
    try:
        w = validate_weights(weights)
    except ExpressionError as exc:
        raise ExportError(f"{where}: {exc}") from None
    if not np.all(np.isfinite(pose)):
        raise ExportError(f"{where}: head or eye rotation is not finite")
    return w, pose[:3], pose[3:], seen_pose


def pose_columns_to_eye(eye_cols: np.ndarray) -> np.ndarray:
    """Live Link (LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEye...) -> FaceVerse eye 4-vector."""
    eye_cols = np.asarray(eye_cols).reshape(-1, 6)
    return np.stack([eye_cols[:, 1], eye_cols[:, 0], eye_cols[:, 4], eye_cols[:, 3]], axis=1).astype(np.float32)


def eye_to_pose_columns(eye: np.ndarray) -> np.ndarray:
    eye = np.asarray(eye).reshape(-1, 4)
    zero = np.zeros(len(eye), eye.dtype)
    return np.stack([eye[:, 1], eye[:, 0], zero, eye[:, 3], eye[:, 2], zero], axis=1)


def from_json(data: bytes, frame_rate: float = DEFAULT_FRAME_RATE, source: str = "animation.json") -> Animation:
    try:
        frames = json.loads(data)
    except (ValueError, RecursionError) as exc:  # ValueError covers JSONDecodeError and Unicode errors
        raise ExportError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) for f in frames):
        raise ExportError(f"{source}: expected a non-empty JSON list of name -> weight objects, one per frame")
    parsed = [_weights_and_pose_from_map(f, f"{source} frame {i}") for i, f in enumerate(frames)]
    weights = np.stack([p[0] for p in parsed])
    has_pose = any(p[3] for p in parsed)
    head = np.stack([p[1] for p in parsed]).astype(np.float32) if has_pose else None
    eye = pose_columns_to_eye(np.stack([p[2] for p in parsed])) if has_pose else None
    return Animation(times=frame_times(len(weights), frame_rate), weights=weights, head_rotation=head, eye=eye,
                     frame_rate=float(frame_rate))


def from_sources(sources: list[tuple[str, bytes]], frame_rate: float = DEFAULT_FRAME_RATE,
                 faceverse_mapping: np.ndarray | None = None) -> Animation:
    """One animation from uploaded files: one .csv, one .json, one video clip, or one or more .npy (frames
    in order)."""
    from avatar.track import is_video_name
    from exporter import livelink

    if not sources:
        raise ExportError("no animation source given")
    suffixes = {os.path.splitext(name)[1].lower() for name, _ in sources}
    try:
        if suffixes == {".npy"}:
            if len(sources) == 1:
                coeffs = coeffs_from_npy_bytes(sources[0][1], sources[0][0])
            else:
                coeffs = stack_frames(list(sources))
            return from_faceverse(coeffs, frame_rate, faceverse_mapping)
    except FaceVerseCoeffError as exc:
        raise ExportError(str(exc)) from None
    if len(sources) != 1:
        raise ExportError(f"several animation files are only allowed as .npy frames; got {[n for n, _ in sources]}")
    name, data = sources[0]
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".csv":
        return livelink.read_livelink_csv(data, frame_rate, source=name)
    if suffix == ".json":
        return from_json(data, frame_rate, source=name)
    if is_video_name(name):
        return from_clip(data, name)
    raise ExportError(f"{name}: unknown animation format; use .npy (FaceVerse), .csv (Live Link Face), .json "
                      f"or a video clip (.mp4, .mov, .webm)")


def load_animation(path: str | os.PathLike, frame_rate: float = DEFAULT_FRAME_RATE,
                   faceverse_mapping: np.ndarray | None = None) -> Animation:
    """From a file, or a directory of FaceVerse .npy frames taken in name order."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".npy")
        if not files:
            raise ExportError(f"{p}: directory holds no .npy coefficient files")
        return from_sources([(f.name, f.read_bytes()) for f in files], frame_rate, faceverse_mapping)
    if not p.is_file():
        raise ExportError(f"{p}: no such animation file")
    return from_sources([(p.name, p.read_bytes())], frame_rate, faceverse_mapping)
