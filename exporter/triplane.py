"""Triplane export: the four planes as float32 EXR, the decoder as float32 .bin, a JSON manifest.

Full float, not half: the embedded generators' planes carry depth ramps of magnitude ~4000 (steep
gates, avatar.surface_field), which half precision would round to +-4 and so lose the colours riding on
them.

Everything an engine shader needs to raymarch the avatar itself: `triplane.json` states the plane
order, which channels each EXR carries, per-channel value ranges, the box and world/camera
conventions, how plane 0 (the neural texture) becomes part of the xy plane for a posed mesh, and the
decoder's layers, activations and the byte offset of every weight in `decoder.bin`.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import OpenEXR

from avatar import camera
from avatar.asset import Avatar
from avatar.decoder import DENSITY_SHIFT, PLANE_AXES, SIGMOID_WIDEN, TriplaneDecoder
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


def read_exr(data_or_path) -> np.ndarray:
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


def _plane_entries(names: tuple[str, str, str]) -> list[dict]:
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


def _decoder_blob(state: dict) -> tuple[bytes, list[dict]]:
    blob = bytearray()
    entries = []
    for name in sorted(state):
        array = np.ascontiguousarray(state[name].detach().cpu().numpy(), dtype="<f4")
        entries.append({"name": name, "shape": list(array.shape), "dtype": "float32", "byte_order": "little",
                        "offset": len(blob), "bytes": array.nbytes})
        blob.extend(array.tobytes())
    return bytes(blob), entries


def _decoder_description(decoder: TriplaneDecoder, names: tuple[str, str, str]) -> dict:
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


def export_triplane(avatar: Avatar, head_model_id: str | None = None) -> dict[str, bytes]:
    """Files by relative path: triplane/plane{p}_{name}_c{a}-{b}.exr, triplane/decoder.bin, triplane/triplane.json."""
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
    }
    files[f"{DIRECTORY}/triplane.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    return files
