"""The head model as a glTF-ready mesh: UV seams split, metres, glTF axes, 52 morph-target deltas.

The project's world already has glTF's axes (+y up, +z out of the face, right-handed), so the only
conversion is the head model's `metres_per_unit` scale. glTF stores one UV per vertex, so vertices on
UV seams are duplicated: one glTF vertex per distinct (position vertex, UV corner) pair.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from avatar.asset import Avatar
from avatar.head_model.base import PART_ID, HeadModel
from exporter.options import ExportError


@dataclass(frozen=True, eq=False)
class GltfMesh:
    positions: np.ndarray              # (V, 3) float32 metres, glTF axes
    uv: np.ndarray                     # (V, 2) float32, glTF orientation (v down)
    indices: np.ndarray                # (F, 3) uint32 into positions
    normals: np.ndarray | None         # (V, 3) float32 unit
    source_vertex: np.ndarray          # (V,) int64: the head-model vertex each glTF vertex copies
    position_deltas: np.ndarray                 # (52, V, 3) float32 metres
    normal_deltas: np.ndarray | None = None     # (52, V, 3) float32


def resolve_head_model(avatar: Avatar, head_model: HeadModel | None = None) -> HeadModel:
    """The head an avatar wears: its model (the given one, else the one registered under its id) with the
    avatar's own shape correction."""
    from avatar.head_model.base import HeadModelError
    from avatar.head_registry import head_for_avatar

    if head_model is not None and head_model.model_id != avatar.head_model_id:
        raise ExportError(
            f"avatar {avatar.avatar_id[:12]} was made with head model {avatar.head_model_id!r}, but the head "
            f"model given is {head_model.model_id!r}; export needs the avatar's own head model")
    try:
        return head_for_avatar(avatar, head_model)
    except HeadModelError as exc:
        raise ExportError(f"avatar {avatar.avatar_id[:12]}: {exc}") from None


def split_uv_seams(faces: np.ndarray, faces_uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One glTF vertex per distinct (vertex, uv) corner, in a deterministic order.

    Returns (source_vertex (V,), source_uv (V,), indices (F, 3)).
    """
    pairs = np.stack([faces.reshape(-1), faces_uv.reshape(-1)], axis=1).astype(np.int64)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return unique[:, 0], unique[:, 1], inverse.reshape(-1, 3).astype(np.uint32)


def _face_cross(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalised face normals: their length is twice the face area, which weights the vertex sums."""
    corners = vertices[faces].astype(np.float64)
    return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])


def _incidence(faces: np.ndarray, vertex_count: int) -> sparse.csr_matrix:
    rows = faces.reshape(-1)
    cols = np.repeat(np.arange(len(faces)), 3)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(vertex_count, len(faces)))


def _normalise(sums: np.ndarray) -> np.ndarray:
    lengths = np.linalg.norm(sums, axis=1, keepdims=True)
    # Vertices used by no face (or only degenerate ones) get a valid unit normal instead of zero.
    out = np.where(lengths > 1e-20, sums / np.maximum(lengths, 1e-30), (0.0, 1.0, 0.0))
    return out.astype(np.float32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals."""
    return _normalise(_incidence(faces, len(vertices)) @ _face_cross(vertices, faces))


def normal_deltas(neutral: np.ndarray, faces: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neutral unit normals (N, 3) and per-target normal deltas (K, N, 3) for linear position deltas.

    Only the faces a target moves change their normals, so each target updates the neutral
    area-weighted sums with those faces alone: vertices outside a target's reach get exact zeros.
    """
    incidence = _incidence(faces, len(neutral))
    cross = _face_cross(neutral, faces)
    sums = incidence @ cross
    base = _normalise(sums)
    deltas = np.zeros(basis.shape, np.float32)
    for k in range(len(basis)):
        moved = np.any(basis[k] != 0, axis=1)
        touched = np.flatnonzero(moved[faces].any(axis=1))
        if len(touched) == 0:
            continue
        change = _face_cross(neutral + basis[k], faces[touched]) - cross[touched]
        rows = np.unique(faces[touched])
        new_sums = sums[rows] + incidence[rows][:, touched] @ change
        deltas[k, rows] = _normalise(new_sums) - base[rows]
    return base, deltas


def motion_bound(head: HeadModel) -> np.ndarray:
    """(N,) world units: the farthest any ARKit-52 expression (weights in [0, 1]) can move each vertex
    (the sum of its targets' displacement lengths); infinite for every part but skin (eyeballs turn
    with the gaze, the mouth's inside opens with the jaw)."""
    bound = np.linalg.norm(head.expression_basis, axis=2).sum(axis=0)
    return np.where(head.vertex_part == PART_ID["skin"], bound, np.inf)


def head_gltf_mesh(head: HeadModel, identity: np.ndarray | None, with_normals: bool = True,
                   with_normal_deltas: bool = True) -> GltfMesh:
    """The head posed at an identity (neutral expression), with per-target deltas, in glTF metres."""
    mpu = np.float32(head.metres_per_unit)
    src_v, src_uv, indices = split_uv_seams(head.faces, head.faces_uv)
    neutral = head.posed(None, identity)
    positions = (neutral[src_v] * mpu).astype(np.float32)
    uv = head.uv[src_uv].astype(np.float32).copy()
    uv[:, 1] = 1.0 - uv[:, 1]
    deltas = (head.expression_basis[:, src_v] * mpu).astype(np.float32)

    normals = target_normals = None
    if with_normals:
        if with_normal_deltas:
            base, all_deltas = normal_deltas(neutral, head.faces, head.expression_basis)
            target_normals = all_deltas[:, src_v]
        else:
            base = vertex_normals(neutral, head.faces)
        normals = base[src_v]
    return GltfMesh(positions=positions, uv=uv, indices=indices, normals=normals, source_vertex=src_v,
                    position_deltas=deltas, normal_deltas=target_normals)
