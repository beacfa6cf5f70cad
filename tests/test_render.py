"""Renderer: accelerated vs reference, coverage, expressions, poses; on the synthetic avatar."""
import math

import numpy as np
import pytest
import torch

from avatar import camera, raster
from avatar.decoder import RenderField, TriplaneDecoder, sample_static_planes
from avatar.expressions import to_expression
from avatar.render import Renderer, render_device

SIZE = 128


@pytest.fixture(scope="module")
def renderer(synthetic):
    return Renderer(synthetic)


def psnr(a, b) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(1 / max(mse, 1e-12))


def image_rows(points, cam, size):
    uv, _ = camera.project(points, cam)
    return uv[..., 1] * size


@pytest.mark.parametrize("yaw, pitch", [(0, 0), (30, 0), (-25, 10)])
def test_accelerated_matches_reference(renderer, yaw, pitch):
    """Against the plain marcher with enough samples to resolve the hull's walls (48+48 leave thin
    parts at the crown and the silhouette to chance), the accelerated path is within 40 dB."""
    cam = camera.camera_vector(yaw_deg=yaw, pitch_deg=pitch)
    fast = renderer.render(cam, size=SIZE)
    ref = renderer.render(cam, size=SIZE, reference=True, reference_samples=(192, 192))
    for background in ((0, 0, 0), (1, 1, 1)):  # composited both ways, so coverage differences count
        assert psnr(fast.over(background), ref.over(background)) >= 40


def test_accelerated_is_as_accurate_as_reference(renderer):
    """Against a dense 512+256-sample render, the accelerated path is at least as close as the 48+48 one."""
    cam = camera.camera_vector(yaw_deg=15)
    truth = renderer.render(cam, size=SIZE, reference=True, reference_samples=(512, 256))
    fast = renderer.render(cam, size=SIZE)
    ref = renderer.render(cam, size=SIZE, reference=True)
    fast_psnr = psnr(fast.over((1, 1, 1)), truth.over((1, 1, 1)))
    assert fast_psnr >= 40
    assert fast_psnr >= psnr(ref.over((1, 1, 1)), truth.over((1, 1, 1))) - 1.0


def test_alpha_zero_away_from_head(renderer):
    res = renderer.render(camera.camera_vector(radius=6.0), size=SIZE)
    a = res.alpha.numpy()
    corners = np.concatenate([a[:12, :12].ravel(), a[:12, -12:].ravel(), a[-12:, -12:].ravel()])
    assert corners.max() < 1e-3
    assert a[SIZE // 2, SIZE // 2] > 0.99  # and the head itself is opaque
    assert not torch.isnan(res.rgb).any() and not torch.isnan(res.depth).any()


def test_yaw_changes_the_image(renderer):
    a = renderer.render(camera.camera_vector(), size=SIZE).rgb
    b = renderer.render(camera.camera_vector(yaw_deg=30), size=SIZE).rgb
    assert float((a - b).abs().mean()) > 0.02


def test_jaw_open_moves_lower_face_only(renderer, synthetic):
    cam = camera.camera_vector()
    neutral = renderer.render(cam, size=SIZE).rgb.numpy()
    jaw = renderer.render(cam, {"jawOpen": 1.0}, size=SIZE).rgb.numpy()
    diff = np.abs(jaw - neutral).mean(-1)
    head = renderer.head
    verts = head.identity_vertices(synthetic.identity)
    brow_row = image_rows(verts[[head.landmarks["brow_left"], head.landmarks["brow_right"]]], cam, SIZE).min()
    nose_row = image_rows(verts[head.landmarks["nose_tip"]], cam, SIZE)
    assert diff[int(nose_row) + 2:].mean() > 0.01          # mouth and chin change
    assert diff[: int(brow_row) - 2].max() < 0.01           # nothing above the eyes moves


def test_no_nan_for_extreme_inputs(renderer):
    res = renderer.render(camera.camera_vector(yaw_deg=80, pitch_deg=-60), np.ones(52, np.float32), size=64,
                          head_pose=(0.5, -0.3, 0.2), eye=np.array([0.3, -0.3, 0.3, -0.3]))
    for t in (res.rgb, res.alpha, res.depth):
        assert not torch.isnan(t).any()


def test_head_pose_equals_counter_rotated_camera(renderer):
    cam = camera.camera_vector(yaw_deg=10)
    posed = renderer.render(cam, size=64, head_pose=(math.radians(15), 0.0, 0.0)).rgb
    moved = renderer.render(camera.camera_vector(yaw_deg=-5), size=64).rgb
    assert psnr(posed.numpy(), moved.numpy()) > 35


def test_render_field_is_exact(synthetic):
    decoder = TriplaneDecoder.from_asset(synthetic.decoder)
    field = RenderField(decoder)
    pts = torch.rand(2000, 3) - 0.5
    planes = synthetic.planes[1:4]
    names = synthetic.plane_names
    full_density, full_feats = decoder(sample_static_planes(planes, pts, names=names))
    density, rgb = field(sample_static_planes(planes[:, field.channels], pts, names=names) * 3)
    assert torch.allclose(density, full_density, rtol=1e-4, atol=1e-3)
    # The claim channels carry ramps of magnitude ~4e3: float32 sums in another order differ by ~1e-3.
    assert torch.allclose(rgb, full_feats[:, :3], atol=2e-3)
    # A dense decoder (every weight non-zero) keeps every channel.
    assert len(RenderField(TriplaneDecoder()).channels) == 32


def test_outputs_and_sizes(renderer):
    res = renderer.render(camera.camera_vector(), size=(96, 64))
    assert res.rgb.shape == (96, 64, 3) and res.alpha.shape == (96, 64)
    rgba = res.rgba8()
    assert rgba.dtype == np.uint8 and rgba.shape == (96, 64, 4)
    with pytest.raises(ValueError, match="outside"):
        renderer.render(camera.camera_vector(), size=4)
    with pytest.raises(camera.CameraError):
        renderer.render(np.zeros(25), size=64)


def test_density_grid_and_query(renderer):
    grid = renderer.density_grid(32)
    assert grid.shape == (32, 32, 32)
    assert grid[16, 16, 16] > 10 and grid[0, 0, 0] < 1e-3  # solid inside the head, empty in the corner
    dens, rgb = renderer.query(torch.tensor([[0.0, 0.0, 0.0], [0.49, 0.49, 0.49]]))
    assert dens[0] > 10 and dens[1] < 1e-3 and rgb.shape == (2, 3)


def test_front_raster_equals_full_rasterization(renderer):
    """Cached still triangles + culled moving ones give exactly the raster of the whole posed mesh."""
    composer = renderer.composer
    for expression in (None, {"jawOpen": 1.0, "eyeBlinkLeft": 1.0, "tongueOut": 1.0, "eyeLookUpRight": 1.0}):
        verts = torch.from_numpy(composer.vertices(to_expression(expression), np.array([0.2, 0.1, -0.1, 0.3])))
        full = raster.rasterize(raster.orthographic_clip(verts, "xy"), composer.faces, 256, 256)
        assert torch.equal(composer.front_raster(verts), full)


def test_edge_upsampler_is_closer_to_a_native_render(renderer):
    """A 4x-upsampled frame: the edge-aware upsampler puts the silhouette nearer a native-resolution
    render than bilinear does, and leaves the inside of the head as bilinear made it."""
    cam = camera.camera_vector(yaw_deg=-20, pitch_deg=5)
    native = renderer.render(cam, size=256, neural_resolution=256)
    bilinear = renderer.render(cam, size=256, neural_resolution=64, upsampler="bilinear")
    edge = renderer.render(cam, size=256, neural_resolution=64, upsampler="edge")
    for background in ((0, 0, 0), (1, 1, 1)):
        assert psnr(edge.over(background), native.over(background)) > psnr(bilinear.over(background),
                                                                           native.over(background)) + 0.5
    inside = (bilinear.alpha > 0.999) & (edge.alpha > 0.999)
    assert inside.float().mean() > 0.2
    assert float((edge.rgb - bilinear.rgb)[inside].abs().max()) < 1e-3
    with pytest.raises(ValueError, match="upsampler must be one of"):
        renderer.render(cam, size=64, upsampler="bicubic")
    with pytest.raises(ValueError, match="neural resolution 4 is outside"):
        renderer.render(cam, size=64, neural_resolution=4)


def test_front_plane_composes_only_the_moving_part(renderer):
    """Per expression only the texels the moving part of the mesh wins are composed, over a front with
    the still part composed once; the result is the whole posed mesh composed from scratch."""
    composer = renderer.composer
    still = composer.still_front.clone()
    eye = np.array([0.2, 0.1, -0.1, 0.3], np.float32)
    for expression in (None, {"jawOpen": 1.0, "eyeBlinkLeft": 1.0, "mouthSmileRight": 0.7}):
        expression = to_expression(expression)
        front = composer.front(expression, eye)
        assert composer.front(expression, eye) is front  # reused while the expression does not change
        verts = torch.from_numpy(composer.vertices(expression, eye))
        scratch = composer.static[0].permute(1, 2, 0).contiguous().permute(2, 0, 1)
        full = composer.front_raster(verts)
        composer._compose(scratch, verts, full, full[..., 3].reshape(-1) > 0)
        assert torch.equal(front, scratch)
        _, wins = composer._moving_raster(verts)
        changed = (front != still).any(dim=0)
        assert bool(changed.any()) and not bool((changed & ~wins).any())
        assert torch.equal(composer.planes(expression, eye)[0], front)
        assert torch.equal(composer.planes(expression, eye)[1:], composer.static[1:])
    assert torch.equal(composer.still_front, still)  # never written by a frame


def test_surfaces_are_coloured_where_they_are(renderer):
    """Open mouth (lips and mouth interior change colour within a fine cell of the surface), turned
    head: the accelerated march, which finds each surface crossing within its step, is within 45 dB of
    a dense 512+256-sample render (a march that colours a cell inside the surface measured 41 dB)."""
    cam = camera.camera_vector(yaw_deg=-30)
    expression = {"jawOpen": 0.9, "mouthSmileLeft": 0.25, "mouthSmileRight": 0.25}
    truth = renderer.render(cam, expression, size=SIZE, reference=True, reference_samples=(512, 256))
    fast = renderer.render(cam, expression, size=SIZE)
    for background in ((0, 0, 0), (1, 1, 1)):
        assert psnr(fast.over(background), truth.over(background)) >= 45


def test_render_device_follows_the_backend(renderer):
    assert render_device("cpu") == torch.device("cpu")
    assert render_device("nvdiffrast").type == "cuda"
    assert render_device("nvdiffrast", "cpu") == torch.device("cpu")
    assert renderer.device == torch.device("cpu")
    fine, _ = renderer.occupancy
    for tensor in (renderer.composer.static, renderer.composer.still_front, renderer.field.w1, fine.static):
        assert tensor.device == renderer.device


@pytest.mark.skipif(not torch.cuda.is_available() or "nvdiffrast" not in raster.available_backends(),
                    reason="needs a CUDA device and nvdiffrast")
def test_cuda_renderer_matches_the_cpu_one(synthetic):
    """Planes, rays, occupancy, composer and march on the GPU (torch march, nvdiffrast front plane):
    the same frames as the CPU renderer's torch march, up to float32 summation order."""
    gpu = Renderer(synthetic, backend="nvdiffrast")
    cpu = Renderer(synthetic, march="torch")
    assert gpu.device.type == "cuda" and gpu.march == "torch"
    assert gpu.composer.still_front.is_cuda and gpu.occupancy[0].static.is_cuda
    with pytest.raises(RuntimeError, match="CPU only"):
        Renderer(synthetic, backend="nvdiffrast", march="kernel")
    for yaw, expression in ((0, None), (35, {"jawOpen": 0.8, "eyeBlinkLeft": 1.0})):
        cam = camera.camera_vector(yaw_deg=yaw)
        a, b = gpu.render(cam, expression, size=SIZE), cpu.render(cam, expression, size=SIZE)
        assert a.rgb.device.type == "cpu"
        for background in ((0, 0, 0), (1, 1, 1)):
            assert psnr(a.over(background), b.over(background)) >= 50
