"""The projective generator on the astronaut: fidelity, orbit coverage, landmark fit, local expressions."""
import numpy as np
import pytest
import torch

from avatar import camera
from avatar.generators import GeneratorError, available, get_generator
from avatar.generators.fit import FEATURE_LANDMARKS, landmark_points
from avatar.generators.quality import frontal_psnr
from avatar.render import Renderer

SIZE = 256


@pytest.fixture(scope="module")
def renderer(astronaut_avatar):
    return Renderer(astronaut_avatar)


def project(renderer, avatar, names, cam):
    verts = renderer.head.identity_vertices(avatar.identity)
    uv, _ = camera.project(np.stack([verts[renderer.head.landmarks[n]] for n in names]), cam)
    return uv * SIZE


def box_mean(diff, centre, half):
    x, y = np.round(centre).astype(int)
    return float(diff[max(0, y - half):y + half, max(0, x - half):x + half].mean())


def test_registry():
    names = [name for name, _, _ in available()]
    assert "projective" in names
    assert get_generator().name == "projective"
    with pytest.raises(GeneratorError, match="unknown generator 'nope'"):
        get_generator("nope")


def test_frontal_rerender_matches_portrait(astronaut_avatar, astronaut_prepared, renderer):
    assert frontal_psnr(astronaut_avatar, astronaut_prepared.matte, SIZE) >= 24


def test_landmarks_land_on_the_photo(astronaut_avatar, astronaut_prepared, renderer):
    crop = astronaut_prepared.image.shape[0]
    pts = landmark_points(renderer.head, astronaut_avatar.identity)
    for feature in FEATURE_LANDMARKS:
        uv, _ = camera.project(pts[feature], astronaut_avatar.portrait_camera)
        detected = np.asarray(astronaut_prepared.features[feature]) / crop
        assert np.linalg.norm(uv - detected) <= 0.04, feature


@pytest.mark.parametrize("yaw", [-30, 30])
def test_orbit_keeps_the_head_solid(astronaut_avatar, renderer, yaw):
    cam = camera.camera_vector(yaw_deg=yaw)
    res = renderer.render(cam, size=SIZE)
    assert not torch.isnan(res.rgb).any() and not torch.isnan(res.alpha).any()
    # The head region: the hull of the face's landmarks as this camera sees them.
    names = ["eye_outer_left", "eye_outer_right", "brow_left", "brow_right", "chin",
             "mouth_corner_left", "mouth_corner_right", "nose_tip"]
    pts = project(renderer, astronaut_avatar, names, cam)
    import cv2
    hull = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(pts.astype(np.int32)), 1)
    alpha = res.alpha.numpy()[hull > 0]
    assert (alpha >= 0.9).mean() >= 0.98


def test_jaw_open_moves_the_mouth_only(astronaut_avatar, renderer):
    cam = astronaut_avatar.portrait_camera
    neutral = renderer.render(cam, size=SIZE).over((0, 0, 0))
    jaw = renderer.render(cam, {"jawOpen": 1.0}, size=SIZE).over((0, 0, 0))
    diff = np.abs(jaw - neutral).mean(-1)
    mouth = project(renderer, astronaut_avatar, ["lip_upper", "lip_lower"], cam).mean(0)
    assert box_mean(diff, mouth + [0, 6], 14) >= 0.05
    brows = project(renderer, astronaut_avatar, ["brow_left", "brow_right"], cam)
    above = int(brows[:, 1].min()) - 4
    assert diff[:above].mean() < 0.01 and diff[:above].max() < 0.1


def test_blink_left_closes_the_subjects_left_eye(astronaut_avatar, renderer):
    cam = astronaut_avatar.portrait_camera
    neutral = renderer.render(cam, size=SIZE).over((0, 0, 0))
    blink = renderer.render(cam, {"eyeBlinkLeft": 1.0}, size=SIZE).over((0, 0, 0))
    diff = np.abs(blink - neutral).mean(-1)
    left, right = project(renderer, astronaut_avatar, ["pupil_left", "pupil_right"], cam)
    assert left[0] > right[0]  # the subject's left eye is on the image's right
    assert box_mean(diff, left, 8) >= 0.03
    assert box_mean(diff, right, 8) < 0.002


def test_deterministic_with_progress(astronaut_png, astronaut_avatar):
    events = []
    again = get_generator("projective").create(astronaut_png, progress=lambda s, f, m: events.append((s, f)))
    fractions = [f for _, f in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"decode", "fit", "texture", "planes", "decoder", "thumbnail", "done"} <= {s for s, _ in events}
    assert again.avatar_id == astronaut_avatar.avatar_id
    assert get_generator().avatar_id(astronaut_png) == again.avatar_id  # known without generating
    assert torch.equal(again.planes, astronaut_avatar.planes)
    assert all(torch.equal(again.decoder[k], astronaut_avatar.decoder[k]) for k in again.decoder)
    assert np.array_equal(again.identity, astronaut_avatar.identity)
    assert np.array_equal(again.thumbnail, astronaut_avatar.thumbnail)
