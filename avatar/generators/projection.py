"""Projecting a portrait onto the fitted head (neural texture) and its silhouette (static planes)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import trimesh
from scipy import ndimage

from avatar import camera as cam
from avatar import raster
from avatar.head_model import PART_ID, HeadModel
from avatar.synthetic import texture_from_vertex_colours, vertex_colours

FACING_MIN = 0.0         # any texel facing the camera takes its colour from the photo (grazing ones too)
INPAINT_RADIUS = 4
MATTE_MIN = 0.5
VISIBILITY_EPS = 0.01    # depth tolerance of the visibility test, in world units
HAIR_ROUNDNESS = 0.35    # radius of curvature (world units) used to inflate the silhouette into depth
HAIR_MAX_DEPTH = 0.42
HAIR_BLEND_DISTANCE = 0.05  # world units over which the hair shell leaves the mesh's depth


@dataclass
class Projection:
    texture: np.ndarray      # (R, R, 3) float colour in UV space (row = v)
    seen: np.ndarray         # (R, R) float weight of texels coloured from the photo (incl. mirrored)
    points: np.ndarray       # (R, R, 3) surface point of each texel
    covered: np.ndarray      # (R, R) bool: a triangle covers the texel


def sample_image(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples of an (H, W, C) float image at normalised image coordinates (..., 2)."""
    h, w = image.shape[:2]
    mx = (uv[..., 0] * w - 0.5).astype(np.float32)
    my = (uv[..., 1] * h - 0.5).astype(np.float32)
    out = cv2.remap(image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out if out.ndim == uv.ndim else out[..., None]


def _view_depth(vertices: np.ndarray, faces: np.ndarray, camera_vec: np.ndarray, size: int) -> np.ndarray:
    """Camera-space depth of the nearest surface per pixel (inf where empty), rows = image rows."""
    verts = torch.from_numpy(vertices.astype(np.float32))
    tri = torch.from_numpy(faces.astype(np.int32))
    rast = raster.rasterize(raster.perspective_clip(verts, camera_vec), tri, size, size)
    _, depth = cam.project(vertices, camera_vec)
    d = raster.interpolate(torch.from_numpy(depth.astype(np.float32))[:, None], rast, tri)[..., 0].numpy()
    return np.where(rast[..., 3].numpy() > 0, d, np.inf)


def surface_texels(head: HeadModel, vertices: np.ndarray, resolution: int):
    """Per UV texel: the 3D surface point, its normal and whether a triangle covers it."""
    rast = raster.rasterize(raster.uv_clip(head.uv), torch.from_numpy(head.faces_uv.astype(np.int32)),
                            resolution, resolution)
    tri = torch.from_numpy(head.faces.astype(np.int32))
    normals = trimesh.Trimesh(vertices, head.faces, process=False).vertex_normals.astype(np.float32)
    pts = raster.interpolate(torch.from_numpy(vertices.astype(np.float32)), rast, tri).numpy()
    nrm = raster.interpolate(torch.from_numpy(normals), rast, tri).numpy()
    nrm /= np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-8)
    part = raster.interpolate(torch.from_numpy(head.vertex_part.astype(np.float32))[:, None], rast, tri).numpy()[..., 0]
    return pts, nrm, rast[..., 3].numpy() > 0, np.rint(part).astype(np.int64)


def _observe(points, normals, covered, image, matte, camera_vec, depth_map):
    """Colour and confidence of surface points as the photo shows them."""
    uv, depth = cam.project(points, camera_vec)
    origin = np.asarray(camera_vec, dtype=np.float64)[:16].reshape(4, 4)[:3, 3]
    to_cam = origin - points
    to_cam /= np.maximum(np.linalg.norm(to_cam, axis=-1, keepdims=True), 1e-8)
    facing = np.clip(((normals * to_cam).sum(-1) - FACING_MIN) / (1 - FACING_MIN), 0, 1)
    inside = (uv >= 0).all(-1) & (uv <= 1).all(-1)
    size = depth_map.shape[0]
    px = np.clip((uv * size).astype(np.int64), 0, size - 1)
    visible = depth <= depth_map[px[..., 1], px[..., 0]] + VISIBILITY_EPS
    in_matte = sample_image(matte, uv)[..., 0] > MATTE_MIN
    weight = facing * (covered & inside & visible & in_matte)
    return sample_image(image, uv), weight


def project_texture(head: HeadModel, vertices: np.ndarray, image: np.ndarray, matte: np.ndarray,
                    camera_vec: np.ndarray, resolution: int, skin_fallback=None) -> Projection:
    """Neural-texture colours: the photo where the surface is seen, its mirror image where only the
    other side is seen, and region priors (skin tone from the photo) elsewhere."""
    img = image.astype(np.float32) / 255.0
    matte_f = matte.astype(np.float32)
    depth_map = _view_depth(vertices, head.faces, camera_vec, image.shape[0])
    pts, nrm, covered, part = surface_texels(head, vertices, resolution)
    colour, weight = _observe(pts, nrm, covered, img, matte_f, camera_vec, depth_map)
    mirror = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    m_colour, m_weight = _observe(pts * mirror, nrm * mirror, covered, img, matte_f, camera_vec, depth_map)
    # Only skin is mirrored: an eyeball or the mouth interior has its own visible counterpart.
    m_weight = m_weight * (part == PART_ID["skin"]) * (1 - weight)

    skin_texels = (weight > 0.5) & (part == PART_ID["skin"])
    skin = np.median(colour[skin_texels], axis=0) if skin_texels.sum() > 50 else np.asarray(skin_fallback or (0.75, 0.6, 0.5))
    prior = texture_from_vertex_colours(head, vertex_colours(head, skin), resolution, background=tuple(skin)).numpy()

    total = weight + m_weight
    blended = (colour * weight[..., None] + m_colour * m_weight[..., None]) / np.maximum(total, 1e-6)[..., None]
    seen = np.clip(total, 0, 1)
    # Skin and eyeballs the photo does not show take the colour of the nearest part it does show (hair
    # line, jaw line, the visible sclera), not a flat tone: what borders them is the best guess and hides
    # the seam. The mouth interior, teeth and tongue keep their region priors.
    fill = prior.copy()
    for parts in ((PART_ID["skin"],), (PART_ID["eyeball_left"], PART_ID["eyeball_right"])):
        region = np.isin(part, parts) & covered
        known = (seen > 0.3) & region
        if known.sum() < 10:
            continue
        source = np.where(known[..., None], blended, 0.0)
        filled = cv2.inpaint((source * 255).astype(np.uint8), (region & ~known).astype(np.uint8) * 255,
                             INPAINT_RADIUS, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
        fill = np.where(region[..., None], filled, fill)
    texture = blended * seen[..., None] + fill * (1 - seen[..., None])
    return Projection(texture=np.clip(texture, 0, 1).astype(np.float32), seen=seen.astype(np.float32),
                      points=pts, covered=covered)


def plane_texel_centres(resolution: int, box_half: float = cam.BOX_HALF) -> np.ndarray:
    """World (x, y) of the xy plane's texel centres, (R, R, 2); row 0 is y = -box_half."""
    c = (np.arange(resolution) + 0.5) / resolution * 2 * box_half - box_half
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return np.stack([xs, ys], axis=-1)


def static_geometry(matte: np.ndarray, image: np.ndarray, camera_vec: np.ndarray, mesh_front: np.ndarray,
                    mesh_back: np.ndarray, mesh_covered: np.ndarray, resolution: int):
    """Depth and colour of what the head mesh does not cover (hair, ears, neck, shoulders), on the xy plane.

    The matte is carried onto the plane through the portrait camera and inflated into a rounded
    shell (depth grows with the distance to the silhouette edge), merged with the mesh's own depth.
    """
    xy = plane_texel_centres(resolution)
    points = np.concatenate([xy, np.zeros_like(xy[..., :1])], axis=-1)
    uv, _ = cam.project(points, camera_vec)
    silhouette = (sample_image(matte.astype(np.float32), uv)[..., 0] > MATTE_MIN) & (uv >= 0).all(-1) & (uv <= 1).all(-1)
    silhouette |= mesh_covered
    texel = 2 * cam.BOX_HALF / resolution
    dist = cv2.distanceTransform(silhouette.astype(np.uint8), cv2.DIST_L2, 5) * texel
    inflated = np.minimum(np.sqrt(np.maximum(2 * HAIR_ROUNDNESS * dist - dist ** 2, 0)), HAIR_MAX_DEPTH)
    # Next to the head mesh the shell starts at the mesh's own depth and rises to the inflated one
    # further out: a step there would be a wall the camera sees as a smeared band around the skull.
    gap, (iy, ix) = ndimage.distance_transform_edt(~mesh_covered, return_indices=True)
    hug = np.exp(-gap * texel / HAIR_BLEND_DISTANCE)
    shell_front = hug * mesh_front[iy, ix] + (1 - hug) * inflated * 0.8
    z_front = np.where(mesh_covered, np.maximum(mesh_front, inflated * 0.6), shell_front)
    z_back = np.where(mesh_covered, np.minimum(mesh_back, -inflated), -inflated)
    # Colour of the static front: where the shell's front surface lands in the photo.
    uv_front, _ = cam.project(np.concatenate([xy, z_front[..., None]], axis=-1), camera_vec)
    front_rgb = sample_image(image.astype(np.float32) / 255.0, uv_front)
    back_rgb = cv2.GaussianBlur(front_rgb, (0, 0), sigmaX=resolution / 16)
    return silhouette, z_front.astype(np.float32), z_back.astype(np.float32), front_rgb, back_rgb
