"""Closed or open meshes made of vertex rings, and their disk-shaped UV islands.

Eyeballs, the tongue, the teeth and the inner sacks (mouth cavity, eye sockets) are all a stack of
equally long vertex loops with an optional pole at either end. Mapping ring k to a circle of radius
rho_k and loop position i to angle 2*pi*i/m gives a UV disk without seams and without overlaps.
"""
from __future__ import annotations

import numpy as np


def ring_faces(rings: np.ndarray, front_pole: int | None = None, back_pole: int | None = None) -> np.ndarray:
    """Triangles joining consecutive rings (n, m) of vertex ids, plus fans to the poles.

    Orientation: band faces traverse ring k in increasing loop order (reverse the columns of both
    these faces and their `ring_disk_uv` corners to turn a part inside out).
    """
    n, m = rings.shape
    i = np.arange(m)
    ip = (i + 1) % m
    faces = []
    if front_pole is not None:
        faces.append(np.stack([np.full(m, front_pole), rings[0, ip], rings[0, i]], axis=1))
    for k in range(n - 1):
        a, b, c, d = rings[k, i], rings[k, ip], rings[k + 1, ip], rings[k + 1, i]
        faces.append(np.stack([a, b, c], axis=1))
        faces.append(np.stack([a, c, d], axis=1))
    if back_pole is not None:
        faces.append(np.stack([rings[-1, i], rings[-1, ip], np.full(m, back_pole)], axis=1))
    return np.concatenate(faces).astype(np.int64)


def ring_disk_uv(radii: np.ndarray, m: int, front_pole_at: float | None, back_pole_at: float | None,
                 box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """UV corners for `ring_faces(rings (len(radii), m), ...)`: ring k on a circle of radius radii[k].

    Radii are in 0..1 of the island `box` (u0, v0, u1, v1). A pole at radius 0 is one shared UV point;
    a pole at radius 1 gets one rim point per fan triangle (a single vertex cannot cover a circle).
    Returns (uv (T, 2), faces_uv aligned with ring_faces).
    """
    u0, v0, u1, v1 = box
    centre = np.array([(u0 + u1) / 2, (v0 + v1) / 2])
    half = 0.5 * min(u1 - u0, v1 - v0)
    n = len(radii)
    ang = 2 * np.pi * np.arange(m) / m
    ring_uv = np.asarray(radii)[:, None, None] * np.stack([np.cos(ang), np.sin(ang)], axis=-1)[None]
    uv = [ring_uv.reshape(-1, 2)]
    ids = np.arange(n * m).reshape(n, m)
    count = [n * m]
    i = np.arange(m)
    ip = (i + 1) % m

    def pole_ids(radius: float) -> np.ndarray:
        if radius < 0.5:
            uv.append(np.zeros((1, 2)))
            pid = np.full(m, count[0])
            count[0] += 1
        else:
            mid = ang + np.pi / m
            uv.append(np.stack([np.cos(mid), np.sin(mid)], axis=1))
            pid = count[0] + i
            count[0] += m
        return pid

    faces = []
    if front_pole_at is not None:
        pid = pole_ids(front_pole_at)
        faces.append(np.stack([pid, ids[0, ip], ids[0, i]], axis=1))
    for k in range(n - 1):
        a, b, c, d = ids[k, i], ids[k, ip], ids[k + 1, ip], ids[k + 1, i]
        faces.append(np.stack([a, b, c], axis=1))
        faces.append(np.stack([a, c, d], axis=1))
    if back_pole_at is not None:
        pid = pole_ids(back_pole_at)
        faces.append(np.stack([ids[-1, i], ids[-1, ip], pid], axis=1))
    uv_all = centre + half * np.concatenate(uv)
    return uv_all, np.concatenate(faces).astype(np.int64)
