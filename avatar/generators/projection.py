"""Projecting a portrait onto the fitted head (neural texture) and its silhouette (static planes)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import trimesh

from avatar import camera as cam
from avatar import raster
from avatar.decoder import SIDE_PLANES, plane_coordinates
from avatar.head_model import PART_ID, HeadModel
from avatar.synthetic import prior_texture

# A texel facing the camera at least this much (cosine) is coloured wholly by the photo; more grazing
# ones blend toward their mirror image. Full trust comes early: a grazing texel that took its mirror's
# colour shows as a seam in the portrait view itself (the side of the nose, the cheek at the jaw line).
FACING_FULL = 0.3
REMAP_COLUMNS = 4096
EYE_SACK = -1            # surface_texels' part id of eye-sack texels (skin that is never mirrored or filled)
BEHIND_BLEND = 0.04      # world units over which unseen skin turns from inpainted to the behind fill
MATTE_MIN = 0.5
VISIBILITY_EPS = 0.01    # depth tolerance of the visibility test, in world units
# match_mirror: scales as fractions of the texture's side (measured at 256: light over 6 texels, detail
# over 3; frontal face PSNR +0.2 to +2.0 dB on the reference portraits, the ghost face gone at +-45).
FIT_DAMPING = 0.1         # fit_to_pixels: texels read by less than ~this many pixels' worth barely move
MIRROR_LIGHT_SIGMA = 6 / 256
MIRROR_BLUR_SIGMA = 3 / 256
MIRROR_OVERLAP = 0.5     # both views at least this confident: their light compares
MIN_OVERLAP_TEXELS = 50
LIGHT_EPS = 0.02         # colours compared in log(c + eps): black hair does not blow the ratio up


@dataclass
class Projection:
    texture: np.ndarray      # (R, R, 3) float colour in UV space (row = v)
    seen: np.ndarray         # (R, R) float weight of texels coloured from the photo (incl. mirrored)
    points: np.ndarray       # (R, R, 3) surface point of each texel
    covered: np.ndarray      # (R, R) bool: a triangle covers the texel
    direct: np.ndarray       # (R, R) float weight of texels the photo shows themselves (not their mirror)
    facing: np.ndarray       # (R, R) float: how squarely the camera sees each texel's surface (facing_weight)
    part: np.ndarray         # (R, R) int: each texel's part id (PART_ID, or EYE_SACK; see surface_texels)
    shown: np.ndarray        # (R, R) float: how surely its pixel shows the texel's own surface (SkinShown)


def sample_image(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples of an (H, W, C) float image at normalised image coordinates (..., 2) -> (..., C)."""
    h, w = image.shape[:2]
    lead = uv.shape[:-1]
    flat = uv.reshape(-1, 2)
    if not len(flat):     # remap refuses an empty map
        return np.zeros((*lead, image.shape[2] if image.ndim == 3 else 1), image.dtype)
    # remap takes a 2D map of under 32767 rows and columns: lay any set of points out as one.
    cols = REMAP_COLUMNS
    rows = -(-len(flat) // cols)
    grid = np.zeros((rows * cols, 2), np.float32)
    grid[:len(flat)] = flat
    mx = (grid[:, 0] * w - 0.5).reshape(rows, cols)
    my = (grid[:, 1] * h - 0.5).reshape(rows, cols)
    out = cv2.remap(image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * cols, -1)[:len(flat)].reshape(*lead, -1)


def push_pull(colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill an (H, W, C) image where `weight` (H, W) is 0 from where it is known: averages over a
    pyramid, each hole taking the finest level that reaches known pixels. Smooth, no streaks."""
    levels = [(colour * weight[..., None], weight)]
    while min(levels[-1][1].shape) > 2:
        c, w = levels[-1]
        levels.append((cv2.pyrDown(c), cv2.pyrDown(w)))
    c, w = levels[-1]
    out: np.ndarray = c / np.maximum(w, 1e-6)[..., None]
    for c, w in reversed(levels[:-1]):
        coarse = cv2.resize(out, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        trust = np.clip(w, 0, 1)[..., None]
        out = c / np.maximum(w, 1e-6)[..., None] * trust + coarse * (1 - trust)
    return out.astype(np.float32)


def view_depth(vertices: np.ndarray, faces: np.ndarray, camera_vec: np.ndarray, size: int) -> np.ndarray:
    """Camera-space depth of the nearest surface per pixel (inf where empty), rows = image rows."""
    verts = torch.from_numpy(vertices.astype(np.float32))
    tri = torch.from_numpy(faces.astype(np.int32))
    rast = raster.rasterize(raster.perspective_clip(verts, camera_vec), tri, size, size)
    _, depth = cam.project(vertices, camera_vec)
    d = raster.interpolate(torch.from_numpy(depth.astype(np.float32))[:, None], rast, tri)[..., 0].numpy()
    depth_map: np.ndarray = np.where(rast[..., 3].numpy() > 0, d, np.inf)
    return depth_map


def shown_share(head: HeadModel, seen: np.ndarray, shown: np.ndarray, camera_vec: np.ndarray, resolution: int
                ) -> np.ndarray:
    """(R, R) float in [0, 1]: how much of what a camera shows of each texel's surface with the head's
    vertices (N, 3) at `shown` it shows with them at `seen`: the texel's triangle's projected area (its
    area times how squarely the camera faces it) in the first pose over that in the second; 1 where the
    second shows it no larger, 0 where the first sees it edge-on or from behind. R = resolution, rows = v."""
    def projected(vertices: np.ndarray) -> np.ndarray:
        mesh = trimesh.Trimesh(vertices, head.faces, process=False)
        cosine = cam.view_cosine(mesh.triangles_center, mesh.face_normals, camera_vec)
        area: np.ndarray = mesh.area_faces * np.maximum(cosine, 0)
        return area

    a_seen, a_shown = projected(seen), projected(shown)
    per_face = np.where(a_shown > a_seen, a_seen / np.maximum(a_shown, 1e-12), 1.0)
    face = _texel_faces(head, resolution)
    out: np.ndarray = np.where(face >= 0, per_face[np.maximum(face, 0)], 1.0).astype(np.float32)
    return out


def _texel_faces(head: HeadModel, resolution: int) -> np.ndarray:
    """(R, R) int64: the face each UV texel lies in, -1 where none (rows = v)."""
    rast = raster.rasterize(raster.uv_clip(head.uv), torch.from_numpy(head.faces_uv.astype(np.int32)),
                            resolution, resolution)
    out: np.ndarray = rast[..., 3].numpy().astype(np.int64) - 1
    return out


def surface_texels(head: HeadModel, vertices: np.ndarray, resolution: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per UV texel (R = resolution, rows = v): the 3D surface point (R, R, 3) float32, its unit normal
    (R, R, 3) float32, whether a triangle covers it (R, R) bool and its part id (R, R) int64 (PART_ID, or
    EYE_SACK)."""
    rast = raster.rasterize(raster.uv_clip(head.uv), torch.from_numpy(head.faces_uv.astype(np.int32)),
                            resolution, resolution)
    tri = torch.from_numpy(head.faces.astype(np.int32))
    normals = trimesh.Trimesh(vertices, head.faces, process=False).vertex_normals.astype(np.float32)
    pts = raster.interpolate(torch.from_numpy(vertices.astype(np.float32)), rast, tri).numpy()
    nrm = raster.interpolate(torch.from_numpy(normals), rast, tri).numpy()
    nrm /= np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-8)
    # A texel's part is its triangle's: interpolated ids would blend skin into cavity (0..3) and round to
    # an eyeball. Eye sacks are skin by part but never seen like skin: they get an id of their own here.
    face = np.maximum(rast[..., 3].numpy().astype(np.int64) - 1, 0)
    part = head.face_part[face].astype(np.int64)
    if head.part_masks is not None:
        part[head.part_masks.eye_sack_faces[face]] = EYE_SACK
    return pts, nrm, rast[..., 3].numpy() > 0, part


def facing_weight(points: np.ndarray, normals: np.ndarray, camera_vec: np.ndarray) -> np.ndarray:
    """How squarely the camera sees surface points (..., 3) with unit normals (..., 3): the cosine of the
    angle between normal and view ray over FACING_FULL, clipped to [0, 1] (0 facing away)."""
    out: np.ndarray = np.clip(cam.view_cosine(points, normals, camera_vec) / FACING_FULL, 0, 1)
    return out


@dataclass(frozen=True)
class SkinShown:
    """Texels that, seen at a graze, count as seen only as far as the photo shows bare skin where they
    land (project_texture)."""

    bare: np.ndarray      # (S, S, 1) float in [0, 1]: how surely each pixel shows the head's bare skin
    needs: np.ndarray     # (R, R) bool: the texels it applies to

    def at(self, uv: np.ndarray, facing: np.ndarray) -> np.ndarray:
        """(R, R) float: how far the photo shows each texel's surface, landing at `uv` (R, R, 2) and seen
        as squarely as `facing` (R, R; facing_weight): where the texel needs it, its pixel's bare skin,
        and the rest as far as the texel faces the camera; 1 elsewhere."""
        bare = sample_image(self.bare, uv)[..., 0]
        out: np.ndarray = np.where(self.needs, bare + (1.0 - bare) * facing, 1.0)
        return out


def _observe(points: np.ndarray, normals: np.ndarray, covered: np.ndarray, image: np.ndarray, matte: np.ndarray,
             camera_vec: np.ndarray, depth_map: np.ndarray, skin: SkinShown | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Colour and confidence of surface points as the photo shows them (`skin`: see SkinShown)."""
    uv, depth = cam.project(points, camera_vec)
    facing = facing_weight(points, normals, camera_vec)
    inside = (uv >= 0).all(-1) & (uv <= 1).all(-1)
    size = depth_map.shape[0]
    px = np.clip((uv * size).astype(np.int64), 0, size - 1)
    visible = depth <= depth_map[px[..., 1], px[..., 0]] + VISIBILITY_EPS
    in_matte = sample_image(matte, uv)[..., 0] > MATTE_MIN
    weight = facing * (covered & inside & visible & in_matte)
    if skin is not None:
        weight = weight * skin.at(uv, facing)
    return sample_image(image, uv), weight


def match_mirror(colour: np.ndarray, weight: np.ndarray, m_colour: np.ndarray, m_weight: np.ndarray,
                 region: np.ndarray) -> np.ndarray:
    """The mirror image (R, R, 3) made to pass for the side it stands in for, on texels of `region` (R, R).

    `colour`/`weight` are the photo's own view of each texel, `m_colour`/`m_weight` its mirror's (the
    texel mirrored across the head's x = 0, as the photo shows that). Two things tell a mirrored side from
    the real one:
    - light: a portrait lit from one side has one bright cheek and one in shade, so a texel coloured by its
      mirror takes the other side's light (a pale patch on a shaded cheek, and in the portrait view itself
      a seam where the graze hands over to the mirror). The ratio of the photo's colour to the mirror's,
      where both are well seen (weights over MIRROR_OVERLAP), is spread over the region and smoothed over
      MIRROR_LIGHT_SIGMA of the texture (shading changes slowly), and scales the mirror colour;
    - detail: no face is exactly symmetric and no fit exact, so mirrored edges (the cheek's outline against
      the hair, the ear's rim) land a few millimetres off the ones the photo shows; next to them they read
      as a ghost outline. The mirror colour is blurred over MIRROR_BLUR_SIGMA of the texture, weighted by
      its confidence: its colours stay, its misplaced edges soften."""
    r = colour.shape[0]
    blur = MIRROR_BLUR_SIGMA * r
    w = cv2.GaussianBlur(m_weight.astype(np.float32), (0, 0), blur)
    soft = cv2.GaussianBlur((m_colour * m_weight[..., None]).astype(np.float32), (0, 0), blur)
    m_soft = np.where(w[..., None] > 1e-3, soft / np.maximum(w, 1e-6)[..., None], m_colour)
    both = region & (weight > MIRROR_OVERLAP) & (m_weight > MIRROR_OVERLAP)
    if both.sum() < MIN_OVERLAP_TEXELS:   # the photo shows too little of both sides to compare their light
        return m_soft.astype(np.float32)
    log_ratio = np.where(both[..., None], np.log(colour + LIGHT_EPS) - np.log(m_soft + LIGHT_EPS), 0.0)
    light = push_pull(log_ratio.astype(np.float32), both.astype(np.float32))
    light = cv2.GaussianBlur(light, (0, 0), MIRROR_LIGHT_SIGMA * r)
    matched = (m_soft + LIGHT_EPS) * np.exp(light) - LIGHT_EPS
    out: np.ndarray = np.where(region[..., None], np.clip(matched, 0, 1), m_colour).astype(np.float32)
    return out


def _visibility_depth(depth_map: np.ndarray) -> np.ndarray:
    """The depth a point must not exceed to count as seen at each pixel: the farthest surface within a
    pixel of it. A texel lands anywhere in its pixel, and where the surface turns away (the side of a nose
    turned from the camera) its depth changes by more than the tolerance across one pixel: tested against
    the pixel centre alone, a seen texel fails and shows as a dark fleck of fill in the portrait view."""
    finite = np.where(np.isfinite(depth_map), depth_map, -np.inf).astype(np.float32)
    farthest = cv2.dilate(finite, np.ones((3, 3), np.uint8))
    out: np.ndarray = np.where(np.isfinite(depth_map), np.maximum(depth_map, farthest), np.inf)
    return out


def project_texture(head: HeadModel, vertices: np.ndarray, image: np.ndarray, matte: np.ndarray,
                    camera_vec: np.ndarray, resolution: int,
                    skin_fallback: tuple[float, float, float] | None = None,
                    behind_fill: Callable[[np.ndarray], np.ndarray] | None = None,
                    trust: np.ndarray | None = None, bare_skin: np.ndarray | None = None) -> Projection:
    """Neural-texture colours: the photo where the surface is seen, its mirror image where only the
    other side is seen, and region priors (skin tone from the photo) elsewhere. `behind_fill(points)`
    colours unseen skin behind the ears (the back of the skull and neck), where the nearest seen texel
    would only smear the face's edge round the head. `trust` (R, R) in [0, 1] scales how far the photo
    colours each texel (the rest is its mirror or the fill; default 1).

    `bare_skin` (S, S) in [0, 1]: how surely each pixel of the photo shows the head's bare skin
    (whole_head.bare_skin). Below the brows, hair in the photo hangs in front of the head rather than
    lying on it, and what lies beside the jaw and neck (hair, a collar, the background at the outline)
    is not their surface: there a skin texel the photo sees at a graze counts as seen only as far as its
    pixel shows skin, and takes the rest from its mirror or the fill of the skin round it (SkinShown).
    Every side view stretches those texels: taken from the pixels beside the face they were streaks of
    collar down the neck's sides and a dark smear between the jaw and the light fill behind it. Texels
    the photo sees squarely keep its colour whatever it shows (a collar, a shadow under the jaw): the
    portrait view and the face mesh's jaw line on a turned view need them."""
    img = image.astype(np.float32) / 255.0
    matte_f = matte.astype(np.float32)
    depth_map = _visibility_depth(view_depth(vertices, head.faces, camera_vec, image.shape[0]))
    pts, nrm, covered, part = surface_texels(head, vertices, resolution)
    is_skin = part == PART_ID["skin"]
    shows = None
    if bare_skin is not None:
        brow_y = vertices[[head.landmarks["brow_left"], head.landmarks["brow_right"]], 1].mean()
        shows = SkinShown(bare_skin.astype(np.float32)[..., None], is_skin & (pts[..., 1] < brow_y))
    colour, weight = _observe(pts, nrm, covered, img, matte_f, camera_vec, depth_map, shows)
    if trust is not None:
        weight = weight * trust
    mirror = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    m_colour, m_weight = _observe(pts * mirror, nrm * mirror, covered, img, matte_f, camera_vec, depth_map, shows)
    # Only skin is mirrored: an eyeball or the mouth interior has its own visible counterpart.
    m_colour = match_mirror(colour, weight, m_colour, m_weight, is_skin)
    m_weight = m_weight * is_skin * (1 - weight)

    skin_texels = (weight > 0.5) & is_skin
    if skin_texels.sum() > 50:
        skin = np.median(colour[skin_texels], axis=0)
    else:
        skin = np.asarray(skin_fallback or (0.75, 0.6, 0.5))
    prior = np.asarray(prior_texture(head, skin, resolution, background=tuple(skin)), dtype=np.float32)

    total = weight + m_weight
    blended = (colour * weight[..., None] + m_colour * m_weight[..., None]) / np.maximum(total, 1e-6)[..., None]
    seen = np.clip(total, 0, 1)
    # Skin and eyeballs the photo does not show take the colours of the parts it does show nearby (hair
    # line, jaw line, the visible sclera), spread smoothly (push-pull) rather than smeared along rows.
    # The mouth interior, teeth and tongue keep their region priors.
    fill = prior.copy()
    for parts in ((PART_ID["skin"],), (PART_ID["eyeball_left"], PART_ID["eyeball_right"])):
        region = np.isin(part, parts) & covered
        known = (seen > 0.3) & region
        if known.sum() < 10:
            continue
        filled = push_pull(blended, known.astype(np.float32))
        fill = np.where(region[..., None], filled, fill)
    if behind_fill is not None:
        ear_z = vertices[[head.landmarks["ear_left"], head.landmarks["ear_right"]], 2].mean()
        behind = np.clip((ear_z - pts[..., 2]) / BEHIND_BLEND, 0, 1)[..., None] * (part == PART_ID["skin"])[..., None]
        fill = fill * (1 - behind) + behind_fill(pts) * behind
    texture = blended * seen[..., None] + fill * (1 - seen[..., None])
    facing = facing_weight(pts, nrm, camera_vec)
    shown = np.ones_like(seen) if shows is None else shows.at(cam.project(pts, camera_vec)[0], facing)
    return Projection(texture=np.clip(texture, 0, 1).astype(np.float32), seen=seen.astype(np.float32),
                      direct=np.clip(weight, 0, 1).astype(np.float32), points=pts, covered=covered,
                      facing=(facing * covered).astype(np.float32), part=part, shown=shown.astype(np.float32))


def fit_to_pixels(values: np.ndarray, points: np.ndarray, front_uv: np.ndarray, front_shown: np.ndarray,
                  resolution: int, iterations: int, free: np.ndarray | None = None) -> np.ndarray:
    """The change of the neural texture (R, R, C) after which a render reads per-pixel `values` (P, C)
    (least squares; R = resolution, rows = v); texels no pixel reads, and texels not `free` ((R, R) bool,
    all by default), do not change: the pixels that read those are fitted by the others alone.

    How a render reads the texture is linear (avatar.planes): each front-plane texel samples it
    bilinearly at its mesh point's UV, each rendered point samples the front plane bilinearly at its
    x, y. points (P, 3): the rendered surface point of each pixel; front_uv (H, W, 2): the UV each
    front-plane texel reads (rows = y, as the xy plane); front_shown (H, W) bool: where the front plane
    reads the texture at all. Solved by `iterations` Jacobi steps, each moving a texel by the mean
    residual of the pixels that read it: the first alone is that mean (a blur of the values over a
    front-plane texel's footprint), the later ones restore the detail the front plane can hold.

    Damped (Tikhonov, FIT_DAMPING): a pixel on an occlusion edge reads only a sliver of texture (the rest
    is static hair), and undamped the few texels it reads would swing to whatever explains the whole
    pixel, step after step, up to the logit limit: streaks of saturated colour where another view shows
    those texels whole (beside an earring at +30 deg on a talking-head frame)."""
    grid = torch.from_numpy(front_uv * 2 - 1).to(torch.float64)[None]
    shown = torch.from_numpy(front_shown)
    xy = SIDE_PLANES.index("xy")
    at = plane_coordinates(torch.from_numpy(points).to(torch.float64), SIDE_PLANES)[xy:xy + 1, None]
    held = torch.zeros(resolution, resolution, dtype=torch.bool) if free is None else \
        torch.from_numpy(~np.asarray(free, dtype=bool))

    def read(texture: torch.Tensor) -> torch.Tensor:
        front = F.grid_sample(texture, grid, mode="bilinear", padding_mode="border", align_corners=False) * shown
        return F.grid_sample(front, at, mode="bilinear", padding_mode="zeros", align_corners=False)[0, :, 0]

    target = torch.from_numpy(np.asarray(values, dtype=np.float64)).t()       # (C, P)
    probe = torch.zeros(1, len(target), resolution, resolution, dtype=torch.float64, requires_grad=True)

    def carried(residual: torch.Tensor) -> torch.Tensor:
        """The transpose of `read` applied to per-pixel values (C, P), on the free texels: the read is
        linear, so that is the gradient of their inner product with the read."""
        (grad,) = torch.autograd.grad((read(probe) * residual).sum(), probe)
        return grad.masked_fill(held, 0.0)

    weights = carried(torch.ones_like(target))   # how much the pixels read each texel, in pixels
    change = torch.zeros_like(probe, requires_grad=False)
    for _ in range(iterations):
        change = change + (carried(target - read(change)) - FIT_DAMPING * change) / (weights + FIT_DAMPING)
    out: np.ndarray = change[0].permute(1, 2, 0).numpy().astype(np.float32)
    return out
