"""A synthetic avatar: the head model's own geometry, a region-coloured texture and real density.

For tests and benchmarks that need an avatar without a portrait. It uses the same surface channel
semantics and decoder as the projective generator, so everything downstream sees a real avatar.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from numpy.typing import ArrayLike

from avatar import camera, raster
from avatar.asset import Avatar
from avatar.decoder import SIDE_PLANES
from avatar.head_model import PART_ID, HeadModel, embedded_head_model
from avatar.head_walls import VolumeNormals, assemble_walls, swept_mesh_volume
from avatar.surface_field import SEMANTICS, surface_decoder, surface_planes

GENERATOR_NAME = "synthetic"
GENERATOR_VERSION = "12"
RESOLUTION = 256


# Region priors (linear-ish display RGB in [0, 1]): defaults where the photo does not show a part.
SCLERA = np.array([0.86, 0.83, 0.79])         # off-white, slightly warm and grey (never paper white)
IRIS = np.array([0.36, 0.25, 0.17])           # mid brown
LIMBUS = np.array([0.17, 0.12, 0.09])         # the darker ring at the iris edge
PUPIL = np.array([0.03, 0.03, 0.03])
IRIS_RADIUS_M = 0.006                         # iris and pupil radii, life size (metres)
PUPIL_RADIUS_M = 0.0018
CAVITY_FRONT = np.array([0.33, 0.14, 0.13])   # dark, desaturated red-brown just behind the lips
CAVITY_THROAT = np.array([0.025, 0.013, 0.013])
TEETH = np.array([0.86, 0.82, 0.72])          # warm off-white at the incisors
TEETH_BACK_SHADE = 0.5                        # the molars at the back of the arch: this fraction of it
TONGUE = np.array([0.62, 0.33, 0.32])         # muted pink-red at the tip
TONGUE_ROOT_SHADE = 0.55
CONJUNCTIVA = np.array([0.66, 0.43, 0.40])    # the eye sack where it shows past the eyeball: muted pink,
SOCKET = np.array([0.18, 0.10, 0.09])         # darkening toward the back of the socket


def region_colours(head: HeadModel, points: np.ndarray, parts: np.ndarray, skin: ArrayLike,
                   eye_sack: np.ndarray | None = None) -> np.ndarray:
    """RGB (P, 3) float32 of surface points (P, 3) in the head's neutral pose, given the part id of each
    (and, optionally, which of them line an eye sack).

    Skin with lips and brows; eyeballs with sclera, iris and pupil (discs about each gaze axis, life
    size); eye sacks pink at the lids, dark deeper in; the mouth cavity darkening to near black toward
    the throat; teeth and tongue darker toward the back of the mouth.
    """
    v = head.vertices
    p = np.asarray(points, dtype=np.float64)
    colours = np.tile(np.asarray(skin, dtype=np.float64), (len(p), 1))
    lm = {k: v[i].astype(np.float64) for k, i in head.landmarks.items()}

    mouth_centre = (lm["mouth_corner_left"] + lm["mouth_corner_right"]) / 2
    mouth_width = np.linalg.norm(lm["mouth_corner_left"] - lm["mouth_corner_right"])
    # The lips: an ellipse about the mouth line, as wide as the mouth and about 2/5 as tall.
    q = ((p[:, 0] - mouth_centre[0]) / (0.55 * mouth_width)) ** 2 + \
        ((p[:, 1] - mouth_centre[1]) / (0.22 * mouth_width)) ** 2
    lips = (np.clip(1 - q, 0, 1) ** 0.5 * (p[:, 2] > mouth_centre[2] - 0.5 * mouth_width))[:, None]
    colours = colours * (1 - lips) + np.array([0.62, 0.3, 0.3]) * lips
    for brow in ("brow_left", "brow_right"):
        # A flat arch over the eye (life size ~5 cm x 1 cm), fading at its ends.
        half_len, half_h = 0.025 / head.metres_per_unit, 0.006 / head.metres_per_unit
        dx = (p[:, 0] - lm[brow][0]) / half_len
        dy = (p[:, 1] - lm[brow][1] + 0.3 * half_h * dx ** 2) / half_h
        front = p[:, 2] > lm[brow][2] - 2 * half_len
        b = (np.clip(1 - dx ** 2 - dy ** 2, 0, 1) ** 0.5 * front)[:, None]
        colours = colours * (1 - b) + np.array([0.22, 0.15, 0.1]) * b
    for eye, side in enumerate(("left", "right")):
        idx = parts == PART_ID[f"eyeball_{side}"]
        if idx.any() and f"pupil_{side}" in head.landmarks:
            colours[idx] = _eye_colours(p[idx], head.eye_centers[eye], lm[f"pupil_{side}"], head.metres_per_unit)
    if eye_sack is not None and eye_sack.any():
        idx = np.flatnonzero(eye_sack)
        eye = np.argmin(np.linalg.norm(p[idx, None] - head.eye_centers[None], axis=2), axis=1)
        rel = p[idx] - head.eye_centers[eye]
        cos = rel[:, 2] / np.maximum(np.linalg.norm(rel, axis=1), 1e-12)
        # Pink where the sack leaves the lids (about 60 degrees off the gaze), dark from the equator back.
        t = np.clip(1 - cos / 0.5, 0, 1)[:, None]
        colours[idx] = CONJUNCTIVA * (1 - t) + SOCKET * t
    for name, front, back, ease in (("mouth_cavity", CAVITY_FRONT, CAVITY_THROAT, 1.5),
                                    ("teeth", TEETH, TEETH * TEETH_BACK_SHADE, 1.0),
                                    ("tongue", TONGUE, TONGUE * TONGUE_ROOT_SHADE, 1.0)):
        idx = parts == PART_ID[name]
        z = v[head.vertex_part == PART_ID[name], 2]
        if idx.any() and len(z):
            # 0 at the part's front (nearest the lips), 1 at its back; the cavity stays red-brown
            # through the middle of the mouth and turns near black only toward the throat.
            t = np.clip((z.max() - p[idx, 2]) / max(float(z.max() - z.min()), 1e-9), 0, 1)[:, None] ** ease
            colours[idx] = front * (1 - t) + back * t
    rgb: np.ndarray = colours.astype(np.float32)
    return rgb


def _eye_colours(points: np.ndarray, centre: np.ndarray, pupil: np.ndarray, metres_per_unit: float) -> np.ndarray:
    """Sclera, iris (with a darker limbal ring) and pupil by angle from the gaze axis."""
    rel = points - centre
    radius = np.linalg.norm(rel, axis=1)
    axis = (pupil - centre) / np.linalg.norm(pupil - centre)
    angle = np.arccos(np.clip((rel @ axis) / np.maximum(radius, 1e-12), -1, 1))
    eye_radius_m = float(np.median(radius)) * metres_per_unit
    iris = np.arcsin(min(IRIS_RADIUS_M / eye_radius_m, 1.0))
    pupil_angle = np.arcsin(min(PUPIL_RADIUS_M / eye_radius_m, 1.0))
    # Smooth edges a few degrees wide, so a coarse mesh or texture shows discs, not polygons.
    edge = np.radians(3.0)
    to_sclera = np.clip((angle - iris) / edge + 0.5, 0, 1)[:, None]
    to_limbus = np.clip((angle - (iris - 2 * edge)) / (2 * edge), 0, 1)[:, None]
    to_pupil = np.clip((pupil_angle - angle) / edge + 0.5, 0, 1)[:, None]
    iris_rgb = IRIS * (1 - to_limbus) + LIMBUS * to_limbus
    iris_rgb = iris_rgb * (1 - to_pupil) + PUPIL * to_pupil
    rgb: np.ndarray = iris_rgb * (1 - to_sclera) + SCLERA * to_sclera
    return rgb


def vertex_colours(head: HeadModel, skin: np.ndarray) -> np.ndarray:
    """Per-vertex region priors (N, 3) float32: `region_colours` at the head's vertices."""
    sacks = None if head.part_masks is None else head.part_masks.eye_sack_vertices
    return region_colours(head, head.vertices, head.vertex_part, skin, sacks)


def prior_texture(head: HeadModel, skin: ArrayLike, resolution: int = RESOLUTION,
                  background: ArrayLike | None = None) -> torch.Tensor:
    """Region priors evaluated at every texel's own surface point (sharper than baked vertex colours:
    the iris and pupil stay discs), (R, R, 3) in the UV layout (rows = v); `background` (default: the
    skin colour) where no triangle covers a texel."""
    faces_uv = torch.from_numpy(head.faces_uv.astype(np.int32))
    rast = raster.rasterize(raster.uv_clip(head.uv), faces_uv, resolution, resolution)
    covered = (rast[..., 3] > 0).numpy()
    points = raster.interpolate(torch.from_numpy(head.vertices.astype(np.float32)), rast,
                                torch.from_numpy(head.faces.astype(np.int32))).numpy()
    face = rast[..., 3].numpy().astype(np.int64) - 1
    out = np.empty((resolution, resolution, 3), np.float32)
    out[:] = np.asarray(skin if background is None else background, dtype=np.float32)
    face = face[covered]
    sacks = None if head.part_masks is None else head.part_masks.eye_sack_faces[face]
    out[covered] = region_colours(head, points[covered], head.face_part[face], skin, sacks)
    return torch.from_numpy(out)


def synthetic_avatar(seed: int = 0, head: HeadModel | None = None) -> Avatar:
    head = head or embedded_head_model()
    rng = np.random.default_rng(seed)
    skin = np.array([0.78, 0.6, 0.5]) * rng.uniform(0.8, 1.1)
    hair = np.array([0.28, 0.18, 0.1]) * rng.uniform(0.6, 1.4)
    n_identity = len(head.identity_names)
    identity = (rng.uniform(-0.5, 0.5, n_identity) if seed else np.zeros(n_identity)).astype(np.float32)

    texture = np.asarray(prior_texture(head, np.clip(skin, 0, 1)), dtype=np.float32)
    vol = swept_mesh_volume(head, identity, RESOLUTION)
    hair_rgb = np.clip(hair, 0, 1).astype(np.float32)
    walls = assemble_walls(head, identity, texture, vol, np.zeros_like(vol),
                           lambda p: np.broadcast_to(hair_rgb, p.shape).copy(), VolumeNormals(vol), RESOLUTION)
    planes = surface_planes(texture, walls)
    decoder = surface_decoder()
    settings = {"seed": int(seed)}
    digest = hashlib.sha256(f"{GENERATOR_NAME}/{GENERATOR_VERSION}/{seed}/{head.model_id}".encode()).hexdigest()
    return Avatar(
        avatar_id=digest,
        planes=planes,
        decoder=decoder.state_for_asset(),
        identity=identity,
        portrait_camera=camera.camera_vector(),
        head_model_id=head.model_id,
        generator=GENERATOR_NAME,
        generator_version=GENERATOR_VERSION,
        generator_settings=settings,
        source_sha256=hashlib.sha256(f"synthetic seed {seed}".encode()).hexdigest(),
        channel_semantics=SEMANTICS,
        display_name=f"synthetic-{seed}",
        created_unix=0.0,
        plane_names=SIDE_PLANES,
    )
