"""The video tracker (avatar.track): a real round trip through a clip of a rendered avatar with a known
head turn and blink, lost frames, bad clips, the `track` command and clips as animation sources."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from track_helpers import BLINK_FRAMES, FRAMES, RATE, orbit_yaws, render_frames, write_clip


@pytest.fixture(scope="module")
def frames(astronaut_avatar):
    return render_frames(astronaut_avatar)


@pytest.fixture(scope="module")
def clip(frames, tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "turn_blink.mp4", frames)


@pytest.fixture(scope="module")
def track(clip):
    from avatar.track import track_clip

    return track_clip(clip)


def _blink(weights: np.ndarray) -> np.ndarray:
    from avatar.expressions import index_of

    return weights[..., [index_of("eyeBlinkLeft"), index_of("eyeBlinkRight")]].mean(axis=-1)


def test_one_euro_smooths_a_still_signal_and_follows_a_step():
    from avatar.track import OneEuroFilter
    from avatar.track.blink import BLINK_FILTER
    from avatar.track.tracker import LANDMARK_FILTER

    rng = np.random.default_rng(0)
    noisy = 0.3 + rng.normal(0, 0.02, 60)
    still = OneEuroFilter(*LANDMARK_FILTER)
    out = np.array([still(v, i / 30) for i, v in enumerate(noisy)])
    assert np.std(np.diff(out[10:])) < 0.5 * np.std(np.diff(noisy[10:]))
    blink = OneEuroFilter(*BLINK_FILTER)
    step = np.r_[np.zeros(10), np.ones(5)]
    response = np.array([blink(v, i / 30) for i, v in enumerate(step)])
    assert response[10] >= 0.5, "a blink must cross 0.5 on its first closed frame"


def test_shared_speed_steadies_a_still_body_and_follows_its_motion():
    """Channels of one rigid body open their filters on the body's speed: each channel's own noise no
    longer opens it while the body is still, and the body's motion opens them all."""
    from avatar.track import OneEuroFilter
    from avatar.track.tracker import LANDMARK_FILTER

    rng = np.random.default_rng(1)
    rate, channels = 30.0, 300
    still = rng.normal(0, 0.03, (60, channels))
    ramp = np.linspace(0, 2, 20)[:, None] + rng.normal(0, 0.03, (20, channels))   # 3 units/s
    signal = np.r_[still, ramp]

    def run(shared):
        f = OneEuroFilter(*LANDMARK_FILTER, shared=np.full(channels, shared))
        return np.array([f(v, i / rate) for i, v in enumerate(signal)])

    own, together = run(False), run(True)
    assert np.std(np.diff(together[20:60], axis=0)) < 0.9 * np.std(np.diff(own[20:60], axis=0))
    lag = (ramp.mean(axis=1) - together[60:].mean(axis=1))[-5:].mean()
    assert 0 < lag < 0.1, lag   # under 1/30 s behind a 3 units/s motion


def test_a_whole_clip_smooths_its_head_pose_both_ways_and_takes_its_lag_out():
    """A head held still, then turned fast (0.4 rad of yaw in 4 frames), then still again; its mesh points
    carry pixel noise and its fitted pose noise of its own. Smoothed forward as the tracker does (the pose
    follows the landmark filter's gains), then backward over the whole clip: the still head's frame-to-frame
    wobble drops by more than half again, and the turn is on time where the forward filter alone is more
    than a frame behind it. Rotation and camera position stay one pose (the camera is rebuilt from them)."""
    from avatar import camera as cam
    from avatar.track.filters import OneEuroFilter
    from avatar.track.tracker import (
        HEAD_CHANNELS,
        TrackedFrame,
        _smooth_pose_backward,
        camera_for,
        landmark_filter_parameters,
    )

    rng = np.random.default_rng(3)
    yaw = np.r_[np.zeros(45), np.linspace(0.0, 0.4, 5)[1:], np.full(45, 0.4)]
    face = rng.normal(0, 40.0, (478, 3))
    face[[468, 473]] = (-30.0, 0.0, 0.0), (30.0, 0.0, 0.0)   # iris centres: 60 px apart
    fitted = np.c_[yaw, np.zeros((len(yaw), 2)), np.tile([0.0, 0.0, 2.7], (len(yaw), 1))]
    fitted += rng.normal(0, 0.003, fitted.shape)
    forward = OneEuroFilter(*landmark_filter_parameters(), shared=HEAD_CHANNELS)
    rows, pose = [], fitted[0]
    for i, sample in enumerate(fitted):
        landmarks = face @ cam.head_rotation(yaw[i], 0.0, 0.0).T + 256.0 + rng.normal(0, 0.5, face.shape)
        forward((landmarks / 60.0).reshape(-1), i / RATE)
        pose = pose + forward.gain[HEAD_CHANNELS].mean() * (sample - pose)
        rows.append(TrackedFrame(i / RATE, True, 1.0, np.zeros(52, np.float32), pose[:3].copy(),
                                 np.zeros(4, np.float32), pose[3:].copy(), camera_for(pose[:3], pose[3:], 12.0),
                                 landmarks, None))
    before = np.stack([r.head_pose for r in rows])
    _smooth_pose_backward(rows)
    after = np.stack([r.head_pose for r in rows])

    for still in (slice(5, 38), slice(58, 95)):
        assert np.std(np.diff(after[still], axis=0)) < 0.5 * np.std(np.diff(before[still], axis=0))
    crossing = lambda y: float(np.interp(0.2, y, np.arange(len(y))))  # noqa: E731 - frame where yaw passes 0.2
    assert crossing(before[:, 0]) - crossing(yaw) > 1.0, "the forward filter alone lags the turn"
    assert abs(crossing(after[:, 0]) - crossing(yaw)) < 0.6
    for r in rows:
        np.testing.assert_allclose(r.camera, camera_for(r.head_pose, r.position, 12.0), atol=1e-5)


def test_a_wink_closes_one_eye_only_and_half_shut_reads_half():
    from avatar.track.blink import BlinkReader

    reader = BlinkReader(smooth=False)
    for k in range(30):
        reader(np.array([0.40, 0.44]), k / RATE)
    np.testing.assert_allclose(reader(np.array([0.20, 0.44]), 1.0), [0.5, 0.0], atol=1e-9)
    right, left = reader(np.array([0.40, 0.08]), 1.1)
    assert right == 0.0 and left == 1.0


def test_a_whole_clip_counts_an_early_partial_closure_a_live_reader_misses():
    """The left eye opens narrowly for a few frames, then half closes (0.45 of the clip's open aperture,
    below the reference's half), then opens wide for the rest of the clip. Against the whole clip's open
    aperture the closure reads as a blink; against the frames seen so far (live) it does not."""
    from avatar.track.blink import BlinkReader, clip_open_aperture

    left = np.r_[np.full(8, 0.30), np.full(10, 0.198), np.full(60, 0.44)]
    seq = np.stack([np.full(len(left), 0.40), left], axis=1)
    seq[30] = np.nan   # a frame without a face is left out of the calibration
    found = ~np.isnan(seq).any(axis=1)
    closing = slice(8, 18)

    def read(reader):
        return np.stack([reader(a, k / RATE) for k, a in enumerate(seq) if found[k]])

    np.testing.assert_allclose(clip_open_aperture(seq), [0.40, 0.44])
    for smooth in (False, True):
        whole = read(BlinkReader(clip_open_aperture(seq), smooth=smooth))
        live = read(BlinkReader(smooth=smooth))
        assert whole[closing, 1].min() >= 0.5 and live[closing, 1].max() < 0.5, (whole[:20, 1], live[:20, 1])
        assert whole[20:, 1].max() < 0.05 and whole[:, 0].max() == 0.0


def test_a_tracked_clip_reads_its_blinks_against_its_own_open_eye(track):
    """track_clip writes the eyeBlink channels from the whole clip's open aperture, smoothed as live."""
    from avatar.track.blink import BLINK_CHANNELS, BlinkReader, clip_open_aperture
    from avatar.track.eyelids import apertures

    seen = np.stack([apertures(c) for c in track.eye_contours])
    reader = BlinkReader(clip_open_aperture(seen))
    expected = np.stack([reader(a, t) for a, t in zip(seen, track.times)])
    np.testing.assert_allclose(track.weights[:, list(BLINK_CHANNELS)], expected, atol=1e-6)


def test_round_trip_recovers_the_head_turn_and_the_blink(track):
    assert track.num_frames == FRAMES and track.frame_rate == pytest.approx(RATE)
    assert track.found.all()
    assert np.all(track.confidence > 0.3)
    yaw = np.degrees(track.head_pose[:, 0])
    # The camera orbiting toward +x sees the head turned toward -x: the head's yaw is minus the orbit's.
    assert np.corrcoef(yaw, -orbit_yaws())[0, 1] > 0.95
    assert np.abs(yaw - (-orbit_yaws())).max() < 6.0
    blink = _blink(track.weights)
    closed = list(BLINK_FRAMES)
    far = [k for k in range(FRAMES) if min(abs(k - b) for b in BLINK_FRAMES) >= 2]
    assert blink[closed].min() >= 0.5, blink
    assert blink[far].max() < 0.3, blink


def test_the_blink_reference_of_the_benchmark_sees_the_rendered_blink(track):
    """benchmarks.track's reference (the aspect ratio of the raw landmarks with the iris model's lids) and
    the tracked eyeBlink channels find the rendered blink, one event per eye, within the closed frames and
    nowhere else, and agree. (The subject's left eye, turned a little away, reads less closed than the
    right: the contour of a shut eye keeps the lashes' width.)"""
    from benchmarks.track import _matched, reference_blinks, tracked_blinks

    assert track.eye_contours.shape == (FRAMES, 2, 71, 3) and np.isfinite(track.eye_contours).all()
    reference, tracked = reference_blinks(track), tracked_blinks(track)
    for events in (reference, tracked):
        assert [len(eye) for eye in events] == [1, 1], events
        assert all(BLINK_FRAMES[0] <= start <= end <= BLINK_FRAMES[-1] for (start, end), in events), events
        assert events[0] == [(BLINK_FRAMES[0], BLINK_FRAMES[-1])], events   # the eye facing the camera
    assert [_matched(o, r) for o, r in zip(tracked, reference)] == [1, 1]


def test_lost_frames_are_marked_and_interpolated(frames):
    from avatar.track import track_frames

    grey = np.full_like(frames[0], 128)
    lost = (11, 12)
    clip = [grey if k in lost else f for k, f in enumerate(frames)]
    result = track_frames(clip, RATE)
    assert not result.found[list(lost)].any() and result.found[[k for k in range(FRAMES) if k not in lost]].all()
    assert np.all(result.confidence[list(lost)] == 0)
    for k in lost:  # linear between the frames on either side of the gap
        t = (k - 10) / 3
        expected = (1 - t) * result.head_pose[10] + t * result.head_pose[13]
        np.testing.assert_allclose(result.head_pose[k], expected, atol=1e-6)
    assert all(result.fits[k] is None for k in lost)


@pytest.mark.parametrize("suffix, fourcc", [(".mov", "mp4v"), (".webm", "VP80")])
def test_mov_and_webm_clips_are_read(frames, tmp_path, suffix, fourcc):
    from avatar.track import Clip

    path = write_clip(tmp_path / f"clip{suffix}", frames[:6], fourcc=fourcc)
    with Clip(path) as clip:
        decoded = list(clip.frames())
    assert len(decoded) == 6 and decoded[0].shape == frames[0].shape
    assert clip.info.frame_rate == pytest.approx(RATE)


def test_a_clip_without_a_face_is_refused(frames, tmp_path):
    from avatar.track import ClipError, track_clip

    path = write_clip(tmp_path / "empty_room.mp4", [np.full_like(frames[0], 90)] * 4)
    with pytest.raises(ClipError, match="no face was found in any of its 4 frames"):
        track_clip(path)


@pytest.mark.parametrize("content, message", [
    (b"", "empty, not a video"),
    (b"this is a text file, not a movie\n" * 20, "not a video OpenCV's FFmpeg backend can open"),
])
def test_not_a_video_is_refused_with_a_sentence(tmp_path, content, message):
    from avatar.track import ClipError, track_clip

    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(ClipError, match=message):
        track_clip(path)


def test_truncated_and_frameless_clips_are_refused(clip, tmp_path):
    import cv2

    from avatar.track import Clip, ClipError

    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ClipError, match=r"truncated|cannot open|no frame"):
        with Clip(cut) as c:
            list(c.frames())
    nothing = tmp_path / "nothing.mp4"
    writer = cv2.VideoWriter(str(nothing), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 64))
    writer.release()
    with pytest.raises(ClipError):
        with Clip(nothing) as c:
            list(c.frames())


def test_clips_beyond_the_limits_are_resource_errors(clip):
    from avatar.portrait import PortraitError
    from avatar.track import ClipLimits, ClipTooLong, track_clip

    with pytest.raises(ClipTooLong, match="more than 5 frames") as info:
        track_clip(clip, limits=ClipLimits(max_frames=5))
    assert isinstance(info.value, PortraitError) and info.value.reason == "too_large"
    with pytest.raises(ClipTooLong, match="limit of 1000 bytes"):
        track_clip(clip, limits=ClipLimits(max_bytes=1000))


def test_track_command_writes_live_link_csv_and_json(clip, tmp_path, capsys):
    from avatar.expressions import LIVELINK_HEADER
    from exporter.sources import from_json
    from grpc_server.cli import main

    out = tmp_path / "anim.csv"
    assert main(["track", str(clip), "-o", str(out), "--quiet"]) == 0
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert tuple(rows[0]) == LIVELINK_HEADER
    assert len(rows) == FRAMES + 1
    assert rows[1][0] == "00:00:00:00.000" and rows[2][0] == "00:00:00:01.000"
    assert all(len(r) == len(LIVELINK_HEADER) for r in rows)
    out_json = tmp_path / "anim.json"
    assert main(["track", str(clip), "-o", str(out_json), "--quiet"]) == 0
    frames = json.loads(out_json.read_text())
    assert len(frames) == FRAMES and "HeadYaw" in frames[0]
    assert from_json(out_json.read_bytes()).num_frames == FRAMES
    assert main(["track", str(clip), "-o", str(tmp_path / "anim.txt"), "--quiet"]) == 1
    assert "-o must end in .csv" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    assert main(["track", str(bad), "-o", str(out), "--quiet"]) == 1
    assert "not a video" in capsys.readouterr().err


def test_a_clip_is_an_animation_source(clip):
    from exporter.options import ExportError
    from exporter.sources import from_sources

    animation = from_sources([("take1.mp4", clip.read_bytes())])
    assert animation.num_frames == FRAMES and animation.frame_rate == pytest.approx(RATE)
    assert animation.head_rotation.shape == (FRAMES, 3) and animation.eye.shape == (FRAMES, 4)
    assert _blink(animation.weights)[list(BLINK_FRAMES)].min() >= 0.5
    with pytest.raises(ExportError, match=r"take2\.webm: not a video"):
        from_sources([("take2.webm", b"\x1a\x45\xdf\xa3 broken")])


def test_reference_clip_is_tracked_accurately(shared_dir):
    from avatar import camera as cam
    from avatar.fit import model_points
    from avatar.track import Clip, track_frames

    path = shared_dir / "reference" / "videos" / "talking_d10.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with Clip(path) as c:
        rgb = [f for _, f in zip(range(20), c.frames())]
    result = track_frames(rgb, c.info.frame_rate, smooth=False)
    assert result.found.all()
    errors = []
    for i, fit in enumerate(result.fits):
        uv, _ = cam.project(model_points(_head(), result.identity, fit.expression, fit.eye)[:468], fit.camera)
        lm = result.landmarks[i]
        iod = np.linalg.norm(lm[468, :2] - lm[473, :2])
        errors.append(np.median(np.linalg.norm(uv * result.image_size - lm[:468, :2], axis=1)) / iod)
    assert np.median(errors) < 0.05


def _head():
    from avatar.head_model import embedded_head_model

    return embedded_head_model()


def test_the_lids_come_from_the_eye_contours_of_one_iris_run_per_eye(frames, monkeypatch):
    """The follower keeps the iris model's eye contours (two runs a frame, one per eye, not four): the
    fit's lid ring is the contour's, and a closed eye's aperture is well below an open one's."""
    import avatar.portrait.face_mesh as fm
    from avatar.portrait.face_mesh import LID_RING
    from avatar.track import MeshFollower

    runs = []
    original = fm.eye_model
    monkeypatch.setattr(fm, "eye_model", lambda *a, **k: runs.append(1) or original(*a, **k))
    follower = MeshFollower()
    follower(frames[0])
    runs.clear()
    open_eye = follower(frames[BLINK_FRAMES[0] - 2])
    assert len(runs) == 2
    assert open_eye.eye_contours.shape == (2, 71, 3)
    lids = open_eye.fit_points()
    for ring, contour in zip(LID_RING, open_eye.eye_contours):
        np.testing.assert_allclose(lids[list(ring), :2], contour[:16, :2])
    others = np.setdiff1d(np.arange(478), np.ravel(LID_RING))
    np.testing.assert_array_equal(lids[others], open_eye.points[others])
    closed = follower(frames[BLINK_FRAMES[1]])
    assert (closed.apertures < 0.6 * open_eye.apertures).all(), (closed.apertures, open_eye.apertures)


def test_the_irises_follow_a_saccade_without_lag():
    """The gaze jumps (a saccade crosses the eye in a frame or two) while the head stays still: the smoothed
    iris points, which the fit reads the gaze from, must land within a frame, not wait for the head's slow
    filter to open (they lagged 4-8 frames, and a reenacted face looked the wrong way)."""
    from avatar.fit.correspondence import MESH_POINTS, NUM_POINTS
    from avatar.track.tracker import face_frame_filter

    rng = np.random.default_rng(0)
    rest = rng.uniform(-1.5, 1.5, (NUM_POINTS, 3))        # landmarks in inter-ocular units, as the tracker filters
    smoother = face_frame_filter()
    irises = np.arange(MESH_POINTS, NUM_POINTS)
    out = []
    for k in range(20):
        frame = rest + rng.normal(0.0, 0.003, rest.shape)
        if k >= 10:
            frame[irises, 0] += 0.3                          # both irises jump sideways at frame 10
        out.append(smoother(frame, k / 30.0))
    moved = np.array([o[irises, 0].mean() - rest[irises, 0].mean() for o in out])
    assert moved[11] > 0.8 * 0.3                           # within a frame of the jump
    assert abs(np.array(out)[10:, :MESH_POINTS].mean(axis=0) - rest[:MESH_POINTS]).max() < 0.01   # head still


def test_the_brows_follow_their_own_rise_while_the_face_wobbles_smoothed():
    """The whole face wobbles (the face mesh's jitter on a still head is mostly a small motion of the whole
    face) while the brows rise in a step: the tracker's landmark filter must steady the wobble as the head's
    slow filter does, yet land the brows within a frame of their rise (filtered in the image with the head's
    slow filter, they were a quarter of the way there a frame later and lagged for ten frames and more),
    and the rise must not move the rest of the face."""
    from scipy.spatial.transform import Rotation

    from avatar.fit.correspondence import NUM_POINTS, REGIONS
    from avatar.track.face_frame import fit_similarity
    from avatar.track.tracker import face_frame_filter

    rng = np.random.default_rng(2)
    rest = rng.uniform(-1.5, 1.5, (NUM_POINTS, 3))        # inter-ocular units, as the tracker filters
    brows, rise, frames = REGIONS["brows"], 0.1, 40
    others = np.setdiff1d(np.arange(NUM_POINTS), brows)
    smoother = face_frame_filter()
    raw, out = [], []
    for k in range(frames):
        frame = rest + rng.normal(0.0, 0.002, rest.shape)
        if k >= 20:
            frame[brows, 1] -= rise                        # up: image y grows downward
        turn = Rotation.from_rotvec(rng.normal(0.0, 0.01, 3)).as_matrix()
        frame = (frame - rest.mean(axis=0)) @ turn.T * (1.0 + rng.normal(0.0, 0.003)) + rest.mean(axis=0)
        frame += rng.normal(0.0, 0.01, 3)
        raw.append(frame)
        out.append(smoother(frame, k / RATE))
    raw, out = np.array(raw), np.array(out)

    def in_the_face(points):   # the brows' height over the rest of the face, in the face's own frame
        scale, rotation, shift = fit_similarity(points[others], rest[others])
        return (scale * points @ rotation.T + shift)[brows, 1].mean() - rest[brows, 1].mean()

    moved = np.array([-in_the_face(o) for o in out]) / rise
    assert moved[21] > 0.9, moved[18:26]                   # a frame after the rise
    assert abs(moved[:20]).max() < 0.05 and abs(moved[22:] - 1.0).max() < 0.05, moved
    wobble = lambda p: np.std(np.diff(p[5:20, others], axis=0))  # noqa: E731 - still stretch, whole face
    assert wobble(out) < 0.5 * wobble(raw), (wobble(out), wobble(raw))
    settled = np.abs(out[25:, others] - rest[others]).mean()
    assert settled < 0.5 * np.abs(raw[25:, others] - rest[others]).mean()


def test_fit_similarity_recovers_a_known_motion():
    from scipy.spatial.transform import Rotation

    from avatar.track.face_frame import fit_similarity

    rng = np.random.default_rng(4)
    source = rng.normal(0.0, 1.0, (50, 3))
    rotation = Rotation.from_rotvec([0.3, -0.2, 0.1]).as_matrix()
    target = 1.7 * source @ rotation.T + (5.0, -2.0, 1.0)
    scale, found, shift = fit_similarity(source, target)
    assert scale == pytest.approx(1.7)
    np.testing.assert_allclose(found, rotation, atol=1e-9)
    np.testing.assert_allclose(shift, (5.0, -2.0, 1.0), atol=1e-9)
