"""Live Link Face CSV: the recording format of Epic's iOS app, which Unreal imports.

Header: `Timecode,BlendShapeCount,` + the 52 names in Live Link order + head and eye rotations
(avatar.expressions.LIVELINK_HEADER). Timecode is `HH:MM:SS:FF.fff` (frame FF at the recording's frame
rate, .fff the sub-frame fraction); BlendShapeCount is 61 (52 shapes + 9 rotations).
Rotations are written in radians: HeadYaw/Pitch/Roll = the animation's head rotation; eye yaw = the
FaceVerse eye "toward +x" angle, eye pitch = its "down" angle, eye roll 0.
"""
from __future__ import annotations

import csv
import io
import math
import re

import numpy as np

from avatar.expressions import (
    LIVELINK_BLENDSHAPE_COUNT,
    LIVELINK_HEAD_COLUMNS,
    LIVELINK_HEADER,
    LIVELINK_TO_CANONICAL,
    NUM_EXPRESSIONS,
    ExpressionError,
    index_of,
    validate_weights,
)
from exporter.animation import Animation, eye_to_pose_columns, pose_columns_to_eye
from exporter.options import DEFAULT_FRAME_RATE, ExportError

_TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2}):(\d+)(?:\.(\d+))?$")


def format_timecode(seconds: float, frame_rate: float) -> str:
    """`HH:MM:SS:FF.fff` for a time in seconds; FF counts frames within the second."""
    frames_total = seconds * frame_rate
    # Round to the millisecond of a frame first so 0.1 s at 30 fps is frame 3, not 2.999.
    frames_total = round(frames_total * 1000) / 1000
    whole_seconds = math.floor(seconds + 1e-9)
    frame_in_second = frames_total - whole_seconds * frame_rate
    frame = math.floor(frame_in_second + 1e-9)
    sub = round((frame_in_second - frame) * 1000)
    if sub == 1000:
        frame, sub = frame + 1, 0
    h, rem = divmod(whole_seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{frame:02d}.{sub:03d}"


def parse_timecode(text: str, frame_rate: float) -> float:
    match = _TIMECODE.match(text.strip())
    if not match:
        raise ExportError(f"timecode {text!r} is not HH:MM:SS:FF.fff")
    h, m, s, f, sub = match.groups()
    frames = int(f) + (float("0." + sub) if sub else 0.0)
    return int(h) * 3600 + int(m) * 60 + int(s) + frames / frame_rate


def write_livelink_csv(animation: Animation) -> bytes:
    rate = animation.frame_rate
    livelink_weights = animation.weights[:, LIVELINK_TO_CANONICAL]
    head = animation.head_rotation if animation.head_rotation is not None else np.zeros((animation.num_frames, 3))
    eyes = eye_to_pose_columns(animation.eye) if animation.eye is not None else np.zeros((animation.num_frames, 6))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LIVELINK_HEADER)
    for i in range(animation.num_frames):
        values = np.concatenate([livelink_weights[i], head[i], eyes[i]])
        writer.writerow([format_timecode(float(animation.times[i]), rate), LIVELINK_BLENDSHAPE_COUNT]
                        + [f"{float(v):.7g}" for v in values])
    return buf.getvalue().encode()


def read_livelink_csv(data: bytes, frame_rate: float = DEFAULT_FRAME_RATE,
                      source: str = "livelink.csv") -> Animation:
    """Columns are matched by name (case-insensitive); missing rotation columns mean no pose."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ExportError(f"{source}: not UTF-8 text") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:  # e.g. a field beyond the csv module's size limit
        raise ExportError(f"{source}: not a readable CSV file ({exc})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise ExportError(f"{source}: needs a header row and at least one frame")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    if not lower or lower[0] != "timecode":
        raise ExportError(f"{source}: first column must be Timecode (a Live Link Face CSV)")
    shape_cols = {}
    pose_cols = {}
    head_names = [c.lower() for c in LIVELINK_HEAD_COLUMNS]
    for col, name in enumerate(lower):
        if name in ("timecode", "blendshapecount"):
            continue
        if name in head_names:
            pose_cols[head_names.index(name)] = col
            continue
        try:
            shape_cols[index_of(name)] = col
        except ExpressionError:
            raise ExportError(f"{source}: unknown column {header[col]!r}") from None
    missing = [i for i in range(NUM_EXPRESSIONS) if i not in shape_cols]
    if missing:
        raise ExportError(f"{source}: {len(missing)} blendshape columns are missing")

    times, weights, pose = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ExportError(f"{source} line {line}: {len(row)} cells, header has {len(header)}")
        times.append(parse_timecode(row[0], frame_rate))
        try:
            values = {c: float(row[c]) for c in list(shape_cols.values()) + list(pose_cols.values())}
        except ValueError:
            raise ExportError(f"{source} line {line}: a value is not a number") from None
        try:
            weights.append(validate_weights([values[shape_cols[k]] for k in range(NUM_EXPRESSIONS)]))
        except ExpressionError as exc:
            raise ExportError(f"{source} line {line}: {exc}") from None
        pose.append([values.get(pose_cols[k], 0.0) if k in pose_cols else 0.0
                     for k in range(len(LIVELINK_HEAD_COLUMNS))])
    t = np.asarray(times, np.float64)
    t = t - t[0]
    if np.any(np.diff(t) <= 0):
        raise ExportError(f"{source}: timecodes are not strictly increasing at {frame_rate:g} fps "
                          "(is the frame rate right?)")
    pose_arr = np.asarray(pose, np.float32)
    if not np.all(np.isfinite(pose_arr)):
        raise ExportError(f"{source}: head or eye rotation is not finite")
    has_head = all(k in pose_cols for k in range(3))
    has_eyes = all(k in pose_cols for k in (3, 4, 6, 7))
    return Animation(times=t.astype(np.float32), weights=np.stack(weights),
                     head_rotation=pose_arr[:, :3] if has_head else None,
                     eye=pose_columns_to_eye(pose_arr[:, 3:]) if has_eyes else None,
                     frame_rate=float(frame_rate))
