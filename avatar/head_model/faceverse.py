"""Loader for a user-supplied FaceVerse v3 model file (`faceverse_v3_1.npy`).

The file is a pickled dict of numpy arrays; it is read with a restricted unpickler (safe_pickle), so a
tampered file cannot run code. Transform into the project's world:

    world = (R @ (p - centre)) * scale

where `centre` is the centre of the bounding box of the head vertices, `R` is the identity when the
file follows FaceVerse's own convention (+y up, +z out of the face, +x the subject's left — the same
axes as ours) and a 180-degree turn about x and/or y when the MediaPipe landmarks show the face upside
down or facing -z, and `scale` = 0.9 / (largest bounding-box extent), so the head fills [-0.45, 0.45]^3.
Bases are rotated and scaled the same way. `metres_per_unit` is set from the eyeball centres (63 mm
apart in an average adult) when the eyeballs are present, else from a 15.5 cm head width.
The transform and the file's sha256 are recorded in `HeadModel.faceverse` (a `FaceVerseSource`).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from avatar.expressions import NUM_EXPRESSIONS
from avatar.head_model.base import EYEBALL_PARTS, PART_ID, FaceVerseSource, HeadModel, HeadModelError
from avatar.head_model.safe_pickle import ForbiddenPickle, load_pickled_npy

# MediaPipe face-mesh indices (subject's right / left as MediaPipe labels them; re-checked by x sign).
_MP_PAIRS = {
    "eye_outer": (33, 263), "eye_inner": (133, 362), "brow": (105, 334), "mouth_corner": (61, 291),
}
_MP_SINGLE = {"nose_tip": 1, "lip_upper": 13, "lip_lower": 14, "chin": 152}
_MP_IRIS = (468, 473)
REGION_FRACTION = 0.02
IPD_METRES = 0.063
HEAD_WIDTH_METRES = 0.155


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Reader:
    """Typed access to the loaded dict; every failure names the file and the key."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    def fail(self, key: str, problem: str) -> HeadModelError:
        return HeadModelError(f"FaceVerse model {self.path}: key {key!r} {problem}")

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def array(self, key: str, *, integer: bool = False) -> np.ndarray:
        if key not in self.data:
            return self._missing(key)
        try:
            a = np.asarray(self.data[key])
        except Exception:  # noqa: BLE001 - numpy raises many types for ragged or odd objects
            raise self.fail(key, "is not an array") from None
        if a.dtype.hasobject or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise self.fail(key, f"has non-numeric dtype {a.dtype}")
        if integer:
            if np.issubdtype(a.dtype, np.floating):
                if not np.all(np.isfinite(a)) or not np.array_equal(a, np.round(a)):
                    raise self.fail(key, "must hold integer indices")
            indices: np.ndarray = a.astype(np.int64)
            return indices
        values: np.ndarray = a.astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise self.fail(key, "contains NaN or infinite values")
        return values

    def _missing(self, key: str) -> NoReturn:
        raise self.fail(key, "is missing")

    def basis(self, key: str, n: int, cols: int | None = None) -> np.ndarray:
        """(3N, K) interleaved basis -> (K, N, 3)."""
        a = self.array(key)
        if a.ndim != 2 or a.shape[0] != 3 * n or (cols is not None and a.shape[1] != cols):
            want = f"(3N={3 * n}, {cols if cols is not None else 'K'})"
            raise self.fail(key, f"has shape {a.shape}, expected {want}")
        basis: np.ndarray = a.T.reshape(a.shape[1], n, 3)
        return basis

    def faces(self, key: str, count: int) -> np.ndarray:
        f = self.array(key, integer=True)
        if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise self.fail(key, f"has shape {f.shape}, expected (F, 3)")
        if f.min() >= 1 and f.max() == count:  # OBJ-style 1-based indices
            f = f - 1
        if f.min() < 0 or f.max() >= count:
            raise self.fail(key, f"indexes outside 0..{count - 1}")
        return f


def load_faceverse(path: str | os.PathLike[str]) -> HeadModel:
    """Load a FaceVerse v3 `.npy` model as a HeadModel (see the module docstring for the transform)."""
    path = Path(path)
    if not path.is_file():
        raise HeadModelError(f"FaceVerse model {path}: no such file")
    try:
        data = load_pickled_npy(path)
    except ForbiddenPickle as exc:
        raise HeadModelError(f"FaceVerse model {path}: refused to load, the pickle names a {exc} "
                             "(only numpy arrays are accepted)") from None
    except (ValueError, OSError, EOFError) as exc:
        raise HeadModelError(f"FaceVerse model {path}: not a readable pickled .npy ({exc})") from None
    if not isinstance(data, dict):
        raise HeadModelError(f"FaceVerse model {path}: expected a pickled dict, found {type(data).__name__}")
    r = _Reader(path, data)

    mean = r.array("meanshape")
    if mean.ndim == 1 or (mean.ndim == 2 and mean.shape[0] == 1):
        mean = mean.reshape(-1)
        if len(mean) % 3:
            raise r.fail("meanshape", f"has {len(mean)} values, not a multiple of 3")
        mean = mean.reshape(-1, 3)
    if mean.ndim != 2 or mean.shape[1] != 3 or len(mean) < 4:
        raise r.fail("meanshape", f"has shape {mean.shape}, expected (N, 3)")
    n = len(mean)
    ex52 = r.basis("exBase_52", n, NUM_EXPRESSIONS)
    id_basis = r.basis("idBase", n)
    ex171 = r.basis("exBase", n) if r.has("exBase") else None
    faces = r.faces("tri", n)

    if r.has("uv") and r.has("tri_uv"):
        uv = r.array("uv")
        if uv.ndim != 2 or uv.shape[1] < 2:
            raise r.fail("uv", f"has shape {uv.shape}, expected (T, 2)")
        uv = uv[:, :2]
        faces_uv = r.faces("tri_uv", len(uv))
        if faces_uv.shape != faces.shape:
            raise r.fail("tri_uv", f"has shape {faces_uv.shape}, expected {faces.shape} like 'tri'")
    elif r.has("uv_per_ver"):
        uv = r.array("uv_per_ver")
        if uv.shape != (n, 2):
            raise r.fail("uv_per_ver", f"has shape {uv.shape}, expected ({n}, 2)")
        faces_uv = faces
    else:
        raise HeadModelError(f"FaceVerse model {path}: key 'uv_per_ver' (or 'uv' with 'tri_uv') is missing")
    if uv.min() < -1e-4 or uv.max() > 1 + 1e-4:
        raise r.fail("uv" if r.has("tri_uv") else "uv_per_ver", "has coordinates outside [0, 1]")
    uv = np.clip(uv, 0.0, 1.0)

    vertex_part = np.zeros(n, np.int8)
    eyeballs: list[np.ndarray] = []
    if r.has("ver_inds"):
        vi = r.array("ver_inds", integer=True).reshape(-1)
        if len(vi) < 3 or not (0 <= vi[0] < vi[1] < vi[2] <= n):
            raise r.fail("ver_inds", f"must be [left start, right start, end] within 0..{n}, got {vi[:3].tolist()}")
        eyeballs = [np.arange(vi[0], vi[1]), np.arange(vi[1], vi[2])]

    keypoints = None
    if r.has("mediapipe_keypoints"):
        keypoints = r.array("mediapipe_keypoints", integer=True).reshape(-1)
        if keypoints.min() < 0 or keypoints.max() >= n or len(keypoints) < 468:
            raise r.fail("mediapipe_keypoints", f"must be >= 468 vertex indices in 0..{n - 1}")

    # Orientation: FaceVerse is already +y up / +z forward; the checks only catch files that are not.
    flip = np.ones(3)
    head_mask = np.ones(n, bool)
    for e in eyeballs:
        head_mask[e] = False
    centre = 0.5 * (mean[head_mask].min(0) + mean[head_mask].max(0))
    if keypoints is not None:
        eyes_y = mean[keypoints[[33, 263]], 1].mean()
        if eyes_y < mean[keypoints[13], 1]:
            flip *= np.array([1.0, -1.0, -1.0])
        if (mean[keypoints[1], 2] - centre[2]) * flip[2] < 0:
            flip *= np.array([-1.0, 1.0, -1.0])
    extent = (mean[head_mask].max(0) - mean[head_mask].min(0)).max()
    if extent <= 0:
        raise r.fail("meanshape", "has zero extent")
    scale = 0.9 / extent
    vertices = (mean - centre) * flip * scale
    ex52 = ex52 * flip * scale
    id_basis = id_basis * flip * scale
    if ex171 is not None:
        ex171 = ex171 * flip * scale

    # Eyeballs: the range labelled "left" must be on +x (the subject's left); swap if not.
    if eyeballs and vertices[eyeballs[0], 0].mean() < vertices[eyeballs[1], 0].mean():
        eyeballs = eyeballs[::-1]
    for name, ids in zip(EYEBALL_PARTS, eyeballs):
        vertex_part[ids] = PART_ID[name]
    fp = vertex_part[faces]
    face_part = np.where((fp == fp[:, :1]).all(axis=1), fp[:, 0], PART_ID["skin"]).astype(np.int8)

    landmarks = _landmarks(vertices, keypoints, eyeballs, vertex_part)
    if eyeballs:
        eye_centers = np.stack([vertices[e].mean(0) for e in eyeballs])
        metres_per_unit = IPD_METRES / max(float(np.linalg.norm(eye_centers[0] - eye_centers[1])), 1e-9)
    else:
        skin = vertices[vertex_part == PART_ID["skin"]]
        width = float(skin[:, 0].max() - skin[:, 0].min())
        metres_per_unit = HEAD_WIDTH_METRES / max(width, 1e-9)
        eye_centers = _eye_centres_from_landmarks(vertices, landmarks, metres_per_unit)

    norms = np.linalg.norm(ex52, axis=2)
    peak = norms.max(axis=1, keepdims=True)
    regions = norms >= REGION_FRACTION * np.maximum(peak, 1e-12)

    k = id_basis.shape[0]
    source = FaceVerseSource(
        path=str(path), sha256=_sha256(path), centre=(float(centre[0]), float(centre[1]), float(centre[2])),
        axis_flip=(float(flip[0]), float(flip[1]), float(flip[2])), scale=float(scale),
        expression_basis_171=None if ex171 is None else ex171.astype(np.float32),
        mediapipe_keypoints=None if keypoints is None else keypoints.astype(np.int32))
    return HeadModel(
        model_id="faceverse-v3-" + source.sha256[:16],
        vertices=vertices.astype(np.float32), faces=faces.astype(np.int32), uv=uv.astype(np.float32),
        faces_uv=faces_uv.astype(np.int32), vertex_part=vertex_part, face_part=face_part, landmarks=landmarks,
        identity_names=tuple(f"id_{i:03d}" for i in range(k)), identity_basis=id_basis.astype(np.float32),
        expression_basis=ex52.astype(np.float32), expression_regions=regions,
        eye_centers=eye_centers.astype(np.float32), metres_per_unit=float(metres_per_unit),
        identity_range=(-3.0, 3.0), faceverse=source)


def _landmarks(v: np.ndarray, keypoints: np.ndarray | None, eyeballs: list[np.ndarray],
               vertex_part: np.ndarray) -> dict[str, int]:
    lm: dict[str, int] = {}
    skin = np.flatnonzero(vertex_part == PART_ID["skin"])
    if keypoints is not None:
        for name, idx in _MP_SINGLE.items():
            lm[name] = int(keypoints[idx])
        for name, (a, b) in _MP_PAIRS.items():
            va, vb = int(keypoints[a]), int(keypoints[b])
            left, right = (va, vb) if v[va, 0] > v[vb, 0] else (vb, va)
            lm[f"{name}_left"], lm[f"{name}_right"] = left, right
        if len(keypoints) >= 478 and not eyeballs:
            va, vb = int(keypoints[_MP_IRIS[0]]), int(keypoints[_MP_IRIS[1]])
            left, right = (va, vb) if v[va, 0] > v[vb, 0] else (vb, va)
            lm["pupil_left"], lm["pupil_right"] = left, right
    else:
        lm["nose_tip"] = int(skin[np.argmax(v[skin, 2])])
    for name, ids in zip(("pupil_left", "pupil_right"), eyeballs):
        lm[name] = int(ids[np.argmax(v[ids, 2])])
    lm["ear_left"] = int(skin[np.argmax(v[skin, 0])])
    lm["ear_right"] = int(skin[np.argmin(v[skin, 0])])
    return lm


def _eye_centres_from_landmarks(v: np.ndarray, lm: dict[str, int], metres_per_unit: float) -> np.ndarray:
    # Without eyeballs: midway between the eye corners, one eyeball radius (12 mm) behind the surface.
    depth = 0.012 / metres_per_unit
    out = []
    for side in ("left", "right"):
        if f"eye_outer_{side}" in lm:
            c = 0.5 * (v[lm[f"eye_outer_{side}"]] + v[lm[f"eye_inner_{side}"]])
        else:
            c = np.array([0.2 if side == "left" else -0.2, 0.1, 0.0])
        out.append(c - np.array([0.0, 0.0, depth]))
    return np.stack(out)
