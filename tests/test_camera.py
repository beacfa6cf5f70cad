import math

import numpy as np
import pytest

from avatar import camera as cam


@pytest.mark.parametrize("orbit", [cam.Orbit(), cam.Orbit(30, -12, 5, 3.1, 20), cam.Orbit(-60, 40, -20, 1.5, 40)])
def test_orbit_round_trip(orbit):
    back = cam.orbit_from_camera_vector(cam.camera_vector(orbit))
    for a, b in zip((orbit.yaw_deg, orbit.pitch_deg, orbit.roll_deg, orbit.radius, orbit.fov_deg),
                    (back.yaw_deg, back.pitch_deg, back.roll_deg, back.radius, back.fov_deg)):
        assert a == pytest.approx(b, abs=1e-4)


def test_default_camera_matches_eg3d_ffhq():
    v = cam.camera_vector()
    c2w = v[:16].reshape(4, 4)
    assert np.allclose(c2w[:3, 3], [0, 0, 2.7], atol=1e-6)
    assert np.allclose(c2w[:3, 2], [0, 0, -1], atol=1e-6)  # looks at the origin
    assert np.allclose(c2w[:3, 1], [0, -1, 0], atol=1e-6)  # OpenCV: image down = world -y
    assert v[16] == pytest.approx(4.2647, abs=2e-3)       # FFHQ's normalised focal
    assert v[18] == pytest.approx(0.5) and v[21] == pytest.approx(0.5) and v[20] == v[16]


def test_yaw_sees_subjects_left():
    v = cam.camera_vector(yaw_deg=30)
    assert v[3] > 0  # camera x > 0: the subject's left side


def test_rays_and_projection_agree():
    v = cam.camera_vector(yaw_deg=20, pitch_deg=10)
    origins, dirs = cam.generate_rays(v, 8, 6)
    pts = (origins + 2.5 * dirs).numpy()
    uv, depth = cam.project(pts, v)
    ys, xs = np.meshgrid((np.arange(8) + 0.5) / 8, (np.arange(6) + 0.5) / 6, indexing="ij")
    assert np.allclose(uv[:, 0], xs.reshape(-1), atol=1e-5)
    assert np.allclose(uv[:, 1], ys.reshape(-1), atol=1e-5)
    assert np.all(depth > 0)
    # Top row of the image looks up (+y), left column looks toward -x from the default camera.
    _, d = cam.generate_rays(cam.camera_vector(), 4, 4)
    assert d[0, 1] > 0 and d[0, 0] < 0


@pytest.mark.parametrize("bad, message", [
    (np.zeros(24), "25 values"),
    (np.full(25, np.nan), "NaN"),
    (np.concatenate([np.eye(4).reshape(-1) * 2, cam.intrinsics().reshape(-1)]), "rotation"),
])
def test_bad_camera_vectors(bad, message):
    with pytest.raises(cam.CameraError, match=message):
        cam.validate_camera_vector(bad)


def test_camera_inside_box_refused():
    v = np.concatenate([np.eye(4).reshape(-1), cam.intrinsics().reshape(-1)])
    with pytest.raises(cam.CameraError, match="inside the head"):
        cam.validate_camera_vector(v)
    with pytest.raises(cam.CameraError, match="radius"):
        cam.camera_vector(radius=0.3)
    with pytest.raises(cam.CameraError, match="pitch"):
        cam.camera_vector(pitch_deg=95)


def test_head_pose_is_inverse_camera_motion():
    # Turning the head left by 20 degrees looks like orbiting the camera the other way.
    turned = cam.apply_head_pose(cam.camera_vector(), math.radians(20), 0, 0)
    orbit = cam.orbit_from_camera_vector(turned)
    assert orbit.yaw_deg == pytest.approx(-20, abs=1e-4)
    with pytest.raises(cam.CameraError):
        cam.apply_head_pose(cam.camera_vector(), float("nan"), 0, 0)
