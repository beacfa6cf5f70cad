"""The whole head from one photo: hair and neck geometry from the matte, colours for what the photo does
not show, and the four walls avatar.surface_field reads.

What it does, plainly:
- The person matte without clothing is the head's silhouette: clothing is what lies beside the head from
  mouth height down or below the chin and is coloured more like the clothing (or, with no clothing in
  the frame, the face) than like the hair above the face; hair that hangs straight down from beside the
  head stays.
- Hair is a shell round the mesh, as thick at each height as the silhouette reaches beyond the mesh in
  that row of the photo, thinner toward the face, trimmed to what projects into the silhouette and kept
  off the face and cheeks. Below the brows, in front of the ears, hair is only what the photo shows
  beside the face, reaching back to the head from the depth of the face's outline. It is a guess at hair
  seen only from the front: it covers the skull where the photo shows hair, and long hair stays where
  it falls.
- Where the photo shows the face's skin past the mesh's outline (a turned head's far cheek: the fit's
  contour points slide along the cheek and do not pin the mesh's outline to the photo's), the mesh
  grows out along its normals at that outline as far as the skin reaches, and what of the growth the
  portrait sees past the mesh's outline is static front wall: the portrait's outline is the photo's.
- Every point's colour is the photo where the photo sees it, its mirror image where only the other side
  is seen, and otherwise continued from the strips of hair (or neck) at the silhouette's sides
  (`EdgeFill`): hair runs round the back as the photo shows it at the sides, and a neck stays a neck.
- avatar.head_walls turns mesh and hair into the walls, their colours and the side views' claims.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from scipy import ndimage
from skimage import measure

from avatar import camera as cam
from avatar import raster
from avatar.generators.projection import sample_image, view_depth
from avatar.head_model import HeadModel
from avatar.head_walls import VolumeNormals, assemble_walls, mesh_inside, swept_mesh_volume
from avatar.surface_field import HeadWalls, mesh_wall, texel_centres

MATTE_MIN = 0.5
MATTE_SURE = 0.95            # the fill reads only pixels the matte holds this surely to be the person
HAIR_SPREAD = 2              # pixels hanging hair may drift sideways per row
CHEST_HALF_WIDTH = 0.12      # clothing is sampled this far (x image size) either side of the face's centre
MIN_SEED = 200               # pixels a colour model needs
SHOULDER_BAND = 0.5          # from this far above the chin (x brow-to-chin) only hair-coloured pixels
                             # beside the head count
HAIR_MAX_THICKNESS = 0.2     # world units (about 8 cm at life size)
FRONT_HAIR_THICKNESS = 0.25  # at the hairline hair is this fraction of its thickness at the ears
SIDE_HAIR_FORWARD = 0.03     # below the brows, hair the photo does not show beside the face reaches this far
                             # in front of the ears
SIDE_HAIR_LAYER = 0.02       # world units (about 8 mm): hair lying on the side of the head is at least a
                             # layer of strands thick, however little the silhouette reaches beyond the mesh
MIN_HAIR_DEPTH = 2           # voxels (of HULL_RESOLUTION) every column of hair is at least this deep
HULL_RESOLUTION = 128        # the hair volume's grid (resampled to the walls' resolution)
HAIR_EDGE_SIGMA = 0.7        # voxels (of HULL_RESOLUTION) the hair's edges are smoothed over when resampled
EDGE_BAND = 0.05             # narrowest strip (x image size) the fill reads at the silhouette's sides: a narrower
                             # one would repeat every few pixels round the head, as stripes
FILL_TILE = 0.08             # side (x image size) of the triangles the fill's texture is laid in (EdgeFill)
FILL_TABLE = 64              # the tiles' phases repeat after this many triangles
FILL_SEED = 9                # the phases are random, and the same for every avatar
NECK_BLUR = 0.02             # blur (x image size) of what the fill reads below the chin
SIDE_BLEND = 0.25            # the fill's left and right strips cross-fade within this fraction of the head's
                             # half-width either side of its middle
EDGE_FEATHER = 0.03          # the photo's colours fade out over this far (x image size) inside the silhouette
VISIBILITY_EPS = 0.02        # depth tolerance of the photo's visibility test (world units)
FACE_BLEND_REACH = 0.02      # the face's colour and its surroundings' are read this near (x image size)
GROWN_MIN = 0.001            # world units: a grown surface this far in front of the neutral mesh stands out
SKIN_SPREAD = (2.0, 3.0)     # bare_skin: a pixel looks like the face's skin within the first of these many robust
                             # standard deviations of the face's colours, not at all beyond the second
MAD_TO_SIGMA = 1.4826        # a normal distribution's standard deviation over its median absolute deviation
RIM_GRAZE = 0.3              # the face grows past its outline at vertices whose normal's cosine with the view
                             # is below this (within 17 degrees of grazing), fully below half of it: enough to
                             # hold the outline between the mesh's vertices, little of the face the photo shows

# A side strip the fill reads, (S,) each: per image row its first column and width (NaN where the row has
# none); per row the two rows it reads (int64) and the weight of the second (`_gap_sources`).
Strips: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
# The fill's tiles at some points: barycentric weights (N, 3) and the lattice vertices' i and j (N, 3) each.
Tiles: TypeAlias = tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]


@dataclass
class PortraitView:
    """The photo and how it was taken: (S, S, 3) uint8 aligned crop, its matte and camera."""

    image: np.ndarray
    matte: np.ndarray
    camera: np.ndarray
    face_mask: np.ndarray      # (S, S) bool: the face (landmark hull), never hair or clothing
    chin_row: float            # image row of the chin

    @property
    def world_per_pixel(self) -> float:
        """World units one pixel of the photo spans at the head's centre (the world origin)."""
        c2w = np.asarray(self.camera, dtype=np.float64)[:16].reshape(4, 4)
        return float(np.linalg.norm(c2w[:3, 3]) / (np.asarray(self.camera)[16] * self.image.shape[0]))


class EdgeFill:
    """Colour for points the photo does not show: the hair (or neck) at the silhouette's sides,
    continued round the head.

    A point at the height of image row r, turned by angle a round the vertical axis from the portrait
    camera's direction, reads the strip between the silhouette's left (or right) edge and what it must
    `avoid` (the face; above the chin, anything skin-coloured) in row r. Before the silhouette's edge
    (|a| < 90 degrees) it reads about where the photo shows it; past the edge, as far into the strip as it
    lies round the head past the edge, in pixels of the photo. Further round than the strip is wide it
    reads the strip in tiles, each from a phase of its own (`_tiles`): the photo's texture continues round
    the head at the scale the photo shows it, never stretched along a row, never averaged away and never
    repeated in step. Left and right strips cross-fade down the middle of the back. Rows whose edge
    shows nothing to read (a face turned away, an ear) read the nearest runs of rows that do, reflected,
    so no single row is stretched down the head either; a neck that shows only clothing is skin.
    """

    def __init__(self, view: PortraitView, silhouette: np.ndarray, avoid: np.ndarray, centre_z: float):
        # Single pixels (noise, JPEG blocks) are softened: the tiles repeat what they read.
        self.image = cv2.GaussianBlur(view.image.astype(np.float32) / 255.0, (0, 0), sigmaX=1.0)
        s = self.image.shape[0]
        # A neck is smooth skin: below the chin the strips are read soft, so a collar's edge or a shadow
        # in one row is not repeated round the neck.
        self.soft = cv2.GaussianBlur(self.image, (0, 0), sigmaX=NECK_BLUR * s)
        self.chin_row = view.chin_row
        # The matte's edge blends the person with the background: strips read only what the matte is
        # sure of (continued round the head, a blend would repeat the background). Highlights in hair can
        # read as skin: not a face to avoid. Only skin in patches wider than the edge's blend counts.
        edge = max(1, s // 100)
        inner = _erode(silhouette, edge) & (view.matte >= MATTE_SURE)
        free = inner & ~_dilate(_open(avoid, edge), edge)
        left = _strips(inner, free, EDGE_BAND * s, view.chin_row)
        right = _strips(inner[:, ::-1], free[:, ::-1], EDGE_BAND * s, view.chin_row)
        if left is None:
            if right is None:
                raise ValueError("the head silhouette shows nothing but the face")
            left = right
        self.left: Strips = left
        self.right: Strips = right or left
        self.left_means = _strip_means(self.image, self.left)
        self.right_means = _strip_means(self.image[:, ::-1], self.right)
        # Each side's tiles take their phases from a table of their own, the same for every avatar.
        self.phases = np.random.default_rng(FILL_SEED).random((2, FILL_TABLE, FILL_TABLE))
        rows = np.arange(s)
        lo, hi = np.full(s, np.nan), np.full(s, np.nan)
        for row in range(s):
            cols = np.flatnonzero(silhouette[row])
            if len(cols):
                lo[row], hi[row] = cols[0], cols[-1]
        known = np.isfinite(lo)
        # Each row's middle, and its half-width: the radius, in pixels, of the head's cross-section there.
        lo, hi = np.interp(rows, rows[known], lo[known]), np.interp(rows, rows[known], hi[known])
        self.radius, self.middle = 0.5 * (hi - lo), 0.5 * (hi + lo)
        self.camera = view.camera
        self.centre_z = centre_z
        self.size = s
        c2w = np.asarray(view.camera, dtype=np.float64)[:16].reshape(4, 4)
        self.camera_angle = np.arctan2(c2w[0, 3], c2w[2, 3] - centre_z)
        # A neck whose sides the photo shows only clothed is continued as skin, the face's.
        face = view.face_mask & silhouette
        self.skin = np.median(self.image[face], axis=0) if face.any() else self.image[silhouette].mean(axis=0)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        flat = points.reshape(-1, 3).astype(np.float64)
        on_plane = np.concatenate([flat[:, :2], np.full((len(flat), 1), self.centre_z)], axis=1)
        uv, _ = cam.project(on_plane, self.camera)
        # Rows above the frame (a crown the crop cuts off) read the rows inside it reflected, not the top
        # row stretched over them; below it the neck goes on straight down.
        r = np.minimum(np.rint(np.abs(uv[:, 1] * self.size - 0.5)), self.size - 1).astype(np.int64)
        a = np.angle(np.exp(1j * (np.arctan2(flat[:, 0], flat[:, 2] - self.centre_z) - self.camera_angle)))
        turned = np.abs(a)
        # Pixels from the silhouette's edge: where the photo shows the point on a round cross-section
        # before the edge, the arc round the head past it.
        radius = self.radius[r]
        inward = np.where(turned <= np.pi / 2, radius * (1.0 - np.sin(turned)), radius * (turned - np.pi / 2))
        # Both sides' tiles share the lattice; each reads its own phases at the lattice's vertices.
        tiles = _tiles(inward, r.astype(np.float64), FILL_TILE * self.size)
        left = self._read(self.left, self.left_means, r, inward, tiles, from_right=False)
        right = self._read(self.right, self.right_means, r, inward, tiles, from_right=True)
        # Left and right meet down the middle of the silhouette's row, blended over a width in pixels (by
        # angle they would switch within a hair's breadth on the crown, whose points lie near the axis).
        offset = uv[:, 0] * self.size - self.middle[r]
        t = np.clip(0.5 + offset / (2 * SIDE_BLEND * np.maximum(radius, 1.0)), 0, 1)[:, None]
        t = t * t * (3 - 2 * t)
        colour: np.ndarray = left * (1 - t) + right * t
        return colour.reshape(*points.shape[:-1], 3).astype(np.float32)

    def _read(self, strips: Strips, means: np.ndarray, r: np.ndarray, inward: np.ndarray,
              tiles: Tiles, from_right: bool) -> np.ndarray:
        """(N, 3): the strips' colour `inward` pixels from their start for points at image rows `r`, both (N,):
        near the edge as the strip shows it, further round laid in the fill's tiles (`_tiles`), each reading
        the strip from its own phase, wrapped at its end. `means` (S, 3): each row's strip's mean colour;
        `tiles`: each point's tile weights and lattice vertices (`_tiles`)."""
        start, width, from_up, from_down, toward_down = strips
        weights, (vi, vj) = tiles
        table = self.phases[int(from_right)]
        phases = table[vi % table.shape[0], vj % table.shape[1]]
        colour = np.zeros((len(r), 3), np.float32)
        for source, weight in ((from_up[r], 1.0 - toward_down[r]), (from_down[r], toward_down[r])):
            none = source < 0
            source = np.maximum(source, 0)
            w = width[source]
            neck = source > self.chin_row
            # Within a strip's width of the edge the phases fade in: there the fill meets what the photo shows.
            # A neck is read soft and whole (reflected at the strip's ends): in tiles its outline's shadow
            # came back round it as stripes.
            spread = np.clip(inward / np.maximum(w, 1.0), 0, 1)
            spread = np.where(neck, 0.0, spread * spread * (3 - 2 * spread))
            mean, whole, wrap = means[source], _reflect(inward, w), np.maximum(w, 1.0)
            tiled = np.zeros((len(r), 3), np.float32)
            for k in range(3):
                along = np.where(neck, whole, np.mod(inward + spread * phases[:, k] * w, wrap))
                col = np.nan_to_num(start[source] + along)
                if from_right:
                    col = self.size - 1 - col
                read = self._sample(col, source, self.image)
                read[neck] = self._sample(col[neck], source[neck], self.soft)
                tiled += weights[:, k:k + 1] * (read - mean)
            # Three tiles at unrelated phases, averaged, would wash the texture's contrast out toward the
            # middle of each triangle: the blend keeps its variance (by-example noise) as far as they differ.
            keep = 1.0 + spread * (1.0 / np.sqrt((weights ** 2).sum(axis=1)) - 1.0)
            read = np.clip(mean + tiled * keep[:, None], 0.0, 1.0)
            read[none] = self.skin
            colour += read * weight[:, None]
        return colour

    def _sample(self, col: np.ndarray, row: np.ndarray, image: np.ndarray) -> np.ndarray:
        uv = np.stack([(col + 0.5) / self.size, (row + 0.5) / self.size], axis=-1)
        return sample_image(image, uv)


def _strip_means(image: np.ndarray, strips: Strips) -> np.ndarray:
    """(S, 3): the mean colour of each row's strip (`image` as the strips were found on it; rows without a
    strip are never read directly and take 0)."""
    start, width = strips[0], strips[1]
    means = np.zeros((image.shape[0], 3), np.float32)
    for row in np.flatnonzero(np.isfinite(start)):
        first = int(start[row])
        means[row] = image[row, first:first + max(round(float(width[row])), 1)].mean(axis=0)
    return means


# The corners of the skewed lattice's two triangles in each unit cell, in the order of their weights (_tiles).
_LOWER_CORNERS = np.array([[0, 0], [0, 1], [1, 0]])
_UPPER_CORNERS = np.array([[1, 1], [1, 0], [0, 1]])


def _tiles(inward: np.ndarray, row: np.ndarray, tile: float) -> Tiles:
    """The fill's tiling: the plane of (pixels past the edge, image row) cut into equilateral triangles of
    about `tile` pixels, whose lattice vertices each carry a random phase (EdgeFill.phases). Per point (N,),
    its triangle's three vertices' barycentric weights (N, 3) and integer lattice coordinates, two (N, 3).

    Read on round the head, reflected at the strip's ends, the fill repeated the strip mirror for mirror: every
    highlight and parting came back at the same distance in every row (rings and chevrons across the back).
    Laid in tiles at unrelated phases, it repeats nowhere in step; each tile wraps the strip at its end, a
    seam the other two tiles' blend (at other phases) covers."""
    u, v = inward / tile, row / tile
    # Skewed so the triangles' corners land on integers: a lattice vertex is (i, j).
    a, b = u - v / np.sqrt(3.0), 2.0 * v / np.sqrt(3.0)
    i, j = np.floor(a).astype(np.int64), np.floor(b).astype(np.int64)
    fa, fb = a - i, b - j
    rest = 1.0 - fa - fb
    lower = rest > 0
    corners = np.where(lower[:, None, None], _LOWER_CORNERS, _UPPER_CORNERS)
    weights = np.where(lower[:, None], np.stack([rest, fb, fa], axis=1), np.stack([-rest, 1 - fb, 1 - fa], axis=1))
    return weights, (i[:, None] + corners[..., 0], j[:, None] + corners[..., 1])


def _reflect(distance: np.ndarray, width: np.ndarray) -> np.ndarray:
    """`distance` (>= 0) folded into [0, width] by reflection at both ends (a triangle wave)."""
    width = np.maximum(width, 1.0)
    phase = np.mod(distance, 2 * width)
    folded: np.ndarray = np.where(phase <= width, phase, 2 * width - phase)
    return folded


def _strips(silhouette: np.ndarray, free: np.ndarray, minimum: float, split: float) -> Strips | None:
    """The strips at the silhouette's left edge clear of the face: per row, (first column, width), NaN
    where the row has none, and the rows each row reads (`_gap_sources`; -1: the skin, for a neck below
    row `split` that shows none). None if no row has one."""
    s = silhouette.shape[0]
    start = np.full(s, np.nan)
    width = np.zeros(s)
    for row in range(s):
        cols = np.flatnonzero(silhouette[row])
        if len(cols) < 2:
            continue
        run = _run_length(free[row, cols[0]:cols[-1] + 1])
        if run >= minimum:
            start[row], width[row] = cols[0], min(run, 0.5 * (cols[-1] - cols[0]))
    valid = np.isfinite(start)
    # A strip is a patch of texture to continue: runs of rows fewer than its narrowest width are dropped
    # (a row or two repeated down the head would be stripes).
    labels, count = ndimage.label(valid)
    tall = np.flatnonzero(np.bincount(labels.ravel(), minlength=count + 1)[1:] >= minimum) + 1
    valid &= np.isin(labels, tall)
    start[~valid] = np.nan
    if not valid.any():
        return None
    # A neck (below `split`) whose sides the photo shows no strip of is skin: rows reading it read -1.
    skin_rows = np.arange(s) >= np.ceil(split)
    if valid[skin_rows].any():
        skin_rows[:] = False
    from_up, from_down, toward_down = _gap_sources(valid | skin_rows)
    from_up, from_down = (np.where(skin_rows[rows], -1, rows) for rows in (from_up, from_down))
    # A strip's width is smoothed over the rows that have one, so reflections stay in step down the head.
    sigma = 0.01 * s
    weight = ndimage.gaussian_filter1d(valid.astype(np.float64), sigma)
    width = ndimage.gaussian_filter1d(width, sigma) / np.maximum(weight, 1e-6)
    return start, width, from_up, from_down, toward_down


def _gap_sources(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row, the two rows with a strip it reads and how much of the second, (S,) each: itself
    where `valid`; in a gap between runs of valid rows, each run reflected across the gap at its end (a
    row k past a run's end reads the row k - 1 before it, folding back at the run's other end), the
    upper run toward the top of the gap and the lower one toward its bottom, cross-faded where their
    reaches (in proportion to their lengths) meet; before the first run or after the last, that run
    alone."""
    s = len(valid)
    rows = np.arange(s)
    labels, _ = ndimage.label(valid)
    runs = ndimage.find_objects(labels)
    first = np.array([sl[0].start for sl in runs])
    last = np.array([sl[0].stop - 1 for sl in runs])
    # Index of the last run starting at or before each row, and of the first run ending at or after it.
    up = np.searchsorted(first, rows, side="right") - 1
    down = np.searchsorted(last, rows, side="left")
    up_ok, down_ok = up >= 0, down < len(runs)
    up, down = np.clip(up, 0, len(runs) - 1), np.clip(down, 0, len(runs) - 1)

    def reflected(run: np.ndarray, below: bool) -> np.ndarray:
        length = (last[run] - first[run]).astype(np.float64)
        past = np.abs(rows - (first[run] if below else last[run])) - 1
        folded = _reflect(np.maximum(past, 0).astype(np.float64), length).astype(np.int64)
        source = first[run] + folded if below else last[run] - folded
        inside: np.ndarray = np.clip(source, first[run], last[run])
        return inside

    from_up = np.where(valid, rows, reflected(up, below=False))
    from_down = np.where(valid, rows, reflected(down, below=True))
    gap_start = np.where(up_ok, last[up] + 1, 0)
    gap_end = np.where(down_ok, first[down], s)
    # Each run reaches into the gap in proportion to its length, so a short run (a neck's few rows) is
    # not reflected again and again into bands; they cross-fade over half the shorter reach.
    gap = np.maximum(gap_end - gap_start, 1)
    length_up, length_down = last[up] - first[up] + 1, last[down] - first[down] + 1
    meet = gap * length_up / (length_up + length_down)
    half = np.maximum(0.5 * np.minimum(meet, gap - meet), 0.5)
    toward_down = np.clip((rows - gap_start + 0.5 - meet + half) / (2 * half), 0, 1)
    toward_down = toward_down * toward_down * (3 - 2 * toward_down)
    toward_down = np.where(valid, 0.0, np.where(~up_ok, 1.0, np.where(~down_ok, 0.0, toward_down)))
    from_up = np.where(up_ok | valid, from_up, from_down)
    from_down = np.where(down_ok | valid, from_down, from_up)
    return from_up.astype(np.int64), from_down.astype(np.int64), toward_down


def _run_length(mask: np.ndarray) -> int:
    """Length of the leading run of True."""
    off = np.flatnonzero(~mask)
    return int(off[0]) if len(off) else len(mask)


def head_silhouette(view: PortraitView, mesh_mask: np.ndarray) -> np.ndarray:
    """The matte without clothing, (S, S) bool: the head down to mouth height, the neck (where the mesh
    is), and from there down only hair that hangs from the head: hair-coloured (closer to the hair above
    the face than to the clothing under the neck) and continuing downward, row by row, from hair beside
    the head. A shoulder, a collar or a dark suit rising beside the jaw is not connected from above."""
    person = view.matte > MATTE_MIN
    s = person.shape[0]
    rows = np.arange(s)[:, None]
    above = person & (rows < view.chin_row)
    hair_seed = _hair_seed(view, above)
    if hair_seed.sum() < MIN_SEED:
        # No hair to follow: the head ends at the chin and neck.
        head_only: np.ndarray = above | (person & mesh_mask)
        return head_only
    # Hair is told from the clothing at the bottom of the frame under the neck (beside it long hair
    # may fall), or, with no clothing in the frame, from the face's skin.
    face_cols = np.flatnonzero(view.face_mask.any(axis=0))
    centre = 0.5 * (face_cols[0] + face_cols[-1]) if len(face_cols) else s / 2
    under_neck = np.abs(np.arange(s)[None, :] - centre) < CHEST_HALF_WIDTH * s
    not_hair = person & ~mesh_mask & under_neck & (rows > max(view.chin_row, s * 0.9))
    if not_hair.sum() < MIN_SEED:
        not_hair = view.face_mask & person
    top = _top_row(view.face_mask)
    start = int(np.clip(view.chin_row - SHOULDER_BAND * (view.chin_row - top), 1, s - 1))
    lower = person & (rows >= start - 1) & ~mesh_mask & ~view.face_mask
    lab = cv2.cvtColor(view.image, cv2.COLOR_RGB2LAB).astype(np.float32)
    hair_like = _closer_to(lab, lower, lab[hair_seed], lab[not_hair])
    # Strands, highlights and earrings leave small gaps a colour test cannot close; so does light on hair
    # where it leaves the head (a lit band at the ears, nearer the face's colour than the hair's above it):
    # closed together with the head above, hair hanging on below such a band still hangs from the head.
    head_above = person & (rows < start - 1) & ~mesh_mask & ~view.face_mask
    hair_like = ndimage.binary_closing(hair_like | head_above, np.ones((7, 7), bool)) & lower
    hanging = np.zeros_like(person)
    hanging[start - 1] = hair_like[start - 1]
    spread = np.ones(2 * HAIR_SPREAD + 1, bool)
    for row in range(start, s):
        hanging[row] = hair_like[row] & ndimage.binary_dilation(hanging[row - 1], spread)
    with_hair = (person & (rows < start)) | (person & mesh_mask) | hanging
    # What the colour test drops inside the head's outline (an earring, a hair clip against the hair) is
    # still the person: left out, it would be a notch through the hair.
    enclosed: np.ndarray = with_hair | (ndimage.binary_fill_holes(with_hair) & person)
    return enclosed


def _hair_seed(view: PortraitView, silhouette: np.ndarray) -> np.ndarray:
    """Where the hair most surely is: the silhouette above the face mesh (whose top follows the
    hairline), away from the face."""
    s = silhouette.shape[0]
    above_face = np.arange(s)[:, None] < _top_row(view.face_mask)
    seed: np.ndarray = silhouette & ~_dilate(view.face_mask, s // 64) & above_face
    return seed


def _top_row(mask: np.ndarray) -> float:
    rows = np.flatnonzero(mask.any(axis=1))
    return float(rows[0]) if len(rows) else 0.0


def _morph(mask: np.ndarray, radius: int, op: int) -> np.ndarray:
    """A morphological operation (cv2.MORPH_*) of a bool mask by a disc."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.morphologyEx(mask.astype(np.uint8), op, disc) > 0


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    return _morph(mask, radius, cv2.MORPH_DILATE)


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    return _morph(mask, radius, cv2.MORPH_ERODE)


def _open(mask: np.ndarray, radius: int) -> np.ndarray:
    return _morph(mask, radius, cv2.MORPH_OPEN)


def _closer_to(lab: np.ndarray, where: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels in `where` whose colour is likelier under a Gaussian fitted to `a` than to `b`."""
    def loglik(samples: np.ndarray) -> np.ndarray:
        mean = samples.mean(axis=0)
        cov = np.cov(samples.T) + np.eye(3) * 25.0
        inv = np.linalg.inv(cov)
        d = lab[where] - mean
        ll: np.ndarray = -0.5 * np.einsum("ij,jk,ik->i", d, inv, d) - 0.5 * np.log(np.linalg.det(cov))
        return ll
    out = np.zeros(where.shape, bool)
    out[where] = loglik(a) > loglik(b)
    return out


def hair_volume(view: PortraitView, silhouette: np.ndarray, skin: np.ndarray, mesh_mask: np.ndarray,
                hair_px: np.ndarray, head: HeadModel, neutral: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R, R) bool [x, y, z]: the hair (and ears, and whatever else of the head the mesh misses).

    Hair is a shell round the mesh as thick, at each height, as the silhouette reaches beyond the
    mesh in that row of the photo, trimmed to what projects into the silhouette and kept off the skin
    the photo shows in front of the ears. Below the brows and in front of the ears it is only where
    `hair_px` ((S, S) bool, the photo's hair) is beside the face: from the depth of the face's outline
    in that row back to the head, at least SIDE_HAIR_LAYER thick.
    """
    n = HULL_RESOLUTION
    c = texel_centres(n)
    voxel = c[1] - c[0]
    zf, _ = mesh_wall(neutral, head.faces, "front", n)
    z = c.reshape(1, 1, -1)
    inside = mesh_inside(neutral, head.faces, n)
    distance = ndimage.distance_transform_edt(~inside) * voxel
    # Toward the face the hair thins out: it lies on the skull at the hairline.
    ear_z = neutral[[head.landmarks["ear_left"], head.landmarks["ear_right"]], 2].mean()
    face_z = neutral[head.landmarks["nose_bridge"], 2]
    thinning = np.clip((face_z - c) / (face_z - ear_z), FRONT_HAIR_THICKNESS, 1.0)
    grid = np.stack(np.meshgrid(c, c, c, indexing="ij"), axis=-1).reshape(-1, 3)
    uv3, _ = cam.project(grid, view.camera)
    s = silhouette.shape[0]
    inside_img = (uv3 >= 0).all(-1) & (uv3 <= 1).all(-1)
    px = np.clip((uv3 * s).astype(np.int64), 0, s - 1)
    thickness = _row_reach(view, silhouette, mesh_mask)[px[:, 1]].reshape(n, n, n)
    shell = distance <= thickness * thinning.reshape(1, 1, n)
    in_silhouette = inside_img & silhouette[px[:, 1], px[:, 0]]
    on_skin = inside_img & skin[px[:, 1], px[:, 0]] & (grid[:, 2] > ear_z)
    hair = shell & ~inside & (in_silhouette & ~on_skin).reshape(n, n, n)
    # Below the brows, in front of the ears, the sides of the face: hair there is what the photo shows
    # hanging beside the face (not a shell that would reach over the cheeks), and it reaches forward no
    # further than the face's outline at that height, where the face the photo shows begins.
    brow_y = neutral[[head.landmarks["brow_left"], head.landmarks["brow_right"]], 1].mean()
    forward = np.where(c > brow_y, np.inf, ear_z + SIDE_HAIR_FORWARD)
    ahead = z > forward.reshape(1, n, 1)
    outline_z = _face_outline_depth(view, zf, c)
    front = np.where(c.reshape(n, 1) > 0, outline_z[None, :, 1], outline_z[None, :, 0])
    beside = (inside_img & hair_px[px[:, 1], px[:, 0]]).reshape(n, n, n)
    layer = distance <= np.maximum(thickness * thinning.reshape(1, 1, n), SIDE_HAIR_LAYER)
    hanging = beside & ~inside & layer & (z <= front[:, :, None])
    hair = np.where(ahead, hanging, hair)
    # Cut to the face, a column of hair can be a sliver a ray slips through between its front and back
    # walls: every column holds at least a few voxels of depth, grown backwards.
    hair = ndimage.binary_dilation(hair, np.ones((1, 1, 2 * MIN_HAIR_DEPTH + 1), bool),
                                   origin=(0, 0, MIN_HAIR_DEPTH)) & ~inside
    out: np.ndarray = _resampled(hair, resolution) & ~mesh_inside(neutral, head.faces, resolution)
    return out


def _resampled(coarse: np.ndarray, resolution: int) -> np.ndarray:
    """A boolean volume on a grid `resolution` voxels wide, its edges smoothed over HAIR_EDGE_SIGMA coarse
    voxels. Copied voxel by voxel, the hair's edges were stairs of coarse voxels that every turned view
    showed, the clearest along the hairline on the forehead; smoothed and resampled they run as smoothly
    as the walls' grid allows."""
    soft = torch.from_numpy(ndimage.gaussian_filter(coarse.astype(np.float32), HAIR_EDGE_SIGMA))
    fine = F.interpolate(soft[None, None], size=(resolution,) * 3, mode="trilinear", align_corners=False)
    out: np.ndarray = fine[0, 0].numpy() > 0.5
    return out


def grown_face(view: PortraitView, skin: np.ndarray, mesh_mask: np.ndarray, head: HeadModel,
               neutral: np.ndarray) -> np.ndarray:
    """(V, 3) world: the neutral mesh `neutral` grown past its outline in the portrait to the skin the
    photo shows beyond it (`skin`, `mesh_mask`: (S, S) bool).

    Skin vertices the portrait's camera sees at a graze move out along their normals by as far (in world
    units at their depth) as the skin nearby lies beyond the mesh's outline, fading to nothing as they turn
    toward or away from the camera: the outline moves to the photo's (build_walls keeps only what the
    portrait sees past the mesh's outline, `_grown_front`). Only skin counts, so background and clothing
    never become face; where the photo shows no skin past the outline the mesh is unchanged.
    """
    s = skin.shape[0]
    beyond = skin & ~mesh_mask
    beyond &= _more_face_than_beside(view, skin & mesh_mask, beyond)
    if not beyond.any():
        unchanged: np.ndarray = neutral.copy()
        return unchanged
    reach = ndimage.distance_transform_edt(~mesh_mask) * beyond
    # Each pixel near the outline: the furthest the skin reaches past the outline within that reach of it
    # (a vertex on the outline projects onto the mesh's last pixel, the skin it must reach lies outward).
    radius = int(np.ceil(reach.max())) + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    extent = cv2.dilate(reach.astype(np.float32), disc)
    normals = trimesh.Trimesh(neutral, head.faces, process=False).vertex_normals
    uv, depth = cam.project(neutral, view.camera)
    graze = np.clip(2.0 * (1.0 - np.abs(cam.view_cosine(neutral, normals, view.camera)) / RIM_GRAZE), 0.0, 1.0)
    inside = (uv >= 0).all(-1) & (uv < 1).all(-1)
    px = np.clip((uv * s).astype(np.int64), 0, s - 1)
    focal_px = float(np.asarray(view.camera, dtype=np.float64)[16]) * s
    height = np.where(inside, extent[px[:, 1], px[:, 0]], 0.0) * depth / focal_px * graze
    on_skin = np.zeros(len(neutral), bool)
    on_skin[head.part_vertices("skin")] = True
    grown: np.ndarray = neutral + normals * np.where(on_skin, height, 0.0)[:, None]
    return grown


def _grown_front(view: PortraitView, grown: np.ndarray, neutral: np.ndarray, faces: np.ndarray,
                 mesh_mask: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R) world z on the xy grid, NaN elsewhere: the grown mesh's front wall where it stands in front
    of the neutral mesh's and the portrait sees it past the neutral mesh's outline (`mesh_mask`). Only
    there must the growth be static front wall: elsewhere the posed mesh, rasterized each frame with the
    texture the refinement corrects, stays the face every view sees."""
    grown_z, _ = mesh_wall(grown, faces, "front", resolution)
    rest_z, _ = mesh_wall(neutral, faces, "front", resolution)
    ahead = np.isfinite(grown_z) & ~(np.nan_to_num(rest_z, nan=-np.inf) >= grown_z - GROWN_MIN)
    c = texel_centres(resolution)
    xs, ys = np.meshgrid(c, c, indexing="xy")
    uv, _ = cam.project(np.stack([xs, ys, np.nan_to_num(grown_z)], axis=-1), view.camera)
    s = mesh_mask.shape[0]
    px = np.clip((uv * s).astype(np.int64), 0, s - 1)
    past_outline = (uv >= 0).all(-1) & (uv < 1).all(-1) & ~mesh_mask[px[..., 1], px[..., 0]]
    front: np.ndarray = np.where(ahead & past_outline, grown_z, np.nan)
    return front


def _more_face_than_beside(view: PortraitView, face: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(S, S) bool: the `candidates` whose colour is nearer the `face`'s nearby than that of what lies
    beside them (neither face nor candidate: the background, hair). The matte's edge blends the face
    with the background over a few pixels, and the matte (like the landmarks' hull, which may take in
    hair beside the jaw) reaches past the middle of that blend: past it the photo shows no face."""
    s = face.shape[0]
    image = view.image.astype(np.float32)
    sigma = FACE_BLEND_REACH * s

    def local_mean(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weight = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)
        total = cv2.GaussianBlur(image * mask[..., None], (0, 0), sigma)
        return total / np.maximum(weight, 1e-6)[..., None], weight

    face_colour, _ = local_mean(face)
    beside, near = local_mean(~face & ~candidates)
    towards_face = face_colour - beside
    blend = ((image - beside) * towards_face).sum(-1) / np.maximum((towards_face ** 2).sum(-1), 1e-6)
    more_face: np.ndarray = candidates & ((blend > 0.5) | (near < 1e-3))
    return more_face


def _face_outline_depth(view: PortraitView, zf: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(R, 2) world z per grid row y (NaN where unknown): how far forward the face reaches at its
    outline on the -x and +x side, the depth of the mesh's front wall at the outermost column that
    projects into the face."""
    n = len(c)
    xs, ys = np.meshgrid(c, c, indexing="xy")            # [y, x] like zf
    covered = np.isfinite(zf)
    pts = np.stack([xs, ys, np.where(covered, zf, 0.0)], axis=-1).reshape(-1, 3)
    uv, _ = cam.project(pts, view.camera)
    s = view.face_mask.shape[0]
    inside = (uv >= 0).all(-1) & (uv < 1).all(-1)
    px = np.clip((uv * s).astype(np.int64), 0, s - 1)
    face = (inside & view.face_mask[px[:, 1], px[:, 0]]).reshape(n, n) & covered
    depth = np.full((n, 2), np.nan)
    for j in range(n):
        cols = np.flatnonzero(face[j])
        if len(cols):
            depth[j] = zf[j, cols[0]], zf[j, cols[-1]]
    # Hair that hangs below the face falls from beside it: going down, the outline never moves forward.
    # Rows above the face, or all rows of a photo without one, stay NaN: no hair reaches forward there.
    lowest: np.ndarray = np.fmin.accumulate(depth[::-1], axis=0)[::-1]
    return lowest


def _row_reach(view: PortraitView, silhouette: np.ndarray, mesh_mask: np.ndarray) -> np.ndarray:
    """(S,) world units: per photo row, how far the silhouette reaches beyond the mesh's outline."""
    s = silhouette.shape[0]
    beyond = ndimage.distance_transform_edt(~mesh_mask) * silhouette
    reach = ndimage.maximum_filter1d(beyond.max(axis=1), size=max(3, s // 40))
    reach = ndimage.gaussian_filter1d(reach, s / 200)
    thickness: np.ndarray = np.minimum(reach * view.world_per_pixel, HAIR_MAX_THICKNESS)
    return thickness


def skin_pixels(view: PortraitView, silhouette: np.ndarray, mesh_mask: np.ndarray) -> np.ndarray:
    """(S, S) bool: where the photo shows skin of the head: the face (the face mesh reaches the
    hairline), and below the chin whatever inside the mesh's outline (the neck) looks more like the
    face than like the hair. Colour alone does not tell fair hair from skin on the skull, so the skull
    is never skin."""
    s = silhouette.shape[0]
    face = view.face_mask & silhouette
    neck = mesh_mask & silhouette & (np.arange(s)[:, None] > view.chin_row)
    hair_seed = _hair_seed(view, silhouette)
    if hair_seed.sum() < MIN_SEED or face.sum() < MIN_SEED:
        skin: np.ndarray = face | neck
        return skin
    lab = cv2.cvtColor(view.image, cv2.COLOR_RGB2LAB).astype(np.float32)
    skin = face | _closer_to(lab, neck, lab[face], lab[hair_seed])
    return skin


class SurfaceColour:
    """Colours of head points (hair, ears, neck, skin) as the photo shows them, or their fill."""

    def __init__(self, view: PortraitView, vol: np.ndarray, silhouette: np.ndarray, fill: EdgeFill):
        self.view = view
        self.image = view.image.astype(np.float32) / 255.0
        self.silhouette = silhouette.astype(np.float32)
        self.fill = fill
        self.normals = VolumeNormals(vol, HULL_RESOLUTION)
        self.depth = _view_depth_of_volume(self.normals.coarse, view.camera, view.image.shape[0])
        # Trust in the photo fades toward the silhouette's edge, where what it shows turns from seen to
        # hidden: the colours there meet the fill in a gradient, not along a line down the side.
        s = silhouette.shape[0]
        self.edge_trust = np.clip(ndimage.distance_transform_edt(silhouette) / (EDGE_FEATHER * s), 0, 1)
        self.edge_trust = self.edge_trust.astype(np.float32)[..., None]

    def __call__(self, points: np.ndarray) -> np.ndarray:
        normals = self.normals(points)
        colour, weight = self._observe(points, normals)
        mirror = np.array([-1.0, 1.0, 1.0])
        m_colour, m_weight = self._observe(points * mirror, normals * mirror)
        m_weight = m_weight * (1 - weight)
        total = weight + m_weight
        seen = np.clip(total, 0, 1)[..., None]
        blended = (colour * weight[..., None] + m_colour * m_weight[..., None]) / np.maximum(total, 1e-6)[..., None]
        colour_or_fill: np.ndarray = blended * seen + self.fill(points) * (1 - seen)
        return colour_or_fill.astype(np.float32)

    def _observe(self, points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uv, depth = cam.project(points, self.view.camera)
        facing = np.clip(cam.view_cosine(points, normals, self.view.camera), 0, 1)
        s = self.depth.shape[0]
        inside = (uv >= 0).all(-1) & (uv <= 1).all(-1)
        px = np.clip((uv * s).astype(np.int64), 0, s - 1)
        visible = depth <= self.depth[px[..., 1], px[..., 0]] + VISIBILITY_EPS
        in_head = sample_image(self.silhouette, uv)[..., 0] > 0.5
        trust = sample_image(self.edge_trust, uv)[..., 0]
        return sample_image(self.image, uv), facing * trust * (inside & visible & in_head)


def _view_depth_of_volume(vol: np.ndarray, camera_vec: np.ndarray, size: int) -> np.ndarray:
    """Camera depth of the volume's nearest surface per pixel of the portrait (inf where empty)."""
    if not vol.any():
        return np.full((size, size), np.inf)
    verts, faces, _, _ = measure.marching_cubes(np.pad(vol, 1).astype(np.float32), 0.5)
    verts = (verts - 1 + 0.5) / vol.shape[0] - 0.5   # padded voxel indices -> world
    return view_depth(verts, faces, camera_vec, size)


@dataclass
class HeadOutline:
    """What the photo says about the head beyond the mesh: its silhouette without clothing, where it
    shows skin, where the mesh covers it and where it shows hair, (S, S) bool each; the fill for unseen
    points; the skull's centre depth."""

    silhouette: np.ndarray
    skin: np.ndarray
    mesh_mask: np.ndarray
    hair: np.ndarray
    fill: EdgeFill
    centre_z: float


def head_outline(head: HeadModel, identity: np.ndarray, view: PortraitView) -> HeadOutline:
    neutral = head.identity_vertices(identity)
    skin = neutral[head.part_vertices("skin")]
    centre_z = float(0.5 * (skin[:, 2].min() + skin[:, 2].max()))
    mesh_mask = _mesh_mask(neutral, head.faces, view)
    silhouette = head_silhouette(view, mesh_mask)
    skin = skin_pixels(view, silhouette, mesh_mask)
    # The fill continues hair round the head: above the chin it does not read skin-coloured strips
    # (ears, temples), which would paint a bald back on a head with hair.
    above = np.arange(skin.shape[0])[:, None] <= view.chin_row
    skin_coloured = _skin_coloured(view, silhouette)
    # Below the chin the mesh's neck may be clothed in the photo (a collar): the neck continues skin, not
    # the clothing.
    avoid = (skin & above) | (skin_coloured & above) | (mesh_mask & ~skin & ~above)
    # Ears, and skin beside the jaw, are coloured like the face: they are not hair hanging beside it.
    hair = silhouette & ~skin & ~skin_coloured
    return HeadOutline(silhouette, skin, mesh_mask, hair, EdgeFill(view, silhouette, avoid, centre_z), centre_z)


def _skin_coloured(view: PortraitView, silhouette: np.ndarray) -> np.ndarray:
    """(S, S) bool: silhouette pixels closer in colour to the face than to the hair above it (none when
    the photo shows too little hair to tell)."""
    hair_seed = _hair_seed(view, silhouette)
    face = view.face_mask & silhouette
    if hair_seed.sum() < MIN_SEED or face.sum() < MIN_SEED:
        return np.zeros_like(silhouette)
    lab = cv2.cvtColor(view.image, cv2.COLOR_RGB2LAB).astype(np.float32)
    return _closer_to(lab, silhouette, lab[face], lab[hair_seed])


def bare_skin(view: PortraitView, outline: HeadOutline, resolution: int) -> np.ndarray:
    """(S, S) float in [0, 1]: how surely each pixel shows the head's bare skin, for the texels the photo
    sees at a graze (projection.project_texture): the face (landmark hull) wholly; elsewhere a pixel of the
    head's silhouette that is not hair, as far as its colour is one the face shows (`_skin_likeness`). A
    collar, a tie, the background at the outline and hair hanging beside the jaw are none of it, whatever
    colour test made them part of the neck or the silhouette.

    The hull counts as skin out to two texels of the planes (`resolution`) past its edge: its pixels read
    the texture through the front plane, bilinearly twice (texel -> front-plane texel -> pixel), so they
    read texels up to that far outside it. Those keep the photo's colour, or the face's outline in the
    portrait view would be fitted from the fill (measured with every texel below the brows judged by its
    pixel, not only grazing ones: -0.2 dB frontal face PSNR on three reference portraits without the margin)."""
    read = _dilate(view.face_mask, int(np.ceil(2.0 / resolution / view.world_per_pixel)))
    likely = _skin_likeness(view.image, view.face_mask & outline.silhouette)
    around = outline.silhouette & ~outline.hair
    shows: np.ndarray = np.where(read, 1.0, likely * around).astype(np.float32)
    return shows


def _skin_likeness(image: np.ndarray, face: np.ndarray) -> np.ndarray:
    """(S, S) float in [0, 1]: how much each pixel's colour (CIELAB) is one of the `face` pixels' (S, S)
    bool: its distance from their median in robust standard deviations (per channel, from the median
    absolute deviation; at least one level of the 8-bit Lab scale), 1 within SKIN_SPREAD[0], 0 beyond
    SKIN_SPREAD[1]. Robust: the face's eyes, brows, lips and a moustache are a minority of it."""
    if face.sum() < MIN_SEED:
        return np.ones(face.shape, np.float32)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    centre = np.median(lab[face], axis=0)
    spread = np.maximum(MAD_TO_SIGMA * np.median(np.abs(lab[face] - centre), axis=0), 1.0)
    distance = np.sqrt((((lab - centre) / spread) ** 2).sum(axis=-1))
    lo, hi = SKIN_SPREAD
    likeness: np.ndarray = np.clip((hi - distance) / (hi - lo), 0.0, 1.0).astype(np.float32)
    return likeness


def build_walls(head: HeadModel, identity: np.ndarray, texture: np.ndarray, view: PortraitView,
                outline: HeadOutline, resolution: int) -> HeadWalls:
    """The four walls of the whole head, their colours and the side views' claims."""
    neutral = head.identity_vertices(identity)
    hair = hair_volume(view, outline.silhouette, outline.skin, outline.mesh_mask, outline.hair, head, neutral,
                       resolution)
    vol = swept_mesh_volume(head, identity, resolution) | hair
    colour = SurfaceColour(view, vol, outline.silhouette, outline.fill)
    grown = grown_face(view, outline.skin, outline.mesh_mask, head, neutral)
    front = _grown_front(view, grown, neutral, head.faces, outline.mesh_mask, resolution)
    return assemble_walls(head, identity, texture, vol, hair, colour, colour.normals, resolution, grown_front=front)


def _mesh_mask(vertices: np.ndarray, faces: np.ndarray, view: PortraitView) -> np.ndarray:
    """Where the mesh covers the photo, (S, S) bool."""
    s = view.image.shape[0]
    rast = raster.rasterize(raster.perspective_clip(torch.from_numpy(vertices.astype(np.float32)), view.camera),
                            torch.from_numpy(faces.astype(np.int32)), s, s)
    return rast[..., 3].numpy() > 0


