"""Render an exported GLB in Blender from the project's own cameras, to check it against the renderer.

`render_glb(path, cameras, mode)` runs `blender -b` on exporter/blender_scene.py and returns one
straight-alpha RGBA8 image per camera. Cameras are EG3D 25-vectors (avatar.camera), so the Blender
view matches the Python renderer's exactly: the GLB is in metres (world units x the GLB's
`extras.metres_per_unit`) on glTF axes, which Blender's importer turns Z-up (x, -z, y); the camera
keeps its rotation, its position is scaled to metres, and the normalised focal length becomes the
horizontal field of view.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pygltflib
from numpy.typing import ArrayLike
from PIL import Image

from avatar.camera import camera_vector, validate_camera_vector
from avatar.expressions import ARKIT_NAMES
from exporter.options import ExportError

SCENE_SCRIPT = Path(__file__).with_name("blender_scene.py")
MODES = ("emission", "lit")
# glTF (Y up) to Blender (Z up), as Blender's glTF importer converts.
GLTF_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# OpenCV camera axes (x right, y down, z forward) to Blender's (x right, y up, looking down -z).
OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])


def find_blender() -> str | None:
    return os.environ.get("AVATARFORGE_BLENDER") or shutil.which("blender")


def glb_metres_per_unit(path: str | os.PathLike[str]) -> float:
    """The world-unit scale the exporter wrote into the GLB (top-level extras)."""
    try:
        gltf = pygltflib.GLTF2().load(str(path))
    except Exception as exc:  # noqa: BLE001 - pygltflib raises many kinds for a bad file
        raise ExportError(f"{path}: not a readable GLB ({type(exc).__name__}: {exc})") from None
    extras = (gltf.extras if gltf is not None else None) or {}
    if "metres_per_unit" not in extras:
        raise ExportError(f"{path}: not an AvatarForge GLB (no extras.metres_per_unit)")
    return float(extras["metres_per_unit"])


def blender_camera(camera: ArrayLike, metres_per_unit: float) -> dict[str, Any]:
    """A Blender camera (matrix_world rows, horizontal FOV in radians) for an EG3D 25-vector."""
    v = validate_camera_vector(camera).astype(np.float64)
    c2w, k = v[:16].reshape(4, 4), v[16:].reshape(3, 3)
    if not (math.isclose(k[0, 0], k[1, 1], rel_tol=1e-4) and math.isclose(k[0, 2], 0.5, abs_tol=1e-4)
            and math.isclose(k[1, 2], 0.5, abs_tol=1e-4)):
        raise ExportError("Blender rendering needs square pixels and a centred principal point (fx = fy, c = 0.5)")
    m = np.eye(4)
    m[:3, :3] = GLTF_TO_BLENDER @ c2w[:3, :3] @ OPENCV_TO_BLENDER_CAMERA
    m[:3, 3] = GLTF_TO_BLENDER @ c2w[:3, 3] * metres_per_unit
    return {"matrix_world": m.tolist(), "angle": 2.0 * math.atan(0.5 / k[0, 0])}


def render_glb(path: str | os.PathLike[str], cameras: Iterable[ArrayLike], mode: str = "emission", size: int = 256,
               expression: dict[str, float] | None = None, timeout: float = 300.0) -> list[np.ndarray]:
    """(size, size, 4) uint8 straight-alpha RGBA per camera, rendered by Blender.

    mode "emission": the base-colour texture unlit (for comparison with the renderer);
    "lit": one sun plus ambient light, Eevee (for people to look at).
    `expression`: ARKit name -> weight, set on the head's shape keys (the rest stay 0).
    """
    if mode not in MODES:
        raise ExportError(f"unknown Blender render mode {mode!r}; modes are {', '.join(MODES)}")
    size = _render_size(size)
    blender = find_blender()
    if blender is None:
        raise ExportError("Blender is not installed (make tools installs Debian's blender), so the GLB cannot be "
                          "rendered")
    path = Path(path).resolve()
    mpu = glb_metres_per_unit(path)
    cams = [blender_camera(c, mpu) for c in cameras]
    weights = _shape_key_weights(expression or {})
    with tempfile.TemporaryDirectory(prefix="avatarforge-blender-") as tmp:
        outputs = [str(Path(tmp) / f"view{i:03d}.png") for i in range(len(cams))]
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"glb": str(path), "size": [size, size], "mode": mode, "cameras": cams,
                                   "outputs": outputs, "weights": weights}))
        proc = subprocess.run([blender, "-b", "--factory-startup", "--python-exit-code", "1",
                               "--python", str(SCENE_SCRIPT), "--", str(job)],
                              capture_output=True, text=True, timeout=timeout)
        missing = [o for o in outputs if not Path(o).is_file()]
        if proc.returncode != 0 or missing:
            raise ExportError(f"Blender could not render {path.name}: exit {proc.returncode}, "
                              f"{len(missing)} of {len(outputs)} images missing; "
                              f"{(proc.stderr or proc.stdout)[-1500:]}")
        return [np.asarray(Image.open(o).convert("RGBA")) for o in outputs]


def _render_size(size: object) -> int:
    # Checked at run time too: the size may come from a command line or a request.
    if not isinstance(size, int) or not 16 <= size <= 4096:
        raise ExportError(f"render size must be an integer in 16..4096, got {size!r}")
    return size


def _shape_key_weights(expression: Mapping[str, object]) -> dict[str, float]:
    weights = {}
    for name, value in expression.items():
        if name not in ARKIT_NAMES or not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
            raise ExportError(f"expression weight {name!r}={value!r}: names are ARKit-52 names, weights in [0, 1]")
        weights[name] = float(value)
    return weights


def glb_contact_sheet(path: str | os.PathLike[str], yaws: Iterable[float] = (0, 45, 90, 180), size: int = 256,
                      expression: dict[str, float] | None = None) -> np.ndarray:
    """RGB uint8 sheet of a GLB in Blender at the default orbit camera: unlit (texture colour) on
    the top row, lit by one sun and ambient light below, one column per yaw in degrees."""
    cameras = [camera_vector(yaw_deg=float(y)) for y in yaws]
    rows = [contact_sheet(render_glb(path, cameras, mode, size, expression)) for mode in MODES]
    return np.concatenate(rows, axis=0)


def contact_sheet(images: list[np.ndarray], background: ArrayLike = (128, 128, 128)) -> np.ndarray:
    """The images side by side, composited over a flat background (RGB uint8)."""
    bg = np.asarray(background, np.float32)
    tiles = [img[..., :3].astype(np.float32) * (img[..., 3:] / 255.0) + bg * (1 - img[..., 3:] / 255.0)
             for img in images]
    return np.clip(np.rint(np.concatenate(tiles, axis=1)), 0, 255).astype(np.uint8)
