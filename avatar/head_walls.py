"""From a head volume to the walls of avatar.surface_field: geometry, colours and the side views' claims.

The volume is boolean on the planes' texel grid ([x, y, z], R per axis). It holds the head mesh at its
neutral pose and at the expressions that move it furthest (so no static wall cuts an open jaw) plus
whatever the mesh does not model (hair, ears). Points on the mesh take the neural texture's colour;
other points take the colour a caller-supplied function gives them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage

from avatar import raster
from avatar.expressions import to_expression
from avatar.head_model import HeadModel
from avatar.surface_field import HeadWalls, mesh_wall, split_depth, texel_centres, texel_index

ColourFn = Callable[[np.ndarray], np.ndarray]   # (..., 3) world points -> (..., 3) RGB in [0, 1]
OWN_DEPTH = 0.015          # a point within this of a wall is seen by that wall's view (world units)
FRONT_PREFERENCE = 0.15    # a side view must see a point this much better (cosine) to claim it
MOVING = 0.01              # a vertex some blendshape moves further than this belongs to the moving face
FACE_CLEARANCE = 4          # voxels the side walls stand off the front-facing moving face
FACING_FRONT = 0.3         # ... and the front map keeps it where it faces the front at least this much
CROWN_FACING = (0.45, 0.75)  # the crown: a wall surface turned up this much (its normal's y), seen edge-on
# Where both the front and back walls' surfaces face up this much they share one colour (_crown_coloured): the
# top of the head, where the split crosses it. Only the top: the portrait camera sees the crown's front slope.
SHARED_CROWN_FACING = (0.8, 0.95)
CROWN_BLUR = 8.0           # texels (sigma) the crown's colours are smoothed along x, and y on the top (_crown_coloured)
MOUTH_CURTAIN = 2          # texels in front of its column's split the curtain across an open mouth stands
# Expressions that move the mesh furthest: the walls hold the mesh at each, so none cuts them off.
SWEPT_EXPRESSIONS = (
    {"jawOpen": 1.0}, {"jawOpen": 0.5}, {"jawOpen": 0.5, "jawLeft": 1.0}, {"jawOpen": 0.5, "jawRight": 1.0},
    {"jawForward": 1.0}, {"cheekPuff": 1.0}, {"mouthFunnel": 1.0, "mouthPucker": 1.0},
    {"jawOpen": 1.0, "tongueOut": 1.0},
)


def _swept_poses(head: HeadModel, identity: np.ndarray) -> list[np.ndarray]:
    """The mesh's vertices at neutral and at each of SWEPT_EXPRESSIONS."""
    return [head.identity_vertices(identity)] + [head.posed(to_expression(e), identity) for e in SWEPT_EXPRESSIONS]


def swept_mesh_volume(head: HeadModel, identity: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R, R) bool [x, y, z]: inside the mesh at neutral or at any of SWEPT_EXPRESSIONS, each taken
    as the span between a column's front and back surface."""
    vol = np.zeros((resolution,) * 3, bool)
    for verts in _swept_poses(head, identity):
        vol |= mesh_inside(verts, head.faces, resolution)
    return vol


def mesh_inside(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R, R) bool [x, y, z]: between each column's front and back surface of the mesh."""
    z = texel_centres(resolution).reshape(1, 1, -1)
    zf, _ = mesh_wall(vertices, faces, "front", resolution)
    zb, _ = mesh_wall(vertices, faces, "back", resolution)
    covered = np.isfinite(zf) & np.isfinite(zb)
    inside: np.ndarray = (z <= np.where(covered, zf, -np.inf).T[:, :, None]) & \
        (z >= np.where(covered, zb, np.inf).T[:, :, None])
    return inside


def volume_walls(vol: np.ndarray) -> dict[str, np.ndarray]:
    """First-surface coordinates of a volume [x, y, z] from the four views, NaN where empty:
    front/back on (row y, column x), px/nx on (row y, column z)."""
    r = vol.shape[0]
    c = texel_centres(r)

    def first(axis: int, from_high: bool) -> np.ndarray:
        v = np.flip(vol, axis) if from_high else vol
        idx = np.argmax(v, axis=axis)
        if from_high:
            idx = r - 1 - idx
        return np.where(vol.any(axis=axis), c[idx], np.nan)

    return {"front": first(2, True).T, "back": first(2, False).T, "px": first(0, True), "nx": first(0, False)}


def wall_points(view: str, values: np.ndarray) -> np.ndarray:
    """(R, R, 3) world points of a wall's texels (NaN coordinates become 0)."""
    r = values.shape[0]
    c = texel_centres(r)
    rows, cols = np.meshgrid(c, c, indexing="ij")
    v = np.nan_to_num(values)
    if view in ("front", "back"):
        return np.stack([cols, rows, v], axis=-1)
    return np.stack([v, rows, cols], axis=-1)


class VolumeNormals:
    """Outward unit normals of a boolean volume's surface: the gradient of a smoothed copy."""

    def __init__(self, vol: np.ndarray, resolution: int = 128, sigma: float = 1.5):
        factor = max(1, vol.shape[0] // resolution)
        n = vol.shape[0] // factor
        # (n, n, n) bool: a coarse voxel is set when any of its fine voxels is.
        self.coarse = np.asarray(vol.reshape(n, factor, n, factor, n, factor).any(axis=(1, 3, 5)))
        self.gradient = np.stack(np.gradient(ndimage.gaussian_filter(self.coarse.astype(np.float32), sigma)), axis=0)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        n = self.gradient.shape[1]
        idx = ((points.reshape(-1, 3) + 0.5) * n - 0.5).T
        g: np.ndarray = np.stack([ndimage.map_coordinates(self.gradient[k], idx, order=1, mode="nearest")
                                  for k in range(3)], -1)
        g = -g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-8)
        return g.reshape(points.shape)


class WallView(NamedTuple):
    """One wall as assemble_walls colours it, each (R, R, ...) on the wall's grid."""

    rgb: np.ndarray          # colour of the first surface seen
    points: np.ndarray       # its world points
    moving_face: np.ndarray  # on the part of the mesh expressions move
    on_mesh: np.ndarray      # on the neutral mesh
    real: np.ndarray         # on a surface at rest (the mesh or `extra`)
    coord: np.ndarray        # the wall coordinate: the mesh's own on the mesh, the volume's elsewhere


def assemble_walls(head: HeadModel, identity: np.ndarray, texture: np.ndarray, vol: np.ndarray,
                   extra: np.ndarray, colour: ColourFn, normals: Callable[[np.ndarray], np.ndarray],
                   resolution: int, grown_front: np.ndarray | None = None) -> HeadWalls:
    """Walls of `vol` (mesh and `extra`, the part the mesh does not carry), coloured from the neural
    texture (R, R, 3) on the mesh and by `colour` elsewhere, with each side view's claims.

    `grown_front` ((R, R) z on the xy grid, NaN elsewhere) is the face grown past the mesh's outline
    (whole_head.grown_face): static front wall, textured like the mesh behind it. Under the mesh the front
    wall is otherwise the posed mesh, rasterized each frame, which would cut the growth off."""
    neutral = head.identity_vertices(identity)
    walls = volume_walls(vol)
    moving = np.linalg.norm(head.expression_basis, axis=2).max(axis=0) > MOVING
    tri = torch.from_numpy(head.faces.astype(np.int32))
    tex = torch.from_numpy(texture.astype(np.float32)).permute(2, 0, 1)[None]

    def texture_at(uv: np.ndarray) -> np.ndarray:
        """The neural texture's colour (R, R, 3) at texture coordinates (R, R, 2) in [0, 1]."""
        grid = torch.from_numpy(np.asarray(uv, dtype=np.float32) * 2 - 1)[None]
        rgb: np.ndarray = torch.nn.functional.grid_sample(tex, grid, mode="bilinear", padding_mode="border",
                                                          align_corners=False)[0].permute(1, 2, 0).numpy()
        return rgb

    def wall_colour(name: str) -> WallView:
        pts = wall_points(name, walls[name])
        mesh_coord, rast = mesh_wall(neutral, head.faces, name, resolution)
        on_mesh = np.isfinite(mesh_coord) & (np.abs(np.nan_to_num(mesh_coord) - np.nan_to_num(walls[name]))
                                             < 2.5 / resolution)
        mesh_rgb = texture_at(_surface_uv(head, rast))
        move = raster.interpolate(torch.from_numpy(moving.astype(np.float32))[:, None], rast, tri)[..., 0].numpy()
        rgb = np.where(on_mesh[..., None], mesh_rgb, colour(pts))
        idx = texel_index(pts, resolution)
        on_extra = np.isfinite(walls[name]) & extra[idx[..., 0], idx[..., 1], idx[..., 2]]
        # What is neither the neutral mesh nor `extra` is room kept for the moving mesh (an open jaw):
        # no surface at rest, so no view colours it.
        return WallView(rgb, pts, on_mesh & (move > 0.5), on_mesh, on_mesh | on_extra,
                        np.where(on_mesh, mesh_coord, walls[name]))

    hair_front = volume_walls(extra)["front"]
    if grown_front is None:
        grown_front = np.full_like(hair_front, np.nan)
    front_static = np.fmax(hair_front, grown_front)
    front = wall_colour("front")
    # The front colour at rest: the hair's where static hair is the first surface, elsewhere the
    # texture's (under the mesh the texture is rasterized each frame; the back gate reads this one).
    hair_first = np.isfinite(hair_front) & ~(np.nan_to_num(grown_front, nan=-1.0) > hair_front) & \
        (np.nan_to_num(hair_front, nan=-1.0) >= front.coord - 0.5 / resolution)
    front_rgb = np.where(hair_first[..., None], colour(wall_points("front", hair_front)), front.rgb)
    back = wall_colour("back")
    split = split_depth(walls["front"], walls["back"])
    # Through an open mouth the front view sees the back of the mouth, deep in the head: behind its
    # column's split it would take the colour of the back of the head at the same x, y (a skin-coloured
    # box on a short-haired head). A static curtain just in front of the split, coloured as that surface,
    # stops the view there: at rest the mesh is nearer and wins the front plane's depth test
    # (avatar.planes); with the mouth open, whatever lies behind the curtain shows as the curtain (static
    # hair further back, e.g. behind the neck, stays hidden behind it as behind the face). Moving the
    # split behind the mouth instead gives the crown in the mouth's columns the front view's colours.
    deep, deep_uv = _deepest_front(head, identity, resolution)
    # The curtain stands in front of its column's own split or the continuous one, whichever is further
    # forward: the continuous split may run centimetres behind a column's own across the face, and a
    # curtain that deep stood past the jaw's outline where the portrait sees beside the mesh (it took the
    # outline's pixels: -0.9 dB frontal face PSNR on one portrait). In front of both it is front half.
    column_split = np.maximum(split, split_depth(walls["front"], walls["back"], continuous=False))
    curtain_z = column_split[None, :] + MOUTH_CURTAIN / resolution
    curtain = (np.isfinite(deep) & (deep < curtain_z) & (np.nan_to_num(front.coord, nan=-1.0) > curtain_z)
               & ~(np.nan_to_num(front_static, nan=-1.0) >= curtain_z))
    front_static = np.where(curtain, curtain_z, front_static)
    front_rgb = np.where(curtain[..., None], texture_at(deep_uv), front_rgb)
    front_normals, back_normals = normals(front.points), normals(back.points)
    front_rgb, back_rgb = _crown_coloured((front_rgb, back.rgb), (front_normals, back_normals),
                                          (np.isfinite(walls["front"]), np.isfinite(walls["back"])))
    # Under the mesh the front colour is the neural texture, rasterized each frame, which the crown's colouring
    # above cannot reach: where the scalp's top is the first surface the front view sees (no hair, or the
    # head model's crown standing above the hair), it sees it edge-on, and seen from above the texel at the
    # front edge of each row covered the band behind it (a bright or dark rectangle in the middle of the
    # crown). There a static front wall a quarter voxel in front of the mesh wins the front plane's depth test
    # (avatar.planes) and wears the crown's colour. Only the top (SHARED_CROWN_FACING): the portrait sees the
    # crown's front slope, where the texture fitted to it should show; the scalp does not move with expressions.
    scalp_top = (_facing_up(front_normals, SHARED_CROWN_FACING) > 0) & front.on_mesh & ~front.moving_face \
        & ~hair_first & ~curtain & ~(np.nan_to_num(front_static, nan=-1.0) >= front.coord)
    front_static = np.where(scalp_top, front.coord + 0.25 / resolution, front_static)
    owned, side_rgb, clearance, side_wall = {}, {}, {}, {}
    for side, axis_sign in (("px", 1.0), ("nx", -1.0)):
        view = wall_colour(side)
        pts, moving_face, real, side_wall[side] = view.points, view.moving_face, view.real, view.coord
        n = normals(pts)
        front_half = pts[..., 2] > split[texel_index(pts[..., 0], resolution)]
        default_wall = np.where(front_half, _sample_xy(walls["front"], pts), _sample_xy(walls["back"], pts))
        on_default = np.abs(np.nan_to_num(default_wall, nan=9.0) - pts[..., 2]) < OWN_DEPTH
        default_score = np.where(front_half, n[..., 2], -n[..., 2])
        # The moving face stays with the front map, which follows the expression.
        front_face = moving_face & (n[..., 2] > FACING_FRONT)
        owns = real & ~front_face
        # There the front wall (the posed mesh, exact) shapes the surface: the side wall steps back out
        # of its way, or its voxel terraces would cut the cheek into scales.
        clearance[side] = np.where(front_face, FACE_CLEARANCE / resolution, 0.0)
        owns &= ~(on_default & (default_score + FRONT_PREFERENCE >= axis_sign * n[..., 0]))
        # A side view sees the top of the head edge-on, as the front and back views do, and the colour it gives
        # each row's outermost texel changes from row to row: seen from above, every row's claimed strip was a
        # block (bars, a mosaic of the side map's colours over the crown). The crown's shared front and back
        # colours (_crown_coloured) colour the top instead.
        owns &= n[..., 1] < SHARED_CROWN_FACING[0]
        owned[side] = owns
        side_rgb[side] = view.rgb
    # The back and side walls stand one voxel out: where they meet the front wall's outline at a graze,
    # a voxel's rounding must not carve a slit the front view would see through.
    voxel = 1.0 / resolution
    px, nx = side_wall["px"] + voxel + clearance["px"], side_wall["nx"] - voxel - clearance["nx"]
    # The side walls reach a voxel past the grown face too: at the mesh they would cut it off again.
    rows, cols = np.nonzero(np.isfinite(grown_front))
    x = texel_centres(resolution)[cols]
    at = (rows, texel_index(grown_front[rows, cols], resolution))
    np.fmax.at(px, at, x + voxel)
    np.fmin.at(nx, at, x - voxel)
    return HeadWalls(front_static=front_static, back=back.coord - voxel, px=px, nx=nx,
                     front_rgb=front_rgb, back_rgb=back_rgb, px_rgb=side_rgb["px"], nx_rgb=side_rgb["nx"],
                     split=split, owned=owned)


def _facing_up(normal: np.ndarray, facing: tuple[float, float]) -> np.ndarray:
    """In [0, 1], how far surfaces with these unit normals (..., 3) are turned up: none below facing[0] (their
    normal's y), wholly above facing[1]."""
    up: np.ndarray = np.clip((normal[..., 1] - facing[0]) / (facing[1] - facing[0]), 0, 1)
    return up


def _seen_blur(colours: np.ndarray, seen: np.ndarray, sigma: tuple[float, float]) -> np.ndarray:
    """Colours (R, R, 3) smoothed by a Gaussian of `sigma` texels (rows, columns) over the `seen` texels only."""
    weight = ndimage.gaussian_filter(seen.astype(np.float32), sigma)
    blurred: np.ndarray = ndimage.gaussian_filter(colours * seen[..., None], (*sigma, 0)) / \
        np.maximum(weight, 1e-6)[..., None]
    return blurred


def _crown_coloured(rgb: tuple[np.ndarray, np.ndarray], normals: tuple[np.ndarray, np.ndarray],
                    seen: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The front and back walls' colours (R, R, 3 each; rows y, columns x; `normals` (R, R, 3) of their
    surfaces) with the crown's smoothed along x
    (and along y too where the surface faces up as SHARED_CROWN_FACING) and shared between the two.

    The front and back colours hold along z, and both walls see the crown edge-on along the top of the
    head: whatever varies along x at that edge (strands, highlights, the hair's parting) ran over the whole
    crown as stripes. Where a wall's surface faces up (CROWN_FACING, its normal's y) its colours blend
    toward a copy smoothed along x over the wall's own texels (`seen`). The top of the head is also where the
    front colour gives way to the back colour (the split), at the same texel of both walls' maps: where both
    walls face up there (SHARED_CROWN_FACING), both take their mean, so no seam crosses it (seen from above, the
    two colours met along the split's steps in a stepped edge)."""
    ups, tops, smooth = [], [], []
    for colours, n, wall_seen in zip(rgb, normals, seen):
        up = _facing_up(n, CROWN_FACING)
        tops.append(_facing_up(n, SHARED_CROWN_FACING) * wall_seen)
        along_x = _seen_blur(colours, wall_seen, (0.0, CROWN_BLUR))
        # Seen from above, each row of a wall's map covers a band of the nearly level top (it steps up a voxel
        # every few texels of depth): colours that change from row to row (a turban's folds) showed as a
        # mosaic of blocks. On the top the colours are smoothed along y as well.
        along_xy = _seen_blur(colours, wall_seen, (CROWN_BLUR, CROWN_BLUR))
        top = tops[-1][..., None]
        ups.append(up * wall_seen)
        smooth.append(along_x * (1 - top) + along_xy * top)
    both = np.minimum(*tops)[..., None]
    total = np.maximum(ups[0] + ups[1], 1e-6)[..., None]
    shared = (smooth[0] * ups[0][..., None] + smooth[1] * ups[1][..., None]) / total
    out = []
    for colours, up, own in zip(rgb, ups, smooth):
        crown = own * (1 - both) + shared * both
        out.append((colours * (1 - up[..., None]) + crown * up[..., None]).astype(np.float32))
    return out[0], out[1]


def _deepest_front(head: HeadModel, identity: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """On the xy grid: the rearmost first surface the front view sees at neutral or at any of
    SWEPT_EXPRESSIONS, (R, R) z (NaN where the mesh never covers), and its texture coordinates (R, R, 2)."""
    depth, uv = [], []
    for verts in _swept_poses(head, identity):
        z, rast = mesh_wall(verts, head.faces, "front", resolution)
        depth.append(np.where(np.isfinite(z), z, np.inf))
        uv.append(_surface_uv(head, rast))
    stack = np.stack(depth)
    pick = np.argmin(stack, axis=0)
    deepest = np.take_along_axis(stack, pick[None], axis=0)[0]
    chosen = np.take_along_axis(np.stack(uv), pick[None, ..., None], axis=0)[0]
    return np.where(np.isfinite(deepest), deepest, np.nan), chosen.astype(np.float32)


def _surface_uv(head: HeadModel, rast: torch.Tensor) -> np.ndarray:
    """(R, R, 2) texture coordinates of the mesh surface a wall's raster (mesh_wall) shows."""
    uv: np.ndarray = raster.interpolate(torch.from_numpy(head.uv.astype(np.float32)), rast,
                                        torch.from_numpy(head.faces_uv.astype(np.int32))).numpy()
    return uv


def _sample_xy(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    r = values.shape[0]
    sampled: np.ndarray = values[texel_index(points[..., 1], r), texel_index(points[..., 0], r)]
    return sampled
