"""The face tracker: per video frame, the face mesh and the head model's dense fit, smoothed without lag.

Per frame (`FaceTracker`): the mesh follows the face (avatar.track.follow); One-Euro filters smooth it
in the face's own frame (avatar.track.face_frame, parameters below); `avatar.fit.fit_landmarks` solves
ARKit-52 weights, head pose, gaze and the camera on it with the identity held fixed, warm-started from the
previous frame.
The lids the fit sees are the iris model's eye contours (avatar.portrait.face_mesh.refined_lids); the eyeBlink
channels are read from the contours' apertures against the clip's open eye (avatar.track.blink), 0.5 when an eye is
half shut, per eye (winks), through a One-Euro filter of their own. Live, the open eye is learnt from the
frames seen so far; for a whole clip the channels are read again once it is tracked, against the whole
clip's open eye (`track_frames`). A frame without a face, or whose fit fails, is marked `found=False` and
holds the last values.

Identity and neutral are one per clip (`estimate_face`): the identity is the median of free fits, the
neutral (`avatar.fit.neutral_offsets`) what fits with that identity leave over on the frames whose lips
are closest together, so the person's own proportions, and not their speech, are the face at weight 0.
Live (`FaceTracker`) they are estimated from the first IDENTITY_FRAMES frames with a face, then held. For
a whole clip (`track_frames`, `track_clip`) they are estimated first, from the clip's first
IDENTITY_WINDOW frames, and the gaps left by lost frames are interpolated from their neighbours.

A clip tracked whole has its future frames, so its head pose is smoothed both ways (`_smooth_pose_backward`):
the tracked poses are filtered once more from the clip's end to its start by a One-Euro filter driven as the
forward one is, a zero-phase filter overall (the causal filter's lag is taken back out, its smoothing applied
twice). A live FaceTracker has no future frames and keeps the causal filter alone.

Coordinates: a frame of W x H pixels is fitted as the centre of a square of side max(W, H) (the fit's
camera has its principal point at the image centre), so `camera` is an EG3D 25-vector for that square
and `landmarks` are pixels of it (image pixels + `offset`). Angles in radians; head pose is
avatar.camera.head_rotation's (yaw, pitch, roll) of the head before a frontal camera; `eye` is the
FaceVerse eye 4-vector.
"""
from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.transform import Rotation

from avatar import camera as cam
from avatar.expressions import NUM_EXPRESSIONS
from avatar.fit import FaceFit, LandmarkFitError, fit_landmarks, neutral_offsets
from avatar.fit.correspondence import MESH_POINTS, NUM_POINTS, REGIONS
from avatar.head_model import HeadModel, embedded_head_model
from avatar.portrait.face_mesh import CONTOUR_POINTS, LID_RING
from avatar.portrait.landmarks import MP_LIP_CENTRES
from avatar.track.blink import BLINK_CHANNELS as EYE_BLINKS
from avatar.track.blink import BlinkReader, clip_open_aperture
from avatar.track.eyelids import apertures
from avatar.track.face_frame import FaceFrameFilter
from avatar.track.filters import OneEuroFilter
from avatar.track.follow import MeshFollower, MeshObservation
from avatar.track.video import Clip, ClipError, ClipLimits

IDENTITY_FRAMES = 4
# Frames whose misses give the clip's neutral: those of the clip's first ones whose lips are closest together
# (least_open), and a median over them, so a passing expression is outvoted. A face at rest has its lips
# together, and the fits leave part of an open mouth over as a miss (the model's weights do not reach every
# mouth's opening): frames spread over the first seconds of a clip whose person talks from the start put
# their median miss, a parted mouth, into the neutral, and every frame then read that much less opening
# than it showed. Measured on talking_d10 (talking from its first frame; inner-lip gap, % of the
# inter-ocular distance): the neutral's gap 9.0 -> 4.0 (the frames' closed lips 2.4-2.8), the head's own
# mouth opening over the clip's first seconds 8.8 -> 10.1 (the landmarks' 18.1).
NEUTRAL_FRAMES = 12
# MediaPipe's iris centres (subject's right, left): their distance is the face's scale for confidences.
IRIS_CENTRES = (468, 473)
# A fit whose RMS landmark error reaches this fraction of the inter-ocular distance has confidence 0.
WORST_RELATIVE_ERROR = 0.15

# One-Euro parameters (min_cutoff Hz, beta Hz per unit/s, d_cutoff Hz), measured on talking-head clips at
# 30 fps (benchmarks.track reports the jitter, accuracy and blink lag they give). The face mesh is
# smoothed before the fit, in inter-ocular distances: smoothing the fit's outputs instead separates
# head rotation from camera position, which the fit trades against each other frame by frame, and
# moves the face more than it steadies it (measured). The points that carry expression (lid margins,
# lips) move fast and far while the head is still, so they keep a high floor and the filter never holds
# them back; the rest follow the head and are smoothed hard. Those open their filters on one speed, the
# mean over their channels (filters.OneEuroFilter's `shared`): a point's own noise then does not open its
# filter while the head is still, and the whole face follows at once when the head moves. Measured
# (benchmarks.track on the two reference clips; jitter reduction, accuracy in % IOD; raw fit 1.4-1.5):
# per-point speed 1.0, 2.0, 1.0: 1.88-1.96x, 2.64-2.92; shared 1.0, 4.0, 1.0: 1.87-1.91x, 2.54-2.73;
# shared 0.5, 3.0, 4.0: 1.95-2.12x, 2.55-3.19; shared 0.5, 4.0, 1.0: 1.99-2.01x, 2.75-2.90; shared 0.5,
# 2.0, 1.0: 2.21-2.42x, 3.2-3.8. Again with the blinks read against the whole clip (d10 / d3): 0.5, 4.0,
# 1.0: 1.99 / 2.01x, 2.75 / 2.90; 0.45, 4.0, 1.0: 2.00 / 2.02x, 2.78 / 2.92; 0.5, 4.0, 0.7: 2.15 / 1.97x,
# 2.91 / 3.00; 0.5, 4.5, 1.0: 1.93 / 1.97x, 2.68 / 2.79; 0.4, 5.0, 1.0: 1.90 / 1.96x, 2.65 / 2.72. Jitter
# and lag trade one for the other; this keeps the accuracy goal at the jitter goal.
# What is left on a still head is the mesh's whole-face wobble (about nine tenths of the mesh's own jitter
# there is a similarity motion of the whole face, not per-point noise) passed through the fit as pose: the
# fit's expression weights add nothing to it. No causal speed measure tells that wobble from a slow real
# motion, so a clip tracked whole takes its future into account instead (`_smooth_pose_backward`, one gain on
# rotation and position, which keeps the pose they make together). Measured in one run (d10 / d3): jitter
# reduction 2.01 / 2.02x -> 4.17 / 2.80x, accuracy 2.73 / 2.86 -> 2.65 / 1.72 % IOD, blinks unchanged.
LANDMARK_FILTER = (0.5, 4.0, 1.0)
FEATURE_FILTER = (6.0, 10.0, 8.0)
# The fast-moving features: lids, lips and the irises, which jump with the gaze (a saccade crosses the eye
# in a frame or two); held to the head's slow filter and shared speed, a gaze shift lagged 4-8 frames.
FEATURE_POINTS = np.unique(np.r_[np.ravel(LID_RING), REGIONS["mouth"], np.arange(MESH_POINTS, NUM_POINTS)])
# The landmark filter's (478 * 3,) channels (x, y, z per point) of the points that move with the head.
HEAD_CHANNELS = np.repeat(~np.isin(np.arange(478), FEATURE_POINTS), 3)
# The head's slow filter above is for the whole face's motion; applied to each point in the image it also
# held back the points that move with expression though not fast enough to open it (brows, the jaw's
# outline: they lagged their own motion by several frames, and a reenacted face lagged with them). So the
# mesh is filtered in the face's own frame (avatar.track.face_frame): the whole face's motion with
# LANDMARK_FILTER, the shape the face makes on it with SHAPE_FILTER per point (FEATURE_FILTER on the
# features). The face's frame is fixed by ANCHOR_POINTS, the head's points that expression leaves in place.
# Measured in one run against the image-frame filter (d10 / d3): jitter reduction 4.15 / 2.80x -> 4.24 /
# 2.87x, accuracy 2.57 / 1.71 -> 2.67 / 1.67 % IOD, blinks unchanged; reenacted face PSNR (benchmarks.fidelity)
# per frame +0.105 +- 0.049 / -0.014 +- 0.015 dB. With the features left in the image frame: 4.12 / 2.80x,
# 2.57 / 1.71 % IOD, +0.044 / -0.006 dB (the whole face's motion moves them as it moves the rest).
SHAPE_FILTER = (1.0, 10.0, 8.0)
ANCHOR_POINTS = np.setdiff1d(np.arange(MESH_POINTS), np.r_[FEATURE_POINTS, REGIONS["brows"], REGIONS["contour"]])
_FRONTAL = cam.orbit_to_cam2world(cam.Orbit())[:3, :3]


def camera_for(head_pose: ArrayLike, position: ArrayLike, fov_deg: float) -> np.ndarray:
    """(25,) float32 EG3D camera that sees the still head as a camera at `position` (world units, as in
    FaceFit.camera) sees the head turned by `head_pose` (the fit's convention)."""
    c2w = np.eye(4)
    c2w[:3, :3] = cam.head_rotation(*np.asarray(head_pose, np.float64)).T @ _FRONTAL
    c2w[:3, 3] = position
    return np.concatenate([c2w.reshape(-1), cam.intrinsics(fov_deg).reshape(-1)]).astype(np.float32)


@dataclass
class TrackedFrame:
    """One frame's tracking result (see the module docstring for units and frames)."""

    time: float                     # seconds
    found: bool                     # a face was found and fitted in this frame
    confidence: float               # 0..1: mesh presence x fit quality; 0 when not found
    weights: np.ndarray             # (52,) float32 in [0, 1], canonical ARKit order
    head_pose: np.ndarray           # (3,) float64 yaw, pitch, roll
    eye: np.ndarray                 # (4,) float32
    position: np.ndarray            # (3,) float64 camera position (world units, FaceFit.camera's)
    camera: np.ndarray              # (25,) float32 EG3D camera for the square frame
    landmarks: np.ndarray | None    # (478, 3) the face mesh as found (unsmoothed), square-frame pixels;
                                    # None when not found
    fit: FaceFit | None             # the frame's fit (to the smoothed mesh when smoothing), None when not found
    eye_contours: np.ndarray | None = None  # (2, 71, 3) the iris model's eye contours as found (FaceMesh's),
                                            # square-frame pixels; None when not found or not observed


class FaceTracker:
    """Tracks one face through consecutive frames (a clip or a live stream). `smooth=False` fits each
    frame's mesh as found (the raw per-frame fit, e.g. for comparisons)."""

    def __init__(self, head: HeadModel | None = None, identity: ArrayLike | None = None, frame_rate: float = 30.0,
                 smooth: bool = True, neutral: ArrayLike | None = None):
        self.head = head if head is not None else embedded_head_model()
        self.frame_rate = float(frame_rate)
        self.smooth = smooth
        self.follower = MeshFollower()
        self._identity = None if identity is None else np.asarray(identity, np.float32)
        self._neutral = None if neutral is None else np.asarray(neutral, np.float64)
        self._samples: list[np.ndarray] = []   # landmarks of the first faces, until the neutral is fixed
        self._prior: FaceFit | None = None
        self._landmark_filter = face_frame_filter()
        self._blinks = BlinkReader(smooth=smooth)
        self._scale: float | None = None
        self._last: TrackedFrame | None = None
        self._count = 0

    @property
    def identity(self) -> np.ndarray | None:
        """The clip's identity once it is fixed (None while it is still being estimated)."""
        return self._identity

    def track(self, rgb: np.ndarray, time: float | None = None) -> TrackedFrame:
        """Track the next frame (RGB uint8 (H, W, 3)); `time` in seconds (default: frame count / rate)."""
        return self.update(self.follower(rgb), rgb.shape[:2], time)

    def update(self, observation: MeshObservation, shape: tuple[int, int], time: float | None = None
               ) -> TrackedFrame:
        """Fit and smooth an already observed face mesh of a frame of `shape` (H, W)."""
        t = self._count / self.frame_rate if time is None else float(time)
        self._count += 1
        size, offset = square_frame(shape)
        fit = None
        points, seen = observation.points, observation.fit_points()
        if points is not None and seen is not None:  # both or neither
            landmarks = points.copy()
            landmarks[:, :2] += offset
            contours = None
            if observation.eye_contours is not None:
                contours = observation.eye_contours.copy()
                contours[..., :2] += offset
            seen[:, :2] += offset
            fit = self._fit(self._smoothed_landmarks(seen, t) if self.smooth else seen, size)
        if fit is None:
            # The next face starts afresh (it may be elsewhere, turned otherwise): no warm start, and no
            # smoothing from where this one was.
            self._prior = None
            self._landmark_filter.reset()
            self._blinks.reset()
            return self._lost(t)
        self._prior = fit
        expression = fit.expression.copy()
        open_ = observation.apertures
        if open_ is not None:
            expression[list(EYE_BLINKS)] = self._blinks(open_, t)
        self._last = TrackedFrame(
            time=t, found=True, confidence=observation.presence * _fit_quality(fit, landmarks, size),
            weights=np.clip(expression, 0.0, 1.0).astype(np.float32), head_pose=fit.head_pose.copy(),
            eye=np.asarray(fit.eye, np.float32).copy(),
            position=np.asarray(fit.camera[:16], np.float64).reshape(4, 4)[:3, 3].copy(),
            camera=np.asarray(fit.camera, np.float32).copy(), landmarks=landmarks, fit=fit, eye_contours=contours)
        return self._last

    def _smoothed_landmarks(self, landmarks: np.ndarray, t: float) -> np.ndarray:
        """The landmarks through the landmark filter (face_frame_filter), in units of the first face's
        inter-ocular distance."""
        if self._scale is None:
            self._scale = _filter_unit(landmarks)
        return self._landmark_filter(landmarks / self._scale, t) * self._scale

    def _fit(self, landmarks: np.ndarray, size: int) -> FaceFit | None:
        try:
            fit = fit_landmarks(self.head, landmarks, size, identity=self._identity, prior=self._prior,
                                neutral=self._neutral)
        except LandmarkFitError:
            return None
        if self._neutral is None:
            self._samples.append(landmarks)
            if len(self._samples) >= IDENTITY_FRAMES:
                found = estimate_face(self.head, self._samples, size, self._identity)
                if found is not None:
                    self._identity, self._neutral = found
                self._samples = []
        return fit

    def _lost(self, t: float) -> TrackedFrame:
        last = self._last
        if last is None:  # nothing seen yet: the neutral face before the default camera
            position = cam.orbit_to_cam2world(cam.Orbit())[:3, 3]
            return TrackedFrame(t, False, 0.0, np.zeros(NUM_EXPRESSIONS, np.float32), np.zeros(3),
                                np.zeros(4, np.float32), position, cam.camera_vector(cam.Orbit()), None, None)
        return TrackedFrame(t, False, 0.0, last.weights.copy(), last.head_pose.copy(), last.eye.copy(),
                            last.position.copy(), last.camera.copy(), None, None)


def face_frame_filter() -> FaceFrameFilter:
    """The tracker's landmark filter, on (478, 3) meshes in inter-ocular units: the whole face's motion on
    LANDMARK_FILTER, its shape on SHAPE_FILTER, FEATURE_FILTER on FEATURE_POINTS."""
    return FaceFrameFilter(LANDMARK_FILTER, _per_point(SHAPE_FILTER), ANCHOR_POINTS)


def landmark_filter_parameters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-Euro (min_cutoff, beta, d_cutoff), each (478 * 3,): FEATURE_FILTER on FEATURE_POINTS,
    LANDMARK_FILTER elsewhere."""
    return _per_point(LANDMARK_FILTER)


def _per_point(head: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-Euro parameters per (478 * 3,) channel: FEATURE_FILTER on FEATURE_POINTS, `head` elsewhere."""
    params = np.tile(np.asarray(head, np.float64)[:, None, None], (1, 478, 3))
    params[:, FEATURE_POINTS] = np.asarray(FEATURE_FILTER, np.float64)[:, None, None]
    min_cutoff, beta, d_cutoff = (p.reshape(-1) for p in params)
    return min_cutoff, beta, d_cutoff


def square_frame(shape: tuple[int, int]) -> tuple[int, np.ndarray]:
    """Side of the square a (H, W) frame is fitted in, and the (x, y) offset of the frame inside it."""
    height, width = int(shape[0]), int(shape[1])
    size = max(height, width)
    return size, np.array([(size - width) / 2.0, (size - height) / 2.0])


def _interocular(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[IRIS_CENTRES[0], :2] - landmarks[IRIS_CENTRES[1], :2]))


def _filter_unit(landmarks: np.ndarray) -> float:
    """The landmark filter's unit of length, pixels: the first face's inter-ocular distance, so its
    speeds and cutoffs mean the same on any frame size."""
    return max(_interocular(landmarks), 1.0)


def _fit_quality(fit: FaceFit, landmarks: np.ndarray, size: int) -> float:
    interocular = _interocular(landmarks)
    if interocular <= 0:
        return 0.0
    relative = fit.residual * size / interocular
    return float(np.clip(1.0 - relative / WORST_RELATIVE_ERROR, 0.0, 1.0))


# -- whole clips -------------------------------------------------------------------------------------

@dataclass
class Track:
    """A clip's tracking, one row per frame; lost frames (found False) are interpolated from their
    neighbours (held at the clip's ends)."""

    frame_rate: float
    frame_shape: tuple[int, int]    # (H, W) of the clip's frames
    image_size: int                 # side of the square the fit saw (square_frame)
    identity: np.ndarray            # (K,) the clip's identity
    neutral: np.ndarray             # (478, 3) the clip's neutral offsets (avatar.fit.neutral_offsets)
    times: np.ndarray               # (T,) float64 seconds
    found: np.ndarray               # (T,) bool
    confidence: np.ndarray          # (T,) float32
    weights: np.ndarray             # (T, 52) float32
    head_pose: np.ndarray           # (T, 3) float64
    eye: np.ndarray                 # (T, 4) float32
    cameras: np.ndarray             # (T, 25) float32
    landmarks: np.ndarray           # (T, 478, 3) float64 square-frame pixels, NaN where lost
    fits: list[FaceFit | None]      # (T,) the frames' own unsmoothed FaceFit, None where lost
    eye_contours: np.ndarray        # (T, 2, 71, 3) float64 the iris model's eye contours as found (subject's
                                    # right eye, then left; FaceMesh.eye_contours), square-frame pixels, NaN
                                    # where lost

    @property
    def num_frames(self) -> int:
        return len(self.times)


Progress = Callable[[int, int], None]   # (frames tracked, frames in the clip or 0 when unknown)
# The clip's identity is estimated from the faces of its first IDENTITY_WINDOW frames (2 s at 30 fps;
# more when fewer than IDENTITY_FRAMES of them show a face), so fitting starts while the rest is read.
IDENTITY_WINDOW = 60


def track_clip(path: str | os.PathLike[str], head: HeadModel | None = None, limits: ClipLimits = ClipLimits(),
               progress: Progress | None = None, name: str | None = None, smooth: bool = True,
               identity: ArrayLike | None = None) -> Track:
    """Track a video file (see avatar.track.video for what is refused and how)."""
    with Clip(path, limits, name=name) as clip:
        return track_frames(clip.frames(), clip.info.frame_rate, head, progress,
                            total=clip.info.declared_frames, name=clip.name, smooth=smooth, identity=identity)


def track_frames(frames: Iterable[np.ndarray], frame_rate: float, head: HeadModel | None = None,
                 progress: Progress | None = None, total: int = 0, name: str = "the clip",
                 smooth: bool = True, identity: ArrayLike | None = None) -> Track:
    """Track a sequence of RGB frames at `frame_rate` frames per second.

    The frames are decoded and meshed on a second thread while this one fits (the mesh model runs
    outside Python's lock, so the two overlap on two cores). `identity`: hold this (K,) identity (e.g.
    an avatar's own) instead of estimating the clip's. The eyeBlink channels are read against the whole
    clip's open eye once every frame is tracked (a live FaceTracker knows only the frames so far).
    """
    report = progress or (lambda done, of: None)
    head = head if head is not None else embedded_head_model()
    meshes = _MeshPass(frames, name)
    try:
        observed = meshes.results()
        buffer: list[MeshObservation] = []
        for obs in observed:
            buffer.append(obs)
            if len(buffer) >= IDENTITY_WINDOW and sum(o.points is not None for o in buffer) >= IDENTITY_FRAMES:
                break
        if not buffer:
            raise ClipError(f"{name}: the clip has no frames")
        if all(o.points is None for o in buffer):  # the whole clip was read
            raise ClipError(f"{name}: no face was found in any of its {len(buffer)} frames")
        shape = meshes.shape
        assert shape is not None  # the mesh pass sets it before it queues the first observation
        size, offset = square_frame(shape)
        seen = [points + np.r_[offset, 0.0] for points in (o.fit_points() for o in buffer) if points is not None]
        found = estimate_face(head, seen, size, identity)
        if found is None:
            raise ClipError(f"{name}: the faces found in its first frames could not be fitted")
        clip_identity, neutral = found
        tracker = FaceTracker(head, identity=clip_identity, frame_rate=frame_rate, smooth=smooth, neutral=neutral)
        rows: list[TrackedFrame] = []
        for obs in _chain(buffer, observed):
            rows.append(tracker.update(obs, shape, len(rows) / frame_rate))
            report(len(rows), total)
    finally:
        meshes.stop()
    if not rows:
        raise ClipError(f"{name}: the clip has no frames")
    if not any(r.found for r in rows):
        raise ClipError(f"{name}: no face was found in any of its {len(rows)} frames")
    _read_blinks_against_the_clip(rows, smooth)
    if smooth:
        _smooth_pose_backward(rows)
    return _assemble(rows, frame_rate, shape, clip_identity, neutral)


def _read_blinks_against_the_clip(rows: list[TrackedFrame], smooth: bool) -> None:
    """Rewrite the rows' eyeBlink channels against the whole clip's open eye (avatar.track.blink), as the
    tracker wrote them frame by frame against the frames before: the same reading, smoothing and restarts."""
    per_row = [apertures(r.eye_contours) if r.found and r.eye_contours is not None else None for r in rows]
    seen = [a for a in per_row if a is not None]
    if not seen:
        return
    reader = BlinkReader(clip_open_aperture(seen), smooth=smooth)
    for r, a in zip(rows, per_row):
        if not r.found:
            reader.reset()
        elif a is not None:
            r.weights[list(EYE_BLINKS)] = reader(a, r.time)


def _smooth_pose_backward(rows: list[TrackedFrame]) -> None:
    """Filter the rows' head pose once more from the last row to the first, in place: a One-Euro filter run
    backward in time, whose gains come from the face mesh's head points on one shared speed
    (landmark_filter_parameters: LANDMARK_FILTER, the forward filter's for the whole face's motion), seen
    from the clip's end, so it opens where the head moves as the forward one does, only from the other side;
    forward then backward is a zero-phase filter. Rotation and camera position are blended with one gain, the
    rotation along the geodesic (a fraction of the relative rotation vector): the fit trades the two frame by
    frame, and one gain on both keeps the pose they make together. A lost frame ends a stretch, as it restarts
    the forward filter; the other channels (weights, gaze) are left as the forward filter gave them."""
    seen = [r.landmarks for r in rows if r.found and r.landmarks is not None]
    if not seen:
        return
    scale = _filter_unit(seen[0])
    smoother = OneEuroFilter(*landmark_filter_parameters(), shared=HEAD_CHANNELS)
    later: tuple[np.ndarray, np.ndarray] | None = None   # the next row's filtered (rotation, position)
    for r in reversed(rows):
        if not r.found or r.landmarks is None:
            smoother.reset()
            later = None
            continue
        smoother((r.landmarks / scale).reshape(-1), rows[-1].time - r.time)
        assert smoother.gain is not None  # set by the call
        gain = float(np.mean(smoother.gain[HEAD_CHANNELS]))   # one shared speed: one gain
        rotation = cam.head_rotation(*r.head_pose)
        if later is not None:
            next_rotation, next_position = later
            step = Rotation.from_matrix(next_rotation.T @ rotation).as_rotvec()
            rotation = next_rotation @ Rotation.from_rotvec(gain * step).as_matrix()
            r.position = next_position + gain * (r.position - next_position)
            r.head_pose = np.array(cam.head_pose_from_rotation(rotation))
            r.camera = camera_for(r.head_pose, r.position, cam.fov_from_focal(float(r.camera[16])))  # its own fov
        later = (rotation, r.position)


def _chain(first: list[MeshObservation], rest: Iterable[MeshObservation]) -> Iterator[MeshObservation]:
    yield from first
    yield from rest


class _MeshPass:
    """Decodes and meshes frames on a thread of its own; `results()` yields the observations in order
    and re-raises the thread's failure (a bad clip) where it happened."""

    def __init__(self, frames: Iterable[np.ndarray], name: str):
        self.shape: tuple[int, int] | None = None
        # Observations in order, then None at the end of the clip or the thread's failure.
        self._queue: queue.Queue[MeshObservation | BaseException | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(frames, name), daemon=True, name="track-mesh")
        self._thread.start()

    def _run(self, frames: Iterable[np.ndarray], name: str) -> None:
        follower = MeshFollower()
        try:
            for frame in frames:
                if self._stop.is_set():
                    return
                if self.shape is None:
                    height, width = frame.shape[:2]
                    self.shape = (height, width)
                elif frame.shape[:2] != self.shape:
                    raise ClipError(f"{name}: a frame is {frame.shape[1]}x{frame.shape[0]}, the clip started at "
                                    f"{self.shape[1]}x{self.shape[0]}")
                self._queue.put(follower(frame))
            self._queue.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._queue.put(exc)

    def results(self) -> Iterator[MeshObservation]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def estimate_face(head: HeadModel, landmarks: list[np.ndarray], size: int, identity: ArrayLike | None = None
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """The clip's (identity (K,), neutral (478, 3)) from landmarks of its frames (square-frame pixels, in
    order): the median identity of free fits on IDENTITY_FRAMES of them spread over the list (unless
    `identity` is given), then the neutral from fits with it on the NEUTRAL_FRAMES of them whose lips are
    closest together (least_open). None when too few of them can be fitted."""
    def spread(count: int) -> list[np.ndarray]:
        picks = np.unique(np.linspace(0, len(landmarks) - 1, min(count, len(landmarks))).round().astype(int))
        return [landmarks[k] for k in picks]

    def fits(chosen: list[np.ndarray], identity: np.ndarray | None = None) -> list[tuple[FaceFit, np.ndarray]]:
        out: list[tuple[FaceFit, np.ndarray]] = []
        for lm in chosen:
            try:
                out.append((fit_landmarks(head, lm, size, identity=identity), lm))
            except LandmarkFitError:
                continue
        return out

    if identity is None:
        free = fits(spread(IDENTITY_FRAMES))
        if not free:
            return None
        identity = np.median([f.identity for f, _ in free], axis=0)
    chosen = np.asarray(identity, np.float32)
    held = fits(least_open(landmarks, NEUTRAL_FRAMES), identity=chosen)
    if not held:
        return None
    return chosen, neutral_offsets(head, [f for f, _ in held], [lm for _, lm in held], size)


def least_open(landmarks: list[np.ndarray], count: int) -> list[np.ndarray]:
    """The `count` face meshes of `landmarks` ((478, 3) pixels each) whose inner lips are closest together,
    relative to the inter-ocular distance, in their order in the list."""
    gaps = [np.linalg.norm(lm[MP_LIP_CENTRES[0], :2] - lm[MP_LIP_CENTRES[1], :2]) / max(_interocular(lm), 1e-9)
            for lm in landmarks]
    return [landmarks[k] for k in np.sort(np.argsort(gaps, kind="stable")[:count])]


def _assemble(rows: list[TrackedFrame], frame_rate: float, shape: tuple[int, int], identity: np.ndarray,
              neutral: np.ndarray) -> Track:
    found = np.array([r.found for r in rows])
    if not found.any():
        raise ClipError("no frame of the clip could be fitted")
    size, _ = square_frame(shape)

    def filled(values: np.ndarray) -> np.ndarray:
        """Lost rows linearly interpolated between the nearest found rows (held at the ends)."""
        out: np.ndarray = values.astype(np.float64).copy()
        idx = np.arange(len(rows))
        flat = out.reshape(len(rows), -1)
        for c in range(flat.shape[1]):
            flat[~found, c] = np.interp(idx[~found], idx[found], flat[found, c])
        return out

    pose = filled(np.stack([r.head_pose for r in rows]))
    position = filled(np.stack([r.position for r in rows]))
    seen = np.flatnonzero(found)
    fov = [math.nan if r.fit is None else r.fit.fov_deg for r in rows]  # a found frame has its fit
    cameras = []
    for i, r in enumerate(rows):
        if r.found:
            cameras.append(r.camera)
        else:  # the field of view of the nearest frame with a face
            nearest = seen[np.argmin(np.abs(seen - i))]
            cameras.append(camera_for(pose[i], position[i], fov[nearest]))
    landmarks = np.full((len(rows), 478, 3), np.nan)
    contours = np.full((len(rows), 2, CONTOUR_POINTS, 3), np.nan)
    for i, r in enumerate(rows):
        if r.landmarks is not None:
            landmarks[i] = r.landmarks
        if r.eye_contours is not None:
            contours[i] = r.eye_contours
    return Track(frame_rate=float(frame_rate), frame_shape=(int(shape[0]), int(shape[1])), image_size=size,
                 identity=np.asarray(identity, np.float32), neutral=np.asarray(neutral, np.float64),
                 times=np.array([r.time for r in rows]),
                 found=found, confidence=np.array([r.confidence for r in rows], np.float32),
                 weights=np.clip(filled(np.stack([r.weights for r in rows])), 0, 1).astype(np.float32),
                 head_pose=pose, eye=filled(np.stack([r.eye for r in rows])).astype(np.float32),
                 cameras=np.stack(cameras).astype(np.float32),
                 landmarks=landmarks, fits=[r.fit for r in rows], eye_contours=contours)
