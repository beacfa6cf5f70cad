"""Bake an avatar's colour into a texture atlas: every texel's surface point is coloured by the avatar.

The mesh is rasterized in UV space with the shared rasterizer (avatar.raster), the 3D surface point
(and, when the mesh has normals, the unit normal) of each covered texel is interpolated from the same
triangle, the avatar is queried there, and the empty texels (gutters between UV islands) take the
colour of the nearest covered texel so that bilinear filtering and mipmaps never bleed background
into the islands.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from avatar import raster

# (P, 3) float32 world points and their (P, 3) unit outward normals, or None for the colour at the
# points themselves -> (P, 3) float RGB in [0, 1].
ColourFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
QUERY_CHUNK = 65536


def surface_points(positions: np.ndarray, faces: np.ndarray, uv: np.ndarray, faces_uv: np.ndarray,
                   size: int, normals: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(size, size) bool coverage, (M, 3) surface points of the covered texels (row-major order) and,
    with per-vertex `normals`, their (M, 3) unit normals (else None)."""
    # glTF image row 0 is v = 1, so raster row r is exactly texture row r.
    rast = raster.rasterize(raster.uv_clip(uv, image_rows_down=True), torch.from_numpy(np.array(faces_uv, np.int32)),
                            size, size, backend="cpu")
    tri = torch.from_numpy(np.array(faces, np.int32))
    attrs = np.array(positions, np.float32) if normals is None else np.concatenate(
        [np.array(positions, np.float32), np.array(normals, np.float32)], axis=1)
    values = raster.interpolate(torch.from_numpy(attrs), rast, tri)
    covered = (rast[..., 3] > 0).numpy()
    values = values.numpy()[covered]
    if normals is None:
        return covered, values, None
    n = values[:, 3:]
    n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return covered, values[:, :3], n


def dilate(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Fill every uncovered texel with its nearest covered texel's value."""
    if covered.all() or not covered.any():
        return image
    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    filled: np.ndarray = image[rows, cols]
    return filled


@dataclass(frozen=True, eq=False)
class BakeLayer:
    """Faces to bake, in one pose, with the colour field that sees them in that pose."""
    colour: ColourFn
    positions: np.ndarray               # (V, 3) world points of the pose
    faces: np.ndarray                   # (F, 3) into positions
    faces_uv: np.ndarray                # (F, 3) into the shared UV array
    normals: np.ndarray | None = None   # (V, 3) unit, when the colour wants them


def bake_layers(layers: list[BakeLayer], uv: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8 texture (row 0 = top, glTF orientation); a later layer's texels replace
    an earlier one's where both cover the same texel."""
    image = np.zeros((size, size, 3), np.float32)
    covered_any = np.zeros((size, size), bool)
    for layer in layers:
        covered, points, texel_normals = surface_points(layer.positions, layer.faces, uv, layer.faces_uv, size,
                                                        layer.normals)
        rgb = np.zeros((len(points), 3), np.float32)
        for start in range(0, len(points), QUERY_CHUNK):
            chunk_normals = None if texel_normals is None else texel_normals[start:start + QUERY_CHUNK]
            chunk = np.asarray(layer.colour(points[start:start + QUERY_CHUNK], chunk_normals), dtype=np.float32)
            rgb[start:start + len(chunk)] = chunk
        image[covered] = np.nan_to_num(rgb, nan=0.0)
        covered_any |= covered
    image = dilate(image, covered_any)
    texture: np.ndarray = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return texture


def bake_texture(colour: ColourFn, positions: np.ndarray, faces: np.ndarray, uv: np.ndarray,
                 faces_uv: np.ndarray, size: int, normals: np.ndarray | None = None) -> np.ndarray:
    """(size, size, 3) uint8 texture (row 0 = top, glTF orientation) of `colour` over the mesh surface;
    with per-vertex `normals` (V, 3), `colour` is given each texel's interpolated unit normal too."""
    return bake_layers([BakeLayer(colour, positions, faces, faces_uv, normals)], uv, size)


def png_bytes(image: np.ndarray) -> bytes:
    # Pillow writes no time or text chunks unless asked, so the bytes depend on the pixels only.
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
