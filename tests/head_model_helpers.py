"""Shared helpers for head model tests: UV coverage, winding numbers, synthetic FaceVerse files."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from avatar.expressions import ARKIT_NAMES
from avatar.head_model import PART_ID, HeadModel


def weights(**named: float) -> np.ndarray:
    w = np.zeros(len(ARKIT_NAMES), np.float32)
    for name, value in named.items():
        w[ARKIT_NAMES.index(name)] = value
    return w


def uv_coverage(uv: np.ndarray, faces_uv: np.ndarray, res: int = 1024) -> np.ndarray:
    """How many UV triangles cover each pixel centre (strictly inside: shared edges count for neither)."""
    count = np.zeros((res, res), np.int32)
    tri = uv[faces_uv].astype(np.float64) * res
    for t in tri:
        x0, y0 = np.floor(t.min(0) - 0.5).astype(int)
        x1, y1 = np.ceil(t.max(0) - 0.5).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, res - 1), min(y1, res - 1)
        if x1 < x0 or y1 < y0:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        e = []
        for a, b in ((0, 1), (1, 2), (2, 0)):
            e.append((t[b, 0] - t[a, 0]) * (gy - t[a, 1]) - (t[b, 1] - t[a, 1]) * (gx - t[a, 0]))
        inside = ((e[0] > 0) & (e[1] > 0) & (e[2] > 0)) | ((e[0] < 0) & (e[1] < 0) & (e[2] < 0))
        count[y0:y1 + 1, x0:x1 + 1] += inside
    return count


def winding_numbers(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Generalized winding number of a closed, outward-wound mesh at each point (~1 inside, ~0 outside)."""
    tri = vertices[faces].astype(np.float64)
    out = np.zeros(len(points))
    for start in range(0, len(points), 64):
        p = points[start:start + 64, None, None, :].astype(np.float64)
        r = tri[None] - p                                   # (P, F, 3, 3)
        n = np.linalg.norm(r, axis=-1)
        a, b, c = r[..., 0, :], r[..., 1, :], r[..., 2, :]
        det = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
        den = (n[..., 0] * n[..., 1] * n[..., 2] + np.einsum("pfi,pfi->pf", a, b) * n[..., 2]
               + np.einsum("pfi,pfi->pf", b, c) * n[..., 0] + np.einsum("pfi,pfi->pf", c, a) * n[..., 1])
        out[start:start + 64] = (2 * np.arctan2(det, den)).sum(axis=1) / (4 * np.pi)
    return out


# MediaPipe indices the loader reads, mapped to our landmark names (MediaPipe's "right" = subject's right).
MEDIAPIPE_OF = {1: "nose_tip", 13: "lip_upper", 14: "lip_lower", 152: "chin",
                33: "eye_outer_right", 263: "eye_outer_left", 133: "eye_inner_right", 362: "eye_inner_left",
                105: "brow_right", 334: "brow_left", 61: "mouth_corner_right", 291: "mouth_corner_left"}


def faceverse_dict(model: HeadModel, units: float = 10.0, offset=(0.3, 1.5, -2.0),
                   upside_down: bool = False, n_identity: int = 6) -> dict:
    """A dict in the FaceVerse v3 layout built from a head model (other units and origin on purpose)."""
    flip = np.array([1.0, -1.0, -1.0]) if upside_down else np.ones(3)
    v = model.vertices.astype(np.float64) * flip * units + np.asarray(offset)
    n = len(v)

    def interleave(basis: np.ndarray) -> np.ndarray:     # (K, N, 3) -> (3N, K), row 3v+c
        return (basis.astype(np.float64) * flip * units).reshape(basis.shape[0], 3 * n).T.astype(np.float32)

    left = model.part_vertices("eyeball_left")
    right = model.part_vertices("eyeball_right")
    if not (left.max() + 1 == right.min()):
        raise ValueError("helper expects the left eyeball's vertices right before the right eyeball's")
    keypoints = np.zeros(478, np.int64)
    for mp, name in MEDIAPIPE_OF.items():
        keypoints[mp] = model.landmarks[name]
    ident = np.stack([model.identity_basis[k % len(model.identity_names)] for k in range(n_identity)])
    return {
        "meanshape": v.astype(np.float32),
        "exBase_52": interleave(model.expression_basis),
        "idBase": interleave(ident),
        "tri": model.faces.astype(np.int64) + 1,          # 1-based, as OBJ-derived tables often are
        "uv": model.uv.astype(np.float32),
        "tri_uv": model.faces_uv.astype(np.int64) + 1,
        "ver_inds": np.array([left.min(), right.min(), right.max() + 1]),
        "mediapipe_keypoints": keypoints,
        "meantex": np.zeros((1, 3 * n), np.float32),
    }


def write_npy_dict(path: Path, data: dict) -> Path:
    np.save(path, data, allow_pickle=True)
    return path


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def write_malicious_npy(path: Path, marker: Path) -> Path:
    """An .npy whose pickle would run a shell command on a plain np.load(allow_pickle=True)."""
    payload = np.empty((), dtype=object)
    payload[()] = {"meanshape": np.zeros((4, 3), np.float32), "exploit": _Exploit(marker)}
    with open(path, "wb") as fh:
        npy_format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(payload, fh, protocol=3)
    return path


def surface_faces(model: HeadModel) -> np.ndarray:
    """The closed outer surface: the skin (with its eye sacks) and the mouth cavity lining it continues into."""
    return model.faces[(model.face_part == PART_ID["skin"]) | (model.face_part == PART_ID["mouth_cavity"])]


def front_parts(model: HeadModel, vertices: np.ndarray, resolution: int = 512) -> np.ndarray:
    """(R, R) part id of the surface seen at each pixel of an orthographic front view (-1: empty)."""
    import torch

    from avatar import raster

    rast = raster.rasterize(raster.orthographic_clip(torch.from_numpy(np.array(vertices, np.float32)), "xy"),
                            torch.from_numpy(model.faces.astype(np.int32)), resolution, resolution)
    face = rast[..., 3].numpy().astype(np.int64) - 1
    return np.where(face >= 0, model.face_part[np.maximum(face, 0)], -1)
