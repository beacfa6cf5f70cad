"""Triangle rasterization behind one function, with nvdiffrast's conventions on every backend.

Raster layout, (H, W, 4) float32, per pixel: (u, v, z/w, triangle_id + 1), all zero where no triangle
covers the pixel centre. An attribute interpolates as u*a0 + v*a1 + (1 - u - v)*a2 over the covering
triangle's three corners (perspective-correct when w differs between corners). Pixel (row i, col j)
has its centre at NDC x = (2j + 1)/W - 1, y = (2i + 1)/H - 1: row 0 is NDC y = -1, like nvdiffrast
(and like `grid_sample`'s grid y = -1). The nearest fragment (smallest z/w) wins, the lowest triangle
id on exactly equal depth; fragments with z/w outside [-1, 1] are dropped (near/far clipping);
triangles with a corner at w <= 0 are culled whole (no clipping against the camera plane); no backface
culling.

Backends: "cpu" (compiled with the march kernel when it is built, else vectorized torch: the same raster
either way; avatar.raster.cpu) and "nvdiffrast" (CUDA).
"""
from __future__ import annotations

from typing import TypeAlias

import numpy as np
import torch
from numpy.typing import ArrayLike

from avatar.raster.cpu import rasterize_cpu
from avatar.raster.nvdiffrast_backend import RasterizerUnavailable, missing_requirement, rasterize_nvdiffrast

__all__ = [
    "BACKENDS",
    "RasterError",
    "RasterizerUnavailable",
    "available_backends",
    "default_backend",
    "interpolate",
    "orthographic_clip",
    "perspective_clip",
    "rasterize",
    "uv_clip",
]

# What the array arguments accept: a tensor, or anything numpy turns into an array.
TensorLike: TypeAlias = torch.Tensor | ArrayLike

BACKENDS = {"cpu": rasterize_cpu, "nvdiffrast": rasterize_nvdiffrast}
MAX_RESOLUTION = 16384
# Triangle ids travel as float32 in the raster, exact only below 2**24.
MAX_FACES = (1 << 24) - 1
# Depth of the orthographic planes: z/w = -depth / (DEPTH_RANGE * box_half), so geometry up to twice
# the box half-size in front of or behind the plane is kept.
ORTHO_DEPTH_RANGE = 2.0
PLANES = ("xy", "xz", "zx", "zy")


class RasterError(ValueError):
    """Input the rasterizer cannot use (shapes, indices, sizes, backend name); the message says which."""


def available_backends() -> list[str]:
    """Backends that can run on this machine, reference first."""
    return ["cpu"] + (["nvdiffrast"] if missing_requirement() is None else [])


def default_backend() -> str:
    return "nvdiffrast" if missing_requirement() is None else "cpu"


def _as_tensor(x: TensorLike, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError) as exc:
        raise RasterError(f"{name} must be a tensor or array, got {type(x).__name__}") from exc


def _check_faces(faces_in: TensorLike, count: int, name: str = "faces") -> torch.Tensor:
    faces = _as_tensor(faces_in, name)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise RasterError(f"{name} must have shape (F, 3), got {tuple(faces.shape)}")
    if faces.dtype.is_floating_point or faces.dtype.is_complex or faces.dtype == torch.bool:
        raise RasterError(f"{name} must hold integer vertex indices, got {faces.dtype}")
    if faces.shape[0] > MAX_FACES:
        raise RasterError(f"{name} has {faces.shape[0]} triangles; at most {MAX_FACES} fit the raster's id channel")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= count):
        raise RasterError(f"{name} index out of range: indices must be in [0, {count}), "
                          f"got [{int(faces.min())}, {int(faces.max())}]")
    return faces


def rasterize(pos_clip: TensorLike, faces: TensorLike, height: int, width: int, backend: str = "cpu") -> torch.Tensor:
    """Rasterize triangles given in clip space; returns the (H, W, 4) float32 raster described above.

    pos_clip: (N, 4) clip-space positions (x, y, z, w); faces: (F, 3) integer indices into them.
    The result is on pos_clip's device whichever backend runs.
    """
    if backend not in BACKENDS:
        raise RasterError(f"unknown rasterizer backend {backend!r}; known: {sorted(BACKENDS)}, "
                          f"available here: {available_backends()}")
    pos = _as_tensor(pos_clip, "pos_clip")
    if pos.ndim != 2 or pos.shape[1] != 4:
        raise RasterError(f"pos_clip must have shape (N, 4), got {tuple(pos.shape)}")
    if not pos.dtype.is_floating_point:
        raise RasterError(f"pos_clip must be floating point, got {pos.dtype}")
    index = _check_faces(faces, pos.shape[0])
    # Checked as plain objects: untyped callers pass floats, bools and numpy integers here.
    sizes: tuple[tuple[str, object], ...] = (("height", height), ("width", width))
    for name, size in sizes:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= MAX_RESOLUTION:
            raise RasterError(f"{name} must be an integer in [1, {MAX_RESOLUTION}], got {size!r}")
    return BACKENDS[backend](pos, index.to(pos.device), int(height), int(width))


def interpolate(attr: TensorLike, rast: torch.Tensor, faces: TensorLike) -> torch.Tensor:
    """Per-pixel attributes (H, W, C) from per-vertex `attr` (N, C); zeros where the raster is empty.

    `faces` (F, 3) indexes `attr` and may differ from the index buffer that was rasterized (e.g. UV
    corners `faces_uv`), as long as its rows correspond to the same triangles.
    """
    table = _as_tensor(attr, "attr")
    if table.ndim != 2:
        raise RasterError(f"attr must have shape (N, C), got {tuple(table.shape)}")
    if not table.dtype.is_floating_point:
        table = table.to(torch.float32)
    given: object = rast  # checked as a plain object: untyped callers pass arrays here
    if not isinstance(given, torch.Tensor) or given.ndim != 3 or given.shape[2] != 4:
        got = getattr(given, "shape", type(given))
        raise RasterError(f"rast must be a (H, W, 4) tensor from rasterize, got {got}")
    index = _check_faces(faces, table.shape[0]).to(device=table.device, dtype=torch.int64)
    rast = given.to(table.device)
    height, width = rast.shape[:2]
    out = torch.zeros(height, width, table.shape[1], dtype=table.dtype, device=table.device)
    flat = rast.reshape(-1, 4)
    tri = flat[:, 3].to(torch.int64) - 1
    covered = torch.nonzero(tri >= 0).squeeze(1)
    if covered.numel() == 0:
        return out
    tri = tri[covered]
    if int(tri.max()) >= index.shape[0]:
        raise RasterError(f"rast refers to triangle {int(tri.max())} but faces has only {index.shape[0]} rows")
    corners = table[index[tri]]  # (M, 3, C)
    u = flat[covered, 0:1].to(table.dtype)
    v = flat[covered, 1:2].to(table.dtype)
    values = corners[:, 2] + u * (corners[:, 0] - corners[:, 2]) + v * (corners[:, 1] - corners[:, 2])
    return out.view(-1, table.shape[1]).index_copy(0, covered, values).view(height, width, -1)


def _check_vertices(vertices: TensorLike) -> torch.Tensor:
    v = _as_tensor(vertices, "vertices")
    if v.ndim != 2 or v.shape[1] != 3:
        raise RasterError(f"vertices must have shape (N, 3), got {tuple(v.shape)}")
    return v if v.dtype.is_floating_point else v.to(torch.float32)


def uv_clip(uv: TensorLike, image_rows_down: bool = False) -> torch.Tensor:
    """Clip positions that rasterize a mesh in its UV layout (uv (T, 2) in [0, 1], v up).

    Raster row r then holds v = (r + 0.5) / H (the neural texture's layout: row 0 at v = 0), or with
    `image_rows_down` v = 1 - (r + 0.5) / H (an image file's layout, e.g. a glTF texture: row 0 at v = 1).
    """
    # A copy: head-model arrays are read-only, and torch warns on tensors over them.
    t = uv.to(torch.float32) if isinstance(uv, torch.Tensor) else torch.tensor(np.array(uv, dtype=np.float32))
    if t.ndim != 2 or t.shape[1] != 2:
        raise RasterError(f"uv must have shape (T, 2), got {tuple(t.shape)}")
    y = 1 - 2 * t[:, 1] if image_rows_down else 2 * t[:, 1] - 1
    return torch.stack([2 * t[:, 0] - 1, y, torch.zeros_like(y), torch.ones_like(y)], dim=1)


def orthographic_clip(vertices: TensorLike, plane: str = "xy", box_half: float = 0.5) -> torch.Tensor:
    """(N, 4) clip positions that rasterize world vertices into one triplane plane image.

    The plane's two world coordinates (a, b) = (x, y) for "xy", (x, z) for "xz", (z, x) for "zx"
    (EG3D's plane order and naming), (z, y) for "zy" (the side plane) map to NDC (a / box_half,
    b / box_half). A raster of size (H, W) is then indexed exactly as
    `torch.nn.functional.grid_sample(plane_image, coords / box_half, align_corners=False)` indexes a
    (C, H, W) plane: grid x = a selects the column (width), grid y = b selects the row (height), pixel
    centres at (2j + 1)/W - 1 and (2i + 1)/H - 1. So
    `rast.permute(2, 0, 1)` (or any interpolated attribute image) can be sampled by grid_sample at a
    world point's (a, b) / box_half to read the pixel that point was rasterized into.

    Depth makes the surface nearest the viewer win: for "xy" the viewer is at +z (larger z wins); for
    "xz" and "zx" the viewer is at +y (larger y wins); for "zy" at +x. z/w = -depth_axis / (2 * box_half),
    so geometry within twice the box half-size along the depth axis survives the near/far range.
    """
    if plane not in PLANES:
        raise RasterError(f"unknown plane {plane!r}; planes are {list(PLANES)}")
    half: object = box_half  # checked as a plain object: untyped callers pass anything here
    if not (isinstance(half, (int, float)) and half > 0 and np.isfinite(half)):
        raise RasterError(f"box_half must be a positive finite number, got {box_half!r}")
    v = _check_vertices(vertices)
    x, y, z = v.unbind(1)
    a, b, depth = {"xy": (x, y, z), "xz": (x, z, y), "zx": (z, x, y), "zy": (z, y, x)}[plane]
    one = torch.ones_like(x)
    return torch.stack([a / box_half, b / box_half, -depth / (ORTHO_DEPTH_RANGE * box_half), one], dim=1)


def perspective_clip(vertices: TensorLike, cam25: TensorLike, near: float = 0.1, far: float = 10.0) -> torch.Tensor:
    """(N, 4) clip positions of world vertices seen by an EG3D 25-vector camera (see avatar.camera).

    The camera is OpenCV-style (x right, y down, z forward) with normalised intrinsics; image row 0 is
    the top, which under the raster's "row 0 = NDC y = -1" rule means NDC y = 2 * v_image - 1 with
    v_image = fy * y_cam / z_cam + cy (and likewise x = 2 * u_image - 1). So raster pixel (i, j) is the
    same pixel as row i, column j of an image whose rays come from avatar.camera.generate_rays.
    Depth is OpenGL-style between `near` and `far` along the camera z axis: z/w goes from -1 at near to
    +1 at far, smaller is closer; w = z_cam.
    """
    if not (0 < near < far and np.isfinite(far)):
        raise RasterError(f"need 0 < near < far (finite), got near={near!r}, far={far!r}")
    v = _check_vertices(vertices)
    cam = np.asarray(cam25.detach().cpu() if isinstance(cam25, torch.Tensor) else cam25, dtype=np.float64).reshape(-1)
    if cam.shape != (25,) or not np.all(np.isfinite(cam)):
        raise RasterError("cam25 must be 25 finite numbers (cam2world 4x4 row-major, then normalised 3x3 "
                          "intrinsics)")
    c2w, k = cam[:16].reshape(4, 4), cam[16:].reshape(3, 3)
    # world -> camera is p_cam = R^T (p - t); fold it and the intrinsics into one 3x4 matrix.
    rot_t = c2w[:3, :3].T
    world_to_cam = np.concatenate([rot_t, -(rot_t @ c2w[:3, 3])[:, None]], axis=1)
    proj = np.zeros((4, 3))
    proj[0] = [2 * k[0, 0], 2 * k[0, 1], 2 * k[0, 2] - 1]
    proj[1] = [0.0, 2 * k[1, 1], 2 * k[1, 2] - 1]
    proj[2] = [0.0, 0.0, (far + near) / (far - near)]
    proj[3] = [0.0, 0.0, 1.0]
    full = proj @ world_to_cam
    full[2, 3] -= 2 * far * near / (far - near)
    m = torch.as_tensor(full, dtype=torch.float64, device=v.device)
    homo = torch.cat([v.to(torch.float64), torch.ones_like(v[:, :1], dtype=torch.float64)], dim=1)
    return (homo @ m.T).to(v.dtype)
