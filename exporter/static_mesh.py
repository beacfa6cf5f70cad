"""The avatar's static parts (hair, ears, neck) as a mesh: marching cubes on its density, minus the head.

The density grid covers the head box with cell centres (the renderer's `density_grid`). The iso-surface
at `level` is extracted, the part lying on the head model's own surface is cut away (the head mesh
already carries it, with morph targets), specks are dropped, the rest is decimated to the triangle
budget and UV-unwrapped with xatlas.
"""
from __future__ import annotations

from dataclasses import dataclass

import fast_simplification
import numpy as np
import trimesh
import xatlas
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from avatar.camera import BOX_HALF

# Components with fewer faces than this fraction of the largest one are floaters, not hair or ears.
MIN_COMPONENT_FRACTION = 0.02
# Static-surface triangles closer than this many grid cells to the head surface belong to the head.
HEAD_CLEARANCE_CELLS = 2.0
_SUBDIVISION = 3  # barycentric samples per triangle edge used to measure distance to the head


@dataclass(frozen=True, eq=False)
class StaticMesh:
    vertices: np.ndarray   # (V, 3) float32 world units (already split at UV seams)
    faces: np.ndarray      # (F, 3) int32
    uv: np.ndarray         # (V, 2) float32, v up


def half_opaque_level(resolution: int, box_half: float = BOX_HALF) -> float:
    """Density at which one grid cell of material is half opaque: sigma * cell = ln 2."""
    return float(np.log(2.0) * resolution / (2 * box_half))


def _surface_samples(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Points spread over each triangle (a small barycentric lattice), for distance queries."""
    n = _SUBDIVISION
    weights = np.array([(i, j, n - i - j) for i in range(n + 1) for j in range(n + 1 - i)], np.float64) / n
    corners = vertices[faces]  # (F, 3, 3)
    return np.einsum("kc,fcd->fkd", weights, corners).reshape(-1, 3)


def _largest_components(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    counts = np.bincount(labels)
    keep = np.isin(labels, np.flatnonzero(counts >= MIN_COMPONENT_FRACTION * counts.max()))
    mesh = mesh.submesh([np.flatnonzero(keep)], append=True, repair=False)
    return mesh


def extract_static_mesh(density: np.ndarray, level: float, head_vertices: np.ndarray, head_faces: np.ndarray,
                        triangle_budget: int, box_half: float = BOX_HALF) -> StaticMesh | None:
    """None when the density has no surface at `level` outside the head."""
    density = np.asarray(density, dtype=np.float32)
    res = density.shape[0]
    if density.max() <= level or density.min() >= level:
        return None
    cell = 2 * box_half / res
    verts, faces, _, _ = marching_cubes(density, level=level, spacing=(cell, cell, cell), allow_degenerate=False)
    verts = verts + (cell / 2 - box_half)  # index space -> cell centres in the box
    mesh = trimesh.Trimesh(verts, faces, process=True, validate=False)
    # skimage winds triangles toward decreasing density; glTF wants counter-clockwise seen from outside.
    mesh.invert()

    tree = cKDTree(_surface_samples(np.asarray(head_vertices, np.float64), np.asarray(head_faces)))
    dist, _ = tree.query(mesh.triangles_center, k=1)
    keep = dist > HEAD_CLEARANCE_CELLS * cell
    if not keep.any():
        return None
    mesh = mesh.submesh([np.flatnonzero(keep)], append=True, repair=False)
    mesh = _largest_components(mesh)

    if len(mesh.faces) > triangle_budget:
        v, f = fast_simplification.simplify(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32),
                                            target_reduction=1.0 - triangle_budget / len(mesh.faces))
        mesh = trimesh.Trimesh(v, f, process=True, validate=True)
    if len(mesh.faces) == 0:
        return None

    vmapping, indices, uvs = xatlas.parametrize(np.asarray(mesh.vertices, np.float32),
                                                np.asarray(mesh.faces, np.uint32))
    return StaticMesh(vertices=np.asarray(mesh.vertices, np.float32)[vmapping],
                      faces=indices.astype(np.int32), uv=uvs.astype(np.float32))
