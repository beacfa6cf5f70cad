import io
from pathlib import Path

import numpy as np
import pytest

from avatar.expressions import ARKIT_NAMES, index_of
from avatar.faceverse_coeffs import (
    LAYOUTS,
    FaceVerseCoeffError,
    coeffs_from_npy_bytes,
    euler_xyz_to_matrix,
    expression_52,
    load_coeffs,
    parse_coeffs,
    stack_frames,
)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "faceverse"
REAL_FILES = sorted(REFERENCE.glob("coeffs_v3_*.npy")) if REFERENCE.is_dir() else []
needs_reference = pytest.mark.skipif(len(REAL_FILES) != 4, reason="../shared/reference/faceverse is absent")


def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _synthetic(layout: int) -> np.ndarray:
    """Each block filled with a distinct recognisable value range."""
    vec = np.zeros(layout, np.float32)
    start = 0
    for k, (_name, size) in enumerate(LAYOUTS[layout]):
        vec[start:start + size] = 100 * (k + 1) + np.arange(size)
        start += size
    return vec


def test_layout_block_sizes_add_up():
    for length, blocks in LAYOUTS.items():
        assert sum(size for _, size in blocks) == length


@needs_reference
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_files_parse(path):
    c = load_coeffs(path)
    assert c.layout == 490 and not c.is_sequence
    shapes = {n: getattr(c, n).shape for n in ("identity", "expression", "texture", "rotation", "gamma",
                                               "translation", "eye")}
    assert shapes == {"identity": (150,), "expression": (52,), "texture": (251,), "rotation": (3,),
                      "gamma": (27,), "translation": (3,), "eye": (4,)}
    assert c.scale is None
    # The tracker's camera sits at the origin looking down -z, so the head is in front of it.
    assert c.translation[2] < -1.0
    raw = np.load(path, allow_pickle=False)
    np.testing.assert_array_equal(c.expression, raw[150:202])
    np.testing.assert_array_equal(c.eye, raw[486:490])


@needs_reference
@pytest.mark.parametrize("stem", ["00995", "01184"])
def test_smiling_portraits_peak_at_mouth_smile(stem):
    w = expression_52(load_coeffs(REFERENCE / f"coeffs_v3_{stem}.npy"))
    top_two = set(np.argsort(-w)[:2].tolist())
    assert top_two == {index_of("mouthSmileLeft"), index_of("mouthSmileRight")} == {43, 44}


@needs_reference
def test_upward_looking_portrait_peaks_at_eye_look_up():
    w = expression_52(load_coeffs(REFERENCE / "coeffs_v3_03092.npy"))
    assert set(np.argsort(-w)[:2].tolist()) == {16, 17}
    assert ARKIT_NAMES[16] == "eyeLookUpLeft"


@needs_reference
def test_directory_of_frames_is_a_sequence_in_name_order(tmp_path):
    for i, path in enumerate(reversed(REAL_FILES)):
        (tmp_path / f"frame_{i:03d}.npy").write_bytes(path.read_bytes())
    (tmp_path / "notes.txt").write_text("ignored")
    c = load_coeffs(tmp_path)
    assert c.is_sequence and c.num_frames == 4 and c.expression.shape == (4, 52)
    np.testing.assert_array_equal(c.expression[0], np.load(REAL_FILES[-1])[150:202])
    assert expression_52(c).shape == (4, 52)


@pytest.mark.parametrize("layout", [609, 610, 621])
def test_synthetic_layouts_split_at_the_right_offsets(layout):
    vec = _synthetic(layout)
    c = parse_coeffs(vec)
    order = [name for name, _ in LAYOUTS[layout]]
    for k, name in enumerate(order):
        block = c.scale[..., None] if name == "scale" else getattr(c, name)
        assert block[0] == 100 * (k + 1), name
    assert c.layout == layout
    if layout == 621:
        # v4 stores gamma before rotation.
        assert c.identity.shape == (156,) and c.expression.shape == (177,)
        assert c.gamma[0] == 400 and c.rotation[0] == 500
    else:
        assert c.expression.shape == (171,) and c.rotation[0] == 400 and c.gamma[0] == 500
    assert (c.scale is not None) == (layout == 610)
    if layout == 610:
        assert c.scale == 800


def test_sequence_of_synthetic_vectors():
    seq = np.stack([_synthetic(610), _synthetic(610) + 1])
    c = parse_coeffs(seq)
    assert c.is_sequence and c.num_frames == 2
    assert c.scale.shape == (2,) and c.eye.shape == (2, 4)
    np.testing.assert_array_equal(c.eye[1], c.eye[0] + 1)


def test_result_does_not_alias_input():
    vec = _synthetic(490)
    c = parse_coeffs(vec)
    vec[:] = 0
    assert c.identity[0] == 100


def test_rotation_matrix_is_rz_ry_rx():
    x, y, z = 0.3, -0.2, 0.1
    cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    np.testing.assert_allclose(euler_xyz_to_matrix(np.array([x, y, z])), rz @ ry @ rx, atol=1e-12)
    vec = np.zeros(490, np.float32)
    vec[453:456] = (x, y, z)
    np.testing.assert_allclose(parse_coeffs(vec).rotation_matrix(), rz @ ry @ rx, atol=1e-6)


def test_expression_52_clips_and_refuses_unmapped_bases():
    vec = np.zeros(490, np.float32)
    vec[150 + 24] = 1.7
    w = expression_52(parse_coeffs(vec))
    assert w[24] == 1.0 and w.dtype == np.float32
    c609 = parse_coeffs(_synthetic(609) * 0)
    with pytest.raises(FaceVerseCoeffError, match="no published mapping"):
        expression_52(c609)
    with pytest.raises(FaceVerseCoeffError, match=r"\(171, 52\)"):
        expression_52(c609, np.zeros((52, 52)))


def test_expression_52_with_a_mapping_matrix():
    vec = np.zeros(609, np.float32)
    vec[150 + 3] = 0.5                      # expression component 3
    mapping = np.zeros((171, 52), np.float32)
    mapping[3, index_of("jawOpen")] = 1.2
    w = expression_52(parse_coeffs(vec), mapping)
    assert w[index_of("jawOpen")] == pytest.approx(0.6)
    assert np.count_nonzero(w) == 1


@pytest.mark.parametrize("bad, match", [
    (np.zeros(500), "490, 609, 610, 621 values, got 500"),
    (np.zeros((2, 2, 490)), "1-D vector or a"),
    (np.zeros((0, 490)), "no frames"),
    (np.array(["a"] * 490), "expected numbers"),
])
def test_bad_shapes_are_clear_errors(bad, match):
    with pytest.raises(FaceVerseCoeffError, match=match):
        parse_coeffs(bad)


def test_nan_is_an_error_naming_the_index():
    vec = np.zeros(490, np.float32)
    vec[200] = np.nan
    with pytest.raises(FaceVerseCoeffError, match=r"\(200,\) is not finite"):
        parse_coeffs(vec)


def test_pickled_npy_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FaceVerseCoeffError, match="not a plain numeric"):
        load_coeffs(path)
    with pytest.raises(FaceVerseCoeffError, match=r"x\.npy: not a \.npy file"):
        coeffs_from_npy_bytes(b"garbage", "x.npy")
    with pytest.raises(FaceVerseCoeffError, match="truncated"):
        coeffs_from_npy_bytes(_npy_bytes(np.zeros(490, np.float32))[:100], "t.npy")
    assert issubclass(FaceVerseCoeffError, ValueError)


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(FaceVerseCoeffError, match="no such file"):
        load_coeffs(tmp_path / "absent.npy")
    with pytest.raises(FaceVerseCoeffError, match=r"no \.npy"):
        load_coeffs(tmp_path)


def test_stacked_frames_must_share_a_layout():
    with pytest.raises(FaceVerseCoeffError, match="share one layout"):
        stack_frames([("a.npy", _npy_bytes(_synthetic(490))), ("b.npy", _npy_bytes(_synthetic(609)))])
    c = stack_frames([("a.npy", _npy_bytes(_synthetic(621))), ("b.npy", _npy_bytes(_synthetic(621)))])
    assert c.expression.shape == (2, 177)
