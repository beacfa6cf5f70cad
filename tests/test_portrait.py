"""Portrait preparation: decoding untrusted bytes, face geometry, FFHQ-style alignment, matte.

The perception models themselves (detector, mesh, iris, segmentation, refusals) are tested in test_perception.py.
"""
from __future__ import annotations

import hashlib
import io
import math

import cv2
import numpy as np
import pytest
from PIL import Image
from portrait_helpers import (
    astronaut,
    astronaut_jpeg,
    astronaut_png,
    encode,
    ibug68,
    jpeg_with_orientation,
    mediapipe478,
    png_with_header_size,
)
from skimage import data as skdata

from avatar.portrait import (
    CROP_SIZE,
    PortraitError,
    PortraitLimits,
    PreparedPortrait,
    decode_image,
    decode_image_with_alpha,
    prepare,
)
from avatar.portrait.align import warp

POINTS = ("eye_left", "eye_right", "mouth_left", "mouth_right", "mouth_center")


@pytest.fixture(scope="module")
def astro() -> PreparedPortrait:
    return prepare(astronaut_png())


def reason_of(data, **kwargs) -> PortraitError:
    with pytest.raises(PortraitError) as info:
        prepare(data, **kwargs)
    assert isinstance(info.value, ValueError)
    assert str(info.value)
    return info.value


# ---------------------------------------------------------------- detection and alignment on the astronaut

def test_astronaut_face_eyes_and_mouth_are_detected(astro):
    assert astro.source == "detector" and astro.landmarks_source == "face_mesh"
    assert astro.landmarks.shape == (478, 3) and astro.landmarks.dtype == np.float64
    assert astro.features["detected"] == {name: True for name in (*POINTS, "face_box")}
    assert astro.image.shape == (CROP_SIZE, CROP_SIZE, 3) and astro.image.dtype == np.uint8
    assert astro.original_size == (512, 512)
    assert astro.source_sha256 == hashlib.sha256(astronaut_png()).hexdigest()


def test_subject_left_eye_is_on_the_image_right(astro):
    f = astro.features
    assert f["eye_left"][0] > f["eye_right"][0] + 60
    assert f["mouth_left"][0] > f["mouth_right"][0]


def test_ffhq_like_framing(astro):
    f = astro.features
    for eye in (f["eye_left"], f["eye_right"]):
        assert 0.40 * CROP_SIZE <= eye[1] <= 0.52 * CROP_SIZE
    # Symmetric about the vertical centre line, level, a quarter of the crop apart.
    assert abs(0.5 * (f["eye_left"][0] + f["eye_right"][0]) - CROP_SIZE / 2) < 8
    assert abs(f["eye_left"][1] - f["eye_right"][1]) < 4
    assert 0.2 * CROP_SIZE < f["eye_left"][0] - f["eye_right"][0] < 0.3 * CROP_SIZE
    assert 0.62 * CROP_SIZE < f["mouth_center"][1] < 0.78 * CROP_SIZE
    assert abs(f["mouth_center"][0] - CROP_SIZE / 2) < 12
    x, y, w, h = f["face_box"]
    assert x < f["eye_right"][0] and f["eye_left"][0] < x + w
    assert y < f["eye_left"][1] < f["mouth_center"][1] < y + h


def test_detected_positions_are_on_the_real_features(astro):
    # Read off a 4x zoom of skimage's astronaut: pupils at (203, 101) (subject's right, image left) and
    # (247, 104); lip corners at (201, 140) and (244, 142); the gap between the lips at (223, 142).
    orig = {name: astro.to_original(astro.features[name])[0] for name in POINTS}
    assert np.hypot(*(orig["eye_right"] - [203, 101])) < 4
    assert np.hypot(*(orig["eye_left"] - [247, 104])) < 4
    assert np.hypot(*(orig["mouth_center"] - [223, 142])) < 5
    assert np.hypot(*(orig["mouth_right"] - [201, 140])) < 8
    assert np.hypot(*(orig["mouth_left"] - [244, 142])) < 8


def test_affine_maps_original_pixels_to_crop_pixels(astro):
    original = astronaut().astype(np.float64)
    inverse = cv2.invertAffineTransform(astro.affine)
    for cx, cy in [(256, 256), (200, 300), (300, 200), (256, 150)]:
        ox, oy = inverse @ np.array([cx, cy, 1.0])
        expected = original[round(oy), round(ox)]
        assert np.abs(astro.image[cy, cx].astype(np.float64) - expected).max() < 40
    a = astro.affine[:, :2]
    assert np.allclose(a @ a.T, np.eye(2) * abs(np.linalg.det(a)), atol=1e-6)  # a similarity


def test_matte_covers_the_head_not_the_corners(astro):
    m = astro.matte
    assert m.shape == (CROP_SIZE, CROP_SIZE) and m.dtype == np.float32
    assert m.min() >= 0.0 and m.max() <= 1.0
    f = astro.features
    face_centre = 0.5 * (0.5 * (f["eye_left"] + f["eye_right"]) + f["mouth_center"])
    assert m[int(face_centre[1]), int(face_centre[0])] > 0.99
    assert m[int(f["eye_left"][1]), int(f["eye_left"][0])] > 0.99
    assert m[:40, :40].max() < 0.01 and m[:40, -40:].max() < 0.01
    # Hair above the forehead is foreground, the pale wall beside the head is not.
    assert m[60, 256] > 0.9
    assert m[200, 10] < 0.05 and m[200, -10] < 0.05
    assert 0.25 < m.mean() < 0.75
    soft = ((m > 0.05) & (m < 0.95)).mean()
    assert 0.0 < soft < 0.05  # feathered edge, not a blurry blob
    assert astro.matte_source == "segmentation"


def test_jpeg_and_larger_input_give_the_same_geometry(astro):
    jpeg = prepare(astronaut_jpeg())
    big = prepare(encode(cv2.resize(astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)))
    assert big.original_size == (1024, 1024)
    for other in (jpeg, big):
        for name in POINTS:
            assert np.hypot(*(other.features[name] - astro.features[name])) < 6, name
    assert np.abs(big.image.astype(int) - astro.image.astype(int)).mean() < 12


def test_prepare_is_deterministic():
    a = prepare(astronaut_png())
    b = prepare(astronaut_png())
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.matte, b.matte)
    assert np.array_equal(a.affine, b.affine)
    assert np.array_equal(a.landmarks, b.landmarks)
    for name in (*POINTS, "face_box"):
        assert np.array_equal(a.features[name], b.features[name])
    assert a.features["detected"] == b.features["detected"]


# ---------------------------------------------------------------- supplied geometry

def test_ibug68_landmarks_place_the_face_mesh(astro):
    # A rough iBUG-68 set around the detected features, tilted by 10 degrees about the nose: it only places
    # the mesh, whose own landmarks then land on the real (untilted) features.
    angle = math.radians(10)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pivot = np.array([236.0, 130.0])
    orig = {name: (rot @ (astro.to_original(astro.features[name])[0] - pivot)) + pivot for name in POINTS}
    pts = ibug68(orig["eye_right"], orig["eye_left"], orig["mouth_right"], orig["mouth_left"],
                 (185, 70, 100, 110))
    for layout in (pts, pts.reshape(-1), pts.tolist()):
        p = prepare(astronaut_png(), landmarks=layout)
        assert p.source == "landmarks" and p.landmarks_source == "face_mesh"
        assert all(p.features["detected"].values())
        for name in POINTS:
            assert np.hypot(*(p.features[name] - astro.features[name])) < 3.0, name
        assert np.abs(p.landmarks[:, :2] - astro.landmarks[:, :2]).max() < 6.0


def test_mediapipe478_are_used_as_given(astro):
    orig = {name: astro.to_original(astro.features[name])[0] for name in POINTS}
    shifted_left = orig["eye_left"] + [3.0, 2.0]
    pts = mediapipe478(orig["eye_right"], shifted_left, orig["mouth_right"], orig["mouth_left"], (236, 130))
    p = prepare(astronaut_png(), landmarks=pts)
    assert p.source == "landmarks" and p.landmarks_source == "landmarks"
    assert np.allclose(p.features["eye_left"], p.affine @ np.r_[shifted_left, 1.0])
    assert np.allclose(p.features["mouth_center"], p.affine @ np.r_[pts[[13, 14]].mean(axis=0), 1.0])
    assert p.features["eye_left"][0] > p.features["eye_right"][0]
    assert np.allclose(p.landmarks[:, :2], pts @ p.affine[:, :2].T + p.affine[:, 2])
    assert np.array_equal(p.landmarks[:, 2], np.zeros(478))
    # Also with depth, as MediaPipe reports it: depth scales with the crop's zoom.
    depth = np.linspace(-10, 10, 478)
    p3 = prepare(astronaut_png(), landmarks=np.c_[pts, depth])
    assert np.allclose(p3.affine, p.affine)
    assert np.allclose(p3.landmarks[:, 2], depth * math.sqrt(abs(np.linalg.det(p.affine[:, :2]))))


def test_supplied_face_box_places_the_face_mesh(astro):
    p = prepare(astronaut_png(), face_box=(176, 65, 98, 98))
    assert p.source == "face_box" and p.landmarks_source == "face_mesh"
    for name in POINTS:
        assert np.hypot(*(p.features[name] - astro.features[name])) < 3.0, name


def test_face_box_on_a_faceless_image_is_trusted():
    # The caller says where the face is (a statue, an animal, a drawing the detector misses): the mesh runs
    # there and nothing is refused; the matte keeps at least the face.
    flat = np.full((256, 256, 3), 180, np.uint8)
    p = prepare(encode(flat), face_box=(78, 70, 100, 100))
    assert p.source == "face_box" and p.landmarks.shape == (478, 3)
    assert np.all(np.isfinite(p.landmarks))
    f = p.features
    assert f["eye_left"][0] > f["eye_right"][0]
    assert f["eye_right"][1] < f["mouth_center"][1]
    face_centre = 0.5 * (0.5 * (f["eye_left"] + f["eye_right"]) + f["mouth_center"])
    assert p.matte[int(face_centre[1]), int(face_centre[0])] > 0.99
    assert p.matte[:30, :30].max() < 0.01


@pytest.mark.parametrize("landmarks, fragment", [
    (np.zeros((10, 2)), "shape"),
    (np.full((68, 2), np.nan), "NaN"),
    ("not numbers", "numbers"),
    (np.full((68, 2), 5000.0), "outside"),
])
def test_bad_landmarks(landmarks, fragment):
    err = reason_of(astronaut_png(), landmarks=landmarks)
    assert err.reason == "bad_landmarks"
    assert fragment in str(err)


def test_normalised_or_upside_down_landmarks_are_refused(astro):
    orig = {name: astro.to_original(astro.features[name])[0] for name in POINTS}
    pts = ibug68(orig["eye_right"], orig["eye_left"], orig["mouth_right"], orig["mouth_left"], (185, 70, 100, 110))
    assert reason_of(astronaut_png(), landmarks=pts / 512.0).reason == "bad_landmarks"
    swapped = pts.copy()
    swapped[36:42], swapped[42:48] = pts[42:48], pts[36:42]
    err = reason_of(astronaut_png(), landmarks=swapped)
    assert err.reason == "bad_landmarks" and "layout" in str(err)


@pytest.mark.parametrize("box", [(1, 2, 3), (10, 10, -50, 50), (10, 10, float("nan"), 50), (600, 600, 100, 100),
                                 (0, 0, 4, 4), "box"])
def test_bad_face_box(box):
    assert reason_of(astronaut_png(), face_box=box).reason == "bad_face_box"


# ---------------------------------------------------------------- decoding

@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation):
    upright = astronaut()[:, 64:448]  # not square, so a missed rotation shows in the shape
    data = jpeg_with_orientation(upright, orientation)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.getexif().get(0x0112) == orientation
        assert raw.size != (upright.shape[1], upright.shape[0]) or orientation == 3
    rgb = decode_image(data, PortraitLimits())
    assert rgb.shape == upright.shape
    assert np.abs(rgb.astype(int) - upright.astype(int)).mean() < 6


def test_exif_rotated_portrait_is_prepared_upright(astro):
    p = prepare(jpeg_with_orientation(astronaut(), 6))
    assert p.features["detected"]["eye_left"]
    assert np.hypot(*(p.features["eye_left"] - astro.features["eye_left"])) < 6


def test_grayscale_and_palette_decode_to_rgb():
    grey = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY)
    rgb = decode_image(encode(grey))
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[..., 0], grey) and np.array_equal(rgb[..., 2], grey)
    quantised = Image.fromarray(astronaut()).quantize(64)
    buf = io.BytesIO()
    quantised.save(buf, "PNG")
    pal = decode_image(buf.getvalue())
    assert np.array_equal(pal, np.asarray(quantised.convert("RGB")))


def test_rgba_is_composited_and_its_alpha_becomes_the_matte():
    rgba = np.dstack([astronaut(), np.full((512, 512), 255, np.uint8)])
    rgba[:, :100, 3] = 0
    rgb, alpha = decode_image_with_alpha(encode(rgba))
    assert rgb.shape == (512, 512, 3)
    assert (rgb[:, :100] == 255).all()                      # transparent -> white
    assert np.array_equal(rgb[:, 100:], astronaut()[:, 100:])
    assert alpha is not None and alpha[:, :100].max() == 0
    p = prepare(encode(rgba))
    assert p.matte_source == "alpha"
    expected = cv2.warpAffine(alpha, p.affine, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT).astype(np.float32) / 255
    assert np.abs(p.matte - expected).max() < 0.02


def test_opaque_rgba_has_no_alpha():
    rgba = np.dstack([astronaut(), np.full((512, 512), 255, np.uint8)])
    _, alpha = decode_image_with_alpha(encode(rgba))
    assert alpha is None


def test_16bit_grey_and_rgb_png_decode_to_8bit():
    grey16 = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    rgb = decode_image(encode(grey16))
    assert np.array_equal(rgb[..., 1], (grey16 // 257).astype(np.uint8))
    ok, png = cv2.imencode(".png", cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    assert ok
    rgb16 = decode_image(png.tobytes())
    assert rgb16.dtype == np.uint8 and np.abs(rgb16.astype(int) - astronaut().astype(int)).max() <= 1


def test_cmyk_jpeg_decodes_to_rgb():
    data = encode(astronaut(), "JPEG", mode="CMYK", quality=95)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "CMYK"
    rgb = decode_image(data)
    assert rgb.shape == (512, 512, 3)
    assert np.abs(rgb.astype(int) - astronaut().astype(int)).mean() < 8


def test_webp_is_accepted():
    rgb = decode_image(encode(astronaut(), "WEBP", quality=90))
    assert rgb.shape == (512, 512, 3)


# ---------------------------------------------------------------- refusals

def test_random_bytes_are_not_an_image():
    noise = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    err = reason_of(noise)
    assert err.reason == "not_an_image" and "PNG, JPEG or WebP" in str(err)
    assert reason_of(b"").reason == "not_an_image"
    assert reason_of("a string").reason == "not_an_image"


def test_other_formats_are_unsupported():
    err = reason_of(encode(astronaut(), "GIF"))
    assert err.reason == "unsupported_format" and "GIF" in str(err)
    assert reason_of(encode(astronaut(), "BMP")).reason == "unsupported_format"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_files_are_refused(fmt):
    data = encode(astronaut(), fmt)
    err = reason_of(data[: len(data) // 2])
    assert err.reason == "truncated"


def test_one_pixel_image_is_too_small():
    err = reason_of(encode(np.zeros((1, 1, 3), np.uint8)))
    assert err.reason == "too_small" and "64" in str(err)


def test_header_claiming_huge_size_is_refused_before_decoding():
    data = png_with_header_size(30000, 30000)
    assert len(data) < 100
    err = reason_of(data)
    # Decoding the one-byte IDAT would have said "truncated": the header alone decided.
    assert err.reason == "too_large"
    assert "30000 x 30000 = 900000000 pixels > limit 40000000" in str(err)


def test_pixel_and_byte_limits():
    err = reason_of(astronaut_png(), limits=PortraitLimits(max_bytes=1000))
    assert err.reason == "too_large" and "bytes" in str(err)
    err = reason_of(astronaut_png(), limits=PortraitLimits(max_pixels=512 * 512 - 1))
    assert err.reason == "too_large" and "512 x 512" in str(err)
    with pytest.raises(ValueError):
        PortraitLimits(max_pixels=0)


@pytest.mark.parametrize("image", [np.full((256, 256, 3), (90, 140, 200), np.uint8), skdata.coffee()],
                         ids=["solid", "coffee"])
def test_no_face(image):
    err = reason_of(encode(image))
    assert err.reason == "no_face" and "no face found in the portrait" in str(err)


def test_a_face_too_small_for_the_detector_is_told_to_crop():
    """A face a few percent of a large image is shrunk below what the detectors see: the sentence says
    what to do (crop around it, or give face_box), not only that no face was found."""
    canvas = np.full((2048, 2048, 3), 200, np.uint8)
    canvas[960:1088, 960:1088] = cv2.resize(skdata.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    err = reason_of(encode(canvas))
    assert err.reason == "no_face" and "crop around it" in str(err) and "face_box" in str(err)


@pytest.mark.parametrize("border", [cv2.BORDER_REFLECT, cv2.BORDER_REPLICATE, cv2.BORDER_CONSTANT])
@pytest.mark.parametrize("centre", [(256, 256), (40, 470)], ids=["inside", "over the edge"])
def test_warp_reads_only_the_region_it_needs_without_changing_the_result(border, centre):
    # A turned, slightly zoomed view: warp() cuts the part it sees before resampling; the pixels must be
    # those of OpenCV's warp of the whole image.
    angle, scale = math.radians(20), 1.3
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    linear = np.array([[c, s], [-s, c]])
    affine = np.c_[linear, np.array([64.0, 64.0]) - linear @ np.asarray(centre, float)]
    expected = cv2.warpAffine(astronaut(), affine, (128, 128), flags=cv2.INTER_LINEAR, borderMode=border)
    assert np.array_equal(warp(astronaut(), affine, 128, border), expected)
