"""Face perception on MediaPipe's models run by LiteRT: model cache, detector, mesh + iris, matte, refusals."""
from __future__ import annotations

import concurrent.futures
import hashlib
import math
import re
import zipfile

import numpy as np
import pytest
from portrait_helpers import astronaut, astronaut_on_canvas, astronaut_png, encode
from skimage import data as skdata

from avatar.portrait import PerceptionUnavailable, PortraitError, prepare
from avatar.portrait.detector import FULL_RANGE, SHORT_RANGE, anchor_centres, detect_faces
from avatar.portrait.face_mesh import FaceMesh, with_irises, yaw_degrees
from avatar.portrait.locate import MAX_YAW_DEGREES, MIN_FACE_PIXELS, check_turn
from avatar.portrait.models import MODEL_DIR_ENV, MODELS, fetch, missing_models, model, model_dir
from avatar.portrait.roi import Roi

PORTRAITS = ["bouguereau_girl", "einstein_1904", "painting_woman_black_dress", "sargent_lady_agnew",
             "vermeer_pearl_earring"]
# MediaPipe mesh indices: outer/inner eye corners, mouth corners, lower lip (inner edge, outer edge), nose tip.
RIGHT_EYE, LEFT_EYE = (33, 133), (362, 263)
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
LOWER_LIP = (14, 17)
NOSE_TIP = 1


def reason_of(data, **kwargs) -> PortraitError:
    with pytest.raises(PortraitError) as info:
        prepare(data, **kwargs)
    return info.value


@pytest.fixture(scope="module")
def portraits(shared_dir):
    return {name: prepare((shared_dir / "reference" / "portraits" / f"{name}.jpg").read_bytes())
            for name in PORTRAITS}


@pytest.fixture(scope="module")
def astro():
    return prepare(astronaut_png())


# ---------------------------------------------------------------- model cache

def test_missing_cache_names_make_models(tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    assert model_dir() == tmp_path
    assert sorted(missing_models()) == sorted(MODELS)
    with pytest.raises(PerceptionUnavailable) as info:
        prepare(astronaut_png())
    message = str(info.value)
    assert "make models" in message and str(tmp_path) in message
    assert not isinstance(info.value, PortraitError)  # the server's fault, not the portrait's

    import grpc

    from grpc_server.errors import status_for
    assert status_for(info.value) == (grpc.StatusCode.FAILED_PRECONDITION, message)


def test_damaged_model_is_refused(tmp_path, monkeypatch):
    for name in MODELS:
        (tmp_path / name).write_bytes((model_dir() / name).read_bytes())
    (tmp_path / "face_landmark.tflite").write_bytes(b"not a model")
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    with pytest.raises(PerceptionUnavailable, match="sha256"):
        prepare(astronaut_png())


def test_fetch_is_idempotent_and_refuses_a_wrong_wheel(tmp_path):
    installed = tmp_path / "cache"
    installed.mkdir()
    for name in MODELS:
        (installed / name).write_bytes((model_dir() / name).read_bytes())
    # A complete cache is left alone: no wheel is needed (pip would fail on this bogus path).
    assert fetch(installed, wheel=tmp_path / "absent.whl") == installed

    wheel = tmp_path / "mediapipe-0.10.21-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for m in MODELS.values():
            archive.writestr("mediapipe/modules/" + m.wheel_path, b"tampered")
    target = tmp_path / "new"
    with pytest.raises(PerceptionUnavailable, match="sha256"):
        fetch(target, wheel=wheel)
    assert not target.exists()  # nothing half-installed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fetch-")] == []


def test_cached_models_match_their_pins():
    for m in MODELS.values():
        assert hashlib.sha256((model_dir() / m.name).read_bytes()).hexdigest() == m.sha256
    notice = (model_dir() / "NOTICE").read_text()
    assert "Apache License, Version 2.0" in notice and "MediaPipe" in notice


# ---------------------------------------------------------------- detector

@pytest.mark.parametrize("spec, count", [(SHORT_RANGE, 896), (FULL_RANGE, 2304)])
def test_anchor_grids_match_the_models(spec, count):
    anchors = anchor_centres(spec)
    assert anchors.shape == (count, 2)
    regressors, scores = model(spec.name)(np.zeros((1, spec.size, spec.size, 3), np.float32))
    assert regressors.shape[1] == scores.shape[1] == count
    assert anchors.min() > 0 and anchors.max() < 1


def test_detector_box_and_keypoints_on_the_astronaut():
    (face,) = detect_faces(astronaut())  # one face, no false hits
    x, y, w, h = face.box
    # Pupils at (203, 101) and (247, 104), lips at (223, 142), read off a 4x zoom of the image.
    assert x < 203 and 247 < x + w and y < 101 and 142 < y + h
    assert 70 < w < 130
    assert np.hypot(*(face.keypoints[0] - [203, 101])) < 8   # subject's right eye: image left
    assert np.hypot(*(face.keypoints[1] - [247, 104])) < 8
    assert np.hypot(*(face.keypoints[3] - [223, 142])) < 12  # mouth centre
    assert face.score > 0.8


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_sideways_and_upside_down_photos(astro, quarter_turns):
    # A scan or photo turned without an EXIF tag: the face is found in its turned search, and the crop is
    # the same upright crop.
    turned = np.ascontiguousarray(np.rot90(astronaut(), quarter_turns))
    p = prepare(encode(turned))
    for name in ("eye_left", "eye_right", "mouth_center"):
        assert np.hypot(*(p.features[name] - astro.features[name])) < 2.0, name
    assert np.abs(p.image.astype(int) - astro.image.astype(int)).mean() < 6


def test_detector_is_thread_safe():
    image = astronaut()
    serial = detect_faces(image)[0]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: detect_faces(image)[0], range(8)))
    for r in results:
        assert np.array_equal(r.box, serial.box) and np.array_equal(r.keypoints, serial.keypoints)


# ---------------------------------------------------------------- mesh, iris, matte on real portraits

def check_landmarks_on_features(p):
    lm, img = p.landmarks, p.image.astype(np.float64)
    assert lm.shape == (478, 3) and np.all(np.isfinite(lm))
    assert (lm[:, :2] > 0).all() and (lm[:, :2] < 512).all()
    lum = img @ [0.299, 0.587, 0.114]
    redness = img[..., 0] - img[..., 1]

    def at(field, point, radius=2):
        x, y = (round(v) for v in point[:2])
        return field[y - radius:y + radius + 1, x - radius:x + radius + 1].mean()

    for (a, b), iris in ((RIGHT_EYE, 468), (LEFT_EYE, 473)):
        corner_a, corner_b, centre = lm[a, :2], lm[b, :2], lm[iris, :2]
        along = corner_b - corner_a
        width = np.hypot(*along)
        t = np.dot(centre - corner_a, along) / width**2
        off_line = abs(along[0] * (centre - corner_a)[1] - along[1] * (centre - corner_a)[0]) / width
        assert 0.2 < t < 0.8 and off_line < 0.25 * width        # between the corners, on the eye
        radius = np.mean(np.hypot(*(lm[iris + 1:iris + 5, :2] - centre).T))
        assert 0.12 * width < radius < 0.4 * width
        cheek = 0.5 * (lm[a if a == 33 else b, :2] + lm[MOUTH_RIGHT if a == 33 else MOUTH_LEFT, :2])
        assert at(lum, centre) < at(lum, cheek, 4) - 20          # a dark iris on lighter skin
        assert p.features["eye_right" if a == 33 else "eye_left"] == pytest.approx(centre)
    eye_spacing = np.hypot(*(lm[473, :2] - lm[468, :2]))
    mouth = lm[MOUTH_LEFT, :2] - lm[MOUTH_RIGHT, :2]
    assert 0.55 * eye_spacing < np.hypot(*mouth) < 1.3 * eye_spacing and mouth[0] > 0
    # Under the nose (a three-quarter view moves the nose tip off the mouth's middle by up to half that).
    assert abs(0.5 * (lm[MOUTH_LEFT, 0] + lm[MOUTH_RIGHT, 0]) - lm[NOSE_TIP, 0]) < 0.5 * eye_spacing
    assert lm[468, 1] < lm[NOSE_TIP, 1] < lm[MOUTH_RIGHT, 1]
    lower_lip = lm[list(LOWER_LIP), :2].mean(axis=0)
    cheek = 0.5 * (lm[33, :2] + lm[MOUTH_RIGHT, :2])
    assert at(redness, lower_lip) > at(redness, cheek, 4) + 5      # the lip is redder than the cheek


def check_matte(p, corners):
    m = p.matte
    assert m.shape == (512, 512) and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
    lm = p.landmarks
    eye_spacing = np.hypot(*(lm[473, :2] - lm[468, :2]))
    # Hair (or headwear) above the forehead's top mesh point (10) is person.
    x, y = lm[10, :2] - [0, 0.3 * eye_spacing]
    assert m[int(y), int(x)] > 0.9
    hull_inside = lm[[1, 4, 468, 473, 13, 14]].astype(int)
    assert all(m[yy, xx] > 0.99 for xx, yy in hull_inside[:, :2])
    for corner in corners:
        patch = {"top_left": m[:30, :30], "top_right": m[:30, -30:]}[corner]
        assert patch.max() < 0.05, corner
    assert p.matte_source == "segmentation"


@pytest.mark.parametrize("name", PORTRAITS)
def test_landmarks_land_on_the_features(portraits, name):
    p = portraits[name]
    assert p.source == "detector" and p.landmarks_source == "face_mesh"
    check_landmarks_on_features(p)


# The top corners of each crop that show background (the others show hair, headwear or a chair).
BACKGROUND_CORNERS = {"bouguereau_girl": ("top_left", "top_right"), "einstein_1904": ("top_left", "top_right"),
                      "painting_woman_black_dress": ("top_left", "top_right"), "sargent_lady_agnew": ("top_right",),
                      "vermeer_pearl_earring": ("top_left",)}


@pytest.mark.parametrize("name", PORTRAITS)
def test_matte_covers_the_hair_not_the_background(portraits, name):
    check_matte(portraits[name], BACKGROUND_CORNERS[name])


def test_astronaut_landmarks_and_matte(astro):
    check_landmarks_on_features(astro)
    check_matte(astro, ("top_left", "top_right"))
    # Depth: the nose tip is nearer the camera (more negative) than the cheeks' outer edge.
    assert astro.landmarks[NOSE_TIP, 2] < astro.landmarks[[234, 454], 2].min() - 20


def test_matte_edge_is_refined_not_blocky(astro):
    m = astro.matte
    soft = (m > 0.05) & (m < 0.95)
    assert 0.002 < soft.mean() < 0.05   # a thin soft edge from the matting
    # The segmentation's own 2x upsampled steps would leave runs of identical values along the edge.
    assert len(np.unique(np.round(m[soft], 3))) > 100


def test_irises_for_caller_468_landmarks(astro):
    original = np.c_[astro.to_original(astro.landmarks[:468, :2]), np.zeros(468)]
    p = prepare(astronaut_png(), landmarks=original[:, :2])
    assert p.source == "landmarks" and p.landmarks_source == "landmarks"
    assert np.abs(p.landmarks[468:, :2] - astro.landmarks[468:, :2]).max() < 1.5
    assert np.allclose(with_irises(astronaut(), original)[:468, :2], original[:, :2])


@pytest.mark.parametrize("corners, iris", [(RIGHT_EYE, 468), (LEFT_EYE, 473)])
def test_iris_stays_put_when_its_crop_moves(astro, corners, iris):
    # Moving the eye corners (hence the iris crop) sideways must not move the iris found in the image: a
    # mapping error (e.g. a missed un-mirroring) would move it by twice the shift.
    original = np.c_[astro.to_original(astro.landmarks[:468, :2]), astro.landmarks[:468, 2]]
    both = with_irises(astronaut(), original)
    reference = both[iris:iris + 5, :2]
    spacing = np.hypot(*(both[468, :2] - both[473, :2]))
    for shift in (-0.06, 0.06):
        moved = original.copy()
        moved[list(corners), 0] += shift * spacing
        found = with_irises(astronaut(), moved)[iris:iris + 5, :2]
        assert np.hypot(*(found - reference).T).max() < 0.04 * spacing, shift


def test_larger_input_gives_the_same_landmarks(astro):
    import cv2
    big = prepare(encode(cv2.resize(astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)))
    assert np.median(np.hypot(*(big.landmarks[:, :2] - astro.landmarks[:, :2]).T)) < 1.5
    assert np.abs(big.landmarks[:, 2] - astro.landmarks[:, 2]).max() < 6


def test_three_quarter_view_is_accepted(portraits):
    p = portraits["vermeer_pearl_earring"]
    yaw = yaw_degrees(p.landmarks)
    assert -50 < yaw < -20   # turned toward image left, within what the mesh handles


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("image", [np.full((256, 256, 3), (90, 140, 200), np.uint8), skdata.coffee()],
                         ids=["flat", "coffee"])
def test_no_face(image):
    err = reason_of(encode(image))
    assert err.reason == "no_face" and "no face found" in str(err) and "face_box" in str(err)


def test_two_faces_are_refused():
    err = reason_of(encode(np.concatenate([astronaut(), astronaut()], axis=1)))
    assert err.reason == "several_faces"
    assert "2 faces of similar size" in str(err) and "x=2" in str(err) and "x=7" in str(err)


def test_one_dominant_face_with_a_small_one_behind_is_fine(astro):
    import cv2
    image = astronaut().copy()
    image[380:500, 390:510] = cv2.resize(astronaut(), (120, 120), interpolation=cv2.INTER_AREA)
    p = prepare(encode(image))
    for name in ("eye_left", "eye_right", "mouth_center"):
        assert np.hypot(*(p.features[name] - astro.features[name])) < 3


def test_tiny_face_is_too_small():
    err = reason_of(encode(astronaut_on_canvas(480, 180)))
    assert err.reason == "face_too_small"
    assert f"at least {MIN_FACE_PIXELS} pixels" in str(err)
    assert re.search(r"only 3\d pixels wide", str(err))


def turned(points: np.ndarray, degrees: float) -> np.ndarray:
    """The mesh turned about the vertical axis through its centroid; positive degrees move the subject's left
    side (image right) away from the camera (x right, y down, z away)."""
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), 0, -math.sin(a)], [0, 1, 0], [math.sin(a), 0, math.cos(a)]])
    centre = points.mean(axis=0)
    return (points - centre) @ rot.T + centre


def test_yaw_from_the_mesh_depth(astro):
    frontal = yaw_degrees(astro.landmarks)
    assert abs(frontal) < 5
    for degrees in (-70, -30, 30, 70):
        assert yaw_degrees(turned(astro.landmarks, degrees)) == pytest.approx(frontal + degrees, abs=2)


def test_face_turned_too_far_is_refused(astro):
    roi = Roi(centre=np.array([256.0, 256.0]), side=300.0)
    check_turn(FaceMesh(points=turned(astro.landmarks, 40), presence=0.99, roi=roi))
    with pytest.raises(PortraitError) as info:
        check_turn(FaceMesh(points=turned(astro.landmarks, -75), presence=0.99, roi=roi))
    assert info.value.reason == "face_too_turned"
    assert f"at most {MAX_YAW_DEGREES:.0f} degrees" in str(info.value) and "image left" in str(info.value)
