"""The avatar as the exporter sees it: density on a grid and colour at surface points, from the renderer.

Everything comes through the renderer's field interface (density and colour at world points), never
from a generator's internals, so any avatar (projective, synthetic, AvatarArtist) exports the same way.

Colour at a surface point can be asked two ways:
- at the point itself;
- seen from outside: a short ray toward the point, composited as the volume renderer composites a
  camera ray. This is the one meshes are baked with: a mesh only approximates where the opaque wall
  is (marching cubes), colour inside a wall changes with depth, and colour at the wall itself may be
  nothing the renderer ever shows, so this gives the colour a camera looking at that side of the
  surface actually sees. The ray comes along the normal, tilted halfway toward the front (+z) where
  the surface faces the front: a texture holds one colour per point, and the stream is watched
  mostly from the front, where (at eyelid rims, nostrils) the front view and the normal's view can
  see different things.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from avatar.asset import Avatar
from avatar.head_model.base import HeadModel

# The ray runs from SEEN_REACH in front of the point to SEEN_REACH behind it (world units; one and a half
# marching-cubes cells at the default 96^3 grid), in SEEN_SAMPLES steps (finer than the renderer's).
SEEN_REACH = 0.015
SEEN_SAMPLES = 6
# Rays that meet less opacity than this keep the colour at the point itself.
MIN_SEEN_OPACITY = 0.05


class AvatarSurface:
    """The avatar's colour at surface points and its density grid, as the renderer computes them."""

    def __init__(self, avatar: Avatar, model: HeadModel | None = None):
        """`model`: the avatar's head model as loaded (None: the registered one); the renderer adds
        the avatar's own shape correction to it."""
        from avatar.render import Renderer

        self.renderer = Renderer(avatar, head=model)

    def _query(self, points: np.ndarray, expression: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        dens, rgb = self.renderer.query(torch.from_numpy(np.ascontiguousarray(points, np.float32)), expression)
        return dens.numpy(), rgb.numpy()

    def colour_in_pose(self, expression: np.ndarray | None) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
        """`colour` for the avatar posed with an ARKit-52 expression (None: neutral)."""
        def posed(points: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
            return self.colour(points, normals, expression)

        return posed

    def colour(self, points: np.ndarray, normals: np.ndarray | None = None,
               expression: np.ndarray | None = None) -> np.ndarray:
        """(P, 3) RGB in [0, 1] at (P, 3) world points; with (P, 3) unit outward normals, as seen
        from outside (see the module docstring)."""
        if normals is None:
            return self._query(points, expression)[1]
        front = np.array([0.0, 0.0, 1.0], np.float32)
        tilted = normals + front
        tilted /= np.maximum(np.linalg.norm(tilted, axis=1, keepdims=True), 1e-8)
        toward = np.where(normals[:, 2:3] > 0, tilted, normals)  # unit, pointing out of the surface
        step = 2.0 * SEEN_REACH / SEEN_SAMPLES
        # Sample midpoints, from the outside in.
        offsets = SEEN_REACH - step * (np.arange(SEEN_SAMPLES, dtype=np.float32) + 0.5)
        samples = points[:, None, :] + offsets[None, :, None] * toward[:, None, :]
        dens, rgb = self._query(samples.reshape(-1, 3), expression)
        dens = dens.reshape(len(points), SEEN_SAMPLES)
        rgb = rgb.reshape(len(points), SEEN_SAMPLES, 3)
        alpha = 1.0 - np.exp(-np.maximum(dens, 0.0) * step)
        transmittance = np.cumprod(np.concatenate([np.ones((len(points), 1), np.float32), 1.0 - alpha[:, :-1]], 1), 1)
        weights = alpha * transmittance
        opacity = weights.sum(axis=1)
        seen = np.einsum("ps,psc->pc", weights, rgb) / np.maximum(opacity, 1e-8)[:, None]
        at_point = rgb[:, SEEN_SAMPLES // 2]  # the sample just behind the point
        return np.where((opacity >= MIN_SEEN_OPACITY)[:, None], seen, at_point).astype(np.float32)

    def density_grid(self, resolution: int) -> np.ndarray:
        return self.renderer.density_grid(resolution)
