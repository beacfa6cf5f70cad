"""The avatar's static parts (hair, ears, neck) as a mesh: marching cubes on its density, minus the head.

The density grid covers the head box with cell centres (the renderer's `density_grid`). The iso-surface
at `level` is extracted and smoothed (Taubin). Where it lies on a part of the head model that moves
(the face under expressions, eyes, mouth) it is cut away: the head mesh already carries that part, with
morph targets. Where it lies on the still head (crown, back, neck: no expression moves them more than
the lift) it is the head's own skin, cut away too, unless it is a hole in the hair (a patch bordered
mostly by hair standing off the head): hair that thins out to the scalp is kept there and lifted just
outside the head, so it stays one smooth surface instead of ending in a cut rim, which from above is a
ring-shaped crater round the crown. Loose fragments are
dropped (a piece not attached to the head is kept only when it is a large share of the surface), the
rest is decimated to the triangle budget, given smooth normals and UV-unwrapped with xatlas.

Where the cut leaves an open edge beside the head, that edge is tucked just under the head's surface:
hair lying on the head closer than the cut distance would otherwise leave a thin gap along the head's
outline, and the tucked edge stays hidden under the head mesh (the face itself is all cut away, so
expressions never uncover it). The hair just behind it slopes down to it rather than ending in a wall,
and is shaded as the head it runs into: lit, a slope turned away from the light drew a dark groove round
the hair's edge.
"""
from __future__ import annotations

from dataclasses import dataclass

import fast_simplification
import numpy as np
import trimesh
import xatlas
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from avatar.camera import BOX_HALF
from exporter.head_mesh import vertex_normals

# Attached components with fewer faces than this fraction of the largest attached one are specks.
MIN_COMPONENT_FRACTION = 0.02
# Components not attached to the head are kept only from this fraction of the largest one up.
DETACHED_COMPONENT_FRACTION = 0.25
# Static-surface triangles closer than this many grid cells to the head surface belong to the head.
HEAD_CLEARANCE_CELLS = 2.0
# A component with a triangle this many cells beyond the clearance (or closer) touches the head.
ATTACHED_CELLS = 1.5
# Open edges this close to the head (cells beyond the clearance) are cut edges, tucked this deep under it.
CUT_EDGE_CELLS = 1.0
TUCK_DEPTH_CELLS = 0.5
# Static surface within the clearance of the still head is lifted to this height above it (cells). The
# head moves less than this there, so no expression pushes it through; the lift fades out from
# LIFT_FULL_DEPTH_CELLS under the head to the clearance, where the head pokes out (ears) and shows itself.
LIFT_CELLS = 0.5
LIFT_FULL_DEPTH_CELLS = 1.0
# A patch of static surface lying on the still head is kept (and lifted) when hair borders this share of it.
HOLE_BORDER_SHARE = 0.5
# World units between the moving face and the still head the static surface may cover: the cut rim round
# the face then lies at the hairline above a forehead of usual height, in hair rather than on the skin.
FACE_MARGIN = 0.1
RIM_SMOOTHING_ITERATIONS = 10  # passes along the cut edges before they are tucked under the head
RIM_SLOPE_CELLS = 3.0  # how far behind a tucked edge the hair slopes down to it
SMOOTHING_ITERATIONS = 20  # Taubin passes over the marching-cubes surface (each a shrink and an inflate step)
_SUBDIVISION = 3  # barycentric samples per triangle edge used to measure distance to the head


@dataclass(frozen=True, eq=False)
class StaticMesh:
    vertices: np.ndarray   # (V, 3) float32 world units (already split at UV seams)
    faces: np.ndarray      # (F, 3) int32
    uv: np.ndarray         # (V, 2) float32, v up
    normals: np.ndarray    # (V, 3) float32 unit, smooth across UV seams


def half_opaque_level(resolution: int, box_half: float = BOX_HALF) -> float:
    """Density at which one grid cell of material is half opaque: sigma * cell = ln 2."""
    return float(np.log(2.0) * resolution / (2 * box_half))


class _HeadSurface:
    """Points spread over each head triangle (a small barycentric lattice) with the triangle's unit
    normal, for distance and nearest-point queries, the head's smooth shading normal there (as the head
    mesh is exported with), and whether the triangle is still."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, still_faces: np.ndarray):
        n = _SUBDIVISION
        weights = np.array([(i, j, n - i - j) for i in range(n + 1) for j in range(n + 1 - i)], np.float64) / n
        corners = np.asarray(vertices, np.float64)[np.asarray(faces)]  # (F, 3, 3)
        self.points = np.einsum("kc,fcd->fkd", weights, corners).reshape(-1, 3)
        cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        unit = cross / np.maximum(np.linalg.norm(cross, axis=1, keepdims=True), 1e-20)
        self.normals = np.repeat(unit, len(weights), axis=0)
        smooth = vertex_normals(np.asarray(vertices, np.float32), np.asarray(faces))[np.asarray(faces)]
        shading = np.einsum("kc,fcd->fkd", weights, smooth).reshape(-1, 3)
        self.shading = shading / np.maximum(np.linalg.norm(shading, axis=1, keepdims=True), 1e-20)
        self.tree = cKDTree(self.points)
        self.still = np.repeat(still_faces, len(weights))
        moving = self.points[~self.still]
        self.moving_tree = cKDTree(moving) if len(moving) else None

    def moving_distance(self, points: np.ndarray) -> np.ndarray:
        """Distance to the head's moving part, per point (infinite when nothing moves)."""
        if self.moving_tree is None:
            return np.full(len(points), np.inf)
        return np.asarray(self.moving_tree.query(points, k=1)[0])

    def query(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance to the head and the index of the nearest sample, per point."""
        dist, idx = self.tree.query(points, k=1)
        return np.asarray(dist), np.asarray(idx)


def _tuck_cut_edges(mesh: trimesh.Trimesh, head: _HeadSurface, near: float, depth: float,
                    slope_width: float) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Move the open-edge vertices within `near` of the head to `depth` under its surface, after
    smoothing the open edges along themselves (a cut made triangle by triangle is saw-toothed). The hair
    within `slope_width` of a tucked edge goes down to it along the head's normal, by a smooth function
    of its distance from the edge, so it slopes into the head instead of ending in a wall as high as
    the cut distance. (Sloping by rings of the decimated mesh instead moved neighbours by different
    amounts wherever its triangles are long and thin: a frill along the hairline under light.)
    Also returns, per vertex, how far down that slope it lies (1 at a tucked edge, 0 off the slope)."""
    open_edges, _ = _open_edges(mesh)
    rim = np.unique(open_edges)
    down_slope = np.zeros(len(mesh.vertices))
    if len(rim) == 0:
        return mesh, down_slope
    vertices = _smooth_along(np.array(mesh.vertices), open_edges, RIM_SMOOTHING_ITERATIONS)
    dist, idx = head.query(vertices[rim])
    rim, idx = rim[dist <= near], idx[dist <= near]
    if len(rim) == 0:
        return trimesh.Trimesh(vertices, mesh.faces, process=False, validate=False), down_slope
    from_rim = cKDTree(vertices[rim]).query(vertices, k=1)[0]
    vertices[rim] = head.points[idx] - depth * head.normals[idx]
    ramp = np.clip(from_rim / slope_width, 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)   # smoothstep: no crease where the slope meets the hair
    ramp[rim] = 1.0   # tucked already
    members = np.flatnonzero(ramp < 1.0)
    dist, idx = head.query(vertices[members])
    height = np.sum((vertices[members] - head.points[idx]) * head.normals[idx], axis=1)
    low = (dist <= 2 * near) & (height > -depth)   # hair beside the head, not strands hanging free of it
    down = (1.0 - ramp[members[low]]) * (height[low] + depth)
    vertices[members[low]] -= down[:, None] * head.normals[idx[low]]
    down_slope[rim] = 1.0
    down_slope[members[low]] = 1.0 - ramp[members[low]]
    return trimesh.Trimesh(vertices, mesh.faces, process=False, validate=False), down_slope


def _shaded_as_head(normals: np.ndarray, vertices: np.ndarray, head: _HeadSurface, weight: np.ndarray) -> np.ndarray:
    """`normals` (V, 3) turned toward the head's shading normal nearest each vertex, as far as `weight` (V,)."""
    out = np.array(normals, np.float32)
    turned = np.flatnonzero(weight > 0)   # the slopes only: most of the hair is off them
    _, idx = head.query(vertices[turned])
    w = weight[turned, None]
    blended = normals[turned] * (1.0 - w) + head.shading[idx] * w
    out[turned] = blended / np.maximum(np.linalg.norm(blended, axis=1, keepdims=True), 1e-12)
    return out


def _still_faces(vertices: np.ndarray, faces: np.ndarray, motion: np.ndarray | None, lift: float) -> np.ndarray:
    """(F,) bool: the head faces the static surface may cover, those no expression moves by `lift` or more
    and at least FACE_MARGIN from any that does."""
    if motion is None:
        return np.zeros(len(faces), bool)
    moving = np.asarray(motion) > lift
    if not moving.any():
        return np.ones(len(faces), bool)
    clear = cKDTree(vertices[moving]).query(vertices, k=1)[0] > FACE_MARGIN
    return np.asarray(np.all(clear[faces], axis=1))


def _off_the_head(mesh: trimesh.Trimesh, head: _HeadSurface, clearance: float) -> np.ndarray:
    """(F,) bool: the triangles the static mesh keeps. Those farther than `clearance` from the head, and,
    of those lying on the still head, each connected patch that is a hole in them: hair thinning out to
    the scalp, bordered by hair for at least HOLE_BORDER_SHARE of its outline. Patches bordered by the
    face (or by the mesh's edge) are the head's own skin, which the head mesh shows."""
    centres = mesh.triangles_center
    off = head.query(centres)[0] > clearance
    on_still = ~off
    on_still[on_still] = head.moving_distance(centres[on_still]) > clearance
    pairs = mesh.face_adjacency
    inner = on_still[pairs[:, 0]] & on_still[pairs[:, 1]]
    graph = sparse.coo_matrix((np.ones(int(inner.sum())), (pairs[inner, 0], pairs[inner, 1])),
                              shape=(len(centres), len(centres)))
    _, patch = connected_components(graph, directed=False)
    # Each edge on a patch's outline: toward hair standing off the head, or toward the face (or open).
    patch_side = np.concatenate([pairs[~inner], pairs[~inner][:, ::-1]])
    patch_side = patch_side[on_still[patch_side[:, 0]]]
    hair = np.bincount(patch[patch_side[:, 0]], weights=off[patch_side[:, 1]], minlength=patch.max() + 1)
    border = np.bincount(patch[patch_side[:, 0]], minlength=patch.max() + 1)
    _, open_faces = _open_edges(mesh)
    border = border + np.bincount(patch[open_faces[on_still[open_faces]]], minlength=patch.max() + 1)
    hole = hair >= HOLE_BORDER_SHARE * np.maximum(border, 1)
    return np.asarray(off | (on_still & hole[patch]))


def _open_edges(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """The open edges (edges of one face only), (K, 2) sorted vertex pairs, and the face of each, (K,)."""
    unique, first, counts = np.unique(mesh.edges_sorted, axis=0, return_index=True, return_counts=True)
    single = counts == 1
    return unique[single], np.asarray(first[single] // 3)


def _lift_off_still_head(mesh: trimesh.Trimesh, head: _HeadSurface, cell: float) -> trimesh.Trimesh:
    """Vertices within the clearance of the still head moved out along its normal to LIFT_CELLS above
    it; the lift fades to nothing between LIFT_FULL_DEPTH_CELLS and the clearance under the head."""
    vertices = np.array(mesh.vertices)
    dist, idx = head.query(vertices)
    normals = head.normals[idx]
    height = np.sum((vertices - head.points[idx]) * normals, axis=1) / cell   # signed, in cells
    fade = np.clip((height + HEAD_CLEARANCE_CELLS) / (HEAD_CLEARANCE_CELLS - LIFT_FULL_DEPTH_CELLS), 0.0, 1.0)
    lift = np.maximum(LIFT_CELLS - height, 0.0) * fade
    lift[~(head.still[idx] & (dist <= HEAD_CLEARANCE_CELLS * cell))] = 0.0
    vertices += (lift * cell)[:, None] * normals
    return trimesh.Trimesh(vertices, mesh.faces, process=False, validate=False)


def _vertex_adjacency(edges: np.ndarray, vertex_count: int) -> sparse.csr_matrix:
    """Symmetric (V, V) adjacency of the (E, 2) edges."""
    pairs = (edges.ravel(), edges[:, ::-1].ravel())
    return sparse.coo_matrix((np.ones(2 * len(edges)), pairs), shape=(vertex_count, vertex_count)).tocsr()


def _smooth_along(vertices: np.ndarray, edges: np.ndarray, iterations: int) -> np.ndarray:
    """Each vertex of the (E, 2) edges moved halfway to the mean of its neighbours along them, repeatedly."""
    adjacency = _vertex_adjacency(edges, len(vertices))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    on = degree > 0
    for _ in range(iterations):
        mean = adjacency @ vertices / np.maximum(degree, 1)[:, None]
        vertices[on] = 0.5 * vertices[on] + 0.5 * mean[on]
    return vertices


def _kept_components(mesh: trimesh.Trimesh, head: _HeadSurface, attach_distance: float) -> trimesh.Trimesh:
    """The components attached to the head (minus specks), and any detached one that is large."""
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    counts = np.bincount(labels)
    dist, _ = head.query(mesh.triangles_center)
    nearest = np.full(len(counts), np.inf)
    np.minimum.at(nearest, labels, dist)
    attached = nearest <= attach_distance
    largest_attached = counts[attached].max() if attached.any() else 0
    keep_component = ((attached & (counts >= MIN_COMPONENT_FRACTION * largest_attached))
                      | (counts >= DETACHED_COMPONENT_FRACTION * counts.max()))
    return _faces_subset(mesh, np.flatnonzero(keep_component[labels]))


def _faces_subset(mesh: trimesh.Trimesh, faces: np.ndarray) -> trimesh.Trimesh:
    """The mesh made of the given faces (one mesh: trimesh returns a list only when not appending)."""
    subset = mesh.submesh([faces], append=True, repair=False)
    assert isinstance(subset, trimesh.Trimesh)
    return subset


def _unwrap(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas charts packed for a `resolution`^2 texture: (vertex mapping, faces, uv)."""
    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices, faces.astype(np.uint32))
    charts = xatlas.ChartOptions()
    charts.max_iterations = 1  # one growing pass: the charts only need to be valid, not minimal
    packing = xatlas.PackOptions()
    packing.resolution = resolution
    packing.padding = 2  # texels, so mipmaps of neighbouring charts do not mix
    atlas.generate(charts, packing)
    mapping, atlas_faces, uv = atlas[0]
    return mapping, atlas_faces, uv


def extract_static_mesh(density: np.ndarray, level: float, head_vertices: np.ndarray, head_faces: np.ndarray,
                        triangle_budget: int, box_half: float = BOX_HALF, atlas_resolution: int = 512,
                        head_motion: np.ndarray | None = None) -> StaticMesh | None:
    """None when the density has no surface at `level` outside the head. The UV atlas is packed for
    a texture of `atlas_resolution`^2 texels. `head_motion`: (V,) world units, how far expressions can
    move each head vertex (exporter.head_mesh.motion_bound); None: every part of the head moves."""
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
    # The density is built from voxel walls: its iso-surface climbs in steps a cell or two high, which
    # light picks out as terraces. Taubin's filter smooths them away without shrinking the hair.
    trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=-0.53, iterations=SMOOTHING_ITERATIONS)

    faces = np.asarray(head_faces)
    head = _HeadSurface(head_vertices, faces, _still_faces(head_vertices, faces, head_motion, LIFT_CELLS * cell))
    keep = _off_the_head(mesh, head, HEAD_CLEARANCE_CELLS * cell)
    if not keep.any():
        return None
    mesh = _faces_subset(mesh, np.flatnonzero(keep))
    mesh = _kept_components(mesh, head, (HEAD_CLEARANCE_CELLS + ATTACHED_CELLS) * cell)

    if len(mesh.faces) > triangle_budget:
        v, f = fast_simplification.simplify(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32),
                                            target_reduction=1.0 - triangle_budget / len(mesh.faces))
        mesh = trimesh.Trimesh(v, f, process=True, validate=True)
        # Decimation can pinch a thin strand off into a speck of its own: sort the pieces again.
        mesh = _kept_components(mesh, head, (HEAD_CLEARANCE_CELLS + ATTACHED_CELLS) * cell)
    if len(mesh.faces) == 0:
        return None
    # After decimation, which would otherwise pull lifted surfaces back in and tucked rims back out.
    mesh = _lift_off_still_head(mesh, head, cell)
    mesh, down_slope = _tuck_cut_edges(mesh, head, (HEAD_CLEARANCE_CELLS + CUT_EDGE_CELLS) * cell,
                                       TUCK_DEPTH_CELLS * cell, RIM_SLOPE_CELLS * cell)

    vertices = np.asarray(mesh.vertices, np.float32)
    normals = _shaded_as_head(vertex_normals(vertices, np.asarray(mesh.faces)), vertices, head, down_slope)
    vmapping, indices, uvs = _unwrap(vertices, np.asarray(mesh.faces), atlas_resolution)
    return StaticMesh(vertices=vertices[vmapping], faces=indices.astype(np.int32), uv=uvs.astype(np.float32),
                      normals=normals[vmapping])
