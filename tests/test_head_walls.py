"""The walls' colours where no view sees the surface squarely (avatar.head_walls)."""
import numpy as np
from walls_helpers import hair_over_head

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

RESOLUTION = 256


def _hair_walls(colour):
    """The walls of the neutral head model under hair a few voxels thick over its upper half, the hair
    coloured by `colour(points)`: (walls, the volume, its normals)."""
    head = embedded_head_model()
    identity = np.zeros(len(head.identity_names), np.float32)
    texture = np.full((RESOLUTION, RESOLUTION, 3), 0.5, np.float32)
    vol, hair = hair_over_head(head, identity, RESOLUTION, thickness=4, above=0.05)
    normals = VolumeNormals(vol)
    return assemble_walls(head, identity, texture, vol, hair, colour, normals, RESOLUTION), vol, normals


def _stripes(axis: int):
    """A colour alternating 0.8 / 0.2 grey from one texel to the next along world `axis` (0 = x, 1 = y)."""
    def colour(points: np.ndarray) -> np.ndarray:
        lit = np.floor((points[..., axis] + 0.5) * RESOLUTION) % 2 == 0
        return np.repeat(np.where(lit, 0.8, 0.2)[..., None], 3, axis=-1).astype(np.float32)
    return colour


def _jumps_where_facing_up(walls, vol, normals, facing: float, axis: int):
    """Per front and back wall: (name, how many neighbouring texel pairs along its map's `axis` (0 = rows,
    1 = columns) both face up more than `facing`, the mean change of red between them)."""
    out = []
    for name, rgb in (("front", walls.front_rgb), ("back", walls.back_rgb)):
        wall = volume_walls(vol)[name]
        up = (normals(wall_points(name, wall))[..., 1] > facing) & np.isfinite(wall)
        pairs = (up[1:] & up[:-1]) if axis == 0 else (up[:, 1:] & up[:, :-1])
        out.append((name, pairs.sum(), np.abs(np.diff(rgb[..., 0], axis=axis))[pairs].mean()))
    return out


def test_the_crown_does_not_carry_the_top_edges_strands_back_over_the_head():
    # The front and back colours hold along z; both walls see the crown edge-on, so whatever varies along x
    # at the top of the head (strands, highlights) ran back over the whole crown as stripes.
    walls, vol, normals = _hair_walls(_stripes(0))   # strands one texel wide along x
    for name, pairs, jump in _jumps_where_facing_up(walls, vol, normals, CROWN_FACING[1], axis=1):
        assert pairs > 200, name
        assert jump < 0.05, (name, jump)


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


def test_the_top_of_the_head_does_not_change_colour_from_row_to_row():
    # Seen from above, each row of the front and back maps covers a band of the nearly level top of the head
    # (the top steps up a voxel every few texels of depth): colours that change from one row to the next showed
    # as a mosaic of blocks there (a turban's folds, a strand's highlight).
    walls, vol, normals = _hair_walls(_stripes(1))   # one texel high along y
    for name, pairs, jump in _jumps_where_facing_up(walls, vol, normals, SHARED_CROWN_FACING[1], axis=0):
        assert pairs > 10, name
        assert jump < 0.05, (name, jump)


def test_no_side_view_claims_the_top_of_the_head():
    # A side view sees the top of the head edge-on, as the front and back views do, and the colour it gives
    # each row's outermost texel changes from row to row: seen from above, the claimed strip of every row was
    # a block (bars and a mosaic of the side maps' colours over the crown).
    walls, vol, normals = _hair_walls(lambda p: np.full(p.shape, 0.5, np.float32))
    for side in ("px", "nx"):
        wall = volume_walls(vol)[side]
        top = (normals(wall_points(side, wall))[..., 1] >= SHARED_CROWN_FACING[0]) & np.isfinite(wall)
        assert top.sum() > 50, side
        assert not walls.owned[side][top].any(), (side, walls.owned[side][top].sum())


def test_the_top_of_a_bald_scalp_wears_the_crowns_colour():
    # Under the mesh the front colour is the neural texture, rasterized each frame: the crown's smoothing
    # cannot reach it, and seen from above the texel at the front edge of each row of the scalp's top covered
    # a band behind it (a bright or dark rectangle in the middle of the crown). A static front wall just in
    # front of the mesh's top wins the front plane's depth test and carries the crown's colour there.
    head = embedded_head_model()
    identity = np.zeros(len(head.identity_names), np.float32)
    rng = np.random.default_rng(0)
    texture = rng.uniform(0.1, 0.9, (RESOLUTION, RESOLUTION, 3)).astype(np.float32)
    vol = swept_mesh_volume(head, identity, RESOLUTION)
    normals = VolumeNormals(vol)
    walls = assemble_walls(head, identity, texture, vol, np.zeros_like(vol), lambda p: np.full(p.shape, 0.5),
                           normals, RESOLUTION)
    front = volume_walls(vol)["front"]
    top = (normals(wall_points("front", front))[..., 1] > SHARED_CROWN_FACING[1]) & np.isfinite(front)
    assert top.sum() > 20
    assert (np.nan_to_num(walls.front_static, nan=-1.0)[top] > front[top]).all()
    pairs = top[1:] & top[:-1]
    jumps = np.abs(np.diff(walls.front_rgb[..., 0], axis=0))[pairs]
    assert jumps.mean() < 0.05, jumps.mean()
