"""How well an avatar reproduces its portrait: the figure tests and benchmarks both report."""
from __future__ import annotations

import cv2
import numpy as np

from avatar.asset import Avatar
from avatar.render import Renderer


def frontal_psnr(avatar: Avatar, region: np.ndarray, size: int = 256, renderer: Renderer | None = None) -> float:
    """PSNR (dB) of the render from the portrait camera, with the portrait's own expression and gaze, against the
    aligned portrait, inside `region` ((S, S) bool in the aligned portrait's pixels, e.g. the face hull)."""
    if avatar.portrait is None:
        raise ValueError("the avatar carries no aligned portrait to compare with")
    renderer = renderer or Renderer(avatar, neural_resolution=size)
    rendered = renderer.render(avatar.portrait_camera, expression=avatar.portrait_expression,
                               eye=avatar.portrait_eye, size=size).over((0.0, 0.0, 0.0))
    photo = cv2.resize(avatar.portrait, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    inside = cv2.resize(region.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) > 0.5
    mse = float(((rendered - photo) ** 2)[inside].mean())
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))
