"""The fused march kernel against the pure-torch accelerated march it replaces, and the fallback.

Tolerance: the kernel follows the torch path sample for sample in float32; only summation order
differs (the decoder's matrix products, the per-ray sums), and a ray stops at the sample that spends
its transmittance instead of at the end of that round of samples, which moves alpha (and the colour
scaled by it) by less than TRANSMITTANCE_EPS = 1e-3. So rgb, alpha and depth agree within 2e-3.
"""
import logging

import numpy as np
import pytest
import torch

from avatar import camera, march
from avatar.expressions import to_expression
from avatar.render import Renderer

SIZE = 64
TOLERANCE = 2e-3

CAMERAS = {
    "front": dict(),
    "three-quarter": dict(yaw_deg=35, pitch_deg=-8),
    "side-up": dict(yaw_deg=-80, pitch_deg=20),
    "behind": dict(yaw_deg=170),
    # rays cross the head's box but no occupied cell, and rays that miss the box entirely
    "box-corner": dict(shift=(0.47, 0.47, 0.3), fov_deg=2.0),
    "away": dict(shift=(0.0, 3.0, 0.0), fov_deg=5.0),
}
EXPRESSIONS = {"neutral": None, "talking": {"jawOpen": 0.8, "eyeBlinkLeft": 1.0, "mouthSmileRight": 0.6}}

kernel_built = pytest.mark.skipif(march.load() is None,
                                  reason=f"march kernel unavailable: {march.unavailable_reason()}")


def assert_same(a, b):
    for name in ("rgb", "alpha", "depth"):
        diff = float((getattr(a, name) - getattr(b, name)).abs().max())
        assert diff <= TOLERANCE, f"{name} differs by {diff:.2e}"


@pytest.fixture(scope="module")
def synthetic_pair(synthetic):
    return Renderer(synthetic, march="kernel") if march.load() else None, Renderer(synthetic, march="torch")


@kernel_built
@pytest.mark.parametrize("view", CAMERAS)
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_kernel_matches_torch_on_synthetic(synthetic_pair, view, expression):
    kernel, torch_path = synthetic_pair
    cam = camera.camera_vector(**CAMERAS[view])
    expr = EXPRESSIONS[expression]
    a = kernel.render(cam, expr, size=SIZE, eye=np.array([0.2, -0.1, 0.1, 0.2]))
    b = torch_path.render(cam, expr, size=SIZE, eye=np.array([0.2, -0.1, 0.1, 0.2]))
    assert_same(a, b)
    if view in ("box-corner", "away"):
        assert float(a.alpha.max()) == 0.0
    else:
        assert float(a.alpha.max()) > 0.99  # the comparison is about a visible head


@kernel_built
@pytest.mark.parametrize("view, expression", [("front", "talking"), ("three-quarter", "neutral"), ("behind", None)])
def test_kernel_matches_torch_on_astronaut(astronaut_avatar, view, expression):
    """The projective generator's planes carry the side claims (values up to ~4e3 whose differences
    are colours): the kernel must do torch's float32 arithmetic for these to agree."""
    cam = camera.camera_vector(**CAMERAS[view])
    expr = EXPRESSIONS.get(expression)
    a = Renderer(astronaut_avatar, march="kernel").render(cam, expr, size=SIZE)
    b = Renderer(astronaut_avatar, march="torch").render(cam, expr, size=SIZE)
    assert float(a.alpha.max()) > 0.99
    assert_same(a, b)


@kernel_built
def test_kernel_threads_do_not_change_the_image(synthetic_pair):
    kernel, _ = synthetic_pair
    cam = camera.camera_vector(yaw_deg=20)
    kernel.march_threads = 1
    one = kernel.render(cam, size=SIZE)
    kernel.march_threads = 4
    four = kernel.render(cam, size=SIZE)
    for name in ("rgb", "alpha", "depth"):
        assert torch.equal(getattr(one, name), getattr(four, name))


@kernel_built
def test_kernel_refuses_bad_input(synthetic_pair):
    kernel, _ = synthetic_pair
    module = march.load()
    n = 4
    rays = torch.zeros(n, 3)
    t = torch.zeros(n)
    plane = torch.zeros(8, 8, 1)
    grid = torch.zeros(4, 4, 4, dtype=torch.uint8)
    w = torch.zeros(1, 1), torch.zeros(1), torch.zeros(1, 1), torch.zeros(1)
    with pytest.raises(RuntimeError, match="three density and three colour planes"):
        module.march(rays, rays, t, t, 2, 2, [plane] * 2, [plane] * 3, kernel._plane_axes, *w, *w, grid, grid,
                     0.5, 8, 1e-3, 1e-3, 1.0, 1e-3, 0.25, 3, 1)
    with pytest.raises(RuntimeError, match="origins/dirs must be"):
        module.march(rays, rays, t, t, 3, 2, [plane] * 3, [plane] * 3, kernel._plane_axes, *w, *w, grid, grid,
                     0.5, 8, 1e-3, 1e-3, 1.0, 1e-3, 0.25, 3, 1)


def test_fallback_when_the_kernel_is_unavailable(synthetic, monkeypatch, caplog):
    """A failed build means the pure-torch march runs, says why in the log, and gives the same frames."""
    monkeypatch.setattr(march, "_state", {"module": None, "reason": "the march kernel is not built (run `make march`)"})
    monkeypatch.setattr("avatar.render._logged_march", set())
    with caplog.at_level(logging.INFO, logger="avatar.render"):
        fallback = Renderer(synthetic)
    assert fallback.march == "torch"
    assert "pure torch, because the march kernel is not built" in caplog.text
    with pytest.raises(RuntimeError, match="unavailable: the march kernel is not built"):
        Renderer(synthetic, march="kernel")
    with pytest.raises(ValueError, match="march must be one of"):
        Renderer(synthetic, march="gpu")
    cam = camera.camera_vector(yaw_deg=-15)
    assert_same(fallback.render(cam, size=SIZE), Renderer(synthetic, march="torch").render(cam, size=SIZE))


def test_loader_refuses_stale_or_disabled_builds(monkeypatch, tmp_path):
    monkeypatch.setenv(march.DISABLE_ENV, "torch")
    assert march._load() == (None, f"{march.DISABLE_ENV}=torch")
    monkeypatch.delenv(march.DISABLE_ENV)
    monkeypatch.setattr(march, "BUILD_DIR", tmp_path)
    assert "not built" in march._load()[1]
    (tmp_path / f"{march.MODULE_NAME}.so").write_bytes(b"not a library")
    (tmp_path / "stamp.txt").write_text("a build of another source")
    assert "another source, torch or Python" in march._load()[1]
    (tmp_path / "stamp.txt").write_text(march.build_stamp())
    module, reason = march._load()
    assert module is None and reason.startswith("the march kernel does not load")


@kernel_built
def test_kernel_occupancy_equals_torch(synthetic_pair):
    """The occupancy grid decoded by the kernel's density entry is the torch-decoded one."""
    kernel, torch_path = synthetic_pair
    for a, b in zip(kernel.occupancy, torch_path.occupancy):
        mismatch = int((a.static != b.static).sum())
        assert mismatch <= a.static.numel() * 1e-6, f"{mismatch} cells differ"  # threshold ties only
        assert bool(a.static.any())


@kernel_built
def test_kernel_occupancy_with_points_equals_torch(synthetic_pair, monkeypatch):
    """The kernel marks a frame's moving points into the grids exactly as OccupancyGrid.with_points
    does in torch (the cells holding a point and their neighbours, clamped at the grid's faces)."""
    kernel, _ = synthetic_pair
    points = torch.cat([kernel._moving_points(np.full(52, 0.5, np.float32), None),
                        torch.tensor([[-0.5, -0.5, -0.5], [0.49, 0.5, -0.2], [0.0, 0.0, 0.0]])])
    compiled = [grid.with_points(points) for grid in kernel.occupancy]
    monkeypatch.setattr(march, "_state", {"module": None, "reason": "switched off for the comparison"})
    for grid, got in zip(kernel.occupancy, compiled):
        assert torch.equal(got, grid.with_points(points))
        assert int(got.sum()) > int(grid.static.sum())


@kernel_built
def test_kernel_composes_the_front_plane_as_torch_does(synthetic, monkeypatch):
    """The composer's compiled steps around its grid_sample give the torch composer's planes to the bit."""
    from avatar.planes import FrontPlaneComposer

    def fronts(composer):
        return [composer.front(to_expression(e), eye) for e, eye in
                ((None, None), ({"jawOpen": 0.9, "mouthSmileLeft": 0.7}, np.array([0.3, -0.2, 0.1, 0.2])))]

    kernel = Renderer(synthetic, march="kernel")
    compiled = fronts(kernel.composer)
    monkeypatch.setattr(march, "_state", {"module": None, "reason": "switched off for the comparison"})
    reference = fronts(FrontPlaneComposer(kernel.head, synthetic.identity, synthetic.planes, kernel._decoder,
                                          channels=kernel.field.channels))
    for a, b in zip(compiled, reference):
        assert torch.equal(a, b)
    assert not torch.equal(compiled[0], compiled[1])
