"""The rasterizers: coverage, barycentrics, depth, the clip-space helpers and backend parity."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avatar import march
from avatar.camera import camera_vector, generate_rays, project
from avatar.raster import (
    RasterError,
    RasterizerUnavailable,
    available_backends,
    default_backend,
    interpolate,
    orthographic_clip,
    perspective_clip,
    rasterize,
    uv_clip,
)


def clip2d(points, z=0.0) -> torch.Tensor:
    """NDC (x, y) points at depth z as clip positions with w = 1."""
    p = torch.as_tensor(points, dtype=torch.float32).reshape(-1, 2)
    zs = torch.as_tensor(z, dtype=torch.float32).expand(len(p)).reshape(-1, 1)
    return torch.cat([p, zs, torch.ones(len(p), 1)], dim=1)


def faces_of(rows) -> torch.Tensor:
    return torch.as_tensor(rows, dtype=torch.int32).reshape(-1, 3)


def pixel_centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """NDC x, y of every pixel centre, (H, W) each; row 0 is NDC y = -1."""
    x = (2 * np.arange(width) + 1) / width - 1
    y = (2 * np.arange(height) + 1) / height - 1
    return np.meshgrid(x, y, indexing="xy")


def reference_raster(ndc: np.ndarray, z: np.ndarray, faces: np.ndarray, height: int, width: int):
    """Brute force over every (triangle, pixel): winner id (-1 = none) and a mask of unambiguous pixels."""
    x, y = pixel_centres(height, width)
    p = np.stack([x.ravel(), y.ravel()], axis=1)[:, None, :]  # (P, 1, 2)
    a, b, c = (ndc[faces[:, k]][None] for k in range(3))  # (1, F, 2)

    def edge(u, v):
        return (v[..., 0] - u[..., 0]) * (p[..., 1] - u[..., 1]) - (v[..., 1] - u[..., 1]) * (p[..., 0] - u[..., 0])

    e0, e1, e2 = edge(b, c), edge(c, a), edge(a, b)
    area = e0 + e1 + e2
    b0, b1 = e0 / area, e1 / area
    b2 = 1 - b0 - b1
    inside = (b0 > 0) & (b1 > 0) & (b2 > 0)
    near_edge = (np.minimum(np.minimum(np.abs(b0), np.abs(b1)), np.abs(b2)) < 1e-4).any(axis=1)
    depth = b0 * z[faces[:, 0]] + b1 * z[faces[:, 1]] + b2 * z[faces[:, 2]]
    depth = np.where(inside, depth, np.inf)
    winner = np.where(np.isfinite(depth.min(axis=1)), depth.argmin(axis=1), -1)
    ordered = np.sort(depth, axis=1)
    with np.errstate(invalid="ignore"):  # inf - inf where fewer than two triangles cover a pixel
        close_depths = (ordered[:, 1] - ordered[:, 0]) < 1e-4
    clear = ~near_edge & ~(close_depths & np.isfinite(ordered[:, 0]))
    return winner.reshape(height, width), clear.reshape(height, width)


# ----------------------------------------------------------------------------------------- coverage

def test_half_screen_triangle_covers_exactly_the_pixels_below_its_hypotenuse():
    # Hypotenuse x + y = 0.2 passes between pixel centres, so the expected set is unambiguous.
    rast = rasterize(clip2d([[-1, -1], [1.2, -1], [-1, 1.2]]), faces_of([0, 1, 2]), 16, 16)
    rows, cols = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    expected = rows + cols <= 16
    assert np.array_equal(rast[..., 3].numpy() == 1, expected)
    assert np.all(rast[..., 3].numpy()[~expected] == 0)
    assert np.all(rast.numpy()[~expected] == 0)


def test_two_triangles_sharing_a_diagonal_through_pixel_centres_cover_each_pixel_once():
    pos = clip2d([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    first, second = faces_of([0, 1, 2]), faces_of([0, 2, 3])
    # The diagonal x = y runs through the centres of the 16 diagonal pixels.
    a = rasterize(pos, first, 16, 16)[..., 3] > 0
    b = rasterize(pos, second, 16, 16)[..., 3] > 0
    assert torch.all(a ^ b)
    both = rasterize(pos, torch.cat([first, second]), 16, 16)[..., 3]
    assert torch.equal(both, torch.where(a, 1.0, 2.0))


def test_fan_through_pixel_centres_covers_every_pixel_exactly_once():
    # A centre vertex on a pixel centre joined to the square's corners and edge midpoints: the shared
    # edges are horizontal, vertical and diagonal lines through pixel centres.
    h = w = 16
    c = (1 / w, 1 / h)
    ring = [(-1, -1), (c[0], -1), (1, -1), (1, c[1]), (1, 1), (c[0], 1), (-1, 1), (-1, c[1])]
    pos = clip2d([c] + ring)
    faces = [[0, 1 + k, 1 + (k + 1) % 8] for k in range(8)]
    coverage = sum((rasterize(pos, faces_of(f), h, w)[..., 3] > 0).to(torch.int32) for f in faces)
    assert torch.all(coverage == 1)
    # Winding does not matter (no backface culling) and does not change the shared-edge ownership.
    flipped = sum((rasterize(pos, faces_of(f[::-1]), h, w)[..., 3] > 0).to(torch.int32) for f in faces)
    assert torch.all(flipped == 1)


def test_random_triangles_match_a_brute_force_reference():
    rng = np.random.default_rng(3)
    count = 60
    centres = rng.uniform(-1.2, 1.2, size=(count, 1, 2))
    sizes = rng.choice([0.05, 0.3, 1.5, 4.0], size=(count, 1, 1))  # tiny, small, large, off-screen
    ndc = (centres + sizes * rng.uniform(-1, 1, size=(count, 3, 2))).reshape(-1, 2)
    z = rng.uniform(-0.9, 0.9, size=len(ndc))
    faces = np.arange(len(ndc)).reshape(-1, 3)
    rast = rasterize(clip2d(ndc, z), faces_of(faces), 40, 48)
    winner, clear = reference_raster(ndc, z, faces, 40, 48)
    got = rast[..., 3].numpy().astype(np.int64) - 1
    assert clear.mean() > 0.9
    assert np.array_equal(got[clear], winner[clear])
    assert (winner >= 0).sum() > 500


def test_triangles_behind_the_camera_and_degenerate_ones_are_culled():
    pos = torch.tensor([[-1, -1, 0, 1], [1, -1, 0, 1], [0, 1, 0, -1], [0.5, 0.5, 0, 1]], dtype=torch.float32)
    faces = faces_of([[0, 1, 2], [0, 1, 1], [0, 3, 3]])
    assert torch.count_nonzero(rasterize(pos, faces, 8, 8)) == 0


def test_fragments_outside_the_depth_range_are_dropped():
    # z/w = -0.5 + 4 * (weight of the top corner): above 1 in the image's top quarter (y > 0.5).
    pos = clip2d([[-1, -1], [3, -1], [-1, 3]], z=[-0.5, -0.5, 3.5])
    rast = rasterize(pos, faces_of([0, 1, 2]), 32, 32)
    z = rast[..., 2][rast[..., 3] > 0]
    assert z.numel() > 100 and z.max() <= 1.0
    _, y = pixel_centres(32, 32)
    assert np.array_equal(rast[..., 3].numpy() > 0, y < 0.5)


def test_empty_input_gives_an_all_zero_raster():
    rast = rasterize(torch.zeros(0, 4), torch.zeros(0, 3, dtype=torch.int32), 5, 7)
    assert rast.shape == (5, 7, 4) and rast.dtype == torch.float32
    assert torch.count_nonzero(rast) == 0
    rast = rasterize(clip2d([[0, 0], [1, 0], [0, 1]]), torch.zeros(0, 3, dtype=torch.int64), 4, 4)
    assert torch.count_nonzero(rast) == 0


# ----------------------------------------------------------------------------------- barycentrics

def test_barycentrics_match_analytic_values_at_pixel_centres():
    corners = np.array([[-0.7, -0.8], [0.9, -0.3], [-0.2, 0.85]])
    rast = rasterize(clip2d(corners), faces_of([0, 1, 2]), 24, 20)
    x, y = pixel_centres(24, 20)
    covered = rast[..., 3].numpy() > 0
    assert covered.sum() > 100
    # Solve p = u*a0 + v*a1 + (1-u-v)*a2 for (u, v) at each covered centre.
    m = np.stack([corners[0] - corners[2], corners[1] - corners[2]], axis=1)
    rhs = np.stack([x[covered], y[covered]], axis=1) - corners[2]
    uv = np.linalg.solve(m, rhs.T).T
    np.testing.assert_allclose(rast[..., 0].numpy()[covered], uv[:, 0], atol=1e-6)
    np.testing.assert_allclose(rast[..., 1].numpy()[covered], uv[:, 1], atol=1e-6)
    # Interpolating the corners' own positions gives back each pixel centre.
    xy = interpolate(torch.tensor(corners, dtype=torch.float32), rast, faces_of([0, 1, 2])).numpy()
    np.testing.assert_allclose(xy[covered], np.stack([x[covered], y[covered]], axis=1), atol=1e-5)


def test_perspective_barycentrics_match_the_ray_plane_intersection():
    cam = camera_vector(yaw_deg=25.0, pitch_deg=10.0)
    # A quad tilted away from the camera, so w varies strongly across it.
    quad = np.array([[-0.45, -0.4, 0.4], [0.45, -0.4, 0.4], [0.45, 0.4, -0.5], [-0.45, 0.4, -0.5]])
    faces = faces_of([[0, 1, 2], [0, 2, 3]])
    h, w = 48, 40
    rast = rasterize(perspective_clip(torch.tensor(quad, dtype=torch.float32), cam), faces, h, w)
    covered = (rast[..., 3] > 0).numpy()
    assert covered.sum() > 300
    world = interpolate(torch.tensor(quad, dtype=torch.float64), rast, faces).numpy()

    origins, dirs = (t.numpy().astype(np.float64).reshape(h, w, 3) for t in generate_rays(cam, h, w))
    normal = np.cross(quad[1] - quad[0], quad[3] - quad[0])
    t = ((quad[0] - origins) @ normal) / (dirs @ normal)
    hits = origins + t[..., None] * dirs
    np.testing.assert_allclose(world[covered], hits[covered], atol=2e-5)
    # And the raster's depth is the OpenGL depth of that point.
    _, z_cam = project(hits[covered], cam)
    near, far = 0.1, 10.0
    z_ndc = (far + near) / (far - near) - 2 * far * near / ((far - near) * z_cam)
    np.testing.assert_allclose(rast[..., 2].numpy()[covered], z_ndc, atol=1e-5)
    # The same quad with w divided out (screen-space, affine interpolation) is visibly off, so the
    # comparison above does check perspective correction.
    clip = perspective_clip(torch.tensor(quad, dtype=torch.float64), cam)
    flat = rasterize(clip / clip[:, 3:], faces, h, w)
    affine = interpolate(torch.tensor(quad, dtype=torch.float64), flat, faces).numpy()
    assert np.abs(affine[covered] - hits[covered]).max() > 1e-2


# ------------------------------------------------------------------------------------------- depth

def test_the_nearer_of_two_overlapping_triangles_wins_in_either_order():
    tri = [[-1, -1], [1, -1], [0, 1]]
    near, far = clip2d(tri, z=-0.2), clip2d(tri, z=0.4)
    for pos, nearer in ((torch.cat([near, far]), 1), (torch.cat([far, near]), 2)):
        rast = rasterize(pos, faces_of([[0, 1, 2], [3, 4, 5]]), 16, 16)
        ids = rast[..., 3][rast[..., 3] > 0]
        assert ids.numel() > 50 and torch.all(ids == nearer)
        assert torch.allclose(rast[..., 2][rast[..., 3] > 0], torch.tensor(-0.2))


def test_crossing_triangles_split_the_overlap_by_depth():
    # Two triangles crossing at x = 0: each is nearer on its own side.
    a = clip2d([[-1, -1], [1, -1], [0, 1]], z=[-0.5, 0.5, 0.0])
    b = clip2d([[-1, -1], [1, -1], [0, 1]], z=[0.5, -0.5, 0.0])
    rast = rasterize(torch.cat([a, b]), faces_of([[0, 1, 2], [3, 4, 5]]), 16, 16)
    x, _ = pixel_centres(16, 16)
    ids = rast[..., 3].numpy()
    covered = ids > 0
    assert np.all(ids[covered & (x < 0)] == 1) and np.all(ids[covered & (x > 0)] == 2)


def test_equal_depth_goes_to_the_lowest_triangle_id():
    big = clip2d([[-1, -1], [1, -1], [-1, 1]], z=0.25)
    small = clip2d([[-0.8, -0.8], [0.2, -0.8], [-0.8, 0.2]], z=0.25)
    pos = torch.cat([big, small])
    rast = rasterize(pos, faces_of([[3, 4, 5], [0, 1, 2]]), 16, 16)
    alone = rasterize(small, faces_of([0, 1, 2]), 16, 16)[..., 3] > 0
    assert torch.all(rast[..., 3][alone] == 1)
    rast = rasterize(pos, faces_of([[0, 1, 2], [3, 4, 5]]), 16, 16)
    assert torch.all(rast[..., 3][rast[..., 3] > 0] == 1)
    # Exact duplicates: the first copy wins everywhere.
    rast = rasterize(big, faces_of([[0, 1, 2], [0, 1, 2], [1, 2, 0]]), 16, 16)
    assert torch.all(rast[..., 3][rast[..., 3] > 0] == 1)


def test_interpolate_with_a_separate_attribute_index_buffer():
    pos = clip2d([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    faces = faces_of([[0, 1, 2], [0, 2, 3]])
    # A UV seam: the two triangles use their own copies of the shared corners.
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [10.0, 10.0], [11.0, 11.0], [10.0, 11.0]])
    faces_uv = faces_of([[0, 1, 2], [3, 4, 5]])
    rast = rasterize(pos, faces, 8, 8)
    out = interpolate(uv, rast, faces_uv)
    assert out.shape == (8, 8, 2)
    u, v = rast[..., 0:1], rast[..., 1:2]
    tri = rast[..., 3].long() - 1
    corners = uv[faces_uv.long()[tri]]  # (H, W, 3, 2)
    expected = u * corners[..., 0, :] + v * corners[..., 1, :] + (1 - u - v) * corners[..., 2, :]
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.all(out[tri == 1] >= 9.99) and torch.all(out[tri == 0] <= 1.0 + 1e-6)
    empty = rasterize(clip2d([[0.5, 0.5], [0.9, 0.5], [0.5, 0.9]]), faces_of([0, 1, 2]), 8, 8)
    assert torch.all(interpolate(uv[:3], empty, faces_of([0, 1, 2]))[empty[..., 3] == 0] == 0)


# ------------------------------------------------------------------------------- clip-space helpers

@pytest.mark.parametrize("plane, axes", [("xy", (0, 1)), ("xz", (0, 2)), ("zx", (2, 0))])
def test_orthographic_clip_matches_grid_sample_indexing(plane, axes):
    h, w = 48, 64
    point = np.array([0.13, -0.21, 0.07])
    # A small triangle around the point in the plane's two axes.
    offsets = np.array([[-0.04, -0.03], [0.05, -0.03], [0.0, 0.05]])
    corners = np.repeat(point[None], 3, axis=0)
    corners[:, axes[0]] += offsets[:, 0]
    corners[:, axes[1]] += offsets[:, 1]
    verts = torch.tensor(corners, dtype=torch.float32)
    rast = rasterize(orthographic_clip(verts, plane), faces_of([0, 1, 2]), h, w)
    image = interpolate(verts, rast, faces_of([0, 1, 2])).permute(2, 0, 1)[None]  # (1, 3, H, W)
    coverage = (rast[..., 3] > 0).to(torch.float32)[None, None]
    grid = torch.tensor([point[axes[0]], point[axes[1]]], dtype=torch.float32).view(1, 1, 1, 2) / 0.5
    assert F.grid_sample(coverage, grid, mode="nearest", align_corners=False).item() == 1.0
    sampled = F.grid_sample(image, grid, mode="bilinear", align_corners=False).view(3).numpy()
    # Bilinear sampling of a linear attribute inside the triangle gives back the point itself.
    np.testing.assert_allclose(sampled[list(axes)], point[list(axes)], atol=1e-5)


@pytest.mark.parametrize("plane, depth_axis", [("xy", 2), ("xz", 1), ("zx", 1)])
def test_orthographic_clip_keeps_the_surface_nearest_the_viewer(plane, depth_axis):
    tri = np.array([[-0.3, -0.3, 0.0], [0.3, -0.3, 0.0], [0.0, 0.3, 0.0]])
    if plane == "xz":
        tri = tri[:, [0, 2, 1]]
    elif plane == "zx":
        tri = tri[:, [1, 2, 0]]
    low, high = tri.copy(), tri.copy()
    low[:, depth_axis] = -0.2
    high[:, depth_axis] = 0.3
    verts = torch.tensor(np.concatenate([low, high]), dtype=torch.float32)
    rast = rasterize(orthographic_clip(verts, plane), faces_of([[0, 1, 2], [3, 4, 5]]), 16, 16)
    ids = rast[..., 3][rast[..., 3] > 0]
    assert ids.numel() > 20 and torch.all(ids == 2)


def test_perspective_clip_agrees_with_camera_projection():
    import trimesh

    verts = trimesh.creation.icosphere(subdivisions=2, radius=0.4).vertices
    cam = camera_vector(yaw_deg=-30.0, pitch_deg=15.0, roll_deg=5.0)
    clip = perspective_clip(torch.tensor(verts, dtype=torch.float64), cam).numpy()
    uv, depth = project(verts, cam)
    np.testing.assert_allclose((clip[:, :2] / clip[:, 3:] + 1) / 2, uv, atol=1e-9)
    np.testing.assert_allclose(clip[:, 3], depth, atol=1e-9)
    z_ndc = clip[:, 2] / clip[:, 3]
    assert np.all((z_ndc > -1) & (z_ndc < 1))
    # Nearer vertices get smaller depth.
    assert np.all(np.diff(z_ndc[np.argsort(depth)]) > 0)


# ------------------------------------------------------------------------------ backends and errors

def test_the_cpu_backend_is_deterministic():
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.45)
    verts = torch.tensor(mesh.vertices, dtype=torch.float32)
    pos = perspective_clip(verts, camera_vector(yaw_deg=40.0))
    first = rasterize(pos, torch.tensor(mesh.faces), 64, 64)
    assert torch.equal(first, rasterize(pos, torch.tensor(mesh.faces), 64, 64))
    assert (first[..., 3] > 0).sum() > 1000


def test_chunking_and_row_bands_do_not_change_the_result(monkeypatch):
    import avatar.raster.cpu as cpu

    rng = np.random.default_rng(11)
    ndc = rng.uniform(-1.5, 1.5, size=(90, 2))
    pos = clip2d(ndc, rng.uniform(-0.9, 0.9, size=90))
    faces = faces_of(np.arange(90).reshape(-1, 3)).long()
    whole = cpu.rasterize_torch(pos, faces, 37, 50)
    # Smaller than any triangle's candidate grid: every chunk is one triangle, split into row bands.
    monkeypatch.setattr(cpu, "MAX_CANDIDATES_PER_CHUNK", 3)
    assert torch.equal(cpu.rasterize_torch(pos, faces, 37, 50), whole)
    assert (whole[..., 3] > 0).sum() > 1000


def _triangle_soups():
    """Clip-space soups that reach every branch of the rasterizer: corners on pixel centres and edges
    (ties), w <= 0 (culled), degenerate triangles, boxes cut by every border, perspective w."""
    rng = np.random.default_rng(7)
    for trial in range(12):
        n = 240
        xy = rng.uniform(-1.6, 1.6, size=(n, 2))
        if trial % 3 == 0:
            xy = np.round(xy * 8) / 8  # on pixel centres and edges of a 16-pixel grid
        w = rng.uniform(0.3, 2.0, size=(n, 1)) if trial % 2 else np.ones((n, 1))
        pos = np.concatenate([xy * w, rng.uniform(-1.1, 1.1, size=(n, 1)) * w, w], axis=1)
        if trial % 4 == 1:
            pos[::9, 3] = -0.5
        faces = rng.integers(0, n, size=(160, 3))
        faces[::13, 2] = faces[::13, 1]  # degenerate
        yield torch.tensor(pos, dtype=torch.float32), torch.tensor(faces), int(rng.integers(1, 70)), \
            int(rng.integers(1, 70))


@pytest.mark.skipif(march.load() is None, reason=f"march kernel unavailable: {march.unavailable_reason()}")
def test_the_compiled_cpu_rasterizer_is_the_torch_one_to_the_bit(synthetic):
    """The "cpu" backend runs the compiled rasterizer when it is built; it must give exactly the torch
    implementation's raster (which the other tests here also hold to brute-force references)."""
    import avatar.raster.cpu as cpu
    from avatar.head_registry import head_for_avatar

    cases = list(_triangle_soups())
    head = head_for_avatar(synthetic)
    verts = torch.from_numpy(head.posed(np.full(52, 0.4, np.float32), synthetic.identity))
    faces = torch.from_numpy(head.faces.astype(np.int64))
    cases += [(orthographic_clip(verts, "xy"), faces, 256, 256), (orthographic_clip(verts, "zy"), faces, 64, 80),
              (perspective_clip(verts, camera_vector(yaw_deg=30)), faces, 97, 131)]
    for pos, tri, h, w in cases:
        compiled = rasterize(pos, tri, h, w)
        assert torch.equal(compiled, cpu.rasterize_torch(pos, tri, h, w))
    assert (compiled[..., 3] > 0).sum() > 3000


def test_backend_listing_and_bad_input_errors():
    assert available_backends()[0] == "cpu"
    assert default_backend() in available_backends()
    pos, faces = clip2d([[0, 0], [1, 0], [0, 1]]), faces_of([0, 1, 2])
    with pytest.raises(ValueError, match="cpu"):
        rasterize(pos, faces, 8, 8, backend="vulkan")
    with pytest.raises(RasterError, match="out of range"):
        rasterize(pos, faces_of([0, 1, 3]), 8, 8)
    with pytest.raises(RasterError, match=r"\(N, 4\)"):
        rasterize(pos[:, :3], faces, 8, 8)
    with pytest.raises(RasterError, match="height"):
        rasterize(pos, faces, 0, 8)
    with pytest.raises(RasterError, match="integer"):
        rasterize(pos, faces.float(), 8, 8)
    with pytest.raises(RasterError, match="plane"):
        orthographic_clip(torch.zeros(3, 3), "yz")
    with pytest.raises(RasterError, match="25"):
        perspective_clip(torch.zeros(3, 3), np.zeros(16))


def _nvdiffrast_ready() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("nvdiffrast") is not None


@pytest.mark.skipif(_nvdiffrast_ready(), reason="nvdiffrast is usable here")
def test_nvdiffrast_backend_reports_what_is_missing():
    with pytest.raises(RasterizerUnavailable, match=r"nvdiffrast|CUDA"):
        rasterize(clip2d([[0, 0], [1, 0], [0, 1]]), faces_of([0, 1, 2]), 8, 8, backend="nvdiffrast")


@pytest.mark.skipif(not _nvdiffrast_ready(), reason="needs CUDA and nvdiffrast")
def test_cpu_and_nvdiffrast_agree_on_a_mesh():
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.45)
    verts = torch.tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.tensor(mesh.faces, dtype=torch.int32)
    for pos in (orthographic_clip(verts, "xy"), perspective_clip(verts, camera_vector(yaw_deg=30.0))):
        cpu = rasterize(pos, faces, 256, 256, backend="cpu")
        gpu = rasterize(pos, faces, 256, 256, backend="nvdiffrast").cpu()
        same = cpu[..., 3] == gpu[..., 3]
        assert same.float().mean() >= 0.995
        both = same & (cpu[..., 3] > 0)
        assert torch.allclose(cpu[..., :2][both], gpu[..., :2][both], atol=1e-4)
        assert torch.allclose(cpu[..., 2][both], gpu[..., 2][both], atol=1e-4)


def test_uv_clip_rows_follow_v_up_or_image_rows():
    # One triangle covering the bottom-left half of UV space (v small): its texels sit in the low rows
    # of the neural-texture layout and in the high rows of an image file's layout.
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5]])
    faces = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    up = rasterize(uv_clip(uv), faces, 8, 8)[..., 3] > 0
    down = rasterize(uv_clip(uv, image_rows_down=True), faces, 8, 8)[..., 3] > 0
    assert up[0].sum() > up[3].sum() > 0 and not up[-1].any()
    assert torch.equal(down, up.flip(0))
