"""A synthetic avatar: the head model's own geometry, a region-coloured texture and real density.

For tests and benchmarks that need an avatar without a portrait. It uses the same surface channel
semantics and decoder as the projective generator, so everything downstream sees a real avatar.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from avatar import camera, raster
from avatar.asset import Avatar
from avatar.head_model import PART_ID, HeadModel, embedded_head_model
from avatar.surface_field import SEMANTICS, depth_maps, split_depth, surface_decoder, surface_planes

GENERATOR_NAME = "synthetic"
GENERATOR_VERSION = "1"
RESOLUTION = 256


def vertex_colours(head: HeadModel, skin: np.ndarray) -> np.ndarray:
    """Per-vertex RGB by region: skin, lips, brows, eye whites with dark irises, mouth interior, teeth, tongue."""
    v = head.vertices
    colours = np.tile(np.asarray(skin, dtype=np.float32), (len(v), 1))
    lm = {k: v[i] for k, i in head.landmarks.items()}

    def near(point, radius):
        return np.clip(1 - np.linalg.norm(v - point, axis=1) / radius, 0, 1)[:, None]

    mouth_centre = (lm["mouth_corner_left"] + lm["mouth_corner_right"]) / 2
    mouth_width = np.linalg.norm(lm["mouth_corner_left"] - lm["mouth_corner_right"])
    lips = near(mouth_centre, 0.6 * mouth_width) ** 0.5
    colours = colours * (1 - lips) + np.array([0.62, 0.25, 0.27]) * lips
    for brow in ("brow_left", "brow_right"):
        b = near(lm[brow], 0.06) ** 0.7
        colours = colours * (1 - b) + np.array([0.22, 0.15, 0.1]) * b
    part = head.vertex_part
    for side, (eye_part, pupil) in enumerate((("eyeball_left", "pupil_left"), ("eyeball_right", "pupil_right"))):
        idx = part == PART_ID[eye_part]
        iris = near(lm[pupil], 0.03)[idx] > 0
        colours[idx] = np.where(iris, np.array([0.2, 0.3, 0.45]), np.array([0.92, 0.9, 0.88]))
        colours[idx & (np.linalg.norm(v - lm[pupil], axis=1) < 0.012)] = (0.03, 0.03, 0.03)
    colours[part == PART_ID["mouth_cavity"]] = (0.35, 0.08, 0.1)
    colours[part == PART_ID["teeth"]] = (0.93, 0.92, 0.86)
    colours[part == PART_ID["tongue"]] = (0.75, 0.35, 0.38)
    return colours.astype(np.float32)


def texture_from_vertex_colours(head: HeadModel, colours: np.ndarray, resolution: int = RESOLUTION,
                                background=(0.5, 0.5, 0.5)) -> torch.Tensor:
    """Bake per-vertex colours into the UV layout (rows = v), (R, R, 3)."""
    faces_uv = torch.from_numpy(head.faces_uv.astype(np.int32))
    rast = raster.rasterize(raster.uv_clip(head.uv), faces_uv, resolution, resolution)
    tex = raster.interpolate(torch.from_numpy(colours), rast, torch.from_numpy(head.faces.astype(np.int32)))
    covered = rast[..., 3:4] > 0
    return torch.where(covered, tex, torch.tensor(background, dtype=torch.float32))


def synthetic_avatar(seed: int = 0, head: HeadModel | None = None) -> Avatar:
    head = head or embedded_head_model()
    rng = np.random.default_rng(seed)
    skin = np.array([0.78, 0.6, 0.5]) * rng.uniform(0.8, 1.1)
    hair = np.array([0.28, 0.18, 0.1]) * rng.uniform(0.6, 1.4)
    identity = (rng.uniform(-0.5, 0.5, len(head.identity_names)) if seed else np.zeros(len(head.identity_names))).astype(np.float32)

    verts = head.identity_vertices(identity)
    texture = texture_from_vertex_colours(head, vertex_colours(head, np.clip(skin, 0, 1)))
    z_front, z_back, covered = depth_maps(verts, head.faces, RESOLUTION)
    hair_rgb = torch.tensor(np.clip(hair, 0, 1), dtype=torch.float32).expand(RESOLUTION, RESOLUTION, 3)
    planes = surface_planes(texture, hair_rgb, hair_rgb, z_front, z_back, covered,
                            split_depth(z_front, z_back, covered), RESOLUTION)
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
    )
