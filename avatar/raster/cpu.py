"""The CPU rasterizer: vectorized torch, no per-triangle or per-pixel Python loop, and the same
arithmetic compiled (avatar.march's `rasterize`), which `rasterize_cpu` runs when it is built: it gives
the same raster to the bit, several times faster (tests/test_raster.py holds the two together).

How it works:
1. Triangles are grouped by the power-of-two size (Kh, Kw) that holds their pixel bounding box; each
   group is enumerated as a dense (triangles, Kh, Kw) grid of candidate (triangle, pixel) pairs, so
   candidates need no per-pair gathers or divisions. The only Python loop is over these size groups
   (and over chunks of a group, to bound memory).
2. Coverage uses edge functions on vertices snapped to 1/256 pixel. They are integers, evaluated
   exactly (int32 for triangles up to ~60 pixels across, float64 beyond), with a top-left-style tie
   rule, so two triangles sharing an edge cover each pixel centre on that edge exactly once.
3. Depth (z/w, affine in screen space) and the triangle id are packed into one int64 key, and
   a scatter-reduce "amin" keeps per pixel the nearest fragment, the lowest triangle id on equal depth.
4. Barycentrics are computed once per covered pixel, for its winning triangle, from the unsnapped
   positions, perspective-correct.

Fragments whose z/w falls outside [-1, 1] are dropped, which is exactly what clipping against the near
and far planes does (and what nvdiffrast does), so both backends keep the same pixels.

Per-triangle data is kept as (quantity, triangle) rows, triangles sorted by group: every operation then
runs along contiguous rows and each group is a slice, which matters more for speed here than op count.
"""
from __future__ import annotations

import torch

from avatar import march

SUBPIXEL = 256.0
# Triangles at most this many pixels across keep every edge-function value of their candidate grid
# below 2**31 (about 2 * 3 * 60**2 * 256**2), so int32 evaluates them exactly. Larger ones use float64,
# exact while snapped vertices stay within about 65,000 pixels of the image; beyond that (corners with
# w near 0) they are still rasterized, only without the exact shared-edge guarantee.
INT32_MAX_EXTENT = 60.0
# Candidate pairs per chunk: bounds the temporaries to roughly 50 MB.
MAX_CANDIDATES_PER_CHUNK = 1 << 20
_EMPTY_KEY = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF
# Group id bits above the two 5-bit log2 box sizes.
_NEEDS_FLOAT64 = 1 << 10
_CLAMPED = 1 << 11
_CULLED = 1 << 12  # sorts after every real group


def _depth_keys(z: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Order-preserving int64 keys: float32 depth in the high 32 bits, triangle id in the low 32."""
    # Adding +0.0 turns -0.0 into +0.0 so that the two zeros tie as equal depths.
    bits = (z.to(torch.float32) + 0.0).view(torch.int32)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (ordered.to(torch.int64) << 32) | tri


def _depth_from_keys(keys: torch.Tensor) -> torch.Tensor:
    hi = (keys >> 32).to(torch.int32)
    return torch.where(hi < 0, hi ^ 0x7FFFFFFF, hi).view(torch.float32)


def _min3(t: torch.Tensor) -> torch.Tensor:
    return torch.minimum(torch.minimum(t[0], t[1]), t[2])


def _max3(t: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.maximum(t[0], t[1]), t[2])


class _Triangles:
    """Per-triangle tables of the rasterizable triangles, sorted by candidate-grid group."""

    def __init__(self, pos: torch.Tensor, faces: torch.Tensor, height: int, width: int):
        p = pos.to(torch.float64)
        w = p[:, 3]
        usable = (w > 0) & torch.isfinite(p).all(dim=1)
        # inv_w > 0 doubles as the "usable corner" flag from here on.
        inv_w = torch.where(usable, 1.0 / torch.where(usable, w, 1.0), 0.0)
        ndc = torch.where(usable.unsqueeze(1), p[:, :3] * inv_w.unsqueeze(1), 0.0)
        # Pixel units with pixel centres on integers: column j's centre is NDC x = (2j + 1) / W - 1.
        self._vertex = [(ndc[:, 0] + 1.0) * (0.5 * width) - 0.5, (ndc[:, 1] + 1.0) * (0.5 * height) - 0.5,
                        ndc[:, 2], inv_w]
        self.width = width

        # Pass 1, all faces: boxes, groups, the sort.
        px, py, inv_w = self._corners(faces, (0, 1, 3))
        sx, sy = torch.round(px * SUBPIXEL), torch.round(py * SUBPIXEL)
        sx_min, sy_min = _min3(sx), _min3(sy)
        col_lo = torch.ceil(sx_min * (1.0 / SUBPIXEL)).clamp_(min=0)
        row_lo = torch.ceil(sy_min * (1.0 / SUBPIXEL)).clamp_(min=0)
        col_hi = torch.floor(_max3(sx) * (1.0 / SUBPIXEL))
        row_hi = torch.floor(_max3(sy) * (1.0 / SUBPIXEL))
        clamped = (col_hi >= width) | (row_hi >= height)
        box_w = col_hi.clamp_(max=width - 1) - col_lo + 1
        box_h = row_hi.clamp_(max=height - 1) - row_lo + 1
        extent = torch.maximum(_max3(sx) - sx_min, _max3(sy) - sy_min) * (1.0 / SUBPIXEL)
        alive = (_min3(inv_w) > 0) & (box_w > 0) & (box_h > 0)
        log_w = torch.ceil(torch.log2(box_w.clamp(min=1))).to(torch.int64)
        log_h = torch.ceil(torch.log2(box_h.clamp(min=1))).to(torch.int64)
        group = (log_h << 5) | log_w
        group |= torch.where(extent > INT32_MAX_EXTENT, _NEEDS_FLOAT64, 0) | torch.where(clamped, _CLAMPED, 0)
        group = torch.where(alive, group, _CULLED)
        group, order = torch.sort(group)
        ids, counts = torch.unique_consecutive(group, return_counts=True)
        self.groups = [(gid, n) for gid, n in zip(ids.tolist(), counts.tolist()) if gid != _CULLED]
        live = sum(n for _, n in self.groups)
        self.tri = order[:live]  # sorted position -> face id
        # 1-D gathers: index_select along dim 1 of a stacked table is several times slower.
        self.box = torch.stack([t.index_select(0, self.tri) for t in (col_lo, row_lo, box_w, box_h)])
        if live:
            self._tables(faces.index_select(0, self.tri))

    def _corners(self, faces: torch.Tensor, which: tuple[int, ...]) -> list[torch.Tensor]:
        # (corner, face) rows: corner k of every face is one contiguous row.
        index = faces.t().reshape(-1)
        return [self._vertex[a].index_select(0, index).view(3, -1) for a in which]

    def _tables(self, faces: torch.Tensor) -> None:
        px, py, z, inv_w = self._corners(faces, (0, 1, 2, 3))
        sx, sy = torch.round(px * SUBPIXEL), torch.round(py * SUBPIXEL)
        col_lo, row_lo = self.box[0], self.box[1]
        # Edge k runs from corner k+1 to corner k+2 (zero on that side, 2 * area at corner k).
        nxt, prv = torch.tensor([1, 2, 0], device=px.device), torch.tensor([2, 0, 1], device=px.device)
        sx_n, sy_n, px_n, py_n = (t.index_select(0, nxt) for t in (sx, sy, px, py))
        dx, dy = sx.index_select(0, prv) - sx_n, sy.index_select(0, prv) - sy_n
        ux, uy = px.index_select(0, prv) - px_n, py.index_select(0, prv) - py_n
        area_snapped = dx[0] * (sy[0] - sy[1]) - dy[0] * (sx[0] - sx[1])
        area = ux[0] * (py[0] - py[1]) - uy[0] * (px[0] - px[1])

        # Orient every triangle so that its edge functions are positive inside (no backface culling);
        # a zero sign (degenerate triangle) makes every edge value 0, never inside.
        sign = torch.sign(area_snapped) * (area != 0)
        odx, ody = dx * sign, dy * sign
        # Tie rule for pixel centres exactly on an edge: owned when the inward normal (-dy, dx) points
        # to +x, or exactly along +y. The same edge seen from the neighbour has the opposite normal, so
        # one of the two triangles owns it.
        owns = (ody < 0) | ((ody == 0) & (odx > 0))
        # e(col, row) = dx * (row*S - y_start) - dy * (col*S - x_start): an integer, so "e >= 0" is
        # "e + 1 > 0". Stored relative to the box origin.
        edge_a, edge_b = ody * -SUBPIXEL, odx * SUBPIXEL
        edge_0 = ody * sx_n - odx * sy_n + owns + edge_a * col_lo + edge_b * row_lo
        self.edges = torch.stack([edge_0, edge_a, edge_b])  # (3 terms, 3 edges, T)

        # Screen-space barycentrics as affine functions of (col, row), from the unsnapped positions.
        inv_area = 1.0 / torch.where(area != 0, area, 1.0)
        bary_a, bary_b = uy * -inv_area, ux * inv_area
        bary_c = (uy * px_n - ux * py_n) * inv_area
        dz0, dz1 = z[0] - z[2], z[1] - z[2]
        # Written as z2 + dz0*b0 + dz1*b1 so that a constant-depth triangle has exactly constant depth.
        z_a = dz0 * bary_a[0] + dz1 * bary_a[1]
        z_b = dz0 * bary_b[0] + dz1 * bary_b[1]
        z_0 = z[2] + dz0 * bary_c[0] + dz1 * bary_c[1] + z_a * col_lo + z_b * row_lo
        self.depth = torch.stack([z_0, z_a, z_b])
        self.base = (row_lo * self.width + col_lo).to(torch.int64)
        self.shading = torch.cat([bary_a[:2], bary_b[:2], bary_c[:2], inv_w])

    def scatter(self, keys: torch.Tensor, lo: int, hi: int, group: int, first_row: int, row_count: int) -> None:
        """Scatter into `keys` the nearest fragments of sorted triangles [lo, hi), all of group id `group`,
        from rows [first_row, first_row + row_count) of their candidate grids."""
        kw = 1 << (group & 31)
        dtype = torch.float64 if group & _NEEDS_FLOAT64 else torch.int32
        cols = torch.arange(kw, dtype=dtype, device=keys.device).unsqueeze(1)
        rows = torch.arange(first_row, first_row + row_count, dtype=dtype, device=keys.device).view(-1, 1, 1)
        e0, ea, eb = (t[:, None, None, lo:hi].to(dtype) for t in self.edges)
        # (3 edges, Kh, Kw, T) edge values from the box origin, triangles innermost so the broadcast
        # ops vectorize.
        edges = (e0 + ea * cols) + eb * rows
        inside = _min3(edges) > 0
        if group & _CLAMPED:
            # Boxes cut by the right or bottom of the image must not wrap onto the next row.
            inside &= cols < self.box[2, lo:hi].to(dtype)
            inside &= rows < self.box[3, lo:hi].to(dtype)
        drow, dcol, local = torch.nonzero(inside, as_tuple=True)
        if local.numel() == 0:
            return
        local = local + lo
        if first_row:
            drow = drow + first_row
        z = self.depth[0].index_select(0, local)
        z = z + self.depth[1].index_select(0, local) * dcol + self.depth[2].index_select(0, local) * drow
        pixel = self.base.index_select(0, local) + drow * self.width + dcol
        frag = _depth_keys(z, self.tri.index_select(0, local))
        # Outside the near/far range: the key that never wins.
        frag = torch.where(z.abs() <= 1.0, frag, _EMPTY_KEY)
        keys.scatter_reduce_(0, pixel, frag, reduce="amin", include_self=True)


def rasterize_cpu(pos: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W, 4) float32 raster of already validated inputs; see avatar.raster.rasterize. Compiled when
    the march kernel is built (and the input is on the CPU), else `rasterize_torch`."""
    kernel = march.load()
    if kernel is not None and pos.device.type == "cpu":
        return kernel.rasterize(pos.to(torch.float64).contiguous(), faces.to(torch.int64).contiguous(), height, width)
    return rasterize_torch(pos, faces, height, width)


def rasterize_torch(pos: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The rasterizer in torch ops (the reference; see the module docstring)."""
    device = pos.device
    out = torch.zeros(height, width, 4, dtype=torch.float32, device=device)
    if faces.shape[0] == 0:
        return out
    tris = _Triangles(pos, faces.to(torch.int64), height, width)
    if not tris.groups:
        return out

    keys = torch.full((height * width,), _EMPTY_KEY, dtype=torch.int64, device=device)
    first = 0
    for gid, count in tris.groups:
        grid_h, grid_w = 1 << ((gid >> 5) & 31), 1 << (gid & 31)
        per_chunk = max(MAX_CANDIDATES_PER_CHUNK // (grid_h * grid_w), 1)
        # A grid larger than a chunk on its own (a big triangle at a high resolution) goes in row bands.
        band = min(grid_h, max(MAX_CANDIDATES_PER_CHUNK // grid_w, 1))
        for lo in range(first, first + count, per_chunk):
            for row in range(0, grid_h, band):
                tris.scatter(keys, lo, min(lo + per_chunk, first + count), gid, row, min(band, grid_h - row))
        first += count

    # Face id -> sorted position, for the shading rows.
    position = torch.empty(faces.shape[0], dtype=torch.int64, device=device)
    position[tris.tri] = torch.arange(len(tris.tri), device=device)
    flat = out.view(-1, 4)
    # Bands of pixels bound the float64 temporaries at very large resolutions.
    for start in range(0, height * width, MAX_CANDIDATES_PER_CHUNK):
        band = keys[start:start + MAX_CANDIDATES_PER_CHUNK]
        covered = torch.nonzero(band != _EMPTY_KEY).squeeze(1)
        if covered.numel():
            _shade(flat, tris, position, band.index_select(0, covered), covered + start, width)
    return out


def _shade(flat: torch.Tensor, tris: _Triangles, position: torch.Tensor, won: torch.Tensor, covered: torch.Tensor,
           width: int) -> None:
    """Write (u, v, z/w, id + 1) of the covered pixels, whose winning depth keys are `won`, into `flat`."""
    winner = won & _LOW32
    where = position.index_select(0, winner)
    s = [t.index_select(0, where) for t in tris.shading]
    row = torch.div(covered, width, rounding_mode="floor")
    col = (covered - row * width).to(torch.float64)
    row = row.to(torch.float64)
    b0 = s[0] * col + s[2] * row + s[4]
    b1 = s[1] * col + s[3] * row + s[5]
    # Perspective-correct: screen-space weights divided by each corner's w, renormalised.
    q0, q1, q2 = b0 * s[6], b1 * s[7], (1.0 - b0 - b1) * s[8]
    inv_total = 1.0 / (q0 + q1 + q2)
    values = torch.stack([(q0 * inv_total).to(torch.float32), (q1 * inv_total).to(torch.float32),
                          _depth_from_keys(won), (winner + 1).to(torch.float32)], dim=1)
    flat.index_copy_(0, covered, values)
