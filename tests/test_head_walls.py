"""The walls' colours where no view sees the surface squarely (avatar.head_walls)."""
import numpy as np
from scipy import ndimage

from avatar.head_model import embedded_head_model
from avatar.head_walls import (
    CROWN_FACING,
    SHARED_CROWN_FACING,
    VolumeNormals,
    assemble_walls,
    swept_mesh_volume,
    volume_walls,
    wall_points,
)
from avatar.surface_field import texel_centres

RESOLUTION = 256


def _hair_walls(colour):
    """The walls of the neutral head model under hair a few voxels thick over its upper half, the hair
    coloured by `colour(points)`: (walls, the volume, its normals)."""
    head = embedded_head_model()
    identity = np.zeros(len(head.identity_names), np.float32)
    texture = np.full((RESOLUTION, RESOLUTION, 3), 0.5, np.float32)
    mesh = swept_mesh_volume(head, identity, RESOLUTION)
    y = texel_centres(RESOLUTION)[None, :, None]
    hair = ndimage.binary_dilation(mesh, iterations=4) & ~mesh & (y > 0.05)
    vol = mesh | hair
    normals = VolumeNormals(vol)
    return assemble_walls(head, identity, texture, vol, hair, colour, normals, RESOLUTION), vol, normals


def test_the_crown_does_not_carry_the_top_edges_strands_back_over_the_head():
    # The front and back colours hold along z; both walls see the crown edge-on, so whatever varies along x
    # at the top of the head (strands, highlights) ran back over the whole crown as stripes.
    def strands(points: np.ndarray) -> np.ndarray:   # one texel wide along x
        lit = np.floor((points[..., 0] + 0.5) * RESOLUTION) % 2 == 0
        return np.repeat(np.where(lit, 0.8, 0.2)[..., None], 3, axis=-1).astype(np.float32)

    walls, vol, normals = _hair_walls(strands)
    for name, rgb in (("front", walls.front_rgb), ("back", walls.back_rgb)):
        wall = volume_walls(vol)[name]
        up = (normals(wall_points(name, wall))[..., 1] > CROWN_FACING[1]) & np.isfinite(wall)
        pairs = up[:, 1:] & up[:, :-1]
        assert pairs.sum() > 200, name
        jumps = np.abs(np.diff(rgb[..., 0], axis=1))[pairs]
        assert jumps.mean() < 0.05, (name, jumps.mean())


def test_the_front_and_back_colours_agree_on_the_crown():
    # The front colour gives way to the back colour at the split, which crosses the top of the head: seen
    # from above, a front and back that differ (hair lit from the front, a parting) met there in a stepped
    # edge.
    def front_red_back_blue(points: np.ndarray) -> np.ndarray:
        front = (points[..., 2] > 0)[..., None]
        return np.where(front, [0.8, 0.2, 0.2], [0.2, 0.2, 0.8]).astype(np.float32)

    walls, vol, normals = _hair_walls(front_red_back_blue)
    faces_up = [(normals(wall_points(name, volume_walls(vol)[name]))[..., 1] > SHARED_CROWN_FACING[1])
                & np.isfinite(volume_walls(vol)[name]) for name in ("front", "back")]
    crown = faces_up[0] & faces_up[1]
    assert crown.sum() > 20  # the top of the head, where both walls face up
    difference = np.abs(walls.front_rgb - walls.back_rgb).max(axis=-1)[crown]
    assert np.percentile(difference, 95) < 0.05, np.percentile(difference, 95)
