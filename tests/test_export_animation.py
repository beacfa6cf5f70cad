import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from avatar.expressions import LIVELINK_HEADER, index_of
from exporter.animation import Animation
from exporter.livelink import format_timecode, parse_timecode, read_livelink_csv, write_livelink_csv
from exporter.options import ExportError
from exporter.sources import from_json, from_sources, load_animation

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "faceverse"
REAL_FILES = sorted(REFERENCE.glob("coeffs_v3_*.npy")) if REFERENCE.is_dir() else []
needs_reference = pytest.mark.skipif(len(REAL_FILES) != 4, reason="../shared/reference/faceverse is absent")


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr, np.float32))
    return buf.getvalue()


@needs_reference
@pytest.mark.parametrize("stem", ["00995", "01184"])
def test_smiling_faceverse_files_drive_mouth_smile(stem):
    anim = load_animation(REFERENCE / f"coeffs_v3_{stem}.npy")
    assert anim.num_frames == 1 and anim.weights.shape == (1, 52)
    top_two = set(np.argsort(-anim.weights[0])[:2].tolist())
    assert top_two == {index_of("mouthSmileLeft"), index_of("mouthSmileRight")}


@needs_reference
def test_faceverse_directory_is_a_sequence_with_pose_and_gaze():
    anim = load_animation(REFERENCE, frame_rate=24)
    assert anim.num_frames == 4
    np.testing.assert_allclose(anim.times, np.arange(4) / 24, rtol=1e-6)
    raw = np.stack([np.load(p) for p in REAL_FILES])
    # FaceVerse rot is (x, y, z) = (pitch, yaw, roll); the animation stores (yaw, pitch, roll).
    np.testing.assert_allclose(anim.head_rotation, raw[:, [454, 453, 455]], rtol=1e-6)
    np.testing.assert_allclose(anim.eye, raw[:, 486:490], rtol=1e-6)
    assert np.all((anim.weights >= 0) & (anim.weights <= 1))


def test_head_quaternion_matches_faceverse_rotation_matrix():
    from scipy.spatial.transform import Rotation

    from avatar.faceverse_coeffs import euler_xyz_to_matrix

    vec = np.zeros(490, np.float32)
    vec[453:456] = (0.2, -0.4, 0.1)  # pitch, yaw, roll
    anim = from_sources([("frame.npy", _npy(vec))])
    q = anim.head_quaternions()[0]
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), euler_xyz_to_matrix(vec[453:456]), atol=1e-6)


def test_several_npy_sources_are_frames_in_order():
    frames = []
    for k in range(3):
        vec = np.zeros(490, np.float32)
        vec[150 + index_of("jawOpen")] = 0.25 * (k + 1)
        frames.append((f"f{k}.npy", _npy(vec)))
    anim = from_sources(frames, frame_rate=10)
    np.testing.assert_allclose(anim.weights[:, index_of("jawOpen")], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(anim.times, [0, 0.1, 0.2], rtol=1e-6)


def test_609_layout_without_mapping_is_a_clear_error():
    with pytest.raises(ExportError, match="no published mapping"):
        from_sources([("x.npy", _npy(np.zeros(609)))])


def _sample_animation(frames=5, rate=30.0) -> Animation:
    rng = np.random.default_rng(3)
    return Animation(times=(np.arange(frames) / rate).astype(np.float32),
                     weights=rng.uniform(0, 1, (frames, 52)).astype(np.float32),
                     head_rotation=rng.uniform(-0.3, 0.3, (frames, 3)).astype(np.float32),
                     eye=rng.uniform(-0.2, 0.2, (frames, 4)).astype(np.float32), frame_rate=rate)


def test_livelink_csv_header_and_timecodes_are_exact():
    data = write_livelink_csv(_sample_animation(frames=35)).decode()
    rows = list(csv.reader(io.StringIO(data)))
    assert tuple(rows[0]) == LIVELINK_HEADER
    assert rows[0][:2] == ["Timecode", "BlendShapeCount"] and rows[0][-1] == "RightEyeRoll" and len(rows[0]) == 63
    assert all(r[1] == "61" for r in rows[1:])
    assert rows[1][0] == "00:00:00:00.000" and rows[4][0] == "00:00:00:03.000"
    assert rows[31][0] == "00:00:01:00.000" and rows[35][0] == "00:00:01:04.000"


def test_livelink_columns_follow_livelink_order():
    anim = _sample_animation(frames=1)
    row = next(csv.DictReader(io.StringIO(write_livelink_csv(anim).decode())))
    assert float(row["JawRight"]) == pytest.approx(anim.weights[0, index_of("jawRight")], abs=1e-6)
    assert float(row["MouthLeft"]) == pytest.approx(anim.weights[0, index_of("mouthLeft")], abs=1e-6)
    assert float(row["HeadYaw"]) == pytest.approx(anim.head_rotation[0, 0], abs=1e-6)
    assert float(row["LeftEyePitch"]) == pytest.approx(anim.eye[0, 0], abs=1e-6)
    assert float(row["RightEyeYaw"]) == pytest.approx(anim.eye[0, 3], abs=1e-6)


def test_livelink_round_trip():
    anim = _sample_animation(frames=40, rate=60.0)
    back = read_livelink_csv(write_livelink_csv(anim), frame_rate=60.0)
    np.testing.assert_allclose(back.weights, anim.weights, atol=1e-6)
    np.testing.assert_allclose(back.head_rotation, anim.head_rotation, atol=1e-6)
    np.testing.assert_allclose(back.eye, anim.eye, atol=1e-6)
    np.testing.assert_allclose(back.times, anim.times, atol=1e-5)


def test_livelink_columns_matched_by_name_in_any_order():
    anim = _sample_animation(frames=2)
    rows = list(csv.reader(io.StringIO(write_livelink_csv(anim).decode())))
    order = [0, 1] + list(range(62, 1, -1))
    shuffled = "\n".join(",".join(r[i] for i in order) for r in rows).encode()
    back = read_livelink_csv(shuffled)
    np.testing.assert_allclose(back.weights, anim.weights, atol=1e-6)


def test_timecode_format_and_parse():
    assert format_timecode(3723.5, 30) == "01:02:03:15.000"
    assert parse_timecode("01:02:03:15.000", 30) == pytest.approx(3723.5)
    assert parse_timecode("00:00:00:01.500", 60) == pytest.approx(1.5 / 60)
    with pytest.raises(ExportError, match="HH:MM:SS:FF"):
        parse_timecode("12:00", 30)


@pytest.mark.parametrize("mutate, match", [
    (lambda rows: rows[:1], "at least one frame"),
    (lambda rows: [["Time"] + rows[0][1:]] + rows[1:], "first column must be Timecode"),
    (lambda rows: [rows[0][:-10] + ["Nonsense"]] + [r[:-9] for r in rows[1:]], "unknown column 'Nonsense'"),
    (lambda rows: [rows[0]] + [rows[1][:5]], "cells, header has"),
    (lambda rows: [rows[0], rows[1][:2] + ["abc"] + rows[1][3:]], "not a number"),
    (lambda rows: [rows[0], rows[1][:2] + ["1.5"] + rows[1][3:]], "outside"),
    (lambda rows: [rows[0], rows[1], rows[1]], "not strictly increasing"),
])
def test_bad_livelink_csv(mutate, match):
    rows = list(csv.reader(io.StringIO(write_livelink_csv(_sample_animation(frames=2)).decode())))
    data = "\n".join(",".join(r) for r in mutate(rows)).encode()
    with pytest.raises(ExportError, match=match):
        read_livelink_csv(data)


def test_json_frames():
    frames = [{"jawOpen": 0.5}, {"JawOpen": 0.75, "mouthSmileLeft": 0.25, "HeadYaw": 0.1}]
    anim = from_json(json.dumps(frames).encode(), frame_rate=25)
    assert anim.weights[1, index_of("jawOpen")] == pytest.approx(0.75)
    assert anim.weights[1, index_of("mouthSmileLeft")] == pytest.approx(0.25)
    np.testing.assert_allclose(anim.head_rotation[:, 0], [0.0, 0.1], rtol=1e-6)
    np.testing.assert_allclose(anim.times, [0, 0.04], rtol=1e-6)
    plain = from_json(b'[{"jawOpen": 1}]')
    assert plain.head_rotation is None and plain.eye is None


@pytest.mark.parametrize("payload, match", [
    (b"{", "not valid JSON"),
    (b"[]", "non-empty JSON list"),
    (b'[{"jawOpen": "wide"}]', "not a number"),
    (b'[{"smileHard": 1}]', "unknown blendshape name"),
    (b'[{"jawOpen": 2}]', "outside"),
])
def test_bad_json(payload, match):
    with pytest.raises(ExportError, match=match):
        from_sources([("a.json", payload)])


def test_unknown_format_and_mixtures():
    with pytest.raises(ExportError, match="unknown animation format"):
        from_sources([("a.txt", b"")])
    with pytest.raises(ExportError, match=r"only allowed as \.npy"):
        from_sources([("a.json", b"[]"), ("b.json", b"[]")])
    with pytest.raises(ExportError, match="no animation source"):
        from_sources([])


def test_animation_rejects_inconsistent_arrays():
    with pytest.raises(ExportError, match="strictly increasing"):
        Animation(times=np.zeros(2, np.float32), weights=np.zeros((2, 52), np.float32), head_rotation=None, eye=None)
    with pytest.raises(ExportError, match=r"\(2, 52\)"):
        Animation(times=np.arange(2, dtype=np.float32), weights=np.zeros((2, 51), np.float32),
                  head_rotation=None, eye=None)
