"""Video tracking: `python -m benchmarks.track [--videos DIR] [--frames N]` prints one JSON line (issue 10).

Per clip of ../shared/reference/videos (or --videos), tracked whole by avatar.track.track_clip:
- accuracy: per frame, the median distance between the model's projected 468 mesh points (the frame's
  own fit; and the smoothed output; the fit's model, with the clip's neutral offsets) and the face mesh's
  landmarks, in % of the inter-ocular distance (iris centres); the median over frames (goal <= 3 %).
- jitter: mean frame-to-frame motion of the projected model points that move with the head alone
  (RIGID_POINTS: nose, eye corners, forehead, temples) about their own slow trajectory (a centred
  Gaussian of TREND_SIGMA frames, so the head's slow drift on a "still" stretch is not counted), in % of the
  inter-ocular distance, on stretches where the head is still (the raw fit's pose, median-filtered over
  STILL_WINDOW frames, turns less than STILL_DEG per frame and its landmarks' centroid moves less than
  STILL_MOTION of the inter-ocular distance), for the raw per-frame fit and the smoothed output; the
  ratio raw / smoothed (goal >= 2), and the face mesh's own landmark jitter for reference.
- blinks, per eye: events where the eye's eyeBlink weight >= 0.5, against events where the eye aspect
  ratio of the raw (unsmoothed, unfitted) landmarks is at most REFERENCE_CLOSED (half) of the clip's open
  ratio (its OPEN_QUANTILE over the clip: eyes are open most of the time). The raw landmarks' lids are the
  iris model's eye contours (Track.eye_contours put in the mesh's lid ring, as MediaPipe's refine_landmarks
  does): the plain 468-point mesh model barely closes its lids (its ratio falls by a fifth to a half on a
  shut eye, about as much as when looking down), so a reference read from it missed closed eyes and counted
  open ones (checked on frame crops of the reference clips). The ratio is the classic one (Soukupova and
  Cech 2016): the mean gap of three upper-lid points and the lower-lid points facing them over the corner
  distance. Checked by eye on crops of talking_d10 (blinks at 221-225 and 332-335 found; the open eyes of
  114-135 and the half-lowered lids of 366-367 and 378-381 not counted) and talking_d3 (the right eye's
  wink of 33-47 running into the closure of 48-52, the closure of 56-61 and the long ones with the head
  lowered at 105-134, 140-162 and 217-255 found; the looking-down stretch 62-100, iris visible, not
  counted): right on every event but one, the left eye's wink of 6-20, squeezed shut, whose contour
  keeps the lashes' width and reads 0.45-0.53 of the open ratio, which the reference splits in two
  (10-13, 19). Events closer than BLINK_SLACK frames are one event; events match one to one when they
  overlap within BLINK_SLACK frames; agreement = matched / the larger count, summed over both eyes
  (goal >= 90 %). A wink is an event of one eye; eyes shut for longer
  (squeezed while frowning, lowered with the head) count too. The tracker reads its blink channels from
  the same contours (avatar.track.blink), so what this measures is what it makes of them: its fit and its
  smoothing (a clip tracked whole reads them against the whole clip's open eye, as the reference does; a
  live stream learns it from the frames so far).
  blink_lag_frames: the smoothed onset minus the unsmoothed onset, mean over events.
- round_trip (skip with --no-round-trip): issue 9's self-reenactment (benchmarks.reenact, with benchmarks.fidelity's
  sampling of target frames: FULL, or QUICK with --quick, whose few frames per bin make a noisy median), whose
  avatar is driven by this tracker: the avatar made from a frontal, mouth-closed,
  eyes-open frame of each clip, rendered with the tracked weights, pose and gaze of the other sampled frames; medians
  per |delta yaw| bin of the face and head figures, next to the "no 3D" baseline.
- speed: frames per second of the whole tracking of the file (decode, mesh, identity, smoothing, fits; the
  mesh and the fits overlap on two threads) by wall clock, and this process's CPU milliseconds per frame
  (the machine is shared: wall figures fall when others run), at the clip's size (512^2); fps_vs_raw is the
  smoothed tracker's fps over the raw per-frame fit's (no smoothing) on the same clip in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from itertools import islice
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

from avatar import camera as cam
from avatar.fit import model_points
from avatar.portrait.face_mesh import refined_lids
from avatar.track import Clip, track_frames
from avatar.track.blink import BLINK_CHANNELS

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "videos"
MESH = 468
IRIS_CENTRES = (468, 473)
STILL_WINDOW = 9
STILL_DEG = 0.3
STILL_MOTION = 0.005
REFERENCE_CLOSED = 0.5
OPEN_QUANTILE = 0.9
BLINK_SLACK = 2
# Jitter is measured on points that move with the head only (nose, eye corners, forehead, temples), not
# on the mouth and jaw, which move while a still head talks.
TREND_SIGMA = 3.0
RIGID_POINTS = (1, 4, 5, 6, 168, 197, 195, 33, 133, 362, 263, 10, 151, 9, 8, 109, 338, 67, 297, 234, 454)
# The reference's eye aspect ratio on the refined face mesh, per eye (subject's right, left): upper-lid
# points, the lower-lid points facing them, the corners.
MESH_EYES = (((159, 158, 160), (145, 153, 144), (33, 133)), ((386, 385, 387), (374, 380, 373), (362, 263)))


def aspect_ratios(points: np.ndarray) -> np.ndarray:
    """(2,) eye aspect ratios (subject's right, left) of one frame's 478 landmarks."""
    return np.array([np.linalg.norm(points[list(up), :2] - points[list(lo), :2], axis=1).mean()
                     / np.linalg.norm(points[a, :2] - points[b, :2]) for up, lo, (a, b) in MESH_EYES])


def reference_blinks(track) -> list[list[tuple[int, int]]]:
    """Per eye (subject's right, left), the reference's closed-eye events (see the module docstring)."""
    ratio = np.full((track.num_frames, 2), np.nan)
    for i in np.flatnonzero(track.found):
        ratio[i] = aspect_ratios(refined_lids(track.landmarks[i], track.eye_contours[i]))
    open_ratio = np.nanquantile(ratio, OPEN_QUANTILE, axis=0)
    return [_events(np.nan_to_num(ratio[:, k], nan=np.inf) <= REFERENCE_CLOSED * open_ratio[k]) for k in range(2)]


def tracked_blinks(track) -> list[list[tuple[int, int]]]:
    """Per eye (subject's right, left), the events where the eye's eyeBlink weight is at least 0.5."""
    return [_events(track.weights[:, channel] >= 0.5) for channel in BLINK_CHANNELS]   # MESH_EYES' order


def _projected(head, identity, expression, eye, camera, size, neutral) -> np.ndarray:
    """(468, 2) pixels: the fit's model points (with the clip's neutral offsets, as the fit saw them)."""
    uv, _ = cam.project((model_points(head, identity, expression, eye) + neutral)[:MESH], camera)
    return uv * size


def _events(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) inclusive runs of True; runs less than BLINK_SLACK frames apart are merged."""
    edges = np.diff(np.r_[0, mask.astype(int), 0])
    runs = list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))
    merged = []
    for start, end in runs:
        if merged and start - merged[-1][1] <= BLINK_SLACK:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _matched(ours, reference) -> int:
    """How many of our events overlap a reference event within BLINK_SLACK frames, one to one (events in
    time order: each takes the first overlapping reference event not yet taken)."""
    free, matched = list(reference), 0
    for a in ours:
        hit = next((b for b in free if a[0] - BLINK_SLACK <= b[1] and b[0] - BLINK_SLACK <= a[1]), None)
        if hit is not None:
            free.remove(hit)
            matched += 1
    return matched


def _outputs(track, head) -> np.ndarray:
    """(T, 468, 2) the model's projected mesh points for the track's output (NaN where lost)."""
    pts = np.full((track.num_frames, MESH, 2), np.nan)
    for i in np.flatnonzero(track.found):
        pts[i] = _projected(head, track.identity, track.weights[i], track.eye[i], track.cameras[i],
                            track.image_size, track.neutral)
    return pts


def score(track, raw, head) -> dict:
    """Figures of the smoothed `track` against the unsmoothed per-frame fits of the same clip (`raw`)."""
    lm = track.landmarks
    iod = np.linalg.norm(lm[:, IRIS_CENTRES[0], :2] - lm[:, IRIS_CENTRES[1], :2], axis=1)
    raw_pts, out_pts = np.full((raw.num_frames, MESH, 2), np.nan), _outputs(track, head)
    for i in np.flatnonzero(raw.found):
        f = raw.fits[i]
        raw_pts[i] = _projected(head, raw.identity, f.expression, f.eye, f.camera, raw.image_size, raw.neutral)
    err = lambda pts: np.nanmedian(np.linalg.norm(pts - lm[:, :MESH, :2], axis=2), axis=1) / iod  # noqa: E731

    # Still stretches, from the raw fit's pose and landmark centroid, low-passed.
    pose = np.degrees(np.stack([f.head_pose if f is not None else np.full(3, np.nan) for f in raw.fits]))
    centroid = np.nanmean(lm[:, :MESH, :2], axis=1)
    pose_f = median_filter(pose, size=(STILL_WINDOW, 1), mode="nearest")
    cen_f = median_filter(centroid, size=(STILL_WINDOW, 1), mode="nearest")
    turn = np.abs(np.diff(pose_f, axis=0)).max(axis=1)
    move = np.linalg.norm(np.diff(cen_f, axis=0), axis=1) / iod[1:]
    still = (turn < STILL_DEG) & (move < STILL_MOTION) & track.found[1:] & track.found[:-1]
    rigid = list(RIGID_POINTS)

    def motion(pts):
        """Frame-to-frame motion of the rigid points about their own slow trajectory (a centred Gaussian
        of TREND_SIGMA frames): what is left when the head's real, slow motion is taken out."""
        p = pts[:, rigid]
        p = np.where(np.isnan(p), np.nanmean(p, axis=0), p)
        wobble = p - gaussian_filter1d(p, TREND_SIGMA, axis=0, mode="nearest")
        return np.linalg.norm(np.diff(wobble, axis=0), axis=2).mean(axis=1) / iod[1:]

    jitter_raw, jitter_out = np.nanmean(motion(raw_pts)[still]), np.nanmean(motion(out_pts)[still])
    jitter_mesh = np.nanmean(motion(lm[:, :MESH, :2])[still])
    pose_jitter = lambda p: np.nanmean(np.abs(np.diff(np.degrees(p), axis=0))[still])  # noqa: E731

    reference, ours = reference_blinks(track), tracked_blinks(track)
    matched = sum(_matched(o, r) for o, r in zip(ours, reference))
    larger = sum(max(len(o), len(r)) for o, r in zip(ours, reference))
    return {
        "blink_events": {f"{side}_eye": {"reference": r, "tracked": o}
                         for side, o, r in zip(("right", "left"), ours, reference)},
        "frames": int(track.num_frames), "found": round(float(track.found.mean()), 4),
        "accuracy_pct_raw": round(100 * float(np.nanmedian(err(raw_pts))), 3),
        "accuracy_pct": round(100 * float(np.nanmedian(err(out_pts))), 3),
        "still_frames": int(still.sum()),
        "jitter_pct_raw": round(100 * float(jitter_raw), 4), "jitter_pct": round(100 * float(jitter_out), 4),
        "jitter_pct_mesh": round(100 * float(jitter_mesh), 4),
        "jitter_reduction": round(float(jitter_raw / jitter_out), 2) if jitter_out > 0 else None,
        "head_pose_jitter_deg_raw": round(float(pose_jitter(np.stack([f.head_pose if f is not None else
                                                                      np.full(3, np.nan) for f in raw.fits]))), 4),
        "head_pose_jitter_deg": round(float(pose_jitter(track.head_pose)), 4),
        "blinks_reference": sum(map(len, reference)), "blinks_tracked": sum(map(len, ours)),
        "blinks_matched": matched, "blink_agreement": round(matched / larger, 3) if larger else 1.0,
    }


def blink_lag(smooth, raw) -> float | None:
    """Mean onset delay (frames) of the smoothed blink events behind the unsmoothed ones (both eyes)."""
    lags = [sa - min(b, key=lambda e: abs(e[0] - sa))[0]
            for a, b in zip(tracked_blinks(smooth), tracked_blinks(raw)) if b for sa, _ in a]
    return round(float(np.mean(lags)), 2) if lags else None


def _track(path: Path, frames: int | None, head, smooth: bool = True):
    """Track the clip from its file (decoding included), its first `frames` frames when given."""
    with Clip(path) as clip:
        return track_frames(islice(clip.frames(), frames), clip.info.frame_rate, head,
                            total=clip.info.declared_frames, name=clip.name, smooth=smooth)


def run_clip(path: Path, frames: int | None, head) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    track = _track(path, frames, head)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    height, width = track.frame_shape
    out = {"clip": path.name, "size": f"{width}x{height}", "frame_rate": track.frame_rate,
           "fps": round(track.num_frames / wall, 1), "cpu_ms_per_frame": round(1000 * cpu / track.num_frames, 1)}
    start = time.perf_counter()
    raw = _track(path, frames, head, smooth=False)
    out["fps_vs_raw"] = round((time.perf_counter() - start) / wall, 3)   # same run: the noise mostly cancels
    out.update(score(track, raw, head))
    out["blink_lag_frames"] = blink_lag(track, raw)
    return out


ROUND_TRIP_KEYS = ("face_psnr", "face_ssim", "landmark_error", "head_iou", "head_psnr", "sharpness")


def round_trip(clips: list[Path], quick: bool) -> dict:
    """Issue 9's self-reenactment figures with the avatar driven by the tracker (benchmarks.reenact), sampled as
    benchmarks.fidelity samples them, so the two report the same figures."""
    from avatar.generators import get_generator
    from benchmarks import fidelity_metrics as fm
    from benchmarks.fidelity import FULL, QUICK
    from benchmarks.reenact import run_clips

    ours, base, per_clip = run_clips(clips, get_generator("projective"), *(QUICK if quick else FULL))
    return {"avatar": fm.summarise_bins(ours, ROUND_TRIP_KEYS), "baseline": fm.summarise_bins(base, ROUND_TRIP_KEYS),
            "clips": per_clip}


def main(argv=None) -> None:
    from avatar.head_model import embedded_head_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=REFERENCE)
    parser.add_argument("--frames", type=int, default=0, help="track only the first N frames of each clip")
    parser.add_argument("--no-round-trip", action="store_true", help="skip the self-reenactment round trip")
    parser.add_argument("--quick", action="store_true", help="the round trip on fewer target frames (a smoke run)")
    args = parser.parse_args(argv)
    clips = sorted(p for p in args.videos.glob("*") if p.suffix.lower() in (".mp4", ".mov", ".webm")) \
        if args.videos.is_dir() else []
    if not clips:
        print(json.dumps({"skipped": f"no clips in {args.videos}"}))
        return
    head = embedded_head_model()
    per_clip = [run_clip(p, args.frames or None, head) for p in clips]
    keys = ("fps", "fps_vs_raw", "cpu_ms_per_frame", "accuracy_pct", "jitter_reduction", "blink_agreement")
    summary = {k: round(float(np.median([c[k] for c in per_clip if c[k] is not None])), 3) for k in keys}
    summary["goals"] = {"accuracy_pct": "<= 3", "jitter_reduction": ">= 2", "blink_agreement": ">= 0.9",
                        "fps": ">= 30 at 512^2"}
    out = {"summary": summary, "clips": per_clip}
    if not args.no_round_trip:
        out["round_trip"] = round_trip(clips, args.quick)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
