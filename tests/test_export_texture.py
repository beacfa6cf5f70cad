import numpy as np
from export_helpers import position_colour, small_head_model

from exporter.texture_bake import bake_texture, dilate, surface_points


def _cross2(a, b):
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def test_texels_carry_the_colour_of_their_surface_point():
    head = small_head_model()
    size = 256
    positions = head.vertices
    texture = bake_texture(position_colour, positions, head.faces, head.uv, head.faces_uv, size)
    assert texture.shape == (size, size, 3) and texture.dtype == np.uint8
    rng = np.random.default_rng(0)
    checked = 0
    for t in rng.choice(len(head.faces), 60, replace=False):
        uv = head.uv[head.faces_uv[t]].mean(axis=0)
        c = head.uv[head.faces_uv[t]]
        area = abs(_cross2(c[1] - c[0], c[2] - c[0])) / 2
        if area * size * size < 30:
            continue  # too small in the atlas to own its centre texel for sure
        point = positions[head.faces[t]].mean(axis=0)
        # glTF orientation: image row 0 is v = 1.
        row, col = int((1 - uv[1]) * size), int(uv[0] * size)
        expected = position_colour(point[None])[0] * 255
        np.testing.assert_allclose(texture[row, col], expected, atol=6)
        checked += 1
    assert checked > 10


def test_coverage_matches_uv_area_and_gutters_are_filled():
    head = small_head_model()
    size = 128
    covered, points, _ = surface_points(head.vertices, head.faces, head.uv, head.faces_uv, size)
    corners = head.uv[head.faces_uv]
    uv_area = np.abs(_cross2(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])).sum() / 2
    assert abs(covered.mean() - uv_area) < 0.03
    assert len(points) == covered.sum()
    image = np.zeros((size, size, 3), np.float32)
    image[covered] = 1.0
    assert dilate(image, covered).min() == 1.0
