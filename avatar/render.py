"""The renderer: expression -> posed mesh -> front plane -> volume rendering -> RGB, alpha, depth.

Two marchers share everything but the sampling:
- `reference`: EG3D's plain scheme, 48 stratified + 48 importance samples on every ray.
- accelerated (default): an occupancy grid skips empty space; samples are taken only in occupied
  cells, a batch at a time, and a ray stops once its transmittance is spent.
Both render at a neural resolution and resample to the requested size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avatar import camera as cam
from avatar.asset import Avatar
from avatar.decoder import RenderField, TriplaneDecoder, sum_static_planes
from avatar.expressions import to_expression
from avatar.head_model import HeadModel
from avatar.head_registry import head_for_avatar
from avatar.occupancy import OccupancyGrid
from avatar.planes import FrontPlaneComposer
from avatar.volume import box_intersection, composite, sample_pdf

DEFAULT_NEURAL_RESOLUTION = 128
REFERENCE_SAMPLES = (48, 48)
TRANSMITTANCE_EPS = 1e-3
SAMPLES_PER_ROUND = 8
WEIGHT_EPS = 1e-3  # samples lighter than this on a ray are not coloured


@dataclass
class RenderResult:
    rgb: torch.Tensor    # (H, W, 3) premultiplied by alpha (i.e. over black)
    alpha: torch.Tensor  # (H, W)
    depth: torch.Tensor  # (H, W) distance along the ray; 0 where empty

    def over(self, background=(0.0, 0.0, 0.0)) -> np.ndarray:
        bg = torch.tensor(background, dtype=self.rgb.dtype)
        return (self.rgb + (1 - self.alpha[..., None]) * bg).clamp(0, 1).numpy()

    def rgba8(self) -> np.ndarray:
        """Straight-alpha RGBA8 (H, W, 4)."""
        a = self.alpha.clamp(0, 1)
        straight = torch.where(a[..., None] > 1e-4, self.rgb / a[..., None].clamp(min=1e-4), torch.zeros_like(self.rgb))
        rgba = torch.cat([straight.clamp(0, 1), a[..., None]], dim=-1)
        return (rgba * 255 + 0.5).to(torch.uint8).numpy()


def _size(size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else size
    if not (8 <= h <= 4096 and 8 <= w <= 4096):
        raise ValueError(f"frame size {w}x{h} is outside 8..4096 per side")
    return int(h), int(w)


class Renderer:
    def __init__(self, avatar: Avatar, backend: str = "cpu", head: HeadModel | None = None,
                 neural_resolution: int = DEFAULT_NEURAL_RESOLUTION, occupancy_resolution: int = 128):
        self.avatar = avatar
        self.head = head_for_avatar(avatar, head)
        self._decoder = TriplaneDecoder.from_asset(avatar.decoder)
        self.backend = backend
        self.plane_names = avatar.plane_names
        self.field = RenderField(self._decoder)
        self.density_field = self.field.density_only()
        self.composer = FrontPlaneComposer(self.head, avatar.identity, avatar.planes, self._decoder, backend,
                                           channels=self.field.channels)
        self.neural_resolution = neural_resolution
        self.occupancy_resolution = occupancy_resolution
        self._occupancy: tuple[OccupancyGrid, OccupancyGrid] | None = None
        self._moving_faces = torch.from_numpy(self.head.faces.astype(np.int64))[self.composer.moving_faces]
        self._moving_vertices = torch.unique(self._moving_faces)

    def planes_changed(self, geometry: bool = True) -> None:
        """Pick up edits to the avatar's planes; `geometry=False` promises density did not change
        (a colour-only edit), so the occupancy grid is kept."""
        self.composer = FrontPlaneComposer(self.head, self.avatar.identity, self.avatar.planes, self._decoder,
                                           self.backend, channels=self.field.channels)
        if geometry:
            self._occupancy = None

    # --- fields -------------------------------------------------------------------------------
    def head_vertices(self, expression=None, eye=None) -> np.ndarray:
        return self.composer.vertices(to_expression(expression), eye)

    @torch.no_grad()
    def _field(self, planes: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.field(sum_static_planes(planes, points, names=self.plane_names))

    @torch.no_grad()
    def query(self, points: torch.Tensor, expression=None, eye=None, chunk: int = 1 << 16):
        """Density (P,) and RGB (P, 3) at world points for an expression (texture baking, meshing)."""
        planes = self.composer.planes(to_expression(expression), eye)
        dens, rgb = [], []
        for i in range(0, len(points), chunk):
            d, c = self._field(planes, points[i:i + chunk].float())
            dens.append(d)
            rgb.append(c)
        return torch.cat(dens), torch.cat(rgb)

    @torch.no_grad()
    def density_grid(self, resolution: int, expression=None) -> np.ndarray:
        """Density on a resolution^3 lattice of cell centres over the box, indexed [x, y, z]."""
        from avatar.occupancy import grid_points
        dens, _ = self.query(grid_points(resolution), expression)
        return dens.reshape(resolution, resolution, resolution).numpy()

    @property
    def occupancy(self) -> tuple[OccupancyGrid, OccupancyGrid]:
        """(fine, coarse) cells that can hold density: the neutral avatar's, plus wherever the still
        part of the mesh is (the moving part is added per frame)."""
        if self._occupancy is None:
            neutral = self.composer.planes(None, None)[:, self.density_field.positions].contiguous()
            fine = OccupancyGrid.from_density(lambda p: self.density_field(sum_static_planes(neutral, p, names=self.plane_names))[0],
                                              self.occupancy_resolution)
            still = np.ones(self.head.num_vertices, dtype=bool)
            still[self._moving_vertices.numpy()] = False
            fine.add_points(torch.from_numpy(self.head.identity_vertices(self.avatar.identity)[still]))
            self._occupancy = fine, fine.coarser()
        return self._occupancy

    # --- rendering ----------------------------------------------------------------------------
    @torch.no_grad()
    def render(self, camera, expression=None, size=256, head_pose=None, eye=None,
               reference: bool = False, neural_resolution: int | None = None,
               reference_samples: tuple[int, int] = REFERENCE_SAMPLES) -> RenderResult:
        h, w = _size(size)
        camera = cam.validate_camera_vector(camera)
        if head_pose is not None:
            camera = cam.apply_head_pose(camera, *head_pose)
        expression = to_expression(expression)
        eye = None if eye is None else np.asarray(eye, dtype=np.float32)
        nr = neural_resolution or min(self.neural_resolution, max(h, w))
        nh, nw = (nr, max(1, round(nr * w / h))) if h >= w else (max(1, round(nr * h / w)), nr)
        planes = self.composer.planes(expression, eye)
        origins, dirs = cam.generate_rays(camera, nh, nw)
        near, far = cam.ray_bounds(camera)
        t0, t1, hit = box_intersection(origins, dirs, near, far)
        rgb = torch.zeros(nh * nw, 3)
        alpha = torch.zeros(nh * nw)
        depth = torch.zeros(nh * nw)
        idx = torch.nonzero(hit).squeeze(1)
        if len(idx):
            if reference:
                c, a, d = self._march_reference(planes, origins[idx], dirs[idx], t0[idx], t1[idx], reference_samples)
            else:
                c, a, d = self._march_accelerated(planes, origins[idx], dirs[idx], t0[idx], t1[idx], idx,
                                                  expression, eye, (nh, nw))
            rgb[idx], alpha[idx], depth[idx] = c, a, d
        return self._resample(rgb.view(nh, nw, 3), alpha.view(nh, nw), depth.view(nh, nw), h, w)

    @staticmethod
    def _resample(rgb, alpha, depth, h, w) -> RenderResult:
        if rgb.shape[:2] == (h, w):
            return RenderResult(rgb, alpha, depth)
        stack = torch.cat([rgb, alpha[..., None], (depth * alpha)[..., None]], dim=-1).permute(2, 0, 1)[None]
        out = F.interpolate(stack, size=(h, w), mode="bilinear", align_corners=False,
                            antialias=h < rgb.shape[0])[0].permute(1, 2, 0)
        a = out[..., 3].clamp(0, 1)
        d = torch.where(a > 1e-4, out[..., 4] / a.clamp(min=1e-4), torch.zeros_like(a))
        return RenderResult(out[..., :3].clamp(min=0), a, d)

    def _march_reference(self, planes, origins, dirs, t0, t1, samples):
        n_coarse, n_fine = samples
        steps = (torch.arange(n_coarse, dtype=torch.float32) + 0.5) / n_coarse
        t = t0[:, None] + (t1 - t0)[:, None] * steps
        dens, feats = self._samples(planes, origins, dirs, t)
        *_, weights = composite(dens, feats, t)
        mids = 0.5 * (t[:, 1:] + t[:, :-1])
        bins = torch.cat([t[:, :1], mids, t[:, -1:]], dim=1)
        pad = torch.cat([weights[:, :1], weights, weights[:, -1:]], 1)
        t_fine = sample_pdf(bins, torch.maximum(pad[:, :-1], pad[:, 1:])[:, :n_coarse], n_fine)
        t_all, order = torch.sort(torch.cat([t, t_fine], dim=1), dim=1)
        d2, f2 = self._samples(planes, origins, dirs, t_fine)
        dens = torch.cat([dens, d2], 1).gather(1, order)
        feats = torch.cat([feats, f2], 1).gather(1, order[..., None].expand(-1, -1, feats.shape[-1]))
        rgb, acc, dsum, _, _ = composite(dens, feats, t_all)
        return rgb, acc, torch.where(acc > 1e-6, dsum / acc.clamp(min=1e-6), torch.zeros_like(acc))

    def _samples(self, planes, origins, dirs, t):
        pts = origins[:, None] + dirs[:, None] * t[..., None]
        dens, rgb = self._field(planes, pts.reshape(-1, 3))
        return dens.view(t.shape), rgb.reshape(*t.shape, 3)

    def _march_accelerated(self, planes, origins, dirs, t0, t1, hit_rays, expression, eye, ray_shape):
        """Density-only marching through occupied space in rounds with early termination; colour is
        then decoded once, only at the samples that carry weight."""
        grid, coarse = self.occupancy
        verts = torch.from_numpy(self.composer.vertices(expression, eye))
        moving = torch.cat([verts[self._moving_vertices], verts[self._moving_faces].mean(dim=1)])
        occupied = grid.with_points(moving)
        t_first, t_last = self._occupied_span(coarse, coarse.with_points(moving), origins, dirs, t0, t1, hit_rays,
                                              ray_shape)
        density_planes = planes[:, self.density_field.positions].contiguous()
        step = 2 * grid.box_half / grid.resolution  # one fine cell
        n_rays = len(origins)
        trans = torch.ones(n_rays)
        active = torch.nonzero(t_first < t_last).squeeze(1)
        if not len(active):  # the rays cross the box but no occupied cell: a transparent result
            return torch.zeros(n_rays, 3), torch.zeros(n_rays), torch.zeros(n_rays)
        offsets = step * torch.arange(SAMPLES_PER_ROUND, dtype=torch.float32)
        start = t_first.clone()
        kept_ray, kept_t, kept_w = [], [], []
        while len(active):
            ts = start[active, None] + offsets
            valid = ts <= t_last[active, None]
            flat = (origins[active, None] + dirs[active, None] * ts[..., None]).reshape(-1, 3)
            live = torch.nonzero(occupied[grid.cell_index(flat)] & valid.reshape(-1)).squeeze(1)
            dens = torch.zeros(len(flat))
            if len(live):
                dens[live] = self.density_field(sum_static_planes(density_planes, flat[live], names=self.plane_names))[0]
            alpha = 1 - torch.exp(-dens.view(ts.shape) * step)
            tr = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-10], 1), 1)
            w = alpha * tr[:, :-1] * trans[active, None]
            heavy = torch.nonzero(w > WEIGHT_EPS, as_tuple=True)
            kept_ray.append(active[heavy[0]])
            kept_t.append(ts[heavy])
            kept_w.append(w[heavy])
            trans[active] = trans[active] * tr[:, -1]
            start[active] = ts[:, -1] + step
            keep = (trans[active] > TRANSMITTANCE_EPS) & (start[active] <= t_last[active])
            active = active[keep]
        ray, t, w = torch.cat(kept_ray), torch.cat(kept_t), torch.cat(kept_w)
        rgb = torch.zeros(n_rays, 3)
        acc_depth = torch.zeros(n_rays)
        acc = 1 - trans
        if len(ray):
            # The skipped light samples' share of opacity goes to the coloured ones, so colour and
            # opacity stay consistent.
            kept = torch.zeros(n_rays).index_add_(0, ray, w)
            w = w * (acc[ray] / kept[ray].clamp(min=1e-8))
            _, col = self._field(planes, origins[ray] + dirs[ray] * t[:, None])
            rgb.index_add_(0, ray, w[:, None] * col)
            acc_depth.index_add_(0, ray, w * t)
        return rgb, acc, torch.where(acc > 1e-6, acc_depth / acc.clamp(min=1e-6), torch.zeros_like(acc))

    def _occupied_span(self, coarse, occupied, origins, dirs, t0, t1, hit_rays, ray_shape):
        """Per ray, the depth range that can hold density: scanned on every other pixel of every other
        row, each pixel in between taking the widest span of the scanned rays around it."""
        h, w = ray_shape
        cell = 2 * coarse.box_half / coarse.resolution
        big = 1e4
        o_img = torch.zeros(h * w, 3)
        d_img = torch.zeros(h * w, 3)
        o_img[hit_rays], d_img[hit_rays] = origins, dirs
        a_img = torch.full((h * w,), big)
        b_img = torch.full((h * w,), -big)
        a_img[hit_rays], b_img[hit_rays] = t0, t1
        sub = (slice(0, h, 2), slice(0, w, 2))
        o_s, d_s = o_img.view(h, w, 3)[sub].reshape(-1, 3), d_img.view(h, w, 3)[sub].reshape(-1, 3)
        a_s, b_s = a_img.view(h, w)[sub].reshape(-1), b_img.view(h, w)[sub].reshape(-1)
        ok = torch.nonzero(a_s < b_s).squeeze(1)
        first_s = torch.full((len(a_s),), big)
        last_s = torch.full((len(a_s),), -big)
        if len(ok):
            n_steps = int(math.ceil(float((b_s[ok] - a_s[ok]).max()) / cell)) + 1
            t = a_s[ok, None] + cell * torch.arange(n_steps, dtype=torch.float32)
            inside = t <= b_s[ok, None]
            pts = o_s[ok, None] + d_s[ok, None] * t[..., None]
            occ = occupied[coarse.cell_index(pts)] & inside
            any_occ = occ.any(1)
            first_idx = torch.argmax(occ.to(torch.uint8), dim=1)
            last_idx = n_steps - 1 - torch.argmax(occ.flip(1).to(torch.uint8), dim=1)
            tf = t.gather(1, first_idx[:, None])[:, 0] - cell / 2
            tl = t.gather(1, last_idx[:, None])[:, 0] + cell / 2
            first_s[ok] = torch.where(any_occ, tf, torch.full_like(tf, big))
            last_s[ok] = torch.where(any_occ, tl, torch.full_like(tl, -big))
        sh, sw = (h + 1) // 2, (w + 1) // 2
        first_s, last_s = first_s.view(sh, sw), last_s.view(sh, sw)
        # A pixel between scanned rays takes the widest span of the (up to) four scanned rays around it;
        # a scanned pixel keeps its own.
        rows = torch.arange(h)
        cols = torch.arange(w)
        r0, r1 = rows // 2, ((rows + 1) // 2).clamp(max=sh - 1)
        c0, c1 = cols // 2, ((cols + 1) // 2).clamp(max=sw - 1)
        first_full = torch.full((h, w), big)
        last_full = torch.full((h, w), -big)
        for rr in (r0, r1):
            for cc in (c0, c1):
                first_full = torch.minimum(first_full, first_s[rr][:, cc])
                last_full = torch.maximum(last_full, last_s[rr][:, cc])
        first_full, last_full = first_full.reshape(-1), last_full.reshape(-1)
        first = torch.maximum(first_full[hit_rays], t0)
        last = torch.minimum(last_full[hit_rays], t1)
        return first, last
