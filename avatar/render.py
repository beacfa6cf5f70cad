"""The renderer: expression -> posed mesh -> front plane -> volume rendering -> RGB, alpha, depth.

Two marchers share everything but the sampling:
- `reference`: EG3D's plain scheme, 48 stratified + 48 importance samples on every ray.
- accelerated (default): an occupancy grid skips empty space; samples are taken only in occupied
  cells, a batch at a time, and a ray stops once its transmittance is spent.
Both render at a neural resolution and resample to the requested size.

The accelerated march runs in the fused C++ kernel (avatar.march) when it is built, else in torch
(`_march_accelerated`, the kernel's reference); `Renderer.march` says which, and the first renderer
of a process logs it.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from avatar import camera as cam
from avatar import march as march_kernel
from avatar.asset import Avatar
from avatar.camera import BOX_HALF
from avatar.decoder import DENSITY_SHIFT, PLANE_AXES, SIGMOID_WIDEN, RenderField, TriplaneDecoder, sum_static_planes
from avatar.expressions import to_expression
from avatar.head_model import HeadModel
from avatar.head_registry import head_for_avatar
from avatar.march import MarchKernel
from avatar.occupancy import OccupancyGrid, grid_points
from avatar.planes import FrontPlaneComposer
from avatar.volume import box_intersection, composite, sample_pdf

DEFAULT_NEURAL_RESOLUTION = 128
REFERENCE_SAMPLES = (48, 48)
TRANSMITTANCE_EPS = 1e-3
SAMPLES_PER_ROUND = 8
WEIGHT_EPS = 1e-3  # samples lighter than this on a ray are not coloured
# A step of one fine cell (1/128 of the box) is longer than a surface's light takes to die out
# (density ~600: 1/600 of the box), and a sample stands for its whole step, so a surface would be
# placed, and coloured, up to a cell off (measured on the benchmark's frames: 44 dB against a dense
# render, 48-50 dB with crossings found). A step whose sample turns opaque (optical depth over the step
# above REFINE_OPTICAL) or light again finds the crossing by REFINE_BISECTIONS density samples;
# colour is still decoded once per sample (see _refine_surfaces).
REFINE_OPTICAL = 0.25
REFINE_BISECTIONS = 3
MARCH_CHOICES = ("auto", "kernel", "torch")
UPSAMPLERS = ("edge", "bilinear")
MAX_NEURAL_RESOLUTION = 1024

log = logging.getLogger(__name__)
_logged_march: set[str] = set()

# What every expression argument accepts (see `avatar.expressions.to_expression`).
ExpressionInput: TypeAlias = Mapping[str, float] | Sequence[float] | np.ndarray | None


def render_device(backend: str = "cpu", device: torch.device | str | None = None) -> torch.device:
    """The device a Renderer with this rasterizer `backend` works on: `device` when given, else the
    current CUDA device for "nvdiffrast" and the CPU otherwise."""
    if device is not None:
        return torch.device(device)
    if backend == "nvdiffrast":
        return torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    return torch.device("cpu")


def _choose_march(choice: str, device: torch.device) -> MarchKernel | None:
    """The kernel module for `choice`, or None for the torch march; logs the outcome once per process.
    The kernel is CPU code: on another device the march runs in torch there."""
    if choice not in MARCH_CHOICES:
        raise ValueError(f"march must be one of {', '.join(MARCH_CHOICES)}, got {choice!r}")
    if device.type != "cpu":
        if choice == "kernel":
            raise RuntimeError(f"the march kernel runs on the CPU only, and this renderer is on {device}")
        module, key, reason = None, f"torch on {device}", None
    else:
        module = None if choice == "torch" else march_kernel.load()
        if module is None and choice == "kernel":
            raise RuntimeError("the march kernel was asked for but is unavailable: "
                               f"{march_kernel.unavailable_reason()}")
        key = "kernel" if module is not None else "torch"
        reason = None if module is not None or choice == "torch" else march_kernel.unavailable_reason()
    if key not in _logged_march:
        _logged_march.add(key)
        if module is not None:
            log.info("accelerated march: fused C++ kernel")
        elif reason is None:
            log.info("accelerated march: pure torch on %s (asked for, or not on the CPU)", device)
        else:
            log.warning("accelerated march: pure torch, because %s", reason)
    return module


@dataclass
class RenderResult:
    """One frame, on the CPU whatever device rendered it."""
    rgb: torch.Tensor    # (H, W, 3) premultiplied by alpha (i.e. over black)
    alpha: torch.Tensor  # (H, W)
    depth: torch.Tensor  # (H, W) distance along the ray; 0 where empty

    def over(self, background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
        """(H, W, 3) float32 in [0, 1]: the frame composited over a `background` RGB colour."""
        bg = torch.tensor(background, dtype=self.rgb.dtype)
        return (self.rgb + (1 - self.alpha[..., None]) * bg).clamp(0, 1).numpy()

    def rgba8(self) -> np.ndarray:
        """Straight-alpha RGBA8 (H, W, 4)."""
        a = self.alpha.clamp(0, 1)
        straight = torch.where(a[..., None] > 1e-4, self.rgb / a[..., None].clamp(min=1e-4), torch.zeros_like(self.rgb))
        rgba = torch.cat([straight.clamp(0, 1), a[..., None]], dim=-1)
        return (rgba * 255 + 0.5).to(torch.uint8).numpy()


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else size
    if not (8 <= h <= 4096 and 8 <= w <= 4096):
        raise ValueError(f"frame size {w}x{h} is outside 8..4096 per side")
    return int(h), int(w)


# A low-resolution pixel is on the silhouette when its 3x3 neighbourhood spans at least this much
# alpha: an edge between background and an opaque surface, not a semi-transparent region (hair
# fringes), which the upsampler leaves as bilinear made it.
SILHOUETTE_STEP = 0.8
SMOOTHING = 0.7  # Gaussian sigma in neural pixels (measured against native renders: 0.35..1 within 0.5 dB)


def _silhouette_guides(alpha_low: torch.Tensor) -> torch.Tensor:
    """(2, h, w) guides for the edge-aware upsampler, at the neural resolution: alpha smoothed by a
    Gaussian SMOOTHING neural pixels wide, and 1 on the silhouette (see SILHOUETTE_STEP), else 0.

    The neural image takes one sample per pixel, so its silhouette is a staircase; the smoothing evens
    out the steps, so the half-coverage contour of the smoothed alpha follows the true outline.
    """
    a = alpha_low[None, None]
    spread = F.max_pool2d(a, 3, 1, 1) + F.max_pool2d(-a, 3, 1, 1)
    edge = (spread >= SILHOUETTE_STEP).float()
    radius = max(1, math.ceil(2.5 * SMOOTHING))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=alpha_low.device)
    g = torch.exp(-0.5 * (x / SMOOTHING) ** 2)
    g = g / g.sum()
    smooth = F.conv2d(F.pad(a, (radius, radius, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    smooth = F.conv2d(F.pad(smooth, (0, 0, radius, radius), mode="replicate"), g.view(1, 1, -1, 1))
    return torch.cat([smooth, edge], dim=1)[0]


def _sharpen_silhouette(alpha_up: torch.Tensor, smooth_up: torch.Tensor, edge_up: torch.Tensor,
                        scale: float) -> torch.Tensor:
    """Upsampled alpha with the silhouette as sharp as at the output resolution: near a silhouette
    (`edge_up`), the smoothed alpha's ramp, about (SMOOTHING + 1/2) * scale output pixels wide, is
    steepened about 0.5 to one output pixel; elsewhere the bilinear alpha is kept, with a smooth blend
    between the two. Inputs are the bilinear upsampling of the alpha and of its guides."""
    width = math.sqrt(1 + (2.5 * SMOOTHING * scale) ** 2 / 4 + scale ** 2 / 4)
    steep = ((smooth_up - 0.5) * width + 0.5).clamp(0, 1)
    return alpha_up + edge_up * (steep - alpha_up)


def _light_centroid(optical: torch.Tensor) -> torch.Tensor:
    """Where, as a fraction of a step of constant density with this optical depth x, the light it
    sends comes from on average: 1/x - 1/(e^x - 1), from 1/2 (thin) toward 0 (opaque); its series
    below x = 0.1, where the closed form cancels."""
    x = optical.clamp(min=1e-6)
    return torch.where(x < 0.1, 0.5 - x / 12 + x ** 3 / 720, 1 / x - 1 / torch.expm1(x))


class Renderer:
    """Renders one avatar: the posed head mesh rasterized into the front plane (neural texture), then a
    volume march through the triplane field, skipping empty space with a two-level occupancy grid, on the
    CPU kernel (avatar.march) or in torch. One Renderer serves one thread at a time; it caches the
    composed planes of recent expressions and the occupancy grids of the avatar."""

    def __init__(self, avatar: Avatar, backend: str = "cpu", head: HeadModel | None = None,
                 neural_resolution: int = DEFAULT_NEURAL_RESOLUTION, occupancy_resolution: int = 128,
                 march: str = "auto", device: torch.device | str | None = None):
        """march: "auto" (the kernel when built, else torch), "kernel" (error if unavailable) or "torch".
        device: where planes, rays, occupancy, the composer and the march live (`render_device`: CUDA
        for the nvdiffrast rasterizer, else the CPU); the march kernel runs only on the CPU."""
        self.avatar = avatar
        self.head = head_for_avatar(avatar, head)
        self._decoder = TriplaneDecoder.from_asset(avatar.decoder)
        self.backend = backend
        self.device = render_device(backend, device)
        self.plane_names = avatar.plane_names
        cpu_field = RenderField(self._decoder)
        self.field = cpu_field.to(self.device)
        self.density_field = cpu_field.density_only().to(self.device)
        self.composer = self._new_composer()
        self.neural_resolution = neural_resolution
        self.occupancy_resolution = occupancy_resolution
        self._occupancy: tuple[OccupancyGrid, OccupancyGrid] | None = None
        moving_faces = torch.from_numpy(self.head.faces.astype(np.int64))[self.composer.moving_faces]
        self._moving_faces = moving_faces.to(self.device)
        self._moving_vertices = torch.unique(moving_faces).to(self.device)
        self._kernel = _choose_march(march, self.device)
        self.march = "kernel" if self._kernel is not None else "torch"
        # Cores one frame's kernel march may use; a server rendering several frames at once lowers it.
        self.march_threads = os.cpu_count() or 1
        self._plane_axes = torch.tensor([PLANE_AXES[name] for name in self.plane_names], dtype=torch.int64)
        d, f = self.density_field, self.field
        # Channels-last plane copies for the kernel: (composer, density, colour) of planes 1-2 and
        # (front, density, colour) of the front plane (see _channels_last).
        self._static_cl: tuple[FrontPlaneComposer, list[torch.Tensor], list[torch.Tensor]] | None = None
        self._front_cl: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._kernel_weights = (d.w1, d.b1, d.w2, d.b2, f.w1, f.b1, f.w2[1:4].contiguous(), f.b2[1:4].contiguous())

    def planes_changed(self, geometry: bool = True) -> None:
        """Pick up edits to the avatar's planes; `geometry=False` promises density did not change
        (a colour-only edit), so the occupancy grid is kept."""
        self.composer = self._new_composer()
        if geometry:
            self._occupancy = None

    def _new_composer(self) -> FrontPlaneComposer:
        return FrontPlaneComposer(self.head, self.avatar.identity, self.avatar.planes, self._decoder, self.backend,
                                  channels=self.field.channels, device=self.device)

    # --- fields -------------------------------------------------------------------------------
    def head_vertices(self, expression: ExpressionInput = None, eye: np.ndarray | None = None) -> np.ndarray:
        posed: np.ndarray = self.composer.vertices(to_expression(expression), eye).copy()  # the composer keeps its own
        return posed

    @torch.no_grad()
    def _field(self, planes: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.field(sum_static_planes(planes, points, names=self.plane_names))

    @torch.no_grad()
    def query(self, points: torch.Tensor, expression: ExpressionInput = None, eye: np.ndarray | None = None,
              chunk: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (P,) and RGB (P, 3) on the CPU at world points for an expression (texture baking,
        meshing)."""
        planes = self.composer.planes(to_expression(expression), eye)
        dens, rgb = [], []
        for i in range(0, len(points), chunk):
            d, c = self._field(planes, points[i:i + chunk].float().to(self.device))
            dens.append(d.cpu())
            rgb.append(c.cpu())
        return torch.cat(dens), torch.cat(rgb)

    @torch.no_grad()
    def density_grid(self, resolution: int, expression: ExpressionInput = None) -> np.ndarray:
        """Density on a resolution^3 lattice of cell centres over the box, indexed [x, y, z]."""
        dens, _ = self.query(grid_points(resolution), expression)
        return dens.reshape(resolution, resolution, resolution).numpy()

    @property
    def occupancy(self) -> tuple[OccupancyGrid, OccupancyGrid]:
        """(fine, coarse) cells that can hold density: the neutral avatar's, plus wherever the still
        part of the mesh is (the moving part is added per frame)."""
        if self._occupancy is None:
            neutral = self.composer.planes(None, None)[:, self.density_field.positions].contiguous()
            kernel = self._kernel
            density: Callable[[torch.Tensor], torch.Tensor]
            if kernel is not None:
                cl = [plane.permute(1, 2, 0).contiguous() for plane in neutral]
                d = self.density_field

                def density(p: torch.Tensor) -> torch.Tensor:
                    return kernel.density(p, cl, self._plane_axes, d.w1, d.b1, d.w2, d.b2, BOX_HALF,
                                          DENSITY_SHIFT, self.march_threads)
            else:
                def density(p: torch.Tensor) -> torch.Tensor:
                    return self.density_field(sum_static_planes(neutral, p, names=self.plane_names))[0]
            fine = OccupancyGrid.from_density(density, self.occupancy_resolution, device=self.device)
            still = np.ones(self.head.num_vertices, dtype=bool)
            still[self._moving_vertices.cpu().numpy()] = False
            fine.add_points(torch.from_numpy(self.head.identity_vertices(self.avatar.identity)[still]).to(self.device))
            self._occupancy = fine, fine.coarser()
        return self._occupancy

    # --- rendering ----------------------------------------------------------------------------
    @torch.no_grad()
    def render(self, camera: ArrayLike, expression: ExpressionInput = None, size: int | tuple[int, int] = 256,
               head_pose: Sequence[float] | None = None, eye: ArrayLike | None = None,
               reference: bool = False, neural_resolution: int | None = None,
               reference_samples: tuple[int, int] = REFERENCE_SAMPLES, upsampler: str = "edge") -> RenderResult:
        """One frame (h, w) = `size` (an int is square).

        camera: EG3D 25-vector (cam2world 4x4 row-major, OpenCV axes, then normalised intrinsics 3x3;
        avatar.camera, where an orbit in degrees converts to one). expression: 52 ARKit weights in the
        canonical order (avatar.expressions), a {name: weight} dict, or None for neutral. head_pose: (yaw,
        pitch, roll) in radians, the head turned in front of the camera. eye: the FaceVerse gaze 4-vector
        (radians; left eye then right, each +down then +toward image right; HeadModel.posed), None looks
        straight ahead. The volume is rendered at `neural_resolution` (the renderer's default, capped by
        the frame size) on the longer side and resampled; `upsampler` ("edge" or "bilinear") says how a
        smaller neural image is enlarged. `reference=True` uses the plain EG3D-style march with
        `reference_samples` (coarse, fine) per ray. Returns RGB premultiplied by alpha, alpha and depth."""
        h, w = _size(size)
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {', '.join(UPSAMPLERS)}, got {upsampler!r}")
        if neural_resolution is not None and not 8 <= int(neural_resolution) <= MAX_NEURAL_RESOLUTION:
            raise ValueError(f"neural resolution {neural_resolution} is outside 8..{MAX_NEURAL_RESOLUTION}")
        cam_vec = cam.validate_camera_vector(camera)
        if head_pose is not None:
            cam_vec = cam.apply_head_pose(cam_vec, *head_pose)
        expr = to_expression(expression)
        eye_vec = None if eye is None else np.asarray(eye, dtype=np.float32)
        nr = neural_resolution or min(self.neural_resolution, max(h, w))
        nh, nw = (nr, max(1, round(nr * w / h))) if h >= w else (max(1, round(nr * h / w)), nr)
        origins, dirs = (x.to(self.device) for x in cam.generate_rays(cam_vec, nh, nw))
        near, far = cam.ray_bounds(cam_vec)
        t0, t1, hit = box_intersection(origins, dirs, near, far)
        if self._kernel is not None and not reference:
            rgb, alpha, depth = self._march_kernel(self._kernel, self.composer.front(expr, eye_vec), origins, dirs,
                                                   t0, t1, expr, eye_vec, (nh, nw))
            return self._resample(rgb.view(nh, nw, 3), alpha.view(nh, nw), depth.view(nh, nw), h, w, upsampler)
        planes = self.composer.planes(expr, eye_vec)
        rgb = torch.zeros(nh * nw, 3, device=self.device)
        alpha = torch.zeros(nh * nw, device=self.device)
        depth = torch.zeros(nh * nw, device=self.device)
        idx = torch.nonzero(hit).squeeze(1)
        if len(idx):
            if reference:
                c, a, d = self._march_reference(planes, origins[idx], dirs[idx], t0[idx], t1[idx], reference_samples)
            else:
                c, a, d = self._march_accelerated(planes, origins[idx], dirs[idx], t0[idx], t1[idx], idx,
                                                  expr, eye_vec, (nh, nw))
            rgb[idx], alpha[idx], depth[idx] = c, a, d
        frame = self._resample(rgb.view(nh, nw, 3), alpha.view(nh, nw), depth.view(nh, nw), h, w, upsampler)
        if self.device.type != "cpu":
            frame = RenderResult(frame.rgb.cpu(), frame.alpha.cpu(), frame.depth.cpu())
        return frame

    @staticmethod
    def _resample(rgb: torch.Tensor, alpha: torch.Tensor, depth: torch.Tensor, h: int, w: int,
                  upsampler: str = "edge") -> RenderResult:
        """The neural-resolution image at (h, w). Downsampling is antialiased bilinear; upsampling is
        bilinear, and with `upsampler="edge"` the silhouette is then re-sharpened from the alpha (see
        `_sharpen_silhouette`)."""
        if rgb.shape[:2] == (h, w):
            return RenderResult(rgb, alpha, depth)
        sharpen = upsampler == "edge" and h > rgb.shape[0]
        channels = [rgb, alpha[..., None], (depth * alpha)[..., None]]
        if sharpen:
            channels.append(_silhouette_guides(alpha).permute(1, 2, 0))
        stack = torch.cat(channels, dim=-1).permute(2, 0, 1)[None]
        out = F.interpolate(stack, size=(h, w), mode="bilinear", align_corners=False,
                            antialias=h < rgb.shape[0])[0].permute(1, 2, 0)
        a = out[..., 3].clamp(0, 1)
        d = torch.where(a > 1e-4, out[..., 4] / a.clamp(min=1e-4), torch.zeros_like(a))
        colour = out[..., :3].clamp(min=0)
        if sharpen:
            sharp = _sharpen_silhouette(a, out[..., 5], out[..., 6], h / rgb.shape[0])
            # Premultiplied / alpha, both bilinear, is the alpha-weighted mean colour: no dark fringe
            # where the sharpened alpha now covers what bilinear had half transparent.
            colour = colour / a.clamp(min=1e-4)[..., None] * sharp[..., None]
            a = sharp
        return RenderResult(colour, a, d)

    def _march_reference(self, planes: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor, t0: torch.Tensor,
                         t1: torch.Tensor, samples: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n_coarse, n_fine = samples
        steps = (torch.arange(n_coarse, dtype=torch.float32, device=origins.device) + 0.5) / n_coarse
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

    def _samples(self, planes: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                 t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pts = origins[:, None] + dirs[:, None] * t[..., None]
        dens, rgb = self._field(planes, pts.reshape(-1, 3))
        return dens.view(t.shape), rgb.reshape(*t.shape, 3)

    def _moving_points(self, expression: np.ndarray, eye: np.ndarray | None) -> torch.Tensor:
        """Points of the posed moving part of the mesh (vertices and face centres), for the occupancy."""
        verts = torch.from_numpy(self.composer.vertices(expression, eye)).to(self.device)
        corners = verts.index_select(0, self._moving_faces.view(-1)).view(-1, 3, 3)
        return torch.cat([verts.index_select(0, self._moving_vertices), corners.mean(dim=1)])

    def _march_kernel(self, kernel: MarchKernel, front: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                      t0: torch.Tensor, t1: torch.Tensor, expression: np.ndarray, eye: np.ndarray | None,
                      ray_shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The accelerated march of every ray of the (h, w) image in the fused kernel, on
        `march_threads` cores: the spans, samples and weights of `_march_accelerated`, except that a
        ray stops at the sample that spends its transmittance rather than at the end of that round."""
        grid, coarse = self.occupancy
        moving = self._moving_points(expression, eye)
        fine_occ = grid.with_points(moving).view(torch.uint8).view(grid.static.shape)
        coarse_occ = coarse.with_points(moving).view(torch.uint8).view(coarse.static.shape)
        density_planes, colour_planes = self._channels_last(front)
        h, w = ray_shape
        rgb, alpha, depth = kernel.march(origins, dirs, t0.contiguous(), t1.contiguous(), h, w, density_planes,
                                         colour_planes, self._plane_axes, *self._kernel_weights, fine_occ, coarse_occ,
                                         grid.box_half, SAMPLES_PER_ROUND, TRANSMITTANCE_EPS, WEIGHT_EPS,
                                         DENSITY_SHIFT, SIGMOID_WIDEN, REFINE_OPTICAL, REFINE_BISECTIONS,
                                         self.march_threads)
        return rgb, alpha, depth

    def _channels_last(self, front: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(H, W, C) planes for density and for colour, the composed `front` (C', H, W) first. A sample
        reads every channel of four texels, so channels-last keeps it in a few cache lines. Planes 1-2
        never change with the expression and are kept per composer; the front is channels-last in
        memory already (the composer's layout), and its density channels are copied once per front
        (the composer returns the same tensor for the same expression)."""
        positions = self.density_field.positions
        if self._static_cl is None or self._static_cl[0] is not self.composer:
            static = self.composer.static
            self._static_cl = (self.composer, [static[k, positions].permute(1, 2, 0).contiguous() for k in (1, 2)],
                               [static[k].permute(1, 2, 0).contiguous() for k in (1, 2)])
            self._front_cl = None
        if self._front_cl is None or self._front_cl[0] is not front:
            colour = front.permute(1, 2, 0)
            first, count = int(positions[0]), len(positions)
            # A run of channels (the usual case) copies as a slice, several times faster than a gather.
            run = torch.equal(positions, torch.arange(first, first + count, device=positions.device))
            density = colour.narrow(2, first, count).contiguous() if run else colour[..., positions].contiguous()
            self._front_cl = (front, density, colour.contiguous())
        _, density_static, colour_static = self._static_cl
        _, density_front, colour_front = self._front_cl
        return [density_front, *density_static], [colour_front, *colour_static]

    def _march_accelerated(self, planes: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor, t0: torch.Tensor,
                           t1: torch.Tensor, hit_rays: torch.Tensor, expression: np.ndarray, eye: np.ndarray | None,
                           ray_shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Density-only marching through occupied space in rounds with early termination; colour is
        then decoded once, only at the samples that carry weight."""
        grid, coarse = self.occupancy
        moving = self._moving_points(expression, eye)
        occupied = grid.with_points(moving)
        t_first, t_last = self._occupied_span(coarse, coarse.with_points(moving), origins, dirs, t0, t1, hit_rays,
                                              ray_shape)
        density_planes = planes[:, self.density_field.positions].contiguous()
        step = 2 * grid.box_half / grid.resolution  # one fine cell
        n_rays = len(origins)
        device = origins.device
        trans = torch.ones(n_rays, device=device)
        active = torch.nonzero(t_first < t_last).squeeze(1)
        if not len(active):  # the rays cross the box but no occupied cell: a transparent result
            return torch.zeros(n_rays, 3, device=device), torch.zeros(n_rays, device=device), \
                torch.zeros(n_rays, device=device)
        offsets = step * torch.arange(SAMPLES_PER_ROUND, dtype=torch.float32, device=device)
        start = t_first.clone()
        last_optical = torch.zeros(n_rays, device=device)  # of each ray's previous sample
        kept_ray: list[torch.Tensor] = []
        kept_t: list[torch.Tensor] = []
        kept_w: list[torch.Tensor] = []
        while len(active):
            ts = start[active, None] + offsets
            valid = ts <= t_last[active, None]
            flat = (origins[active, None] + dirs[active, None] * ts[..., None]).reshape(-1, 3)
            live = torch.nonzero(occupied[grid.cell_index(flat)] & valid.reshape(-1)).squeeze(1)
            dens = torch.zeros(len(flat), device=device)
            if len(live):
                summed = sum_static_planes(density_planes, flat[live], names=self.plane_names)
                dens[live] = self.density_field(summed)[0]
            optical = dens.view(ts.shape) * step
            before = torch.cat([last_optical[active, None], optical[:, :-1]], 1)
            last_optical[active] = optical[:, -1]
            optical, ts_colour = self._refine_surfaces(density_planes, origins[active], dirs[active], ts, optical,
                                                       before, step)
            alpha = 1 - torch.exp(-optical)
            tr = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-10], 1), 1)
            w = alpha * tr[:, :-1] * trans[active, None]
            heavy = torch.nonzero(w > WEIGHT_EPS, as_tuple=True)
            kept_ray.append(active[heavy[0]])
            kept_t.append(ts_colour[heavy])
            kept_w.append(w[heavy])
            trans[active] = trans[active] * tr[:, -1]
            start[active] = ts[:, -1] + step
            keep = (trans[active] > TRANSMITTANCE_EPS) & (start[active] <= t_last[active])
            active = active[keep]
        ray, t, w = torch.cat(kept_ray), torch.cat(kept_t), torch.cat(kept_w)
        rgb = torch.zeros(n_rays, 3, device=device)
        acc_depth = torch.zeros(n_rays, device=device)
        acc = 1 - trans
        if len(ray):
            # The skipped light samples' share of opacity goes to the coloured ones, so colour and
            # opacity stay consistent.
            kept = torch.zeros(n_rays, device=device).index_add_(0, ray, w)
            w = w * (acc[ray] / kept[ray].clamp(min=1e-8))
            _, col = self._field(planes, origins[ray] + dirs[ray] * t[:, None])
            rgb.index_add_(0, ray, w[:, None] * col)
            acc_depth.index_add_(0, ray, w * t)
        return rgb, acc, torch.where(acc > 1e-6, acc_depth / acc.clamp(min=1e-6), torch.zeros_like(acc))

    def _refine_surfaces(self, density_planes: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                         ts: torch.Tensor, optical: torch.Tensor, before: torch.Tensor,
                         step: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Each sample at depth t (R, S) stands for the step (t - step, t] and takes its density as
        constant over it. A light sample (optical depth `optical` at most REFINE_OPTICAL) is coloured
        at t; an opaque one at the mean depth of the light its step sends (`_light_centroid`). A sample
        that is opaque after a light one (`before`), or light after an opaque one, has crossed a
        surface within its step, into or out of it: the crossing (where density is half the opaque
        side's) is found by REFINE_BISECTIONS halvings, and only the part of the step on the opaque
        side counts, at that side's density. Returns the optical depth (R, S) and the depth (R, S) at
        which each sample is coloured."""
        opaque = optical > REFINE_OPTICAL
        lit = torch.where(opaque, step * _light_centroid(optical), torch.full_like(optical, step))
        crossed = opaque != (before > REFINE_OPTICAL)
        rows, cols = torch.nonzero(crossed, as_tuple=True)
        if len(rows):
            t = ts[rows, cols]
            entering = opaque[rows, cols]
            # The opaque side's density, taken as constant up to the crossing.
            sigma = torch.where(entering, optical[rows, cols], before[rows, cols]) / step
            lo, hi = t - step, t.clone()
            o, d = origins[rows], dirs[rows]
            for _ in range(REFINE_BISECTIONS):
                mid = 0.5 * (lo + hi)
                dense = self.density_field(sum_static_planes(density_planes, o + d * mid[:, None],
                                                             names=self.plane_names))[0] >= 0.5 * sigma
                towards_lo = dense == entering  # the crossing lies in [lo, mid]
                hi = torch.where(towards_lo, mid, hi)
                lo = torch.where(towards_lo, lo, mid)
            crossing = 0.5 * (lo + hi)
            start = torch.where(entering, crossing, t - step)
            length = torch.where(entering, t - crossing, crossing - (t - step))
            optical = optical.clone()
            optical[rows, cols] = sigma * length
            lit = lit.clone()
            lit[rows, cols] = start - (t - step) + length * _light_centroid(optical[rows, cols])
        return optical, ts - step + lit

    def _occupied_span(self, coarse: OccupancyGrid, occupied: torch.Tensor, origins: torch.Tensor,
                       dirs: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor, hit_rays: torch.Tensor,
                       ray_shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per ray, the depth range that can hold density: scanned on every other pixel of every other
        row, each pixel in between taking the widest span of the scanned rays around it."""
        h, w = ray_shape
        cell = 2 * coarse.box_half / coarse.resolution
        big = 1e4
        device = origins.device
        o_img = torch.zeros(h * w, 3, device=device)
        d_img = torch.zeros(h * w, 3, device=device)
        o_img[hit_rays], d_img[hit_rays] = origins, dirs
        a_img = torch.full((h * w,), big, device=device)
        b_img = torch.full((h * w,), -big, device=device)
        a_img[hit_rays], b_img[hit_rays] = t0, t1
        sub = (slice(0, h, 2), slice(0, w, 2))
        o_s, d_s = o_img.view(h, w, 3)[sub].reshape(-1, 3), d_img.view(h, w, 3)[sub].reshape(-1, 3)
        a_s, b_s = a_img.view(h, w)[sub].reshape(-1), b_img.view(h, w)[sub].reshape(-1)
        ok = torch.nonzero(a_s < b_s).squeeze(1)
        first_s = torch.full((len(a_s),), big, device=device)
        last_s = torch.full((len(a_s),), -big, device=device)
        if len(ok):
            n_steps = math.ceil(float((b_s[ok] - a_s[ok]).max()) / cell) + 1
            t = a_s[ok, None] + cell * torch.arange(n_steps, dtype=torch.float32, device=device)
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
        rows = torch.arange(h, device=device)
        cols = torch.arange(w, device=device)
        r0, r1 = rows // 2, ((rows + 1) // 2).clamp(max=sh - 1)
        c0, c1 = cols // 2, ((cols + 1) // 2).clamp(max=sw - 1)
        first_full = torch.full((h, w), big, device=device)
        last_full = torch.full((h, w), -big, device=device)
        for rr in (r0, r1):
            for cc in (c0, c1):
                first_full = torch.minimum(first_full, first_s[rr][:, cc])
                last_full = torch.maximum(last_full, last_s[rr][:, cc])
        first_full, last_full = first_full.reshape(-1), last_full.reshape(-1)
        first = torch.maximum(first_full[hit_rays], t0)
        last = torch.minimum(last_full[hit_rays], t1)
        return first, last
