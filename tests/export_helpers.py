"""Shared fixtures for the exporter tests: a small real HeadModel and a real (random-weight) Avatar.

The small head is a genuine HeadModel (skin sphere, two eyeballs, a mouth-cavity patch) with UV seams,
52 localized blendshapes and an identity basis, so the exporter is exercised on the same dataclass the
embedded head model fills, at a size that keeps tests quick.
"""
from __future__ import annotations

import numpy as np
import torch

from avatar.expressions import ARKIT_NAMES
from avatar.head_model.base import PART_ID, HeadModel

SMALL_METRES_PER_UNIT = 0.3


def _latlong(center, radius, rows, cols, uv_rect):
    """Closed lat-long sphere: shared vertices, but a UV grid with a seam column and pole rows."""
    u0, v0, u1, v1 = uv_rect
    verts = [np.array([0.0, radius, 0.0])]
    for i in range(1, rows):
        theta = np.pi * i / rows
        for j in range(cols):
            phi = 2 * np.pi * j / cols
            verts.append(radius * np.array([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)]))
    verts.append(np.array([0.0, -radius, 0.0]))
    verts = np.asarray(verts) + np.asarray(center)
    top, bottom = 0, len(verts) - 1

    def vid(i, j):
        if i == 0:
            return top
        if i == rows:
            return bottom
        return 1 + (i - 1) * cols + (j % cols)

    uv = np.array([[u0 + (u1 - u0) * j / cols, v1 - (v1 - v0) * i / rows]
                   for i in range(rows + 1) for j in range(cols + 1)])

    def tid(i, j):
        return i * (cols + 1) + j

    faces, faces_uv = [], []
    for i in range(rows):
        for j in range(cols):
            a, b, c, d = (i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)
            for tri in ((a, b, c), (a, c, d)):
                ids = [vid(*p) for p in tri]
                if len(set(ids)) < 3:
                    continue
                faces.append(ids)
                faces_uv.append([tid(*p) for p in tri])
    return verts, np.asarray(faces), uv, np.asarray(faces_uv)


def small_head_model(rows: int = 14, cols: int = 20) -> HeadModel:
    parts = [
        ("skin", (0.0, 0.0, 0.0), 0.3, rows, cols, (0.0, 0.0, 0.6, 1.0)),
        ("eyeball_left", (0.1, 0.05, 0.26), 0.04, 6, 8, (0.62, 0.0, 1.0, 0.3)),
        ("eyeball_right", (-0.1, 0.05, 0.26), 0.04, 6, 8, (0.62, 0.35, 1.0, 0.65)),
        ("mouth_cavity", (0.0, -0.12, 0.2), 0.05, 4, 6, (0.62, 0.7, 1.0, 1.0)),
    ]
    verts, faces, uv, faces_uv, vpart, fpart = [], [], [], [], [], []
    nv = nt = 0
    for name, center, radius, r, c, rect in parts:
        v, f, t, ft = _latlong(center, radius, r, c, rect)
        verts.append(v)
        faces.append(f + nv)
        uv.append(t)
        faces_uv.append(ft + nt)
        vpart.append(np.full(len(v), PART_ID[name]))
        fpart.append(np.full(len(f), PART_ID[name]))
        nv += len(v)
        nt += len(t)
    vertices = np.concatenate(verts).astype(np.float32)
    n = len(vertices)
    vertex_part = np.concatenate(vpart).astype(np.int8)

    # Each blendshape moves a smooth bump of skin around its own anchor; eyeLook* move the eyeballs.
    rng = np.random.default_rng(7)
    basis = np.zeros((52, n, 3), np.float32)
    skin = vertex_part == PART_ID["skin"]
    for k, name in enumerate(ARKIT_NAMES):
        if name.startswith("eyeLook"):
            part = "eyeball_left" if name.endswith("Left") else "eyeball_right"
            idx = vertex_part == PART_ID[part]
            basis[k, idx] = rng.normal(0, 0.003, 3)
            continue
        anchor = np.array([0.3 * np.sin(k), 0.25 * np.cos(1.7 * k), 0.28])
        if name == "jawOpen":
            anchor = np.array([0.0, -0.22, 0.2])
        dist = np.linalg.norm(vertices - anchor, axis=1)
        fall = np.clip(1 - dist / 0.15, 0, None) ** 2 * skin
        direction = np.array([0.0, -1.0, 0.2]) if name == "jawOpen" else rng.normal(0, 1, 3)
        basis[k] = (fall[:, None] * direction * 0.04).astype(np.float32)
    regions = np.linalg.norm(basis, axis=2) > 0

    identity_basis = np.stack([vertices * [0.05, 0, 0], vertices * [0, 0.05, 0], vertices * [0, 0, 0.05]])
    landmarks = {"nose_tip": int(np.argmax(vertices[:, 2] * skin)), "pupil_left": int(np.flatnonzero(
        vertex_part == PART_ID["eyeball_left"])[0])}
    return HeadModel(
        model_id="test-small-head-v1",
        vertices=vertices,
        faces=np.concatenate(faces).astype(np.int32),
        uv=np.concatenate(uv).astype(np.float32),
        faces_uv=np.concatenate(faces_uv).astype(np.int32),
        vertex_part=vertex_part,
        face_part=np.concatenate(fpart).astype(np.int8),
        landmarks=landmarks,
        identity_names=("width", "height", "depth"),
        identity_basis=identity_basis.astype(np.float32),
        expression_basis=basis,
        expression_regions=regions,
        eye_centers=np.array([parts[1][1], parts[2][1]], np.float32),
        metres_per_unit=SMALL_METRES_PER_UNIT,
    )


def small_avatar(head: HeadModel, seed: int = 0):
    """A real Avatar record with random planes and a freshly initialised decoder."""
    from avatar.asset import Avatar
    from avatar.decoder import TriplaneDecoder

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    decoder = TriplaneDecoder()
    return Avatar(
        avatar_id=f"{seed:064x}",
        planes=torch.randn((4, 32, 256, 256), generator=gen) * 0.5,
        decoder=decoder.state_for_asset(),
        identity=np.array([0.2, -0.1, 0.0], np.float32),
        portrait_camera=np.zeros(25, np.float32),
        head_model_id=head.model_id,
        generator="test",
        generator_version="0",
        generator_settings={},
        source_sha256="0" * 64,
        channel_semantics={},
        display_name="Test Avatar",
        created_unix=0.0,
    )


# --- GLB reading -------------------------------------------------------------------------------

_COMPONENTS = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def read_accessor(gltf, blob: bytes, index: int) -> np.ndarray:
    """An accessor's values as (count, width), dense or sparse, straight from the GLB's binary chunk."""
    acc = gltf.accessors[index]
    width = _WIDTH[acc.type]
    dtype = _COMPONENTS[acc.componentType]

    def view(view_index, count, dt, w, extra_offset=0):
        bv = gltf.bufferViews[view_index]
        start = (bv.byteOffset or 0) + extra_offset
        return np.frombuffer(blob, dt, count=count * w, offset=start).reshape(count, w)

    out = (view(acc.bufferView, acc.count, dtype, width, acc.byteOffset or 0).copy() if acc.bufferView is not None
           else np.zeros((acc.count, width), dtype))
    if acc.sparse is not None:
        idx = view(acc.sparse.indices.bufferView, acc.sparse.count, _COMPONENTS[acc.sparse.indices.componentType], 1)
        vals = view(acc.sparse.values.bufferView, acc.sparse.count, dtype, width)
        out[idx[:, 0].astype(np.int64)] = vals
    return out


def load_glb(data: bytes):
    import pygltflib

    gltf = pygltflib.GLTF2.load_from_bytes(data)
    return gltf, gltf.binary_blob()


def sphere_density(resolution: int) -> np.ndarray:
    """A density grid with a shell a little larger than the small head: static parts around it."""
    c = (np.arange(resolution) + 0.5) / resolution - 0.5
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    r = np.sqrt(x ** 2 + (y - 0.08) ** 2 + (z + 0.04) ** 2)
    return np.where(r < 0.34, 300.0, 0.0)


def position_colour(points: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
    """A colour field that varies over space, so texture baking has something to get right (the same
    from every direction: `normals` are not used)."""
    return np.clip(np.asarray(points) + 0.5, 0.0, 1.0)


def glb_inputs():
    """(avatar, head, colour, density_grid) for GLB tests.

    With the lead's synthetic avatar and renderer available: the embedded head and a real avatar,
    colour and density from the renderer (colour/density None). Until then: the small head with
    spatial colour and density functions.
    """
    try:
        import avatar.render  # noqa: F401  (the renderer must import too)
        from avatar.head_model import embedded_head_model
        from avatar.synthetic import synthetic_avatar
    except ImportError:
        head = small_head_model()
        return small_avatar(head), head, position_colour, sphere_density
    return synthetic_avatar(seed=1), embedded_head_model(), None, None


def validate_glb(path) -> dict:
    """The Khronos glTF-Validator's report on a GLB file (skips the test when it is not installed)."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    import pytest

    root = Path(__file__).resolve().parents[1]
    modules = root / ".venv" / "node" / "node_modules"
    if shutil.which("node") is None or not (modules / "gltf-validator").is_dir():
        pytest.skip("gltf-validator is not installed (make tools installs it into .venv/node)")
    proc = subprocess.run(["node", str(root / "tests" / "gltf_validate.js"), str(path), str(modules)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
