"""The surface semantics (surface-v2): planes built from four walls decode to exactly that shape and
those colours, side claims colour the sides, and the raster's depth test keeps static hair."""
import numpy as np
import pytest
import torch

from avatar.decoder import SIDE_PLANES, TriplaneDecoder, sample_static_planes
from avatar.surface_field import (
    COLOUR_OFFSET,
    FRONT_RGB,
    FRONT_WALL,
    SPLIT_SLOPE,
    HeadWalls,
    front_texture_channels,
    split_depth,
    surface_decoder,
    surface_planes,
    texel_centres,
)

R = 64
FRONT, BACK, SIDE_P, SIDE_N = (0.9, 0.2, 0.2), (0.2, 0.2, 0.9), (0.2, 0.9, 0.2), (0.9, 0.9, 0.2)


def box_walls(owned: bool = True) -> HeadWalls:
    """A box |x| < 0.2, |y| < 0.25, |z| < 0.3: each face a colour; the sides claim what they see."""
    c = texel_centres(R)
    rows, cols = np.meshgrid(c, c, indexing="ij")
    in_xy = (np.abs(cols) < 0.2) & (np.abs(rows) < 0.25)      # xy grid: row y, column x
    in_zy = (np.abs(cols) < 0.3) & (np.abs(rows) < 0.25)      # zy grid: row y, column z

    def wall(mask, value):
        return np.where(mask, value, np.nan).astype(np.float32)

    def colour(mask, rgb):
        return np.broadcast_to(np.asarray(rgb, np.float32), (R, R, 3)) * np.ones((R, R, 1), np.float32)

    claim = in_zy if owned else np.zeros_like(in_zy)
    front = wall(in_xy, 0.3)
    back = wall(in_xy, -0.3)
    return HeadWalls(front_static=front, back=back, px=wall(in_zy, 0.2), nx=wall(in_zy, -0.2),
                     front_rgb=colour(in_xy, FRONT), back_rgb=colour(in_xy, BACK),
                     px_rgb=colour(in_zy, SIDE_P), nx_rgb=colour(in_zy, SIDE_N), split=split_depth(front, back),
                     owned={"px": claim, "nx": claim})


def field(walls: HeadWalls):
    r = walls.back.shape[0]
    planes = surface_planes(np.full((r, r, 3), 0.5, np.float32), walls)
    decoder = surface_decoder()

    def query(points):
        density, feats = decoder(sample_static_planes(planes[1:4], torch.tensor(points, dtype=torch.float32),
                                                      names=SIDE_PLANES))
        return density.detach().numpy(), feats[:, :3].detach().numpy()
    return query


def test_density_is_the_box():
    query = field(box_walls())
    inside = [[0, 0, 0], [0.15, 0.2, 0.25], [-0.15, -0.2, -0.25]]
    outside = [[0, 0, 0.35], [0, 0, -0.35], [0.25, 0, 0], [-0.25, 0, 0], [0, 0.3, 0]]
    assert (query(inside)[0] > 100).all()
    assert (query(outside)[0] < 1e-3).all()


@pytest.mark.parametrize("point, rgb", [((0.0, 0.0, 0.29), FRONT), ((0.0, 0.0, -0.29), BACK),
                                        ((0.19, 0.0, 0.1), SIDE_P), ((-0.19, 0.0, -0.1), SIDE_N)])
def test_each_wall_shows_its_own_colour(point, rgb):
    _, colour = field(box_walls())([point])
    assert np.abs(colour[0] - rgb).max() < 0.02


def test_the_split_sits_just_behind_the_front():
    # SPLIT_MARGIN behind the front, moved to the nearest texel edge of z (where the default switches).
    in_box = np.abs(texel_centres(R)) < 0.2
    split = box_walls().split[in_box]
    assert np.allclose(split, 0.28, atol=0.5 / R)
    edge = (split - COLOUR_OFFSET / SPLIT_SLOPE + 0.5) * R
    assert np.allclose(edge, np.round(edge), atol=1e-3)


def test_without_a_claim_a_side_shows_the_default():
    _, colour = field(box_walls(owned=False))([(0.19, 0.0, 0.285), (-0.19, 0.0, -0.1)])
    assert np.abs(colour[0] - FRONT).max() < 0.02   # in front of the split: the front colour
    assert np.abs(colour[1] - BACK).max() < 0.02    # behind it: the back colour


def test_claims_reach_only_just_behind_their_wall():
    _, colour = field(box_walls())([(0.12, 0.0, 0.1)])   # 0.08 inside the +x wall, behind the split
    assert np.abs(colour[0] - BACK).max() < 0.02


def test_decoder_rasterizes_front_wall_and_colours_with_a_depth_test():
    dec = TriplaneDecoder.from_asset(surface_decoder().state_for_asset())
    assert dec.raster_depth_test.item() == 1.0
    assert dec.raster_depth_weight[FRONT_WALL].item() == -1.0
    rasterized = set(torch.nonzero(dec.raster_channel_mask).squeeze(1).tolist())
    assert rasterized == {FRONT_WALL, *front_texture_channels()}


def test_raster_depth_test_keeps_static_hair_in_front(synthetic):
    """Under the mesh the posed face replaces the static front only where it is nearer: hair in front of
    the forehead (a fringe) stays, the face elsewhere follows the expression."""
    from avatar.planes import FrontPlaneComposer
    from avatar.render import Renderer

    renderer = Renderer(synthetic)
    head = renderer.head
    planes = synthetic.planes.clone()
    c = texel_centres(planes.shape[-1])
    rows, cols = np.meshgrid(c, c, indexing="ij")
    fringe = torch.from_numpy((np.abs(cols) < 0.05) & (np.abs(rows - 0.15) < 0.03))
    planes[1, FRONT_WALL][fringe] = -0.45               # a static surface at z = 0.45, in front of any face
    decoder = TriplaneDecoder.from_asset(synthetic.decoder)
    composer = FrontPlaneComposer(head, synthetic.identity, planes, decoder)
    composed = composer.planes(None, None)
    assert torch.allclose(composed[0, FRONT_WALL][fringe], torch.tensor(-0.45))
    elsewhere = torch.from_numpy((np.abs(cols) < 0.05) & (np.abs(rows + 0.1) < 0.02))
    assert (composed[0, FRONT_WALL][elsewhere] > -0.35).all()   # the mesh's own depth (z < 0.35)
    # mesh_texels says the same: the texture is read under the face, not under the fringe, and where it is
    # read the composed colour is the texture's at that UV.
    uv, shown = composer.mesh_texels()
    assert not shown[fringe].any() and shown[elsewhere].all()
    red = FRONT_RGB[0]
    read = torch.nn.functional.grid_sample(planes[0:1, red:red + 1], (uv[shown] * 2 - 1).view(1, 1, -1, 2),
                                           align_corners=False, padding_mode="border")[0, 0, 0]
    assert torch.allclose(composed[0, red][shown], read, atol=1e-5)


def test_the_split_is_sharp():
    """Across the split the default changes from the back colour to the front one within a fifth of a
    256 texel: a side surface that crosses it shows no band (a wider, overshooting ramp was a seam)."""
    z = np.linspace(0.26, 0.288, 2801)          # through the split at 0.28, clear of the front wall's edge
    _, colour = field(box_walls(owned=False))(np.stack([np.zeros_like(z), np.zeros_like(z), z], -1))
    off = np.minimum(np.abs(colour - FRONT).max(1), np.abs(colour - BACK).max(1)) > 0.03
    assert off.sum() * (z[1] - z[0]) < 0.2 / 256


def test_the_side_walls_do_not_shave_the_profile():
    """The box's front face is at z = 0.3, but its side walls' last texel centre is at 0.289 (R = 64): the
    front face, not the side walls' rounding, places the surface (a shaved profile put the face's texture
    behind the head model and slid it across the face as it turned)."""
    density, _ = field(box_walls())([(0.0, 0.0, 0.296), (0.0, 0.0, -0.296), (0.0, 0.0, 0.31)])
    assert density[0] > 100 and density[1] > 100
    assert density[2] < 1e-3
