"""Self-reenactment on a talking-head clip: an avatar made from one frame, driven to the others, scored.

Protocol (issue 9): frames are sampled every `step`; each is prepared (aligned crop, matte, landmarks) and
fitted. The source is the most frontal frame with the mouth closed and the eyes open (a neutral face: an
avatar cannot be given the eyes a closed-eyed source never showed); the avatar is created from it. The
whole clip is then tracked with the avatar's identity held (avatar.track, the code path of `avatarforge
track`, TrackFace and `export --anim CLIP`). Every other sampled frame is a target: the avatar is
rendered with the pose, expression and gaze the tracker gives for it, aligned to it by a similarity
transform between the face landmarks found on the render and on the target, and scored
(benchmarks.fidelity_metrics.score_frame). The "no 3D" baseline, the
source crop itself aligned to the target by its landmarks, is scored the same way. All of it happens in
the target's aligned crop, at SCORE_SIZE.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from benchmarks import fidelity_metrics as fm
from benchmarks.observe import Observation, from_prepared, observe

SCORE_SIZE = 256
RENDER_BACKGROUND = (0.5, 0.5, 0.5)  # renders are shown to the face mesh over grey, like a studio backdrop
# A source frame's mouth counts as closed below this jawOpen (fit) and this lip gap / inter-ocular (landmarks).
CLOSED_JAW = 0.15
CLOSED_LIP_GAP = 0.05
# A source frame's eyes count as open below this eyeBlink (fit) on both eyes.
OPEN_EYE_BLINK = 0.15
SOURCE_TRIES = 3  # source frames tried, best first, before a clip counts as failed


class ClipError(ValueError):
    """A clip that cannot be read or has no usable face; the message says which and why."""


@dataclass
class Drive:
    """What a fit says about one frame: how to render the avatar so it matches it."""

    camera: np.ndarray              # (25,) the fitted camera: it carries the head pose (avatar.fit.landmark_fit)
    expression: np.ndarray          # (52,) ARKit weights
    eye: np.ndarray                 # (4,) FaceVerse eye rotation
    yaw_deg: float                  # the head's yaw before a frontal camera
    jaw_open: float                 # the fitted jawOpen weight
    blink: float                    # the larger fitted eyeBlink weight of the two eyes


@dataclass
class Frame:
    index: int
    png: bytes                      # the whole frame, as the generator receives a portrait
    prepared: object                # PreparedPortrait of the frame
    drive: Drive

    @property
    def observation(self) -> Observation:
        return from_prepared(self.prepared)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def read_frames(path: Path, step: int, limit: int | None = None) -> list[tuple[int, np.ndarray]]:
    """Every `step`-th frame of a clip as (index, RGB uint8), at most `limit` of them (OpenCV's FFmpeg backend)."""
    if step < 1:
        raise ClipError(f"frame step must be at least 1, got {step}")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise ClipError(f"{path}: OpenCV's FFmpeg backend cannot open this file as a video")
    frames = []
    index = 0
    try:
        while limit is None or len(frames) < limit:
            ok, bgr = capture.read()
            if not ok:
                break
            if index % step == 0:
                frames.append((index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            index += 1
    finally:
        capture.release()
    if not frames:
        raise ClipError(f"{path}: no frame could be decoded")
    return frames


def fit_frame(head, prepared, identity: np.ndarray | None = None) -> Drive:
    """The dense landmark fit of a prepared frame (identity held at `identity` when given)."""
    from avatar.expressions import index_of
    from avatar.fit.landmark_fit import fit_landmarks
    from avatar.track.blink import BLINK_CHANNELS

    fit = fit_landmarks(head, prepared.landmarks_with_lids(), prepared.image.shape[0], identity=identity)
    return Drive(camera=fit.camera, expression=np.asarray(fit.expression, np.float32),
                 eye=np.asarray(fit.eye, np.float32), yaw_deg=math.degrees(float(fit.head_pose[0])),
                 jaw_open=float(fit.expression[index_of("jawOpen")]),
                 blink=float(np.max(fit.expression[list(BLINK_CHANNELS)])))


def prepare_frames(head, raw: list[tuple[int, np.ndarray]]) -> tuple[list[Frame], dict]:
    """Prepared and fitted frames, and the count of frames left out per reason."""
    from avatar.portrait import PortraitError, prepare

    frames, left_out = [], {"no_face": 0, "fit_failed": 0}
    for index, rgb in raw:
        data = png_bytes(rgb)
        try:
            prepared = prepare(data)
        except PortraitError:
            left_out["no_face"] += 1
            continue
        try:
            drive = fit_frame(head, prepared)
        except ValueError:  # the fit's own refusal (LandmarkFitError): a figure, not the end of the run
            left_out["fit_failed"] += 1
            continue
        frames.append(Frame(index, data, prepared, drive))
    return frames, left_out


def source_candidates(frames: list[Frame]) -> list[Frame]:
    """Frames in order of preference as the source: mouth closed and eyes open first, then the most
    frontal."""
    def neutral(f: Frame) -> bool:
        return (f.drive.jaw_open < CLOSED_JAW and f.observation.mouth_open() < CLOSED_LIP_GAP
                and f.drive.blink < OPEN_EYE_BLINK)

    return sorted(frames, key=lambda f: (not neutral(f), abs(f.drive.yaw_deg)))


def _scaled_crop(prepared) -> tuple[np.ndarray, np.ndarray, float]:
    """The aligned crop and its matte at SCORE_SIZE, and the crop->score scale."""
    size = prepared.image.shape[0]
    image = cv2.resize(prepared.image, (SCORE_SIZE, SCORE_SIZE), interpolation=cv2.INTER_AREA)
    matte = cv2.resize(prepared.matte.astype(np.float32), (SCORE_SIZE, SCORE_SIZE), interpolation=cv2.INTER_AREA)
    return image.astype(np.float32) / 255.0, matte, SCORE_SIZE / size


def _tracked_yaw(track, index: int) -> float:
    return math.degrees(float(track.head_pose[index, 0]))


def _render_size(prepared, track) -> int:
    """Render side at which the tracked camera's frame meets the score crop at about one pixel per pixel."""
    from avatar.track import square_frame

    side, _ = square_frame(track.frame_shape)
    zoom = math.sqrt(abs(np.linalg.det(prepared.affine[:, :2])))
    return int(np.clip(round(SCORE_SIZE * side * zoom / prepared.image.shape[0]), 64, 1024))


def _render_to_score(prepared, track, size: int) -> np.ndarray:
    """(2, 3) map from a `size` render at a tracked camera (the clip's square frame) to the score crop."""
    from avatar.track import square_frame

    side, offset = square_frame(track.frame_shape)
    k = SCORE_SIZE / prepared.image.shape[0]
    a = prepared.affine
    return np.c_[k * (side / size) * a[:, :2], k * (a[:, 2] - a[:, :2] @ offset)]


class Reenactment:
    """One clip's source avatar and its scoring against targets, driven by the clip's tracking."""

    def __init__(self, source: Frame, avatar, renderer, track):
        self.source = source
        self.avatar = avatar
        self.renderer = renderer
        self.track = track
        self.source_rgb, self.source_matte, scale = _scaled_crop(source.prepared)
        self.source_obs = source.observation.scaled(scale)

    def score(self, target: Frame, dump: Path | None = None) -> tuple[dict, dict] | None:
        """(avatar figures, baseline figures) for one target frame; None when the tracker lost the face
        there."""
        target_rgb, target_matte, scale = _scaled_crop(target.prepared)
        target_obs = target.observation.scaled(scale)
        shape = (SCORE_SIZE, SCORE_SIZE)
        face = target_obs.face_mask(shape)
        chin, up = target_obs.chin_and_up()
        above = fm.above_line(shape, chin, up)
        common = dict(target_rgb=target_rgb, target_matte=target_matte, face=face, above_chin=above,
                      target_points=target_obs.mesh, interocular=target_obs.interocular)

        row = target.index
        if row >= self.track.num_frames or not self.track.found[row]:
            return None
        size = _render_size(target.prepared, self.track)
        result = self.renderer.render(self.track.cameras[row], self.track.weights[row], size=size,
                                      eye=self.track.eye[row])
        rgb, alpha = result.rgb.numpy(), result.alpha.numpy()
        seen = observe((result.over(RENDER_BACKGROUND) * 255 + 0.5).astype(np.uint8))
        # The render is drawn at the tracked camera of the clip's frame, so without a face found on it
        # the frame's own alignment carries it into the crop; the landmark error is then unknown.
        affine, points = _render_to_score(target.prepared, self.track, size), None
        if seen is not None:
            affine = fm.similarity(seen.mesh, target_obs.mesh)
            points = fm.apply(affine, seen.mesh)
        pred_rgb, pred_alpha = fm.warp(rgb, affine, shape), fm.warp(alpha, affine, shape)
        avatar_scores = fm.score_frame(pred_rgb, pred_alpha, pred_points=points, **common)
        avatar_scores["render_face_found"] = seen is not None
        # Signed so that under-rotation is negative whichever way the head turns.
        avatar_scores["yaw_error"] = (math.nan if seen is None else
                                      (seen.yaw_deg - target_obs.yaw_deg) * math.copysign(1.0, target_obs.yaw_deg))

        base_affine = fm.similarity(self.source_obs.mesh, target_obs.mesh)
        base_alpha = fm.warp(self.source_matte, base_affine, shape)
        base_rgb = fm.warp(self.source_rgb * self.source_matte[..., None], base_affine, shape)
        base_scores = fm.score_frame(base_rgb, base_alpha, pred_points=fm.apply(base_affine,
                                                                              self.source_obs.mesh),
                                     **common)
        delta = abs(_tracked_yaw(self.track, row) - _tracked_yaw(self.track, self.source.index))
        for s in (avatar_scores, base_scores):
            s.update(frame=target.index, delta_yaw=round(delta, 2), bin=fm.yaw_bin(delta))
        if dump is not None:
            _dump(dump / f"frame{target.index:04d}.png", target_rgb, pred_rgb, base_rgb, face, above)
        return avatar_scores, base_scores


def _dump(path: Path, target, pred, base, face, above) -> None:
    """Target | avatar | baseline, with the face outline in green and the chin line in red."""
    tiles = []
    for img in (target, pred, base):
        tile = (np.clip(img, 0, 1) * 255).astype(np.uint8).copy()
        contours, _ = cv2.findContours(face.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(tile, contours, -1, (0, 255, 0), 1)
        edge = above.astype(np.uint8) - cv2.erode(above.astype(np.uint8), np.ones((3, 3), np.uint8))
        tile[edge.astype(bool)] = (255, 0, 0)
        tiles.append(tile)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=1)).save(path)


def run_clip(path: Path, generator, head, step: int, max_targets: int, dump: Path | None = None
             ) -> tuple[dict, list[dict], list[dict]]:
    """(clip summary, avatar records, baseline records) for one clip."""
    from avatar.render import Renderer
    from avatar.track import track_clip

    frames, left_out = prepare_frames(head, read_frames(path, step))
    if len(frames) < 2:
        raise ClipError(f"{path}: only {len(frames)} sampled frame(s) could be prepared and fitted ({left_out}); "
                        f"need a source and a target")
    failures = []
    for source in source_candidates(frames)[:SOURCE_TRIES]:
        try:
            avatar = generator.create(source.png, display_name=f"{path.stem}:{source.index}")
            break
        except ValueError as e:  # the generator refuses this frame: the next best one is the source
            failures.append(f"frame {source.index}: {e}")
    else:
        raise ClipError(f"{path}: no avatar could be created from the best source frames ({'; '.join(failures)})")
    renderer = Renderer(avatar, head=head)
    run = Reenactment(source, avatar, renderer, track_clip(path, head, identity=avatar.identity))
    targets = [f for f in frames if f is not source]
    if len(targets) > max_targets:  # spread the bounded count over the whole clip
        keep = np.linspace(0, len(targets) - 1, max_targets).round().astype(int)
        targets = [targets[k] for k in keep]
    ours, base = [], []
    for target in targets:
        scores = run.score(target, None if dump is None else dump / path.stem)
        if scores is None:
            left_out["fit_failed"] += 1
            continue
        ours.append(scores[0])
        base.append(scores[1])
    summary = {"source_frame": source.index, "source_yaw": round(source.drive.yaw_deg, 2),
               "source_refused": failures,
               "targets_scored": len(ours), "left_out": left_out,
               "render_face_found": round(float(np.mean([r["render_face_found"] for r in ours])), 3) if ours else None}
    return summary, ours, base


def run_clips(clips: list[Path], generator, step: int, max_targets: int, dump: Path | None = None
              ) -> tuple[list[dict], list[dict], dict]:
    """`run_clip` over several clips: every clip's avatar and baseline records pooled, and per clip its
    summary (or the error that left it out)."""
    ours: list[dict] = []
    base: list[dict] = []
    per_clip: dict = {}
    for clip in clips:
        try:
            summary, a, b = run_clip(clip, generator, generator.head, step, max_targets, dump)
        except (ClipError, ValueError) as e:
            per_clip[clip.stem] = {"error": str(e)}
            continue
        per_clip[clip.stem] = summary
        ours += a
        base += b
    return ours, base, per_clip

