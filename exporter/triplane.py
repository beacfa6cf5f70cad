"""Triplane export: the four planes as float32 EXR, the decoder as float32 .bin, a JSON manifest.

Full float, not half: the embedded generators' planes carry depth ramps of magnitude ~4000 (steep
gates, avatar.surface_field), which half precision would round to +-4 and so lose the colours riding on
them.

Everything an engine shader needs to raymarch the avatar itself: `triplane.json` states the plane
order, which channels each EXR carries, per-channel value ranges, the box and world/camera
conventions, how plane 0 (the neural texture) becomes part of the xy plane for a posed mesh, and the
decoder's layers, activations and the byte offset of every weight in `decoder.bin`.

When the avatar's head model is known (given, or registered under its id), the export also carries
`occupancy.bin`: the accelerated renderer's two occupancy grids (avatar.occupancy), so a shader
skips the same empty space and so takes its samples at the same depths as avatar.render does.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
import OpenEXR
import torch

from avatar import camera
from avatar.asset import Avatar
from avatar.decoder import DENSITY_SHIFT, PLANE_AXES, SIGMOID_WIDEN, TriplaneDecoder
from avatar.head_model.base import HeadModel, HeadModelError
from avatar.head_registry import head_for_avatar
from avatar.render import REFINE_BISECTIONS, REFINE_OPTICAL, SAMPLES_PER_ROUND, TRANSMITTANCE_EPS, WEIGHT_EPS, Renderer
from exporter.options import ExportError

SCHEMA_VERSION = 1
DIRECTORY = "triplane"
CHANNELS_PER_IMAGE = 4
EXR_CHANNEL_NAMES = ("R", "G", "B", "A")
AXIS_NAMES = ("x", "y", "z")


def _exr_bytes(image: np.ndarray) -> bytes:
    """(H, W, 4) float32 -> EXR file bytes (ZIP compressed scanlines; no time or host attributes)."""
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    channels = {name: np.ascontiguousarray(image[..., i]) for i, name in enumerate(EXR_CHANNEL_NAMES)}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "plane.exr")
        with OpenEXR.File(header, channels) as f:
            f.write(path)
        with open(path, "rb") as f:
            return f.read()


def read_exr(data_or_path: bytes | bytearray | str | os.PathLike[str]) -> np.ndarray:
    """(H, W, 4) float32 of an EXR written by this module (R, G, B, A in channel order)."""
    if isinstance(data_or_path, (bytes, bytearray)):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "plane.exr")
            with open(path, "wb") as f:
                f.write(data_or_path)
            return read_exr(path)
    with OpenEXR.File(str(data_or_path)) as f:
        channels = f.channels()
        if "RGBA" in channels:
            return np.asarray(channels["RGBA"].pixels)
        return np.stack([np.asarray(channels[n].pixels) for n in EXR_CHANNEL_NAMES], axis=-1)


def _plane_entries(names: tuple[str, ...]) -> list[dict[str, Any]]:
    sampling = "bilinear, texel centres at (i + 0.5) / size (grid_sample align_corners=False)"
    entries = [{"index": 0, "name": "uv", "kind": "neural_texture",
                "columns": "u of the head model's UV layout, 0 -> 1", "rows": "v (v up), 0 -> 1; row 0 is v = 0",
                "outside": "clamp to edge", "sampling": sampling}]
    for index, name in enumerate(names, start=1):
        column, row = (AXIS_NAMES[a] for a in PLANE_AXES[name])
        entries.append({"index": index, "name": name, "kind": "static",
                        "columns": f"world {column}, -0.5 -> 0.5",
                        "rows": f"world {row}, -0.5 -> 0.5 (row 0 is {row} = -0.5)",
                        "outside": "zero", "sampling": sampling})
    return entries


def _decoder_blob(state: dict[str, torch.Tensor]) -> tuple[bytes, list[dict[str, Any]]]:
    blob = bytearray()
    entries = []
    for name in sorted(state):
        array = np.ascontiguousarray(state[name].detach().cpu().numpy(), dtype="<f4")
        entries.append({"name": name, "shape": list(array.shape), "dtype": "float32", "byte_order": "little",
                        "offset": len(blob), "bytes": array.nbytes})
        blob.extend(array.tobytes())
    return bytes(blob), entries


def _decoder_description(decoder: TriplaneDecoder, names: tuple[str, ...]) -> dict[str, Any]:
    channels, hidden = decoder.channels, decoder.net[0].out_features
    samples = " + ".join(f"s_{n}" for n in names)
    return {
        "input": (f"f = ({samples}) / 3: the mean of the {channels}-channel samples of the three spatial "
                  "planes at the point, the xy plane being the composed one (see composition)"),
        "layers": [
            {"name": "fc0", "weight": "net.0.weight", "bias": "net.0.bias", "in": channels, "out": hidden,
             "formula": "h = softplus(W0 @ f + b0)", "activation": "softplus (log(1 + exp(x)), beta 1)"},
            {"name": "fc1", "weight": "net.2.weight", "bias": "net.2.bias", "in": hidden, "out": 1 + channels,
             "formula": "o = W1 @ h + b1", "activation": "none"},
        ],
        "weight_layout": "row-major (out, in): y = W @ x + b",
        "density_shift": DENSITY_SHIFT,
        "sigmoid_widen": SIGMOID_WIDEN,
        "outputs": {
            "density": f"sigma = softplus(o[0] - {DENSITY_SHIFT:g}), per world unit",
            "features": f"c = sigmoid(o[1:]) * (1 + 2 * {SIGMOID_WIDEN:g}) - {SIGMOID_WIDEN:g}",
            "rgb": "c[0:3], linear in [0, 1] (the other features are not needed for colour)",
        },
        "composition": {
            "summary": ("For a posed head (expression), the head mesh is rasterized orthographically into the xy "
                        "plane's grid, seen from +z (the largest z wins). At each covered texel: uv and z are "
                        "interpolated from the mesh; d = sample(plane uv, uv) + raster.depth_weight * z; "
                        "xy' = xy * (1 - m) + d * m with m = raster.channel_mask (per channel). When "
                        "raster.depth_test is 1, m is 0 at texels where the static xy plane's own surface is "
                        "nearer: in the channel k with the largest |depth_weight|, (xy[k] - d[k]) * "
                        "sign(depth_weight[k]) > 0. Uncovered texels keep xy. The neutral expression uses the "
                        "head model posed at the avatar's identity, plus its shape correction when the avatar "
                        "carries one (not part of this export: the GLB carries the corrected mesh)."),
            "channel_mask": "raster.channel_mask",
            "depth_weight": "raster.depth_weight",
            "depth_test": "raster.depth_test",
        },
        "volume_rendering": ("alpha_i = 1 - exp(-sigma_i * delta_i) with delta in world units; "
                             "colour = sum_i T_i alpha_i rgb_i with T_i = prod_{j<i} (1 - alpha_j)"),
    }


def _occupancy(avatar: Avatar, head: HeadModel) -> tuple[bytes, dict[str, Any]]:
    """The renderer's (fine, coarse) occupancy grids as packed bits, and their manifest entry.

    Each frame the renderer adds the cells holding the moving part of the posed mesh (vertices and
    centres of the faces that an expression or the gaze moves). A shader knows the expression-moved
    part from the GLB's morph targets; the faces that only the gaze moves (eyeballs) stay where they are
    at the neutral gaze, which is all a shader without gaze renders, so their cells are added here.
    """
    renderer = Renderer(avatar, head=head)
    fine, coarse = renderer.occupancy
    morphs = np.abs(renderer.head.expression_basis).sum(axis=(0, 2)) > 0
    faces = renderer.head.faces[renderer.composer.moving_faces.numpy()]
    gaze_only = faces[~morphs[faces].any(axis=1)]
    neutral = torch.from_numpy(renderer.head.posed(None, avatar.identity))
    points = torch.cat([neutral[np.unique(gaze_only)], neutral[gaze_only].mean(dim=1)])
    blob = bytearray()
    grids = []
    for name, grid in (("fine", fine), ("coarse", coarse)):
        bits = np.packbits(grid.with_points(points).numpy().astype(bool), bitorder="little").tobytes()
        grids.append({"name": name, "resolution": grid.resolution, "offset": len(blob), "bytes": len(bits)})
        blob.extend(bits)
    entry = {
        "file": f"{DIRECTORY}/occupancy.bin",
        "grids": grids,
        "layout": ("cell (i, j, k) along (x, y, z) is bit n % 8 (least significant first) of byte n // 8 "
                   "with n = (i * R + j) * R + k; cell i spans x in [-0.5 + i / R, -0.5 + (i + 1) / R)"),
        "cell_of_point": "min(max(int((p + 0.5) * R), 0), R - 1) per axis (truncation toward zero)",
        "per_frame": ("also mark, dilated by one cell in both grids, the cells holding every vertex of each "
                      "triangle that a morph target moves, and each such triangle's centre, posed"),
        "march": {"step": "one fine cell, 1 / R_fine world units", "samples_per_round": SAMPLES_PER_ROUND,
                  "transmittance_eps": TRANSMITTANCE_EPS, "weight_eps": WEIGHT_EPS,
                  "refine_optical": REFINE_OPTICAL, "refine_bisections": REFINE_BISECTIONS,
                  "sample": ("a sample at t whose optical depth x over its step exceeds refine_optical stands for "
                             "the step (t - step, t] and is coloured at the mean depth of that step's light, "
                             "t - step + step * c(x) with c(x) = 1/x - 1/(e^x - 1), lighter ones at t; the first "
                             "such sample (the one before it did not exceed) finds the crossing, where density "
                             "reaches half its own, by refine_bisections halvings of its step, and only the part "
                             "behind it counts (avatar.render._refine_surfaces)"),
                  "span": ("scan the coarse grid every 1 / R_coarse from the box entry on every other pixel of "
                           "every other row; a pixel marches from the first to the last occupied coarse cell "
                           "(widened by half a cell) of the widest span of the (up to) four scanned rays "
                           "around it, clipped to its own box interval")},
    }
    return bytes(blob), entry


def export_triplane(avatar: Avatar, head_model_id: str | None = None,
                    head: HeadModel | None = None) -> dict[str, bytes]:
    """Files by relative path: triplane/plane{p}_{name}_c{a}-{b}.exr, triplane/decoder.bin, triplane/triplane.json,
    and triplane/occupancy.bin when the head the avatar wears is known (`head`, else the registered
    model of its id; the manifest's "occupancy" is null otherwise)."""
    planes = avatar.planes.detach().float().cpu().numpy()
    if planes.ndim != 4 or planes.shape[0] != 4 or planes.shape[1] % CHANNELS_PER_IMAGE:
        raise ExportError(f"planes must be (4, C, H, W) with C a multiple of 4, got {planes.shape}")
    if not np.all(np.isfinite(planes)):
        raise ExportError("planes contain NaN or infinite values")
    try:
        decoder = TriplaneDecoder.from_asset(avatar.decoder)
    except ValueError as exc:
        raise ExportError(f"avatar {avatar.avatar_id[:12]}: {exc}") from None

    names = tuple(avatar.plane_names)
    plane_order = ("uv", *names)
    files: dict[str, bytes] = {}
    images = []
    n_planes, n_channels, height, width = planes.shape
    for p in range(n_planes):
        for first in range(0, n_channels, CHANNELS_PER_IMAGE):
            path = f"{DIRECTORY}/plane{p}_{plane_order[p]}_c{first:02d}-{first + CHANNELS_PER_IMAGE - 1:02d}.exr"
            block = planes[p, first:first + CHANNELS_PER_IMAGE]
            files[path] = _exr_bytes(np.moveaxis(block, 0, -1).astype(np.float32))
            images.append({
                "path": path,
                "plane": p,
                "channels": {name: first + i for i, name in enumerate(EXR_CHANNEL_NAMES)},
                "pixel_type": "float",
                "min": [float(x) for x in block.reshape(CHANNELS_PER_IMAGE, -1).min(axis=1)],
                "max": [float(x) for x in block.reshape(CHANNELS_PER_IMAGE, -1).max(axis=1)],
            })
    blob, tensors = _decoder_blob(avatar.decoder)
    files[f"{DIRECTORY}/decoder.bin"] = blob
    occupancy = None
    try:
        worn = head_for_avatar(avatar, head)
    except HeadModelError:
        worn = None
    if worn is not None:
        files[f"{DIRECTORY}/occupancy.bin"], occupancy = _occupancy(avatar, worn)

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "avatar_id": avatar.avatar_id,
        "head_model_id": head_model_id or avatar.head_model_id,
        "identity": [float(x) for x in np.asarray(avatar.identity).reshape(-1)],
        "shape": {"planes": n_planes, "channels": n_channels, "height": height, "width": width},
        "plane_order": list(plane_order),
        "planes": _plane_entries(names),
        "channel_packing": (f"each EXR holds {CHANNELS_PER_IMAGE} consecutive channels of one plane as R, G, B, A; "
                            "EXR row r is plane row r, EXR column j is plane column j"),
        "images": images,
        "value_ranges": {"per_plane_per_channel_min": planes.reshape(n_planes, n_channels, -1).min(axis=2).tolist(),
                         "per_plane_per_channel_max": planes.reshape(n_planes, n_channels, -1).max(axis=2).tolist()},
        "channel_semantics": avatar.channel_semantics,
        "box": {"min": [-camera.BOX_HALF] * 3, "max": [camera.BOX_HALF] * 3,
                "sample_coordinates": "plane coordinate = world coordinate / 0.5, in [-1, 1]"},
        "world": {"up": "+y", "front": "+z (out of the face, toward the default camera)", "handedness": "right",
                  "units": "box units; the GLB export states metres_per_unit for the head model"},
        "camera": {"convention": "EG3D 25-vector: cam2world 4x4 row-major, then normalised 3x3 intrinsics; "
                                 "OpenCV axes (x right, y down, z forward), image row 0 at the top",
                   "default_radius": camera.DEFAULT_RADIUS, "default_fov_deg": camera.DEFAULT_FOV_DEG,
                   "look_at": [0.0, 0.0, 0.0],
                   "ray_depth_range": [camera.DEFAULT_RADIUS + camera.RAY_START_OFFSET,
                                       camera.DEFAULT_RADIUS + camera.RAY_END_OFFSET],
                   "portrait_camera": [float(x) for x in np.asarray(avatar.portrait_camera).reshape(-1)]},
        "decoder": {**_decoder_description(decoder, names), "weights_file": f"{DIRECTORY}/decoder.bin",
                    "tensors": tensors},
        "occupancy": occupancy,
    }
    files[f"{DIRECTORY}/triplane.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    return files
