"""Occupancy grids for empty-space skipping.

The static grid is decoded once per avatar from the neutral-expression density; each frame adds the
cells the posed head mesh passes through (an expression only moves geometry where the mesh is, since
the neural texture reaches the planes through the mesh). Both are dilated by one cell so a thin
surface between cell centres is never skipped. The renderer keeps two levels: a coarse grid to find
each ray's occupied span cheaply, a fine one to skip samples inside it.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from avatar import march
from avatar.camera import BOX_HALF

DENSITY_THRESHOLD = 0.05


def grid_points(resolution: int, box_half: float = BOX_HALF, device: torch.device | str = "cpu") -> torch.Tensor:
    """Cell centres of a resolution^3 grid over the box, (R^3, 3) in x-major (x, y, z) order."""
    c = (torch.arange(resolution, dtype=torch.float32, device=device) + 0.5) / resolution * 2 * box_half - box_half
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1).reshape(-1, 3)


def dilate(grid: torch.Tensor) -> torch.Tensor:
    """Grow occupancy by one cell in every direction: a 3x3x3 max as three passes of shifted ORs
    (boolean slices are many times cheaper than a float max-pool here)."""
    g = grid.clone()
    for axis in range(3):
        n = g.shape[axis]
        shifted = g.clone()
        shifted.narrow(axis, 1, n - 1).logical_or_(g.narrow(axis, 0, n - 1))
        shifted.narrow(axis, 0, n - 1).logical_or_(g.narrow(axis, 1, n - 1))
        g = shifted
    return g


class OccupancyGrid:
    """A (R, R, R) bool grid over the box, x-major, on the device of the tensor it is built from."""

    def __init__(self, static: torch.Tensor, box_half: float = BOX_HALF):
        self.static = static
        self.resolution = static.shape[0]
        self.box_half = box_half

    @classmethod
    def from_density(cls, density_fn: Callable[[torch.Tensor], torch.Tensor], resolution: int = 64,
                     chunk: int = 1 << 16, box_half: float = BOX_HALF,
                     device: torch.device | str = "cpu") -> OccupancyGrid:
        pts = grid_points(resolution, box_half, device)
        dens = torch.cat([density_fn(pts[i:i + chunk]) for i in range(0, len(pts), chunk)])
        occupied = (dens > DENSITY_THRESHOLD).reshape(resolution, resolution, resolution)
        return cls(dilate(occupied), box_half)

    def coarser(self) -> OccupancyGrid:
        """The same occupancy at half the resolution (a coarse cell is occupied if any of its 8 is)."""
        pooled = F.max_pool3d(self.static[None, None].float(), 2, stride=2)[0, 0] > 0
        return OccupancyGrid(pooled, self.box_half)

    def cell_index(self, points: torch.Tensor) -> torch.Tensor:
        """Flat cell index of each point (clamped into the grid)."""
        r = self.resolution
        ijk = ((points + self.box_half) * (r / (2 * self.box_half))).long().clamp_(0, r - 1)
        return (ijk[..., 0] * r + ijk[..., 1]) * r + ijk[..., 2]

    def add_points(self, points: torch.Tensor) -> None:
        """Mark the (dilated) cells holding these points as occupied for good."""
        self.static = self.with_points(points).view_as(self.static)

    def with_points(self, points: torch.Tensor) -> torch.Tensor:
        """The static grid plus the (dilated) cells that contain any of these points, flattened.

        Only the block of cells the points span is dilated, so a face's worth of moving vertices
        costs a fraction of the whole grid; the march kernel, when built, marks the same cells."""
        kernel = march.load()
        if kernel is not None and points.device.type == "cpu" and points.dtype == torch.float32:
            grid = kernel.occupancy_with_points(self.static.contiguous(), points.contiguous(), self.box_half)
            return grid.reshape(-1)
        out = self.static.clone()
        if len(points) == 0:
            return out.reshape(-1)
        r = self.resolution
        ijk = ((points + self.box_half) * (r / (2 * self.box_half))).long().clamp_(0, r - 1)
        lo = (ijk.min(dim=0).values - 1).clamp(min=0)
        hi = (ijk.max(dim=0).values + 2).clamp(max=r)
        shape = (hi - lo).tolist()
        block = torch.zeros(shape, dtype=torch.bool, device=out.device)
        local = ijk - lo
        block[local[:, 0], local[:, 1], local[:, 2]] = True
        out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= dilate(block)
        return out.reshape(-1)
