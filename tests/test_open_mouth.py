"""What the front view sees through an open mouth keeps the texture's colour (avatar.head_walls)."""
import numpy as np

from avatar.head_model import embedded_head_model
from avatar.head_walls import VolumeNormals, assemble_walls, deepest_front, swept_mesh_volume
from avatar.surface_field import mesh_wall
from avatar.synthetic import prior_texture

RESOLUTION = 256
OPENED = 0.02   # a texel whose first surface lies this much deeper at some expression is seen through the mouth


def test_the_back_of_an_open_mouth_is_in_front_of_the_colour_split():
    # Behind its column's split a point takes the colour of the back of the head at the same x, y: the
    # throat seen through an open jaw showed as a flat skin- or hair-coloured box.
    head = embedded_head_model()
    identity = np.zeros(len(head.identity_names), np.float32)
    texture = np.asarray(prior_texture(head, (0.78, 0.6, 0.5)), np.float32)
    vol = swept_mesh_volume(head, identity, RESOLUTION)
    walls = assemble_walls(head, identity, texture, vol, np.zeros_like(vol),
                           lambda p: np.full(p.shape, 0.3, np.float32), VolumeNormals(vol), RESOLUTION)
    deepest = deepest_front(head, identity, RESOLUTION)
    neutral, _ = mesh_wall(head.identity_vertices(identity), head.faces, "front", RESOLUTION)
    opened = np.isfinite(deepest) & (deepest < np.nan_to_num(neutral, nan=np.inf) - OPENED)
    assert opened.sum() > 500  # the jaw's sweep opens the mouth
    behind = opened & (deepest <= walls.split[None, :])
    assert not behind.any(), f"{behind.sum()} texels seen through the mouth take the back colour"
