"""Geometry of the embedded head: skin grid with eye and mouth openings, sacks, eyeballs, tongue, teeth.

The skin is a (rows x columns) lattice around the vertical axis (rows from the crown to the neck cap,
column 0 straight ahead, columns mirrored about it), closed by a pole fan at each end. Three rows are
cut open along a span of columns (a "slit": the cut vertices are duplicated, the row above keeps the
originals, the row below uses the copies): the mouth and the two eyes. Each slit's rim is continued
inward by a sack of vertex rings ending in a point, so the skin stays one closed surface: the mouth
cavity behind the lips (part "mouth_cavity"), a conjunctival sack around each eyeball (part "skin").
Eyeballs, tongue and teeth are closed ring-shaped parts of their own. `build_rig` runs the stages of
`_RigBuilder` in order; the result is a `Rig`, which also carries the per-vertex bookkeeping the
blendshapes need.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from scipy.spatial import cKDTree

from avatar.head_model.base import PART_ID
from avatar.head_model.rings import ring_disk_uv, ring_faces
from avatar.head_model.shape import (
    EYE_CENTER,
    EYE_CORNER_DX,
    EYE_SLIT_Y,
    EYEBALL_RADIUS,
    LID_RADIUS,
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    SACK_RADIUS,
    ray_exit,
)

COLUMNS = 160           # even: column 0 looks straight ahead, column COLUMNS/2 straight back
ROWS = 104              # vertex rings between the crown pole and the neck-cap pole
SKIN_V0 = 0.13          # the skin's UV takes v in [SKIN_V0, 1]; the small islands sit below
LID_OPEN_UP = 0.62      # neutral upper-lid opening (radians about the eye centre) at mid-eye
LID_OPEN_DOWN = 0.12    # neutral lower-lid opening
LID_REACH_UP = 1.1      # how far above the lid margin (radians) the lid rotation fades out
LID_REACH_DOWN = 0.8
EYE_SACK_RINGS = 7
# The eye drape (_eye_wrap) works in an ellipse round each eye: its half-axes in x and y, and the bands (in
# units of that ellipse) over which it fades out, for skin lifted off the eyeball and for skin laid onto it.
DRAPE_RADII = (0.062, 0.052)
DRAPE_LIFT = (1.0, 1.55)
DRAPE_SINK = (0.6, 0.95)
# Mouth sack rings: depth behind the lip line, oval half-width/half-height, pull toward the oval.
MOUTH_SACK: dict[str, Any] = {
    "depth": (0.012, 0.03, 0.06, 0.10, 0.15, 0.20, 0.25),
    "half_width": (0.080, 0.092, 0.098, 0.100, 0.095, 0.080, 0.055),
    "half_height": (0.018, 0.045, 0.065, 0.075, 0.075, 0.065, 0.045),
    "pull": (0.3, 0.5, 0.7, 1.0, 1.0, 1.0, 1.0),
    "throat": 0.29,
}
ISLAND = 0.125          # width of each small UV island box along the bottom strip
ISLANDS = ("mouth_cavity", "eye_sack_left", "eye_sack_right", "eyeball_left", "eyeball_right",
           "tongue", "teeth_upper", "teeth_lower")
# Eyeball UV disk: what can be seen (the cornea and iris, up to EYE_UV_FRONT[0] from the gaze axis)
# gets the inner EYE_UV_FRONT[1] of the disk's radius, evenly spread in angle (an azimuthal-equidistant
# map, so the iris is a round disk in UV); the back of the eyeball shares the outer rim.
EYE_UV_FRONT = (np.radians(60.0), 0.75)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((np.asarray(x, dtype=np.float64) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def rotate_about_x(p: np.ndarray, centre: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate points about the axis through `centre` parallel to x; positive angle lifts the front (+z) up."""
    rel = p - centre
    ca, sa = np.cos(angle), np.sin(angle)
    out = rel.copy()
    out[..., 1] = rel[..., 1] * ca + rel[..., 2] * sa
    out[..., 2] = -rel[..., 1] * sa + rel[..., 2] * ca
    rotated: np.ndarray = out + centre
    return rotated


def eye_centre(side: int) -> np.ndarray:
    """Centre of the left (side=+1, +x) or right (side=-1) eye."""
    centre: np.ndarray = EYE_CENTER * np.array([side, 1.0, 1.0])
    return centre


@dataclass(frozen=True)
class Slit:
    """A cut along lattice row `row` between corner columns ja < jb (unwrapped: ja may be negative)."""

    row: int
    ja: int
    jb: int

    @property
    def columns(self) -> list[int]:
        """The cut (interior) columns, wrapped into 0..COLUMNS-1."""
        return [j % COLUMNS for j in range(self.ja + 1, self.jb)]


@dataclass
class Rig:
    """The embedded head before scaling: mesh, UVs, parts, and the bookkeeping the blendshapes need."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    faces_uv: np.ndarray
    vertex_part: np.ndarray
    face_part: np.ndarray
    mirror: np.ndarray
    landmarks: dict[str, int]
    islands: dict[str, tuple[float, float, float, float]]
    # Per-vertex bookkeeping (length N; meaningless entries are 0 / -1 / nan).
    row: np.ndarray            # skin lattice row (fractional for slit copies: -0.5 above / +0.5 below)
    theta: np.ndarray          # lattice column angle (0 = straight ahead, + toward +x)
    mouth_lower: np.ndarray    # 0 = above the mouth line (upper lip side), 1 = below (jaw side)
    sack: np.ndarray           # 0 none, 1 mouth cavity, 2 left eye sack, 3 right eye sack
    sack_ring: np.ndarray      # ring number inside the sack (1 = next to the rim)
    lid_side: np.ndarray       # (2, N): +1 upper lid, -1 lower lid, 0 elsewhere, per eye (left, right)
    lid_profile: np.ndarray    # (2, N): opening profile across the eye (0 at the corners, 1 mid-eye)
    lid_reach: np.ndarray      # (2, N): 1 at the lid margin fading to 0 away from it
    teeth_lower: np.ndarray    # (N,) bool

    @property
    def surface(self) -> np.ndarray:
        """(N,) bool: vertices of the closed outer surface (skin with its eye sacks, and the mouth cavity)."""
        closed: np.ndarray = (self.vertex_part == PART_ID["skin"]) | (self.vertex_part == PART_ID["mouth_cavity"])
        return closed


def _columns() -> np.ndarray:
    # Denser columns toward the face: theta(t) = pi*(t - a*sin(pi t)/pi) has slope (1-a) in front.
    half = COLUMNS // 2
    t = np.arange(half + 1) / half
    a = 0.55
    th = np.pi * (t - a * np.sin(np.pi * t) / np.pi)
    theta = np.empty(COLUMNS)
    theta[:half + 1] = th
    theta[half + 1:] = -th[1:half][::-1]
    return theta


def _directions(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(phi) * np.sin(theta), np.cos(phi), np.sin(phi) * np.cos(theta)], axis=-1)


def _rows(anchor_phis: list[float]) -> tuple[np.ndarray, list[int]]:
    """Row angles from the crown (phi=0) to the neck cap (phi=pi): even spacing in arc length,
    denser over the face, with rows placed exactly at each anchor angle. Returns (phis, anchor rows)."""
    phis = np.linspace(0.0, np.pi, 721)
    thetas = np.array([0.0, 0.35, 0.7, 1.2, np.pi / 2, 2.2, np.pi])
    weights = np.array([3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0])
    tt, pp = np.meshgrid(thetas, phis, indexing="ij")
    d = _directions(tt, pp).reshape(-1, 3)
    pts = (d * ray_exit(d)[:, None]).reshape(len(thetas), len(phis), 3)
    ds = np.linalg.norm(np.diff(pts, axis=1), axis=-1)
    rate = (weights[:, None] * ds).sum(0) / weights.sum()
    mid = 0.5 * (phis[1:] + phis[:-1])
    importance = 1.0 + 1.5 * np.exp(-((mid - 1.62) / 0.42) ** 2)
    cum = np.concatenate([[0.0], np.cumsum(rate * importance)])
    total = cum[-1]
    knots_k, knots_m = [0.0], [0.0]
    anchor_rows = []
    for a in sorted(anchor_phis):
        m = np.interp(a, phis, cum)
        k = round(m / total * (ROWS + 1))
        knots_k.append(k)
        knots_m.append(m)
        anchor_rows.append(k - 1)
    knots_k.append(ROWS + 1)
    knots_m.append(total)
    ks = np.arange(1, ROWS + 1)
    row_phi = np.interp(np.interp(ks, knots_k, knots_m), cum, phis)
    # anchor_rows follows the sorted anchors; hand them back in the caller's order.
    result = [0] * len(anchor_phis)
    for pos, idx in enumerate(np.argsort(anchor_phis)):
        result[idx] = anchor_rows[pos]
    return row_phi, result


def drape_ellipse(p: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Where points (..., 3) lie in the drape's ellipse round an eye centred at `centre` (1 on its rim)."""
    q: np.ndarray = np.hypot((p[..., 0] - centre[0]) / DRAPE_RADII[0], (p[..., 1] - centre[1]) / DRAPE_RADII[1])
    return q


def _eye_wrap(p: np.ndarray, side: int) -> np.ndarray:
    """Drape the skin around one eye onto the lid sphere, keeping all skin outside that sphere.

    Skin inside the sphere is lifted onto it over a wide ellipse round the eye; skin standing off it is laid
    onto it only over the opening, where the lids rest on the eye. Sunk onto it as far out as it is lifted,
    the brow and cheek round the eye formed a trench that a lit engine render showed as goggles."""
    c = eye_centre(side)
    rel = p - c
    dist = np.linalg.norm(rel, axis=-1)
    n = rel / dist[..., None]
    q = drape_ellipse(p, c)
    front = smoothstep(c[2] - 0.03, c[2], p[..., 2])
    lifts = (1.0 - smoothstep(*DRAPE_LIFT, q)) * front
    sinks = (1.0 - smoothstep(*DRAPE_SINK, q)) * front
    d2 = dist + (LID_RADIUS - dist) * np.where(dist < LID_RADIUS, lifts, sinks)
    x = d2 - LID_RADIUS
    clamped = LID_RADIUS + 0.5 * (x + np.sqrt(x * x + 0.004 ** 2))
    d3 = clamped + (d2 - clamped) * smoothstep(0.08, 0.12, d2)
    draped: np.ndarray = c + n * d3[..., None]
    return draped


class _Verts:
    """Growing vertex table with per-vertex bookkeeping columns."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.meta: dict[str, list[np.ndarray]] = {}
        self.count = 0

    def add(self, pts: np.ndarray, **meta: np.ndarray | float) -> np.ndarray:
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
        ids = np.arange(self.count, self.count + len(pts))
        self.blocks.append(pts)
        for key in set(self.meta) | set(meta):
            if key not in self.meta:
                self.meta[key] = [np.zeros(self.count)]
            val = np.asarray(meta.get(key, 0.0), dtype=np.float64)
            self.meta[key].append(np.broadcast_to(val, (len(pts),)).copy())
        self.count += len(pts)
        return ids

    def replace_positions(self, pts: np.ndarray) -> None:
        """Replace every vertex position at once (stages that deform what is already built)."""
        self.blocks = [pts]
        for key in self.meta:
            self.meta[key] = [self.column(key)]

    def set(self, key: str, ids: np.ndarray, value: float) -> None:
        col = self.column(key)
        col[ids] = value
        self.meta[key] = [col]

    def array(self) -> np.ndarray:
        return np.concatenate(self.blocks)

    def column(self, key: str) -> np.ndarray:
        return np.concatenate(self.meta[key])


def _slit_loop(upper_of: Mapping[int, int], lower_of: Mapping[int, int], ja: int, jb: int,
               grid_id: Callable[[int], int]) -> np.ndarray:
    """Rim of a slit with corner columns ja < jb (unwrapped): +x corner, upper chain toward -x,
    -x corner, lower chain back toward +x. Returns vertex ids."""
    upper = [upper_of[j % COLUMNS] for j in range(jb - 1, ja, -1)]
    lower = [lower_of[j % COLUMNS] for j in range(ja + 1, jb)]
    return np.array([grid_id(jb % COLUMNS)] + upper + [grid_id(ja % COLUMNS)] + lower)


def _island(name: str) -> tuple[float, float, float, float]:
    """UV box (u0, v0, u1, v1) of a small part's island in the bottom strip."""
    k = ISLANDS.index(name)
    return (k * ISLAND + 0.0025, 0.0025, k * ISLAND + ISLAND - 0.0025, ISLAND - 0.0025)


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    tri = vertices[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum())


class _RigBuilder:
    """Builds the rig one stage at a time, in a fixed order (vertex, face and UV order depend on it).

    Every stage appends vertices (with their bookkeeping columns), faces, face parts and UV corners.
    """

    def __init__(self) -> None:
        self.theta = _columns()
        self.verts = _Verts()
        self.faces: list[np.ndarray] = []
        self.face_parts: list[np.ndarray] = []
        self.uv: list[np.ndarray] = []
        self.faces_uv: list[np.ndarray] = []
        self.uv_count = 0
        self.lower_copy: dict[tuple[int, int], int] = {}   # (row, column) of a slit vertex -> its lower copy
        self.pupils: list[int] = []
        self.eye_sacks: list[np.ndarray] = []               # per eye: (rings, m) vertex ids, rim first
        self.teeth_lower_ids = np.zeros(0, np.int64)

    def build(self) -> Rig:
        self.skin_lattice()
        self.cut_slits()
        self.lattice_faces()
        self.close_lips()
        self.open_eyelids()
        self.mouth_cavity()
        self.eye_sockets()
        self.eyeballs()
        self.tongue()
        self.teeth()
        return self.finish()

    # -- shared helpers --------------------------------------------------------------------------
    @overload
    @staticmethod
    def grid_id(i: int, j: int) -> int: ...
    @overload
    @staticmethod
    def grid_id(i: np.ndarray, j: int | np.ndarray) -> np.ndarray: ...
    @overload
    @staticmethod
    def grid_id(i: int, j: np.ndarray) -> np.ndarray: ...
    @staticmethod
    def grid_id(i: int | np.ndarray, j: int | np.ndarray) -> int | np.ndarray:
        """Vertex id of lattice row i, column j (j wraps; also the upper copy of a slit vertex)."""
        return i * COLUMNS + (j % COLUMNS)

    def lower_id(self, i: int, j: int) -> int:
        """Vertex id on row i, column j as seen from below a slit (the lower copy where there is one)."""
        return self.lower_copy.get((i, j % COLUMNS), self.grid_id(i, j))

    def add_faces(self, faces: np.ndarray, part: int, uv: np.ndarray, faces_uv: np.ndarray) -> None:
        self.faces.append(np.asarray(faces))
        self.face_parts.append(np.full(len(faces), part, np.int8))
        self.uv.append(np.asarray(uv))
        self.faces_uv.append(np.asarray(faces_uv) + self.uv_count)
        self.uv_count += len(uv)

    def slit_rim(self, slit: Slit) -> np.ndarray:
        i = slit.row
        return _slit_loop({j: self.grid_id(i, j) for j in range(COLUMNS)},
                          {j: self.lower_id(i, j) for j in range(COLUMNS)}, slit.ja, slit.jb,
                          lambda j: self.grid_id(i, j))

    def add_sack(self, rim: np.ndarray, ring_points: list[np.ndarray], pole: np.ndarray, part: int, sack: int,
                 island: str, omega: np.ndarray | float = 0.0, pole_omega: float = 0.0) -> np.ndarray:
        """A pocket continuing the skin inward from a slit's rim: rings of points ending in one pole.

        Its faces keep the rim's orientation, so the skin stays one closed, outward surface (the
        sack's normals face into the pocket). UV: a disk, rim on the circle, pole at the centre.
        Returns the (rings, m) vertex ids, rim first.
        """
        rings = [rim]
        for k, pts in enumerate(ring_points, start=1):
            rings.append(self.verts.add(pts, part=part, sack=sack, sack_ring=k, omega=omega, row=np.nan,
                                        theta=np.nan))
        pole_id = self.verts.add(pole[None], part=part, sack=sack, sack_ring=len(ring_points) + 1,
                                 omega=pole_omega, row=np.nan, theta=np.nan)[0]
        rings_arr = np.stack(rings)
        radii = 1.0 - np.arange(len(rings)) / len(rings)
        self.add_faces(ring_faces(rings_arr, back_pole=pole_id), part,
                       *ring_disk_uv(radii, rings_arr.shape[1], None, 0.0, _island(island)))
        return rings_arr

    def add_ring_part(self, front: np.ndarray, rings: np.ndarray, back: np.ndarray, part: int, island: str,
                      uv_radii: np.ndarray | None = None) -> np.ndarray:
        """A closed part made of (n, m, 3) rings of points between a front and a back pole.

        Faced outward (by its enclosed volume), UV-mapped to a disk with the front pole at the centre
        and ring k at radius uv_radii[k] (default: evenly spaced). Returns its vertex ids, front pole first.
        """
        n, m = rings.shape[:2]
        front_id = self.verts.add(front[None], part=part, row=np.nan, theta=np.nan)[0]
        ids = self.verts.add(rings.reshape(-1, 3), part=part, row=np.nan, theta=np.nan)
        back_id = self.verts.add(back[None], part=part, row=np.nan, theta=np.nan)[0]
        faces = ring_faces(ids.reshape(n, m), front_id, back_id)
        radii = np.arange(1, n + 1) / (n + 1) if uv_radii is None else uv_radii
        uv, faces_uv = ring_disk_uv(radii, m, 0.0, 1.0, _island(island))
        pts = np.concatenate([front[None], rings.reshape(-1, 3), back[None]])
        if _signed_volume(pts, faces - front_id) < 0:
            faces, faces_uv = faces[:, ::-1].copy(), faces_uv[:, ::-1].copy()
        self.add_faces(faces, part, uv, faces_uv)
        return np.concatenate([[front_id], ids, [back_id]])

    # -- stages ----------------------------------------------------------------------------------
    def skin_lattice(self) -> None:
        """The skin lattice (+x half built, then mirrored), draped around the eyes, plus its two poles."""
        theta = self.theta
        ce = eye_centre(1)
        slit_eye_pt = np.array([ce[0], EYE_SLIT_Y, ce[2] + LID_RADIUS])
        phi_eye = float(np.arccos(slit_eye_pt[1] / np.linalg.norm(slit_eye_pt)))
        mouth_pt = np.array([0.0, MOUTH_Y, 0.36])
        phi_mouth = float(np.arccos(mouth_pt[1] / np.linalg.norm(mouth_pt)))
        row_phi, (self.i_eye, self.i_mouth) = _rows([phi_eye, phi_mouth])

        half = COLUMNS // 2
        tt, pp = np.meshgrid(theta[:half + 1], row_phi, indexing="xy")
        d = _directions(tt, pp).reshape(-1, 3)
        pos_half = (d * ray_exit(d)[:, None]).reshape(ROWS, half + 1, 3)
        grid = np.empty((ROWS, COLUMNS, 3))
        grid[:, :half + 1] = pos_half
        grid[:, half + 1:] = pos_half[:, 1:half][:, ::-1] * np.array([-1.0, 1.0, 1.0])
        crown = np.array([0.0, ray_exit(np.array([[0.0, 1.0, 0.0]]))[0], 0.0])
        base_cap = np.array([0.0, -ray_exit(np.array([[0.0, -1.0, 0.0]]))[0], 0.0])
        for s in (1, -1):
            grid = _eye_wrap(grid, s)

        # Slit column spans: the mouth across column 0, each eye between its corners.
        mouth_theta_c = np.arcsin(MOUTH_HALF_WIDTH / np.hypot(MOUTH_HALF_WIDTH, 0.33))
        self.k_m = int(np.argmin(np.abs(theta[:half] - mouth_theta_c)))
        eye_row = grid[self.i_eye]
        right_half = np.arange(1, half)
        self.j_in = int(right_half[np.argmin(np.abs(eye_row[right_half, 0] - (ce[0] - EYE_CORNER_DX)))])
        self.j_out = int(right_half[np.argmin(np.abs(eye_row[right_half, 0] - (ce[0] + EYE_CORNER_DX)))])
        self.slits = {"mouth": Slit(self.i_mouth, -self.k_m, self.k_m),
                      "eye_left": Slit(self.i_eye, self.j_in, self.j_out),
                      "eye_right": Slit(self.i_eye, COLUMNS - self.j_out, COLUMNS - self.j_in)}

        n = ROWS * COLUMNS
        self.verts.add(grid.reshape(-1, 3), part=np.full(n, PART_ID["skin"], np.int8),
                       row=np.repeat(np.arange(ROWS), COLUMNS).astype(np.float64), theta=np.tile(theta, ROWS),
                       slit=np.zeros(n, np.int8), sack=np.zeros(n, np.int8), sack_ring=np.zeros(n, np.int64),
                       omega=np.zeros(n))
        self.top = self.verts.add(crown[None], part=PART_ID["skin"], row=-1.0, theta=0.0)[0]
        self.bottom = self.verts.add(base_cap[None], part=PART_ID["skin"], row=float(ROWS), theta=0.0)[0]

    def cut_slits(self) -> None:
        """Cut the mouth and eye slits: the lattice vertex is the upper copy; the lower copy is appended."""
        grid = self.verts.array()[:ROWS * COLUMNS]
        for slit in self.slits.values():
            cols = slit.columns
            src = np.array([self.grid_id(slit.row, j) for j in cols])
            ids = self.verts.add(grid[src], part=PART_ID["skin"], row=float(slit.row), theta=self.theta[cols],
                                 slit=-1)
            self.verts.set("slit", src, 1.0)
            for j, v in zip(cols, ids):
                self.lower_copy[(slit.row, j)] = int(v)

    def lattice_faces(self) -> None:
        """Lattice quads and the pole fans, wound outward, with the skin's cylindrical UV layout.

        Diagonals are mirrored across column 0 so the mesh is symmetric; UV column 0 is straight back,
        so the face sits in the middle of the layout.
        """
        gid, lower_id = self.grid_id, self.lower_id
        half = COLUMNS // 2
        faces, uv_faces = [], []
        jj = (np.arange(COLUMNS) + half) % COLUMNS      # unwrapped UV column of lattice column j
        vrow = SKIN_V0 + (1.0 - SKIN_V0) * (1.0 - (np.arange(ROWS) + 1) / (ROWS + 1))
        uv_grid = np.stack(np.meshgrid(np.arange(COLUMNS + 1) / COLUMNS, vrow, indexing="xy"), -1).reshape(-1, 2)

        def uvid(i: int, c: int) -> int:
            return i * (COLUMNS + 1) + c

        for i in range(ROWS - 1):
            for j in range(COLUMNS):
                a, b = lower_id(i, j), lower_id(i, j + 1)
                c, dd = gid(i + 1, j + 1), gid(i + 1, j)
                c0 = jj[j]
                ua, ub, uc, ud = uvid(i, c0), uvid(i, c0 + 1), uvid(i + 1, c0 + 1), uvid(i + 1, c0)
                if j < half:
                    faces += [(a, c, b), (a, dd, c)]
                    uv_faces += [(ua, uc, ub), (ua, ud, uc)]
                else:
                    faces += [(a, dd, b), (dd, c, b)]
                    uv_faces += [(ua, ud, ub), (ud, uc, ub)]
        n_uv = len(uv_grid)
        pole_uv = []
        for j in range(COLUMNS):
            c0 = jj[j]
            faces.append((self.top, gid(0, j), gid(0, j + 1)))
            pole_uv.append(((c0 + 0.5) / COLUMNS, 1.0))
            uv_faces.append((n_uv + len(pole_uv) - 1, uvid(0, c0), uvid(0, c0 + 1)))
            faces.append((self.bottom, gid(ROWS - 1, j + 1), gid(ROWS - 1, j)))
            pole_uv.append(((c0 + 0.5) / COLUMNS, SKIN_V0))
            uv_faces.append((n_uv + len(pole_uv) - 1, uvid(ROWS - 1, c0 + 1), uvid(ROWS - 1, c0)))
        self.add_faces(np.array(faces), PART_ID["skin"], np.concatenate([uv_grid, np.array(pole_uv)]),
                       np.array(uv_faces))

    def close_lips(self) -> None:
        """Lips a hair's breadth apart at rest, with the lip line tucked in so they read as closed."""
        gid, theta, i_m, k_m = self.grid_id, self.theta, self.i_mouth, self.k_m
        v = self.verts
        pts = v.array()
        upper_ids = [gid(i_m, j) for j in range(-k_m + 1, k_m)]
        lower_ids = [self.lower_id(i_m, j) for j in range(-k_m + 1, k_m)]
        th_m = theta[[j % COLUMNS for j in range(-k_m + 1, k_m)]]
        prof = np.cos(0.5 * np.pi * np.abs(th_m) / theta[k_m]) ** 0.7
        pts[upper_ids, 1] += 0.0015 * prof
        pts[lower_ids, 1] -= 0.0015 * prof
        near = np.abs(v.column("row") - i_m) <= 3
        near &= np.abs(v.column("theta")) < 1.25 * theta[k_m]
        near_ids = np.flatnonzero(near & (v.column("part") == PART_ID["skin"]))
        drow = v.column("row")[near_ids] - i_m
        tuck = np.exp(-(drow / 1.2) ** 2) * smoothstep(1.25, 0.7, np.abs(v.column("theta")[near_ids]) / theta[k_m])
        pts[near_ids, 2] -= 0.006 * tuck
        v.replace_positions(pts)

    def open_eyelids(self) -> None:
        """Per eye, measure each skin vertex's angle from the closed slit, then open the lids.

        Records lid_side / lid_profile / lid_reach for the skin vertices built so far.
        """
        v = self.verts
        pts = v.array()
        nv = v.count
        self.lid_side = np.zeros((2, nv), np.int8)
        self.lid_profile = np.zeros((2, nv))
        self.lid_reach = np.zeros((2, nv))
        row_all = v.column("row")
        slit_all = v.column("slit")
        col_index = np.full(nv, -1)
        col_index[:ROWS * COLUMNS] = np.tile(np.arange(COLUMNS), ROWS)
        for key in ("eye_left", "eye_right"):
            slit = self.slits[key]
            col_index[[self.lower_copy[(slit.row, j)] for j in slit.columns]] = slit.columns
        skin_grid = col_index >= 0
        for e, s in enumerate((1, -1)):
            c = eye_centre(s)
            slit = self.slits["eye_left" if s > 0 else "eye_right"]
            i, ja, jb = slit.row, slit.ja, slit.jb
            corner_x = np.abs(pts[[self.grid_id(i, ja), self.grid_id(i, jb)], 0])
            x_in, x_out = corner_x.min(), corner_x.max()
            beta = np.arctan2(pts[:, 1] - c[1], pts[:, 2] - c[2])
            beta_slit = beta[self.grid_id(i, np.arange(COLUMNS))]
            sx = np.clip((pts[:, 0] * s - x_in) / (x_out - x_in), 0.0, 1.0)
            profile = np.where(skin_grid, np.sin(np.pi * sx) ** 0.9, 0.0)
            upper = skin_grid & ((row_all < i) | ((row_all == i) & (slit_all == 1)))
            lower = skin_grid & ((row_all > i) | ((row_all == i) & (slit_all == -1)))
            # Beyond the corners the slit row is no reference: use the nearest corner column's angle.
            lo_c, hi_c = sorted((ja % COLUMNS, jb % COLUMNS))
            ref_col = np.clip(np.maximum(col_index, 0), lo_c, hi_c)
            dbeta = np.abs(beta - beta_slit[ref_col])
            near_eye = 1.0 - smoothstep(0.07, 0.1, np.linalg.norm(pts - c, axis=1))
            front = (pts[:, 2] > c[2] - 0.02) * near_eye
            reach = np.where(upper, 1.0 - smoothstep(0.0, LID_REACH_UP, dbeta),
                             1.0 - smoothstep(0.0, LID_REACH_DOWN, dbeta)) * front
            side = np.where(upper & (front > 0), 1, np.where(lower & (front > 0), -1, 0))
            self.lid_side[e] = side
            self.lid_profile[e] = profile * (side != 0)
            self.lid_reach[e] = reach * (side != 0)
            angle = np.where(side > 0, LID_OPEN_UP, -LID_OPEN_DOWN) * self.lid_profile[e] * self.lid_reach[e]
            moving = angle != 0
            pts[moving] = rotate_about_x(pts[moving], c, angle[moving])
        v.replace_positions(pts)

    def mouth_cavity(self) -> None:
        """The mouth sack: rings from the lip rim inward, pulled toward an oval, ending at the throat."""
        theta, k_m = self.theta, self.k_m
        pts = self.verts.array()
        rim = self.slit_rim(self.slits["mouth"])
        rim_pts = pts[rim]
        rim_theta = theta[[j % COLUMNS for j in [k_m] + list(range(k_m - 1, -k_m, -1)) + [-k_m]
                           + list(range(-k_m + 1, k_m))]]
        n_up = 2 * k_m
        # omega: angle around the mouth oval (0 at the +x corner, pi/2 upper lip, 3pi/2 lower lip).
        omega = np.arccos(np.clip(rim_theta / theta[k_m], -1, 1))
        omega[n_up:] = 2 * np.pi - omega[n_up:]
        omega[0] = 0.0
        omega[n_up] = np.pi
        z_ref = pts[self.grid_id(self.i_mouth, 0), 2]
        y_ref = 0.5 * (pts[self.grid_id(self.i_mouth, 0), 1] + pts[self.lower_id(self.i_mouth, 0), 1])
        self.mouth_ref = (y_ref, z_ref)
        ms = MOUTH_SACK
        rings = []
        for k in range(len(ms["depth"])):
            pull = ms["pull"][k]
            oval = np.stack([ms["half_width"][k] * np.cos(omega), y_ref + ms["half_height"][k] * np.sin(omega),
                             np.full_like(omega, z_ref)], axis=1)
            ring_pts = (1 - pull) * rim_pts + pull * oval
            ring_pts[:, 2] -= ms["depth"][k]
            rings.append(ring_pts)
        throat = np.array([0.0, y_ref, z_ref - ms["throat"]])
        self.add_sack(rim, rings, throat, PART_ID["mouth_cavity"], 1, "mouth_cavity", omega=omega,
                      pole_omega=1.5 * np.pi)

    def _mirror_rim_id(self, v: int) -> int:
        # Lattice vertex (i, j) <-> (i, -j); slit copies likewise.
        for (i2, j2), cid in self.lower_copy.items():
            if cid == v:
                return self.lower_copy[(i2, (-j2) % COLUMNS)]
        return (v // COLUMNS) * COLUMNS + (-(v % COLUMNS)) % COLUMNS

    def eye_sockets(self) -> None:
        """Eye sacks: rings along meridians of a sphere around each eye centre, from the lid rim to the back.

        The left sack is built; the right one is its reflection, matched rim vertex by rim vertex.
        """
        pts = self.verts.array()
        left_rim = self.slit_rim(self.slits["eye_left"])
        c = eye_centre(1)
        n = pts[left_rim] - c
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        gamma = np.arccos(np.clip(n[:, 2], -1, 1))
        # Deeper rings drift toward evenly spaced meridians so no sack triangle spans a wide azimuth
        # gap (a wide chord would cut into the eyeball).
        az = np.unwrap(np.arctan2(n[:, 1], n[:, 0]))
        if az[-1] < az[0]:
            raise RuntimeError("embedded head: eye rim does not wind around the gaze axis")
        even = az[0] + 2 * np.pi * np.arange(len(az)) / len(az)
        left_rings = []
        for k in range(1, EYE_SACK_RINGS + 1):
            t = (k / (EYE_SACK_RINGS + 1)) ** 0.8
            g = gamma + (np.pi - gamma) * t
            a_k = (1 - t) * az + t * even
            left_rings.append(c + SACK_RADIUS * np.stack([np.sin(g) * np.cos(a_k), np.sin(g) * np.sin(a_k),
                                                          np.cos(g)], 1))
        pos = {int(v): k for k, v in enumerate(left_rim)}
        right_rim = self.slit_rim(self.slits["eye_right"])
        order = np.array([pos[self._mirror_rim_id(int(v))] for v in right_rim])
        right_rings = [p[order] * np.array([-1.0, 1.0, 1.0]) for p in left_rings]
        for e, (s, rim, rings) in enumerate(((1, left_rim, left_rings), (-1, right_rim, right_rings))):
            back = eye_centre(s) - np.array([0, 0, SACK_RADIUS])
            island = "eye_sack_left" if s > 0 else "eye_sack_right"
            self.eye_sacks.append(self.add_sack(rim, rings, back, PART_ID["skin"], 2 + e, island))

    def eyeballs(self) -> None:
        """Eyeballs: rings about the gaze axis, front pole at the pupil."""
        n_eb, m_eb = 14, 24
        unit = _ring_sphere(n_eb, m_eb)
        polar = np.pi * np.arange(1, n_eb + 1) / (n_eb + 1)
        uv_radii = np.interp(polar, [0.0, EYE_UV_FRONT[0], np.pi], [0.0, EYE_UV_FRONT[1], 1.0])
        for s in (1, -1):
            c = eye_centre(s)
            part = PART_ID["eyeball_left" if s > 0 else "eyeball_right"]
            ids = self.add_ring_part(c + [0, 0, EYEBALL_RADIUS], c + EYEBALL_RADIUS * unit * np.array([s, 1.0, 1.0]),
                                     c - [0, 0, EYEBALL_RADIUS], part, "eyeball_left" if s > 0 else "eyeball_right",
                                     uv_radii)
            self.pupils.append(int(ids[0]))

    def tongue(self) -> None:
        """A flattened ellipsoid lying on the cavity floor, tip forward."""
        y_ref, z_ref = self.mouth_ref
        centre = np.array([0.0, y_ref - 0.034, z_ref - 0.16])
        radii = np.array([0.042, 0.02, 0.09])
        self.add_ring_part(centre + [0, 0, radii[2]], centre + radii * _ring_sphere(12, 20),
                           centre - [0, 0, radii[2]], PART_ID["tongue"], "tongue")

    def teeth(self) -> None:
        """An elliptical tube swept along each dental arch, capped at both ends."""
        y_ref, z_ref = self.mouth_ref
        n_s, m_c = 17, 10
        arch_a, arch_b, psi_max = 0.062, 0.09, 1.6
        z_t = z_ref - 0.04
        psi = np.linspace(-psi_max, psi_max, n_s)
        curve = np.stack([arch_a * np.sin(psi), np.zeros_like(psi), z_t - arch_b * (1 - np.cos(psi))], 1)
        normal = np.stack([arch_b * np.sin(psi), np.zeros_like(psi), arch_a * np.cos(psi)], 1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        tangent = np.stack([arch_a * np.cos(psi), np.zeros_like(psi), -arch_b * np.sin(psi)], 1)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        alp = 2 * np.pi * np.arange(m_c) / m_c
        thick = 0.018
        off_n = -thick / 2 + thick / 2 * np.cos(alp)
        mid_n = -thick / 2
        for upper_arch in (True, False):
            h0, h1 = (y_ref + 0.004, y_ref + 0.03) if upper_arch else (y_ref - 0.03, y_ref - 0.004)
            off_y = 0.5 * (h0 + h1) + 0.5 * (h1 - h0) * np.sin(alp)
            rings = (curve[:, None, :] + off_n[None, :, None] * normal[:, None, :]
                     + off_y[None, :, None] * np.array([0.0, 1.0, 0.0]))
            cap0 = curve[0] + mid_n * normal[0] - 0.006 * tangent[0] + [0, 0.5 * (h0 + h1), 0]
            cap1 = curve[-1] + mid_n * normal[-1] + 0.006 * tangent[-1] + [0, 0.5 * (h0 + h1), 0]
            ids = self.add_ring_part(cap0, rings, cap1, PART_ID["teeth"],
                                     "teeth_upper" if upper_arch else "teeth_lower")
            if not upper_arch:
                self.teeth_lower_ids = ids

    def finish(self) -> Rig:
        """Check the skin's orientation, symmetrize, and derive the per-vertex bookkeeping."""
        v = self.verts
        vertices = v.array()
        faces = np.concatenate(self.faces)
        face_part = np.concatenate(self.face_parts)
        surface = (face_part == PART_ID["skin"]) | (face_part == PART_ID["mouth_cavity"])
        if _signed_volume(vertices, faces[surface]) <= 0:
            raise RuntimeError("embedded head: the skin surface is wound inward")
        mirror = _mirror_map(vertices)
        vertices = 0.5 * (vertices + vertices[mirror] * np.array([-1.0, 1.0, 1.0]))
        n_all = len(vertices)

        part = v.column("part").astype(np.int8)
        row = v.column("row")
        sack = v.column("sack").astype(np.int8)
        theta_c = self.theta[self.k_m]
        # Which side of the mouth line each vertex is on (1 = moves with the jaw).
        th_all = v.column("theta")
        slit_all = v.column("slit")
        drow = np.where(np.isnan(row), 0.0, row - self.i_mouth)
        drow = np.where((row == self.i_mouth) & (slit_all == 1), -0.5, drow)
        drow = np.where((row == self.i_mouth) & (slit_all == -1), 0.5, drow)
        beyond = np.maximum(np.abs(np.nan_to_num(th_all)) - theta_c, 0.0) / theta_c
        width = np.minimum(0.5 + 6.0 * beyond ** 2, 14.0)
        mouth_lower = smoothstep(-1.0, 1.0, drow / width)
        mouth_lower = np.where(sack == 1, smoothstep(0.3, -0.3, np.sin(v.column("omega"))), mouth_lower)
        mouth_lower = np.where(part == PART_ID["tongue"], 1.0, mouth_lower)
        teeth_lower = np.zeros(n_all, bool)
        teeth_lower[self.teeth_lower_ids] = True
        mouth_lower = np.where(teeth_lower, 1.0, np.where(part == PART_ID["teeth"], 0.0, mouth_lower))
        mouth_lower = np.where((part == PART_ID["eyeball_left"]) | (part == PART_ID["eyeball_right"])
                               | (sack >= 2), 0.0, mouth_lower)

        # Eye sack vertices follow their rim vertex's lid, fading with depth.
        nv = self.lid_side.shape[1]
        lid_side = np.zeros((2, n_all), np.int8)
        lid_profile = np.zeros((2, n_all))
        lid_reach = np.zeros((2, n_all))
        lid_side[:, :nv] = self.lid_side
        lid_profile[:, :nv] = self.lid_profile
        lid_reach[:, :nv] = self.lid_reach
        for e, rings in enumerate(self.eye_sacks):
            rim_ids = rings[0]
            for k in range(1, len(rings)):
                lid_side[e, rings[k]] = self.lid_side[e, rim_ids]
                lid_profile[e, rings[k]] = self.lid_profile[e, rim_ids]
                lid_reach[e, rings[k]] = max(0.0, 1.0 - k / 3.5)

        return Rig(vertices=vertices, faces=faces, uv=np.concatenate(self.uv), faces_uv=np.concatenate(self.faces_uv),
                   vertex_part=part, face_part=face_part, mirror=mirror, landmarks=self.landmarks(vertices),
                   islands={n: _island(n) for n in ISLANDS}, row=row, theta=th_all, mouth_lower=mouth_lower,
                   sack=sack, sack_ring=v.column("sack_ring"), lid_side=lid_side, lid_profile=lid_profile,
                   lid_reach=lid_reach, teeth_lower=teeth_lower)

    def landmarks(self, v: np.ndarray) -> dict[str, int]:
        """Named vertices: slit corners and midpoints, pupils, and the nearest skin vertex to anatomical spots."""
        gid = self.grid_id
        i_e, i_m, k_m, j_in, j_out = self.i_eye, self.i_mouth, self.k_m, self.j_in, self.j_out
        skin_grid = np.arange(ROWS * COLUMNS)
        col0 = gid(np.arange(ROWS), 0)
        lm = {
            "eye_outer_left": gid(i_e, j_out), "eye_inner_left": gid(i_e, j_in),
            "eye_outer_right": gid(i_e, COLUMNS - j_out), "eye_inner_right": gid(i_e, COLUMNS - j_in),
            "pupil_left": self.pupils[0], "pupil_right": self.pupils[1],
            "mouth_corner_left": gid(i_m, k_m), "mouth_corner_right": gid(i_m, -k_m),
            "lip_upper": gid(i_m, 0), "lip_lower": self.lower_id(i_m, 0),
            "nose_tip": int(col0[np.argmax(v[col0, 2])]),
            "head_top": int(self.top),
        }
        j_mid = (j_in + j_out) // 2
        lm["eye_top_left"] = gid(i_e, j_mid)
        lm["eye_bottom_left"] = self.lower_id(i_e, j_mid)
        lm["eye_top_right"] = gid(i_e, COLUMNS - j_mid)
        lm["eye_bottom_right"] = self.lower_id(i_e, COLUMNS - j_mid)
        below = col0[(np.arange(ROWS) > i_m) & (v[col0, 2] > 0.2)]
        lm["chin"] = int(below[np.argmin(v[below, 1])])
        front = skin_grid[(v[skin_grid, 2] > 0.15)]

        def nearest(target_xy: tuple[float, float], pool: np.ndarray = front) -> int:
            d = np.hypot(v[pool, 0] - target_xy[0], v[pool, 1] - target_xy[1])
            return int(pool[np.argmin(d)])

        lm["brow_left"] = nearest((EYE_CENTER[0], EYE_CENTER[1] + 0.082))
        lm["brow_right"] = nearest((-EYE_CENTER[0], EYE_CENTER[1] + 0.082))
        lm["brow_inner_left"] = nearest((EYE_CENTER[0] - 0.045, EYE_CENTER[1] + 0.075))
        lm["brow_inner_right"] = nearest((-EYE_CENTER[0] + 0.045, EYE_CENTER[1] + 0.075))
        lm["nose_bridge"] = nearest((0.0, EYE_CENTER[1] + 0.01))
        lm["nostril_left"] = nearest((0.028, -0.06))
        lm["nostril_right"] = nearest((-0.028, -0.06))
        lm["cheek_left"] = nearest((0.12, -0.07))
        lm["cheek_right"] = nearest((-0.12, -0.07))
        lm["lip_upper_outer"] = int(col0[i_m - 2])
        lm["lip_lower_outer"] = int(col0[i_m + 3])
        ears = skin_grid[np.abs(v[skin_grid, 2]) < 0.1]
        lm["ear_left"] = int(ears[np.argmax(v[ears, 0])])
        lm["ear_right"] = int(ears[np.argmin(v[ears, 0])])
        return {k: int(x) for k, x in lm.items()}


def _ring_sphere(n: int, m: int) -> np.ndarray:
    """(n, m, 3) unit vectors: n rings at polar angles pi*k/(n+1) from +z, m points around each."""
    gam = np.pi * np.arange(1, n + 1) / (n + 1)
    alp = 2 * np.pi * np.arange(m) / m
    return np.stack([np.sin(gam)[:, None] * np.cos(alp)[None], np.sin(gam)[:, None] * np.sin(alp)[None],
                     np.cos(gam)[:, None] * np.ones(m)[None]], -1)


def build_rig() -> Rig:
    """The embedded head's rig (deterministic)."""
    return _RigBuilder().build()


def _mirror_map(v: np.ndarray) -> np.ndarray:
    tree = cKDTree(v)
    dist, idx = tree.query(v * np.array([-1.0, 1.0, 1.0]))
    if dist.max() > 1e-6 or not np.array_equal(idx[idx], np.arange(len(v))):
        raise RuntimeError(f"embedded head is not mirror-symmetric (max mismatch {dist.max():.2e})")
    return np.asarray(idx, dtype=np.int64)
