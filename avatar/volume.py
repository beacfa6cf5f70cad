"""Volume rendering pieces shared by the accelerated and the reference renderer."""
from __future__ import annotations

import torch

from avatar.camera import BOX_HALF


def box_intersection(origins: torch.Tensor, dirs: torch.Tensor, near: float, far: float,
                     box_half: float = BOX_HALF) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry/exit depth of each ray in the head box, clipped to [near, far]; and which rays hit it."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (-box_half - origins) * inv
    t1 = (box_half - origins) * inv
    t_enter = torch.minimum(t0, t1).amax(dim=-1).clamp(min=near)
    t_exit = torch.maximum(t0, t1).amin(dim=-1).clamp(max=far)
    return t_enter, t_exit, t_exit > t_enter


def composite(density: torch.Tensor, colour: torch.Tensor, t: torch.Tensor,
              transmittance_in: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alpha-composite samples along rays (midpoint rule between consecutive samples, as EG3D).

    density (R, S), colour (R, S, C), t (R, S) sorted. Returns premultiplied colour (R, C), opacity
    (R,), weighted depth sum (R,), the transmittance left after the last interval (R,), so a ray
    can be continued in further segments by passing it back as `transmittance_in`, and the weight of
    each interval (R, S - 1).
    """
    delta = t[:, 1:] - t[:, :-1]
    sigma = 0.5 * (density[:, 1:] + density[:, :-1])
    col = 0.5 * (colour[:, 1:] + colour[:, :-1])
    mid = 0.5 * (t[:, 1:] + t[:, :-1])
    alpha = 1 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-10], dim=-1), dim=-1)
    if transmittance_in is not None:
        trans = trans * transmittance_in.unsqueeze(-1)
    weights = alpha * trans[:, :-1]
    return (weights.unsqueeze(-1) * col).sum(1), weights.sum(1), (weights * mid).sum(1), trans[:, -1], weights


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
    """Deterministic inverse-CDF samples (R, n) from piecewise-constant weights over bins (R, B+1)."""
    w = weights + 1e-5
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    u = ((torch.arange(n, dtype=bins.dtype, device=bins.device) + 0.5) / n).expand(len(bins), n).contiguous()
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[-1] - 1)
    lo, hi = idx - 1, idx
    c_lo, c_hi = cdf.gather(1, lo), cdf.gather(1, hi)
    b_lo, b_hi = bins.gather(1, lo), bins.gather(1, hi)
    frac = (u - c_lo) / (c_hi - c_lo).clamp(min=1e-8)
    return b_lo + frac * (b_hi - b_lo)
