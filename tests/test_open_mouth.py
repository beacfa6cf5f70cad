"""What the front view sees through an open mouth is the mouth's own texture (avatar.head_walls)."""
import numpy as np
import pytest
import torch

from avatar import camera as cam
from avatar import raster
from avatar.head_model import PART_ID
from avatar.render import Renderer
from avatar.surface_field import COLOUR_OFFSET, FRONT_RGB

SIZE = 96
MOUTH_PARTS = ("mouth_cavity", "teeth", "tongue")


def _rendered_and_texture(avatar, renderer, camera, expression, parts):
    """The render (S, S, 3) through `camera`, the neural texture's colour (S, S, 3) of the surface the
    posed mesh shows at each pixel, and where that surface is one of `parts` (S, S) bool."""
    head = renderer.head
    posed = renderer.head_vertices(expression)
    rendered = renderer.render(camera, expression=expression, size=SIZE, neural_resolution=SIZE).rgb.numpy()
    faces = torch.from_numpy(head.faces.astype(np.int32))
    rast = raster.rasterize(raster.perspective_clip(torch.from_numpy(posed.astype(np.float32)), camera),
                            faces, SIZE, SIZE)
    face = rast[..., 3].numpy().astype(np.int64) - 1
    inside = (face >= 0) & np.isin(head.face_part[np.maximum(face, 0)], [PART_ID[name] for name in parts])
    texture = torch.sigmoid(avatar.planes[0, list(FRONT_RGB)] - COLOUR_OFFSET)  # the neural texture's colours
    uv = raster.interpolate(torch.from_numpy(head.uv.astype(np.float32)), rast,
                            torch.from_numpy(head.faces_uv.astype(np.int32)))
    expected = torch.nn.functional.grid_sample(texture[None], uv[None] * 2 - 1, mode="bilinear",
                                               align_corners=False)[0].permute(1, 2, 0).numpy()
    return rendered, expected, inside


def _mouth_camera(renderer, expression, pitch_deg=0.0, fov_deg=4.0):
    head = renderer.head
    posed = renderer.head_vertices(expression)
    corners = posed[[head.landmarks["mouth_corner_left"], head.landmarks["mouth_corner_right"]]]
    return cam.camera_vector(fov_deg=fov_deg, pitch_deg=pitch_deg, shift=(0.0, float(corners[:, 1].mean()), 0.0))


def test_an_open_mouth_shows_its_own_texture_not_the_back_of_the_head(synthetic):
    # The front/back colour split is one depth per column: the back of an open mouth lies behind it, and
    # without the curtain it took the colour of the back of the head at the same x, y (skin, for the
    # synthetic head's neck): a skin-coloured arch above the out-stretched tongue, or a box for a mouth.
    renderer = Renderer(synthetic)
    jaw = {"jawOpen": 1.0, "tongueOut": 1.0}
    rendered, expected, inside = _rendered_and_texture(synthetic, renderer, _mouth_camera(renderer, jaw), jaw,
                                                       ("mouth_cavity",))
    assert inside.sum() > 200  # the camera looks into the open mouth
    error = np.abs(rendered - expected).max(axis=-1)[inside]
    assert np.median(error) < 0.08, np.median(error)
    assert np.percentile(error, 90) < 0.25, np.percentile(error, 90)


@pytest.mark.xfail(strict=True, reason=(
    "the open mouth is a concavity the four depth walls cannot hold (avatar.surface_field): behind the "
    "posed front wall the hull is solid, so a camera above or below the mouth sees the top face of the "
    "lower lip's and teeth's extrusion (or the underside of the upper lip's), coloured by the front plane "
    "along its edge: vertical streaks over the mouth. Remove the mark when the walls' owner fixes it."))
@pytest.mark.parametrize("pitch_deg", [10.0, -10.0])
def test_an_open_mouth_seen_from_above_or_below_shows_its_own_texture(synthetic, pitch_deg):
    # A portrait camera sits a little above or below the mouth (the astronaut's: ~10 deg above). Seen
    # level (pitch 0) the render matches the mesh's texture (median error 0.002); from +-10 deg it showed
    # the lower teeth's and lips' edge colours stretched over the cavity and tongue (median 0.13-0.14).
    renderer = Renderer(synthetic)
    jaw = {"jawOpen": 0.6}
    camera = _mouth_camera(renderer, jaw, pitch_deg=pitch_deg, fov_deg=6.0)
    rendered, expected, inside = _rendered_and_texture(synthetic, renderer, camera, jaw, MOUTH_PARTS)
    assert inside.sum() > 500  # the camera looks into the open mouth
    error = np.abs(rendered - expected).max(axis=-1)[inside]
    assert np.median(error) < 0.05, np.median(error)
    assert np.percentile(error, 90) < 0.3, np.percentile(error, 90)
