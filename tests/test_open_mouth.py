"""What the front view sees through an open mouth is the mouth's own texture (avatar.head_walls)."""
import numpy as np
import torch

from avatar import camera as cam
from avatar import raster
from avatar.head_model import PART_ID
from avatar.render import Renderer
from avatar.surface_field import COLOUR_OFFSET, FRONT_RGB

SIZE = 96


def test_an_open_mouth_shows_its_own_texture_not_the_back_of_the_head(synthetic):
    # The front/back colour split is one depth per column: the back of an open mouth lies behind it, and
    # without the curtain it took the colour of the back of the head at the same x, y (skin, for the
    # synthetic head's neck): a skin-coloured arch above the out-stretched tongue, or a box for a mouth.
    renderer = Renderer(synthetic)
    head = renderer.head
    jaw = {"jawOpen": 1.0, "tongueOut": 1.0}
    posed = renderer.head_vertices(jaw)
    corners = posed[[head.landmarks["mouth_corner_left"], head.landmarks["mouth_corner_right"]]]
    camera = cam.camera_vector(fov_deg=4.0, shift=(0.0, float(corners[:, 1].mean()), 0.0))
    rendered = renderer.render(camera, expression=jaw, size=SIZE, neural_resolution=SIZE).rgb.numpy()
    # What the mesh shows there, and its colour in the avatar's texture.
    faces = torch.from_numpy(head.faces.astype(np.int32))
    rast = raster.rasterize(raster.perspective_clip(torch.from_numpy(posed.astype(np.float32)), camera),
                            faces, SIZE, SIZE)
    face = rast[..., 3].numpy().astype(np.int64) - 1
    inside = (face >= 0) & np.isin(head.face_part[np.maximum(face, 0)], [PART_ID["mouth_cavity"]])
    assert inside.sum() > 200  # the camera looks into the open mouth
    texture = torch.sigmoid(synthetic.planes[0, list(FRONT_RGB)] - COLOUR_OFFSET)  # the neural texture's colours
    uv = raster.interpolate(torch.from_numpy(head.uv.astype(np.float32)), rast,
                            torch.from_numpy(head.faces_uv.astype(np.int32)))
    expected = torch.nn.functional.grid_sample(texture[None], uv[None] * 2 - 1, mode="bilinear",
                                               align_corners=False)[0].permute(1, 2, 0).numpy()
    error = np.abs(rendered - expected).max(axis=-1)[inside]
    assert np.median(error) < 0.08, np.median(error)
    assert np.percentile(error, 90) < 0.25, np.percentile(error, 90)
