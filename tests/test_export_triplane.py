"""Triplane export: EXR planes reload exactly and the JSON + .bin alone rebuild the field."""
import json

import numpy as np
import pytest
import torch
from export_helpers import small_avatar, small_head_model

from avatar.decoder import TriplaneDecoder, sample_static_planes
from exporter.options import ExportError
from exporter.triplane import export_triplane, read_exr


@pytest.fixture(scope="module")
def exported():
    head = small_head_model()
    avatar = small_avatar(head, seed=3)
    # A decoder with non-trivial weights everywhere, so the check is not dominated by zeros.
    gen = torch.Generator().manual_seed(11)
    avatar.decoder = {k: (torch.randn(v.shape, generator=gen) * 0.5) for k, v in avatar.decoder.items()
                      if k.startswith("net.")} | {k: v for k, v in avatar.decoder.items() if k.startswith("raster.")}
    return avatar, export_triplane(avatar)


def _manifest(files):
    return json.loads(files["triplane/triplane.json"])


def _planes_from_export(files) -> np.ndarray:
    manifest = _manifest(files)
    shape = manifest["shape"]
    planes = np.zeros((shape["planes"], shape["channels"], shape["height"], shape["width"]), np.float32)
    for image in manifest["images"]:
        pixels = read_exr(files[image["path"]]).astype(np.float32)
        for i, name in enumerate("RGBA"):
            planes[image["plane"], image["channels"][name]] = pixels[..., i]
    return planes


def test_files_and_packing(exported):
    _, files = exported
    manifest = _manifest(files)
    exrs = sorted(p for p in files if p.endswith(".exr"))
    assert len(exrs) == 32  # 4 planes x 32 channels / 4 per image
    assert manifest["plane_order"] == ["uv", "xy", "xz", "zx"]
    assert [im["path"] for im in manifest["images"]] == exrs
    assert manifest["box"]["min"] == [-0.5] * 3 and manifest["box"]["max"] == [0.5] * 3
    assert read_exr(files[exrs[0]]).dtype == np.float32


def test_exr_planes_reload_exactly(exported):
    avatar, files = exported
    planes = avatar.planes.numpy()
    back = _planes_from_export(files)
    np.testing.assert_array_equal(back, planes)
    ranges = _manifest(files)["value_ranges"]
    np.testing.assert_allclose(ranges["per_plane_per_channel_min"], planes.min(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_allclose(ranges["per_plane_per_channel_max"], planes.max(axis=(2, 3)), rtol=1e-6)


def _bilinear_zero_padded(plane: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sample a (C, H, W) plane at coordinates in [-1, 1]: a -> column, b -> row, texel centres."""
    c, h, w = plane.shape
    x = (a + 1) * w / 2 - 0.5
    y = (b + 1) * h / 2 - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    out = np.zeros((len(a), c), np.float64)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            values = np.zeros((len(a), c))
            values[inside] = plane[:, yi[inside], xi[inside]].T
            out += weight[:, None] * values
    return out


def _softplus(x):
    return np.logaddexp(0.0, x)


def _numpy_field(files, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density and features at world points from the exported files only (static planes)."""
    manifest = _manifest(files)
    planes = _planes_from_export(files).astype(np.float64)
    blob = files[manifest["decoder"]["weights_file"]]
    weights = {t["name"]: np.frombuffer(blob, "<f4", count=int(np.prod(t["shape"])), offset=t["offset"])
               .reshape(t["shape"]).astype(np.float64) for t in manifest["decoder"]["tensors"]}
    p = points / 0.5
    axis = {"x": 0, "y": 1, "z": 2}
    feats = 0.0
    for entry in manifest["planes"][1:]:   # each plane's axes as the manifest states them
        column, row = (axis[entry[key].split()[1].rstrip(",")] for key in ("columns", "rows"))
        feats = feats + _bilinear_zero_padded(planes[entry["index"]], p[:, column], p[:, row])
    feats = feats / 3
    layers = manifest["decoder"]["layers"]
    h = _softplus(feats @ weights[layers[0]["weight"]].T + weights[layers[0]["bias"]])
    o = h @ weights[layers[1]["weight"]].T + weights[layers[1]["bias"]]
    sigma = _softplus(o[:, 0] - 1.0)
    colour = 1 / (1 + np.exp(-o[:, 1:])) * 1.002 - 0.001
    return sigma, colour


def test_json_and_bin_reproduce_the_decoder(exported):
    avatar, files = exported
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, (1000, 3))
    sigma, colour = _numpy_field(files, points)
    decoder = TriplaneDecoder.from_asset(avatar.decoder)
    planes = avatar.planes[1:4]
    with torch.no_grad():
        d_ref, f_ref = decoder(sample_static_planes(planes, torch.from_numpy(points).float(),
                                                    names=avatar.plane_names))
    np.testing.assert_allclose(sigma, d_ref.numpy(), atol=1e-3, rtol=0)
    np.testing.assert_allclose(colour, f_ref.numpy(), atol=1e-3, rtol=0)
    assert np.ptp(sigma) > 0.1  # the comparison covers a range of values, not a constant


def test_decoder_description_names_every_tensor(exported):
    avatar, files = exported
    manifest = _manifest(files)
    tensors = {t["name"] for t in manifest["decoder"]["tensors"]}
    assert tensors == set(avatar.decoder)
    assert sum(t["bytes"] for t in manifest["decoder"]["tensors"]) == len(files["triplane/decoder.bin"])
    assert "softplus" in manifest["decoder"]["layers"][0]["activation"]


def test_export_is_deterministic(exported):
    avatar, files = exported
    assert export_triplane(avatar) == files


def test_plane_axes_follow_the_avatar(synthetic):
    """An avatar with a true side plane says so (file names, plane order, axes, the decoder's input), and
    the files alone rebuild its field."""
    files = export_triplane(synthetic)
    manifest = _manifest(files)
    points = np.random.default_rng(1).uniform(-0.3, 0.3, (500, 3))
    sigma, colour = _numpy_field(files, points)
    decoder = TriplaneDecoder.from_asset(synthetic.decoder)
    with torch.no_grad():
        d_ref, f_ref = decoder(sample_static_planes(synthetic.planes[1:4], torch.from_numpy(points).float(),
                                                    names=synthetic.plane_names))
    np.testing.assert_allclose(sigma, d_ref.numpy(), atol=1e-2, rtol=1e-4)
    np.testing.assert_allclose(colour[:, :3], f_ref.numpy()[:, :3], atol=2e-3)
    assert manifest["plane_order"] == ["uv", "xy", "xz", "zy"]
    side = manifest["planes"][3]
    assert side["columns"].startswith("world z") and side["rows"].startswith("world y")
    assert "s_zy" in manifest["decoder"]["input"]
    assert any(path.startswith("triplane/plane3_zy_") for path in files)
    assert manifest["decoder"]["composition"]["depth_test"] == "raster.depth_test"


def test_non_finite_planes_are_refused():
    bad = small_avatar(small_head_model(), seed=1)
    bad.planes = bad.planes.clone()
    bad.planes[2, 5, 0, 0] = float("inf")
    with pytest.raises(ExportError, match="NaN or infinite"):
        export_triplane(bad)
