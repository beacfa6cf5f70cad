"""Side views show the side's own colours where the side claims the surface (avatar.head_walls,
avatar.surface_field): a side claim corrects the front or back default, and must correct the one the
point it colours actually takes."""
import dataclasses

import numpy as np
import pytest
from scipy import ndimage
from walls_helpers import hair_over_head

from avatar import camera
from avatar.head_model import embedded_head_model
from avatar.head_walls import VolumeNormals, assemble_walls
from avatar.render import Renderer
from avatar.surface_field import surface_planes, texel_index
from avatar.synthetic import synthetic_avatar

RESOLUTION = 256


def tint(points: np.ndarray) -> np.ndarray:
    """A colour that changes along the head, front to back (red to blue) and up (green): the front and
    back walls' colours differ from the side's at every height."""
    z, y = points[..., 2], points[..., 1]
    rgb = np.stack([0.5 + 2.0 * z, 0.3 + 1.5 * y, 0.5 - 2.0 * z], axis=-1)
    return np.clip(rgb, 0.05, 0.95).astype(np.float32)


@pytest.fixture(scope="module")
def hair_avatar():
    """The embedded head with hair a few voxels thick over its upper part, coloured by `tint`."""
    head = embedded_head_model()
    identity = np.zeros(len(head.identity_names), np.float32)
    texture = np.full((RESOLUTION, RESOLUTION, 3), 0.5, np.float32)
    vol, hair = hair_over_head(head, identity, RESOLUTION, thickness=6, above=-0.05)
    walls = assemble_walls(head, identity, texture, vol, hair, tint, VolumeNormals(vol), RESOLUTION)
    avatar = synthetic_avatar(0, head)
    avatar = dataclasses.replace(avatar, planes=surface_planes(texture, walls), identity=identity)
    return avatar, walls


@pytest.mark.parametrize("yaw", [90.0, -90.0, 60.0])
def test_claimed_side_shows_its_own_colour_across_the_front_back_split(hair_avatar, yaw):
    # The claims are split into front and back halves by texel, and each corrects its half's default;
    # the default switches at the split, per column of x. Where a claimed texel's half disagreed with the
    # default at the surface it colours (the split jumping between neighbouring columns near the sides of
    # the head, and the band between a front-half and a back-half texel that neither claim reached), the
    # side showed the front or back colour, or the wrong default plus the side's correction: stepped lines
    # of texels along the split (the dark lines down the neck in the contact sheets).
    avatar, walls = hair_avatar
    size = 256
    cam = camera.camera_vector(yaw_deg=yaw)
    result = Renderer(avatar).render(cam, size=size)
    alpha = result.alpha.numpy()
    rgb = result.rgb.numpy() / np.maximum(alpha, 1e-6)[..., None]
    origins, dirs = camera.generate_rays(cam, size, size)
    points = (origins + dirs * result.depth.reshape(-1, 1)).numpy().reshape(size, size, 3)
    side = "px" if yaw > 0 else "nx"
    owned = walls.owned[side]
    # Pixels on hair the side owns, away from the edges of what it owns (there the default takes over,
    # as it should) and from the silhouette.
    inner = ndimage.binary_erosion(owned, iterations=2)
    y_idx = texel_index(points[..., 1], RESOLUTION)
    z_idx = texel_index(points[..., 2], RESOLUTION)
    solid = ndimage.binary_erosion(alpha > 0.99, iterations=3)
    hair_rows = points[..., 1] > 0.0
    check = solid & inner[y_idx, z_idx] & hair_rows
    assert check.sum() > 500
    error = np.abs(rgb - tint(points)).max(axis=-1)[check]
    # The side's colour is the tint at its texel's centre (within a texel of the point; the tint moves
    # 0.008 per texel) and the side wall stands a voxel out of the surface.
    assert np.quantile(error, 0.995) < 0.1, (np.quantile(error, [0.5, 0.99, 0.995]), (error > 0.1).sum())
