"""The "surface" channel semantics of the embedded generators, and the decoder that reads them.

The projective and synthetic generators have no learned prior, so they write planes whose channels
mean something exact and give the decoder weights that read that meaning. The static planes are
(xy, xz, zy): the third is a true side plane (avatar.decoder.SIDE_PLANES), so the sides of the head
have a colour map of their own instead of the front map stretched along z.

The head is described by four orthographic walls, each the depth of the first surface seen from one
side: front z_f(x, y) and back z_b(x, y) on xy, the +x side x_p(z, y) and the -x side x_n(z, y) on zy.
Density is high where a point is behind all four (z_b < z < z_f, x_n < x < x_p): the intersection of
four depth hulls, exact for a head that is convex along every x and z line. Under the head mesh the
front wall is the posed mesh, rasterized each frame (avatar.planes).

Colour (logits, stored + COLOUR_OFFSET) has a default and claims:
  default  front colour c_f(x, y) in front of the split depth z_split(x), back colour c_b(x, y) behind it;
  claims   a side map claims the points of its wall that it sees best (an ownership map made when the
           avatar is built) and adds (c_side - c_default) there. A claim is split into front/back
           halves, so the default it corrects is known when the planes are written.
The split is sharp (SPLIT_SLOPE) and its ramp barely overshoots either colour (the back gate below):
a side claim crossing it corrects one default or the other, so a wide ramp is a seam down the side
of every head.

  ch 0  front wall   xy: -z_f (under the mesh: the posed depth)          xz: +z
  ch 1  back wall    xy: +z_b                                            xz: -z
  ch 2  +x wall      zy: -x_p                                            xz: +x
  ch 3  -x wall      zy: +x_n                                            xz: -x
  ch 4  front gate   xz: G (z - z_split(x))
  ch 5-7 front RGB   xy: c_f (under the mesh: the neural texture)        xz: G (z - z_split)
  ch 8  back gate    xy: -(m_f + 8)                                      xz: -G (z - z_split) - 8
  ch 9-11 back RGB   xy: c_b - m_f                                       xz: -G (z - z_split) - 8
  ch 12-27 four claims (+x front half, +x back half, -x front half, -x back half), 4 channels each:
        gate         zy: Gs (delta - wall(z, y) + own(z, y))             xz: +-Gs x
        RGB          the gate's value, + (c_side + K) on zy, - c_default on xy (-c_f is rasterized
                     under the mesh, so it always cancels the default the front RGB channels give)

Each gated colour is relu(a + G d) - relu(K + G d): exactly a - K once G d is large, exactly 0 once
it is very negative, and a monotone ramp between; softplus with a large gain stands in for relu.
With h(v, c) = relu(v + c) - relu(v), h(v, c) + h(-v - c, c) = c for every v. The front colour is
h(u + 8, c_f) (u = G (z - z_split)) and the back colour h(-u - 8 - m_f, c_b), m_f the mean of c_f's
three logits (the gate is shared by the three): across the split their sum stays within
|c_f - m_f| of c_f where c_b = c_f, and ramps from one to the other otherwise, overshooting
neither by more than that.
A claim's gate is open within `CLAIM_DEPTH` behind its wall where the ownership map says 0, and shut
where it says NOT_OWNED (or -HANDOVER at texels the side's other half claims); between texels of both
it ramps, so neighbouring owners meet between texels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from avatar import raster
from avatar.decoder import CHANNELS, HIDDEN, TriplaneDecoder

FRONT_WALL, BACK_WALL, PX_WALL, NX_WALL = 0, 1, 2, 3
FRONT_GATE, BACK_GATE = 4, 8
FRONT_RGB, BACK_RGB = (5, 6, 7), (9, 10, 11)
CLAIMS = (("px", "front"), ("px", "back"), ("nx", "front"), ("nx", "back"))
CLAIM_BASE = 12
SPLIT_SLOPE = 20000.0      # G of the front/back split: colours are exact beyond 14/G (a fifth of a texel
                           # at 256) either side of it, so a surface crossing it shows no band
CLAIM_SLOPE = 4000.0       # Gs of the side claims: a claim switches within ~0.007 world units
CLAIM_DEPTH = 0.008        # how far behind its wall a claim reaches (world units): less than a nose is
                           # wide (measured: at 0.012 and more, side claims reach across the nose)
CLAIM_OFFSET = 14.0        # K: larger than any logit difference (2 x LOGIT_LIMIT)
COLOUR_OFFSET = 8.0        # stored colours are logit + 8, so they stay positive inside a gate
LOGIT_LIMIT = 6.0
SPLIT_SATURATED = 3 * (COLOUR_OFFSET + LOGIT_LIMIT)   # |G (z - z_split)| beyond which both split colours
                                                      # are saturated, with room for the softplus knee
# Density inside the hull (per box unit) and how fast it falls outside a wall: it reaches nothing 0.01
# outside. Light dies out within ~0.005 (alpha 0.95), so a sliver seen at a graze (the cut edge of the
# neck, a lock of hair) is opaque, and the surface it shows sits within ~0.002 of its wall (measured on the
# face: at 300 / 30000 the face showed about 0.003 behind the head model's surface, and a corner seen
# edge-on let the background through at alpha 0.93).
DENSITY_INSIDE = 600.0
WALL_STIFFNESS = 60000.0
RELU_GAIN_GEOMETRY = 200.0
RELU_GAIN_COLOUR = 20.0
EMPTY = 1.0                # a wall value that puts every point of the box outside
SPLIT_MARGIN = 0.02        # the split sits this far behind a column's rearmost front surface
NOT_OWNED = -3 * CLAIM_DEPTH
# Where a side claims both halves, each half's claim reaches toward the other's texels as far as this,
# not NOT_OWNED: a surface about a voxel inside its wall (where the side walls stand) is claimed about
# halfway between the two texels, and no claim is open at the other half's texel centres even at the
# wall itself (CLAIM_DEPTH - HANDOVER leaves the gate below -CLAIM_OFFSET - LOGIT_LIMIT * 2).
# With NOT_OWNED neither claim reached the middle third between them: a line of the default colour
# (the front or back wall's, seen at a graze) along every boundary between the halves.
HANDOVER = 2 * CLAIM_DEPTH
SPLIT_JUMP_COST = 0.25     # wall points the split may misplace to move a texel less between columns
PROFILE_REACH = 2          # texels the side walls reach past the head's profile (past_profile)

SEMANTICS = {
    "name": "surface-v2",
    "walls": {"front": FRONT_WALL, "back": BACK_WALL, "px": PX_WALL, "nx": NX_WALL},
    "front_rgb_channels": list(FRONT_RGB),
    "back_rgb_channels": list(BACK_RGB),
    "claims": {f"{side}_{half}": CLAIM_BASE + 4 * k for k, (side, half) in enumerate(CLAIMS)},
    "colour_encoding": f"logit(rgb) + {COLOUR_OFFSET}, logit clipped to +-{LOGIT_LIMIT}",
    "split_slope": SPLIT_SLOPE,
    "claim_slope": CLAIM_SLOPE,
    "claim_depth": CLAIM_DEPTH,
}


def claim_channels(side: str, half: str) -> tuple[int, tuple[int, int, int]]:
    """(gate channel, RGB channels) of one claim."""
    base = CLAIM_BASE + 4 * CLAIMS.index((side, half))
    return base, (base + 1, base + 2, base + 3)


def front_texture_channels() -> list[int]:
    """Channels the neural texture supplies under the mesh besides the front wall: the front colour and
    the front-half claims' -c_f."""
    out = list(FRONT_RGB)
    for side in ("px", "nx"):
        out += list(claim_channels(side, "front")[1])
    return out


def encode_colour(rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    c = torch.as_tensor(np.asarray(rgb, dtype=np.float32)).clamp(1e-4, 1 - 1e-4)
    return torch.logit(c).clamp(-LOGIT_LIMIT, LOGIT_LIMIT) + COLOUR_OFFSET


def surface_decoder() -> TriplaneDecoder:
    """Decoder weights that read the surface semantics (see the module docstring)."""
    dec = TriplaneDecoder(CHANNELS, HIDDEN)
    w1 = torch.zeros(HIDDEN, CHANNELS)
    b1 = torch.zeros(HIDDEN)
    w2 = torch.zeros(1 + CHANNELS, HIDDEN)
    b2 = torch.zeros(1 + CHANNELS)
    mean_to_sum = 3.0  # the decoder sees the mean of three planes; the semantics are written as sums
    g_geo, g_col = RELU_GAIN_GEOMETRY, RELU_GAIN_COLOUR
    unit = 0
    for ch in (FRONT_WALL, BACK_WALL, PX_WALL, NX_WALL):
        w1[unit, ch] = g_geo * mean_to_sum
        w2[0, unit] = -WALL_STIFFNESS / g_geo
        unit += 1
    b2[0] = DENSITY_INSIDE + 1.0  # +1 undoes the renderer's softplus(raw - 1) shift
    gated = [(FRONT_GATE, FRONT_RGB, COLOUR_OFFSET), (BACK_GATE, BACK_RGB, COLOUR_OFFSET)]
    gated += [(*claim_channels(side, half), CLAIM_OFFSET) for side, half in CLAIMS]
    for gate_ch, rgb_chs, offset in gated:
        gate_unit = unit
        w1[gate_unit, gate_ch] = g_col * mean_to_sum
        b1[gate_unit] = g_col * offset
        unit += 1
        for k, ch in enumerate(rgb_chs):
            w1[unit, ch] = g_col * mean_to_sum
            w2[1 + k, unit] += 1.0 / g_col
            w2[1 + k, gate_unit] += -1.0 / g_col
            unit += 1
    first, second = dec.layers
    with torch.no_grad():
        first.weight.copy_(w1)
        first.bias.copy_(b1)
        second.weight.copy_(w2)
        second.bias.copy_(b2)
        mask = torch.zeros(CHANNELS)
        mask[[FRONT_WALL, *front_texture_channels()]] = 1.0
        dec.raster_channel_mask.copy_(mask)
        depth_w = torch.zeros(CHANNELS)
        depth_w[FRONT_WALL] = -1.0
        dec.raster_depth_weight.copy_(depth_w)
        dec.raster_depth_test.fill_(1.0)
    return dec.eval()


@dataclass
class HeadWalls:
    """The whole head seen from four sides, on the planes' texel grids (R x R each, rows = second axis).

    front/back: z of the first surface seen from +z / -z at (x, y) (xy grid); px/nx: x of the first
    surface seen from +x / -x at (z, y) (zy grid: column z, row y); NaN where nothing is seen.
    `front_static` is the front wall of what the mesh does not carry (hair), NaN elsewhere: under the
    mesh the posed mesh is rasterized each frame and wins wherever it is nearer.
    Colours (R, R, 3) in [0, 1] go with each wall; `front_rgb` is the colour of the first surface seen
    from +z at rest, the neural texture's under the mesh (the back gate reads it). `owned` says where
    each side view colours its wall (surface_planes splits it into the claims' halves).
    """

    front_static: np.ndarray
    back: np.ndarray
    px: np.ndarray
    nx: np.ndarray
    front_rgb: np.ndarray
    back_rgb: np.ndarray
    px_rgb: np.ndarray
    nx_rgb: np.ndarray
    split: np.ndarray          # (R,) z_split per column x
    owned: dict[str, np.ndarray]  # side ("px", "nx") -> (R, R) bool on the zy grid


def texel_centres(resolution: int, box_half: float = 0.5) -> np.ndarray:
    """World coordinate of each texel centre along one plane axis, (R,)."""
    return ((np.arange(resolution) + 0.5) / resolution * 2 - 1) * box_half


def split_depth(z_front: np.ndarray, z_back: np.ndarray, continuous: bool = True) -> np.ndarray:
    """Per column x, the depth separating front-coloured from back-coloured surfaces, (R,).

    z_front / z_back (R, R) on the xy grid, NaN where empty. In each column the split is the depth that
    leaves the fewest front-wall points behind it and back-wall points in front of it (ties: the
    rearmost such depth, less SPLIT_MARGIN), so the front view keeps every surface it sees unless a
    surface further down the column overlaps the back of the head in depth.

    It is also continuous: moving it by a texel between neighbouring columns costs SPLIT_JUMP_COST of a
    misplaced point (dynamic programming over the columns), and it lies on a texel edge of z. A side
    claim corrects the default of its texel's half (surface_planes), judged at the column under its wall,
    while the surface it colours lies up to a column or two deeper. Near the sides of the head the front
    and back walls both see the side, depths centimetres apart misplace about as few points, and the
    split jumped between them from one column to the next: the claims corrected the wrong default along
    whole rows of texels (stepped dark lines along the jaw and down the neck in side views). On a texel
    edge, each side texel lies wholly in one half. `continuous=False` gives each column's own choice.
    """
    r = z_front.shape[1]
    columns = [(np.sort(z_front[:, col][np.isfinite(z_front[:, col])]),
                np.sort(z_back[:, col][np.isfinite(z_back[:, col])])) for col in range(r)]
    out = np.zeros(r, np.float32)
    # Candidate splits: the texel edges of z, moved by the half-width of the split's ramp so the default
    # colour switches on the edge itself (surface_planes: at G (z - split) = -COLOUR_OFFSET).
    edges = np.arange(r + 1) / r - 0.5 + COLOUR_OFFSET / SPLIT_SLOPE
    steps = np.abs(np.arange(r + 1)[:, None] - np.arange(r + 1)[None, :])
    # Dynamic programming over the columns, left to right: the cheapest total of misplaced points and
    # moves up to each column for each edge, and the edge of the previous column it came from.
    jump = SPLIT_JUMP_COST * steps
    total: np.ndarray | None = None
    choice: list[tuple[np.ndarray, np.ndarray] | None] = []
    for col, (front, back) in enumerate(columns):
        if not len(front):
            total = None
            choice.append(None)
            continue
        candidates = np.concatenate([front - SPLIT_MARGIN, back + 1e-4])
        cost = _split_cost(front, back, candidates)
        best = cost.min()
        alone = candidates[cost == best].max() if best < len(front) else front.min() - SPLIT_MARGIN
        out[col] = alone
        if not continuous:
            continue
        # Among equal costs the edge nearest the column's own choice (a tie-break, far below one point).
        here = _split_cost(front, back, edges) + 1e-3 * np.abs(edges - alone) * r
        if total is None:
            total, came = here.astype(np.float64), np.full(r + 1, -1)
        else:
            through = total[None, :] + jump
            came = np.argmin(through, axis=1)
            total = here + through[np.arange(r + 1), came]
        choice.append((total.copy(), came))
    if not continuous:
        return out
    # Back through each run of columns from its cheapest end.
    k = -1
    for col in range(r - 1, -1, -1):
        step = choice[col]
        if step is None:
            k = -1
            continue
        totals, came = step
        if k < 0:
            k = int(np.argmin(totals))
        out[col] = edges[k]
        k = int(came[k])
    return out


def _split_cost(front: np.ndarray, back: np.ndarray, z: np.ndarray) -> np.ndarray:
    """For splits at depths z (K,): how many of a column's sorted front-wall depths lie behind each plus
    how many of its sorted back-wall depths lie in front of it."""
    cost: np.ndarray = np.searchsorted(front, z, side="left") + (len(back) - np.searchsorted(back, z, side="right"))
    return cost


def surface_planes(texture_rgb: np.ndarray, walls: HeadWalls) -> torch.Tensor:
    """Assemble the (4, 32, R, R) planes (order uv, xy, xz, zy) from the neural texture (R, R, 3) in the
    head model's UV space (row = v) and the walls."""
    r = walls.back.shape[0]
    c = torch.from_numpy(texel_centres(r).astype(np.float32))
    planes = torch.zeros(4, CHANNELS, r, r)
    uv, xy, xz, zy = planes
    tex = encode_colour(texture_rgb).permute(2, 0, 1)
    uv[list(FRONT_RGB)] = tex

    def wall(values: np.ndarray, sign: float) -> torch.Tensor:
        v = torch.from_numpy(np.asarray(values, dtype=np.float32))
        return torch.where(torch.isfinite(v), sign * v, torch.full_like(v, EMPTY))

    xy[FRONT_WALL] = wall(walls.front_static, -1.0)
    xy[BACK_WALL] = wall(walls.back, 1.0)
    zy[PX_WALL] = wall(past_profile(walls.px), -1.0)
    zy[NX_WALL] = wall(past_profile(walls.nx), 1.0)
    x_ramp = c.view(1, r).expand(r, r)   # xz: column = x
    z_ramp = c.view(r, 1).expand(r, r)   # xz: row = z
    xz[FRONT_WALL] = z_ramp
    xz[BACK_WALL] = -z_ramp
    xz[PX_WALL] = x_ramp
    xz[NX_WALL] = -x_ramp

    front_rgb = encode_colour(walls.front_rgb).permute(2, 0, 1)
    back_rgb = encode_colour(walls.back_rgb).permute(2, 0, 1)
    # The back gate turns the back colour on as the front one turns off (module docstring).
    front_mean = front_rgb.mean(dim=0)
    xy[list(FRONT_RGB)] = front_rgb
    xy[list(BACK_RGB)] = back_rgb - front_mean
    xy[BACK_GATE] = -front_mean
    split = torch.from_numpy(walls.split).view(1, r)
    # Flat beyond two texels of the split, where both split colours are saturated: the values stay
    # small (float16 planes keep them), and the texels either side still interpolate the full slope.
    reach = max(SPLIT_SATURATED, 2 * SPLIT_SLOPE / r)
    gate = (SPLIT_SLOPE * (z_ramp - split)).clamp(-reach, reach)
    xz[FRONT_GATE] = gate
    xz[list(FRONT_RGB)] = gate
    back_gate = -gate - COLOUR_OFFSET
    xz[BACK_GATE] = back_gate
    xz[list(BACK_RGB)] = back_gate

    for side, half in CLAIMS:
        gate_ch, rgb_chs = claim_channels(side, half)
        sign = 1.0 if side == "px" else -1.0        # wall value x - x_p for +x, x_n - x for -x
        side_wall = zy[PX_WALL if side == "px" else NX_WALL]
        front_half = _front_half(walls, side)
        in_half = walls.owned[side] & (front_half if half == "front" else ~front_half)
        # Where the other half claims, this one reaches about halfway to its texels (HANDOVER).
        other_half = walls.owned[side] & ~in_half
        own = torch.from_numpy(np.where(in_half, 0.0, np.where(other_half, -HANDOVER, NOT_OWNED)).astype(np.float32))
        own_zy = CLAIM_SLOPE * (CLAIM_DEPTH + side_wall + own)
        own_xz = CLAIM_SLOPE * sign * x_ramp
        side_rgb = encode_colour(walls.px_rgb if side == "px" else walls.nx_rgb).permute(2, 0, 1)
        zy[gate_ch] = own_zy
        xz[gate_ch] = own_xz
        zy[list(rgb_chs)] = own_zy + side_rgb + CLAIM_OFFSET
        xz[list(rgb_chs)] = own_xz
        default = front_rgb if half == "front" else back_rgb
        xy[list(rgb_chs)] = -default
        if half == "front":
            uv[list(rgb_chs)] = -tex
    return planes


def past_profile(side_wall: np.ndarray, texels: int = PROFILE_REACH) -> np.ndarray:
    """A side wall (R, R) on the zy grid (row y, column z), NaN where empty, reaching `texels` past the
    frontmost and rearmost surface of each row with that surface's value.

    A side wall's outline in z is the head's profile rounded to texel centres, and density read between
    its last texel and an empty one is nil: the side walls would shave up to a texel and a half off the
    forehead, the nose and the lips, so the front texture would sit that far behind the head model's
    surface and slide across the face as it turns. Past the outline the front and back walls bound the
    head alone (they are exact under the mesh); inner gaps of a row are left empty."""
    out = np.array(side_wall, dtype=np.float32)
    seen = np.isfinite(out)
    rows = np.flatnonzero(seen.any(axis=1))
    r = out.shape[1]
    first = np.argmax(seen[rows], axis=1)
    last = r - 1 - np.argmax(seen[rows, ::-1], axis=1)
    for k in range(1, texels + 1):
        ahead, behind = last + k, first - k
        ok = ahead < r
        out[rows[ok], ahead[ok]] = out[rows[ok], last[ok]]
        ok = behind >= 0
        out[rows[ok], behind[ok]] = out[rows[ok], first[ok]]
    return out


def _front_half(walls: HeadWalls, side: str) -> np.ndarray:
    """(R, R) bool on the zy grid: the texels of a side that claim in the front half if owned: those
    whose centre is in front of the split of the column just under the wall (where the claim colours)."""
    wall = walls.px if side == "px" else walls.nx
    r = wall.shape[0]
    sign = 1.0 if side == "px" else -1.0
    col = texel_index(np.nan_to_num(wall) - sign * CLAIM_DEPTH / 2, r)
    z = np.broadcast_to(texel_centres(r).reshape(1, r), (r, r))
    front: np.ndarray = z > walls.split[col]
    return front


def texel_index(coord: np.ndarray, resolution: int) -> np.ndarray:
    """Index of the texel (along one plane axis, R texels) that holds world coordinate `coord`."""
    return np.clip(((coord + 0.5) * resolution).astype(np.int64), 0, resolution - 1)


def sync_texture(planes: torch.Tensor) -> None:
    """After an edit of the neural texture's front colour (plane 0), write the claims' -c_f to match."""
    for side in ("px", "nx"):
        planes[0, list(claim_channels(side, "front")[1])] = -planes[0, list(FRONT_RGB)]


def mesh_wall(vertices: np.ndarray, faces: np.ndarray, view: str, resolution: int
              ) -> tuple[np.ndarray, torch.Tensor]:
    """One orthographic wall of a mesh: the first-surface coordinate along the view axis (R, R), NaN
    where empty, and the raster (for interpolating attributes). Views: "front" (+z), "back" (-z) on the
    xy grid; "px" (+x), "nx" (-x) on the zy grid."""
    plane, axis, sign = VIEWS[view]
    verts = torch.from_numpy(np.array(vertices, dtype=np.float32))
    flip = torch.ones(3)
    flip[axis] = sign  # the rasterizer keeps the largest coordinate along the axis: flip to keep the smallest
    tri = torch.from_numpy(np.array(faces, dtype=np.int32))
    rast = raster.rasterize(raster.orthographic_clip(verts * flip, plane), tri, resolution, resolution)
    coord = raster.interpolate(verts[:, axis:axis + 1], rast, tri)[..., 0].numpy()
    return np.where(rast[..., 3].numpy() > 0, coord, np.nan), rast


VIEWS = {"front": ("xy", 2, 1.0), "back": ("xy", 2, -1.0), "px": ("zy", 0, 1.0), "nx": ("zy", 0, -1.0)}
