"""Bake an avatar's colour into a texture atlas: every texel's surface point is coloured by the avatar.

The mesh is rasterized in UV space with the shared rasterizer (avatar.raster), the 3D surface point of
each covered texel is interpolated from the same triangle, the avatar is queried there, and the empty
texels (gutters between UV islands) take the colour of the nearest covered texel so that bilinear
filtering and mipmaps never bleed background into the islands.
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from avatar import raster

# (P, 3) float32 world points -> (P, 3) float RGB in [0, 1].
ColourFn = Callable[[np.ndarray], np.ndarray]
QUERY_CHUNK = 65536


def surface_points(positions: np.ndarray, faces: np.ndarray, uv: np.ndarray, faces_uv: np.ndarray,
                   size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, size) bool coverage and (M, 3) surface points of the covered texels (row-major order)."""
    # glTF image row 0 is v = 1, so raster row r is exactly texture row r.
    rast = raster.rasterize(raster.uv_clip(uv, image_rows_down=True), torch.from_numpy(np.array(faces_uv, np.int32)),
                            size, size, backend="cpu")
    points = raster.interpolate(torch.from_numpy(np.array(positions, np.float32)), rast,
                                torch.from_numpy(np.array(faces, np.int32)))
    covered = (rast[..., 3] > 0).numpy()
    return covered, points.numpy()[covered]


def dilate(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Fill every uncovered texel with its nearest covered texel's value."""
    if covered.all() or not covered.any():
        return image
    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return image[rows, cols]


def bake_texture(colour: ColourFn, positions: np.ndarray, faces: np.ndarray, uv: np.ndarray,
                 faces_uv: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8 texture (row 0 = top, glTF orientation) of `colour` over the mesh surface."""
    covered, points = surface_points(positions, faces, uv, faces_uv, size)
    rgb = np.zeros((len(points), 3), np.float32)
    for start in range(0, len(points), QUERY_CHUNK):
        chunk = np.asarray(colour(points[start:start + QUERY_CHUNK]), dtype=np.float32)
        rgb[start:start + len(chunk)] = chunk
    image = np.zeros((size, size, 3), np.float32)
    image[covered] = np.nan_to_num(rgb, nan=0.0)
    image = dilate(image, covered)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    # Pillow writes no time or text chunks unless asked, so the bytes depend on the pixels only.
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
