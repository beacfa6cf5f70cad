"""The "surface" channel semantics of the embedded generators, and the decoder that reads them.

The projective and synthetic generators have no learned prior, so they write planes whose channels
mean something exact and give the decoder weights that read that meaning:

  ch 0  front depth  xy: -z_front(x, y) (under the mesh: the rasterized posed depth)   xz: +z
  ch 1  back depth   xy: +z_back(x, y) (static)                                         xz: -z
  ch 2  front gate   xy: 0                                                              xz: G (z - z_split(x))
  ch 3-5 front RGB   xy: logit(colour) + 8 (under the mesh: the neural texture)         xz: G (z - z_split)
  ch 6  back gate    xy: 0                                                              xz: -G (z - z_split) - 14
  ch 7-9 back RGB    xy: logit(colour) + 8 (static)                                     xz: -G (z - z_split) - 14
  other channels are zero; the zx plane is zero.

The summed features (3x the decoder's mean) then give: density high where z_back < z < z_front (a
z-convex shell, sharp at both walls); colour = front colour in front of the split depth, back colour
behind it. Each gated colour is relu(c + G d) - relu(8 + G d) with d = z - z_split (mirrored and
shifted by 14 for the back): exactly c - 8 = logit(colour) once G d > 0, exactly 0 once G d < -14,
and a monotone ramp between, so the two colours never overlap and meet through mid-grey without
overshoot; softplus with a large gain stands in for relu.
"""
from __future__ import annotations

import numpy as np
import torch

from avatar import raster
from avatar.decoder import CHANNELS, HIDDEN, TriplaneDecoder

FRONT_DEPTH, BACK_DEPTH, FRONT_GATE, BACK_GATE = 0, 1, 2, 6
FRONT_RGB, BACK_RGB = (3, 4, 5), (7, 8, 9)
GATE_SLOPE = 200.0         # G: front/back colours are exact beyond 14/G on either side of the split depth
COLOUR_OFFSET = 8.0        # stored colours are logit + 8, so they stay positive inside the gate
LOGIT_LIMIT = 6.0
DENSITY_INSIDE = 300.0     # density inside the shell (per box unit): opaque within ~0.01
WALL_STIFFNESS = 30000.0   # how fast density falls outside the walls (per box unit)
RELU_GAIN_GEOMETRY = 200.0
RELU_GAIN_COLOUR = 20.0
EMPTY_FRONT, EMPTY_BACK = -1.0, 1.0
SPLIT_MARGIN = 0.02  # world units behind the rearmost front surface  # an empty interval: nothing between z_back and z_front

SEMANTICS = {
    "name": "surface-v1",
    "front_depth_channel": FRONT_DEPTH,
    "back_depth_channel": BACK_DEPTH,
    "front_rgb_channels": list(FRONT_RGB),
    "back_rgb_channels": list(BACK_RGB),
    "colour_encoding": f"logit(rgb) + {COLOUR_OFFSET}, logit clipped to +-{LOGIT_LIMIT}",
    "gate_slope": GATE_SLOPE,
}


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
    # Density: inside minus a steep penalty in front of the front wall and behind the back wall.
    for unit, ch in ((0, FRONT_DEPTH), (1, BACK_DEPTH)):
        w1[unit, ch] = g_geo * mean_to_sum
        w2[0, unit] = -WALL_STIFFNESS / g_geo
    b2[0] = DENSITY_INSIDE + 1.0  # +1 undoes the renderer's softplus(raw - 1) shift
    unit = 2
    for gate_ch, rgb_chs in ((FRONT_GATE, FRONT_RGB), (BACK_GATE, BACK_RGB)):
        g = unit
        w1[g, gate_ch] = g_col * mean_to_sum
        b1[g] = g_col * COLOUR_OFFSET
        unit += 1
        for k, ch in enumerate(rgb_chs):
            w1[unit, ch] = g_col * mean_to_sum
            w2[1 + k, unit] += 1.0 / g_col
            w2[1 + k, g] += -1.0 / g_col
            unit += 1
    with torch.no_grad():
        dec.net[0].weight.copy_(w1)
        dec.net[0].bias.copy_(b1)
        dec.net[2].weight.copy_(w2)
        dec.net[2].bias.copy_(b2)
        mask = torch.zeros(CHANNELS)
        mask[[FRONT_DEPTH, *FRONT_RGB]] = 1.0
        dec.raster_channel_mask.copy_(mask)
        depth_w = torch.zeros(CHANNELS)
        depth_w[FRONT_DEPTH] = -1.0
        dec.raster_depth_weight.copy_(depth_w)
    return dec.eval()


def depth_maps(vertices: np.ndarray, faces: np.ndarray, resolution: int, backend: str = "cpu"):
    """Front and back depth of a mesh seen along z on the xy plane's texel grid, and coverage."""
    verts = torch.from_numpy(np.array(vertices, dtype=np.float32))
    tri = torch.from_numpy(np.array(faces, dtype=np.int32))
    out = []
    for sign in (1.0, -1.0):
        v = verts * torch.tensor([1.0, 1.0, sign])  # seen from behind: the nearest surface is the back one
        rast = raster.rasterize(raster.orthographic_clip(v, "xy"), tri, resolution, resolution, backend=backend)
        z = raster.interpolate(verts[:, 2:3], rast, tri)[..., 0]
        out.append((z, rast[..., 3] > 0))
    (zf, cov_f), (zb, _) = out
    return zf, zb, cov_f


def split_depth(z_front: torch.Tensor, z_back: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
    """Per plane column (x), the depth separating front-coloured from back-coloured surfaces.

    It sits just behind the column's rearmost front surface, so every surface the front view sees
    (including the crown and the sides, where front and back walls meet) takes the front colours, and
    only what lies behind the head's outline takes the back ones.
    """
    r = z_front.shape[1]
    masked = torch.where(covered, z_front, torch.full_like(z_front, float("inf")))
    lowest = masked.min(dim=0).values
    fallback = float(z_front[covered].min()) if covered.any() else 0.0
    return torch.where(torch.isfinite(lowest), lowest, torch.full((r,), fallback)) - SPLIT_MARGIN


def surface_planes(texture_rgb, front_rgb, back_rgb, z_front, z_back, covered, z_split: torch.Tensor,
                   resolution: int = 256) -> torch.Tensor:
    """Assemble the (4, 32, R, R) planes.

    texture_rgb (R, R, 3): colour in the head model's UV space (plane 0, row = v);
    front_rgb / back_rgb (R, R, 3): colours on the xy plane (row = y) for what is not under the mesh
    and for the back; z_front / z_back (R, R) on the xy plane; covered: where there is geometry.
    """
    r = resolution
    planes = torch.zeros(4, CHANNELS, r, r)
    planes[0, list(FRONT_RGB)] = encode_colour(texture_rgb).permute(2, 0, 1)
    xy = planes[1]
    xy[FRONT_DEPTH] = -torch.where(covered, z_front, torch.full_like(z_front, EMPTY_FRONT))
    xy[BACK_DEPTH] = torch.where(covered, z_back, torch.full_like(z_back, EMPTY_BACK))
    xy[list(FRONT_RGB)] = encode_colour(front_rgb).permute(2, 0, 1)
    xy[list(BACK_RGB)] = encode_colour(back_rgb).permute(2, 0, 1)
    # xz plane: column = x, row = z; the ramps depend on z only.
    z = ((torch.arange(r, dtype=torch.float32) + 0.5) / r - 0.5).view(r, 1).expand(r, r)
    xz = planes[2]
    xz[FRONT_DEPTH] = z
    xz[BACK_DEPTH] = -z
    gate = GATE_SLOPE * (z - z_split.view(1, r))
    xz[FRONT_GATE] = gate
    xz[list(FRONT_RGB)] = gate
    # The back colours switch on only once the front ones are fully off, so no surface in front of
    # the split ever mixes in a back colour.
    back_gate = -gate - (COLOUR_OFFSET + LOGIT_LIMIT)
    xz[BACK_GATE] = back_gate
    xz[list(BACK_RGB)] = back_gate
    return planes
