"""Every animation input, read into one `exporter.animation.Animation`: the one owner of these formats.

Sources (the file name's extension decides the parser):
- `.npy`: FaceVerse coefficients, one vector or (frames, D), layouts 490/609/610/621; several
  single-frame `.npy` files (or a directory of them, in name order) form a sequence.
- `.csv`: a Live Link Face recording (see exporter.livelink).
- `.json`: a list of name -> weight maps, one per frame; ARKit names in any case, plus optionally the
  Live Link head/eye column names (HeadYaw, LeftEyePitch, ...) in radians.
- a video clip (`.mp4`, `.mov`, `.webm`, ...; avatar.track.VIDEO_SUFFIXES): tracked by avatar.track, at
  the clip's own frame rate (the frame_rate argument does not apply).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avatar.expressions import LIVELINK_HEAD_COLUMNS, NUM_EXPRESSIONS, ExpressionError, index_of, validate_weights
from avatar.faceverse_coeffs import FaceVerseCoeffError, coeffs_from_npy_bytes, frame_files, stack_frames
from avatar.head_model import HeadModel
from avatar.track import ClipError, clip_file, is_video_name, track_clip
from exporter.animation import Animation, frame_times, from_faceverse, from_track, pose_columns_to_eye
from exporter.livelink import read_livelink_csv
from exporter.options import DEFAULT_FRAME_RATE, ExportError

AnimationSource = tuple[str, bytes]  # (file name, whose extension names the format; the file's bytes)


def from_clip(data: bytes, name: str, head: HeadModel | None = None,
              progress: Any = None) -> Animation:
    """Track a video clip's bytes (see avatar.track). A clip that cannot be read is an ExportError; one
    beyond the tracker's limits stays a ClipTooLong (a resource limit, not bad input)."""
    try:
        with clip_file(data, name) as path:
            return from_track(track_clip(path, head, progress=progress, name=name))
    except ClipError as exc:
        raise ExportError(str(exc)) from None


def _weights_and_pose_from_map(frame: dict[Any, Any], where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
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


def from_sources(sources: Sequence[AnimationSource], frame_rate: float = DEFAULT_FRAME_RATE,
                 faceverse_mapping: np.ndarray | None = None) -> Animation:
    """One animation from uploaded files: one .csv, one .json, one video clip, or one or more .npy (frames
    in order)."""
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
        return read_livelink_csv(data, frame_rate, source=name)
    if suffix == ".json":
        return from_json(data, frame_rate, source=name)
    if is_video_name(name):
        return from_clip(data, name)
    raise ExportError(f"{name}: unknown animation format; use .npy (FaceVerse), .csv (Live Link Face), .json "
                      f"or a video clip (.mp4, .mov, .webm)")


def source_files(paths: Iterable[str | os.PathLike[str]]) -> list[AnimationSource]:
    """(name, bytes) of animation files, in order; a directory stands for its FaceVerse .npy frames in
    name order."""
    sources: list[AnimationSource] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            try:
                files = frame_files(p)
            except FaceVerseCoeffError as exc:
                raise ExportError(str(exc)) from None
            sources.extend((f.name, f.read_bytes()) for f in files)
        elif p.is_file():
            sources.append((p.name, p.read_bytes()))
        else:
            raise ExportError(f"{p}: no such animation file")
    return sources


def load_animation(path: str | os.PathLike[str], frame_rate: float = DEFAULT_FRAME_RATE,
                   faceverse_mapping: np.ndarray | None = None) -> Animation:
    """From a file, or a directory of FaceVerse .npy frames taken in name order."""
    return from_sources(source_files([path]), frame_rate, faceverse_mapping)
