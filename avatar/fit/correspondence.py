"""Which surface point of a head model each MediaPipe face-mesh point is: the one place for it.

MediaPipe's face mesh reports 468 points (plus 10 iris points in the refined, 478-point layout) with a
fixed meaning each. Their positions on a neutral face come from MediaPipe's canonical face model
(Apache-2.0, stored in avatar/data with its notice). For a head model we register that canonical face
on the neutral head and bind each point to a triangle of the head (triangle id and barycentric
weights), so the point follows the mesh through identity, expression and gaze.

Registration, deterministic: an affine map from named anchors (eye corners, mouth corners, lips,
nose, chin, brows) moves the canonical face onto the head; a thin-plate warp of the anchors'
residuals bends it further; then each point snaps to the closest point of the head's skin. The lid
and inner-lip contours are laid along the head's own eye and mouth openings, and lip and lid points
are kept on their own side (an upper-lip point never binds to the lower lip, which the jaw moves;
an upper-lid point binds to the lid that blinks), so the binding holds when the mouth opens or the
eyes close. The ten iris points bind to the eyeball under the pupil, on a ring of the canonical iris
radius, so they turn with the gaze. A FaceVerse model that ships its own `mediapipe_keypoints`
vertex indices uses those instead. Computed once per head model id and kept for the process.

`mean_face(head)` is the canonical face itself (eyes opened to a relaxed aperture, lips closed) laid on
the head: the landmark fit's neutral shape.

Left/right are the subject's own: the subject's left is world +x (MediaPipe's FACEMESH_LEFT_*).
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.spatial import cKDTree

from avatar.expressions import index_of
from avatar.head_model import EYEBALL_PARTS, PART_ID, HeadModel

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "mediapipe_face_model.npy"
MESH_POINTS = 468
NUM_POINTS = 478
# Iris centres in the refined layout; each is followed by its 4-point ring (world +x, up, -x, down).
RIGHT_IRIS, LEFT_IRIS = 468, 473
IRIS_CENTRES = (RIGHT_IRIS, LEFT_IRIS)
IRIS_RINGS = (tuple(range(469, 473)), tuple(range(474, 478)))

# MediaPipe index sets (from FACEMESH_* in MediaPipe's face_mesh_connections).
_RIGHT_EYE_UPPER = (246, 161, 160, 159, 158, 157, 173)
_RIGHT_EYE_LOWER = (7, 163, 144, 145, 153, 154, 155)
_LEFT_EYE_UPPER = (466, 388, 387, 386, 385, 384, 398)
_LEFT_EYE_LOWER = (249, 390, 373, 374, 380, 381, 382)
_EYE_CORNERS = (33, 133, 362, 263)
_BROWS = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107, 276, 283, 282, 295, 285, 300, 293, 334, 296, 336)
_NOSE = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45, 220, 115, 48, 64)
_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
         78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415)
# The rings round each eye outside the lid margins (lid skin, crease, orbital rim): the mesh model places
# them from the eye's shape, not from the lids' motion, so on a blink they stay while the head model's lid
# skin follows the lid down.
PERIOCULAR = (247, 30, 29, 27, 28, 56, 190, 130, 25, 110, 24, 23, 22, 26, 112, 243,
              113, 225, 224, 223, 222, 221, 189, 226, 31, 228, 229, 230, 231, 232, 233, 244,
              467, 260, 259, 257, 258, 286, 414, 359, 255, 339, 254, 253, 252, 256, 341, 463,
              342, 445, 444, 443, 442, 441, 413, 446, 261, 448, 449, 450, 451, 452, 453, 464)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)

REGIONS: dict[str, np.ndarray] = {
    "eyes": np.array(_RIGHT_EYE_UPPER + _RIGHT_EYE_LOWER + _LEFT_EYE_UPPER + _LEFT_EYE_LOWER + _EYE_CORNERS
                     + IRIS_CENTRES),
    "brows": np.array(_BROWS),
    "nose": np.array(_NOSE),
    "mouth": np.array(_LIPS),
    "contour": np.array(FACE_OVAL),
}

# Head-model landmark name -> MediaPipe index, for the registration. The head's `nose_tip` is its most
# forward point, which is MediaPipe's 4 (pronasale); 1 lies a little below it. The lids are not anchors:
# their points follow the head's own eye opening (see _MARGINS).
ANCHORS = {
    "eye_outer_right": 33, "eye_inner_right": 133, "eye_inner_left": 362, "eye_outer_left": 263,
    "mouth_corner_right": 61, "mouth_corner_left": 291, "lip_upper": 13, "lip_lower": 14,
    "lip_upper_outer": 0, "lip_lower_outer": 17, "nose_tip": 4, "nose_bridge": 168, "chin": 152,
    "brow_right": 105, "brow_left": 334, "brow_inner_right": 107, "brow_inner_left": 336,
}
ANCHOR_SMOOTHING = 1e-4     # thin-plate smoothing of the anchor residuals (head units squared)
SNAP_CANDIDATES = 64        # triangles (by centroid distance) searched for each point's closest point
MOVES = 0.25                # a triangle moves with a blendshape when it reaches this share of its maximum


class CorrespondenceError(ValueError):
    """A head model the MediaPipe points cannot be bound to; the message says what is missing."""


@dataclass(frozen=True, eq=False)
class Correspondence:
    """Each of the 478 MediaPipe points as a point of the head mesh: triangle ids and barycentrics.

    `eye` is -1 for points on the skin, 0 for the left eyeball and 1 for the right (the iris points),
    which turn with the gaze about `HeadModel.eye_centers`.
    """

    model_id: str
    triangles: np.ndarray   # (478,) int32 indices into HeadModel.faces
    bary: np.ndarray        # (478, 3) float32, rows sum to 1
    eye: np.ndarray         # (478,) int8

    def interpolate(self, head: HeadModel, values: np.ndarray) -> np.ndarray:
        """Per-vertex values (..., N, D) -> the same at the 478 points (..., 478, D)."""
        corners = np.asarray(values)[..., head.faces[self.triangles], :]       # (..., 478, 3, D)
        at_points: np.ndarray = np.einsum("...pcd,pc->...pd", corners, self.bary)
        return at_points

    def points(self, head: HeadModel, vertices: np.ndarray) -> np.ndarray:
        """The 478 points (478, 3) float64 on a posed mesh, e.g. `head.posed(expression, identity, eye)`."""
        return self.interpolate(head, np.asarray(vertices, dtype=np.float64))


def canonical_face() -> np.ndarray:
    """MediaPipe's canonical face (478, 3) float64 in centimetres, +y up, +z out of the face."""
    face: np.ndarray = _canonical_face().copy()
    return face


@functools.lru_cache(maxsize=1)
def _canonical_face() -> np.ndarray:
    pts: np.ndarray = np.load(DATA_FILE).astype(np.float64)
    if pts.shape != (NUM_POINTS, 3):
        raise CorrespondenceError(f"{DATA_FILE} must hold (478, 3) points, got {pts.shape}")
    pts.setflags(write=False)
    return pts


def correspondence(head: HeadModel) -> Correspondence:
    """The binding of MediaPipe's 478 points to `head`, computed once per head model id on the model itself:
    a personalised head (an avatar's, with its shape correction) shares its model's id and topology, and
    bound on its corrected surface first, the model's binding would depend on which head asked first."""
    head = head.base_model
    with _cache_lock:
        found = _cache.get(head.model_id)
    if found is None:
        keypoints = head.faceverse.mediapipe_keypoints if head.faceverse is not None else None
        found = (_from_keypoints(head, np.asarray(keypoints, dtype=np.int64))
                 if keypoints is not None and len(keypoints) >= MESH_POINTS else _register(head))
        with _cache_lock:
            found = _cache.setdefault(head.model_id, found)
    return found


_cache: dict[str, Correspondence] = {}
_cache_lock = threading.Lock()


def mean_face(head: HeadModel) -> np.ndarray:
    """MediaPipe's canonical (mean) face in the head's coordinates: (478, 3) float64.

    The least-squares affine map of the canonical face onto the head's bound points. Where the head's
    proportions differ from the mean face, these positions differ from `Correspondence.points` on the
    neutral head; the landmark fit uses them as its neutral shape, so a mean face fits with zero
    expression, and `shape_offsets` carries the difference back onto the mesh.
    """
    corr = correspondence(head)
    canon = _closed_lips(_open_eyes(_canonical_face()))
    surface = corr.points(head, head.vertices)
    return _apply_affine(_fit_affine(canon[:MESH_POINTS], surface[:MESH_POINTS]), canon)


# A relaxed, open eye as fractions of the eye's width (corner to corner, ~30 mm in adults): the upper lid
# 4.5 mm above the pupil centre and the lower lid 5.5 mm below it (the margin-reflex distances MRD1 and
# MRD2), the pupil 1.5 mm above the line through the corners. MediaPipe's canonical face has narrower,
# lower-set eyes, which would read as eyeWide on most faces.
UPPER_LID_ABOVE_PUPIL = 0.15
LOWER_LID_BELOW_PUPIL = 0.18
PUPIL_ABOVE_CORNERS = 0.05


def _corner_line_y(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y at `x` on the line through the eye corners `a` and `b` (xy)."""
    y: np.ndarray = a[1] + (x - a[0]) * (b[1] - a[1]) / (b[0] - a[0])
    return y


def _open_eyes(canon: np.ndarray) -> np.ndarray:
    """The canonical face with its lid margins and irises moved to the relaxed open eye above."""
    out: np.ndarray = canon.copy()
    eyes = ((33, 133, _RIGHT_EYE_UPPER, _RIGHT_EYE_LOWER, RIGHT_IRIS, IRIS_RINGS[0]),
            (263, 362, _LEFT_EYE_UPPER, _LEFT_EYE_LOWER, LEFT_IRIS, IRIS_RINGS[1]))
    for outer, inner, upper, lower, iris, ring in eyes:
        a, b = canon[outer], canon[inner]
        width = float(np.linalg.norm((b - a)[:2]))
        pupil = _corner_line_y(a, b, canon[iris, 0]) + PUPIL_ABOVE_CORNERS * width
        out[[iris, *ring], 1] += pupil - canon[iris, 1]
        for idx, height in ((list(upper), (PUPIL_ABOVE_CORNERS + UPPER_LID_ABOVE_PUPIL) * width),
                            (list(lower), (PUPIL_ABOVE_CORNERS - LOWER_LID_BELOW_PUPIL) * width)):
            rise = canon[idx, 1] - _corner_line_y(a, b, canon[idx, 0])
            peak = rise[np.argmax(np.abs(rise))]
            out[idx, 1] = _corner_line_y(a, b, canon[idx, 0]) + rise * (height / peak)
    return out


# The inner lip contours, upper and lower, as pairs facing each other from corner to corner.
_INNER_UPPER_LIP = (191, 80, 81, 82, 13, 312, 311, 310, 415)
_INNER_LOWER_LIP = (95, 88, 178, 87, 14, 317, 402, 318, 324)


def _closed_lips(canon: np.ndarray) -> np.ndarray:
    """The canonical face with its lips meeting. Its lips are parted (the inner gap is 0.11 of the mouth's
    width); a neutral face's are closed, and the parted mean face read every closed mouth as a raised
    lower lip (mouthShrugLower 0.5-0.8 on neutral portraits). Each facing pair meets halfway."""
    out: np.ndarray = canon.copy()
    upper, lower = list(_INNER_UPPER_LIP), list(_INNER_LOWER_LIP)
    middle = 0.5 * (canon[upper, 1] + canon[lower, 1])
    out[upper, 1] = middle
    out[lower, 1] = middle
    return out


# -- registration ---------------------------------------------------------------------------------

def _register(head: HeadModel) -> Correspondence:
    canon = _canonical_face()
    anchors = {name: mp for name, mp in ANCHORS.items() if name in head.landmarks}
    if len(anchors) < 8:
        raise CorrespondenceError(
            f"head model {head.model_id!r} names only {len(anchors)} of the landmarks needed to place the "
            f"MediaPipe points (at least 8 of {sorted(ANCHORS)}), and has no mediapipe_keypoints")
    src = canon[list(anchors.values())]
    dst = head.vertices[[head.landmarks[n] for n in anchors]].astype(np.float64)
    affine = _fit_affine(src, dst)
    placed = _apply_affine(affine, canon)
    bend = RBFInterpolator(src, dst - _apply_affine(affine, src), kernel="thin_plate_spline",
                           smoothing=ANCHOR_SMOOTHING)
    placed[:MESH_POINTS] += bend(canon[:MESH_POINTS])
    triangles = np.zeros(NUM_POINTS, np.int64)
    bary = np.zeros((NUM_POINTS, 3))
    for allowed, idx, targets in _skin_groups(head, canon, placed):
        triangles[idx], bary[idx] = _snap(head.vertices, head.faces, np.flatnonzero(allowed), targets)
    scale = np.cbrt(abs(np.linalg.det(affine[:, :3])))
    for side, (centre, ring) in enumerate(zip(IRIS_CENTRES, IRIS_RINGS)):
        iris = [centre, *ring]
        eye_idx = 1 - side                               # IRIS_CENTRES is (right, left); eyes are (left, right)
        targets = _iris_targets(head, eye_idx, (canon[list(ring)] - canon[centre]) * scale)
        faces = np.flatnonzero(head.face_part == PART_ID[EYEBALL_PARTS[eye_idx]])
        triangles[iris], bary[iris] = _snap(head.vertices, head.faces, faces, targets)
    return _finish(head, triangles, bary)


# Margins: the lid and inner-lip contours, each from one corner to the other. Their points are laid
# along the head's own opening (the border between its skin and the eye or mouth pocket) at the same
# fraction of the corner-to-corner axis as on the canonical face.
_MARGINS = (
    # (corners (MediaPipe), upper contour, lower contour, blendshape that moves one side, moving side)
    ((263, 362), _LEFT_EYE_UPPER, _LEFT_EYE_LOWER, "eyeBlinkLeft", "upper"),
    ((33, 133), _RIGHT_EYE_UPPER, _RIGHT_EYE_LOWER, "eyeBlinkRight", "upper"),
    ((61, 291), (191, 80, 81, 82, 13, 312, 311, 310, 415), (95, 88, 178, 87, 14, 317, 402, 318, 324), "jawOpen",
     "lower"),
)


def _skin_groups(head: HeadModel, canon: np.ndarray, placed: np.ndarray
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (allowed faces mask, point indices, targets) per group: margins on the openings, lips and lids
    kept to their own side, every other point free on the skin."""
    skin = _open_skin(head)
    jaw = _moves(head, "jawOpen")
    upper_mouth, lower_mouth = _mouth_sides(canon)
    taken: set[int] = set()
    for corners, upper, lower, shape, moving_side in _MARGINS:
        moves = _moves(head, shape)
        for side, idx in (("upper", upper), ("lower", lower)):
            allowed = skin & (moves if side == moving_side else ~moves)
            targets = _along_margin(head, allowed, skin, canon, placed, corners, idx)
            taken.update(idx)
            yield allowed, np.asarray(idx, np.int64), targets
    for allowed, side_points in ((skin & ~jaw, upper_mouth), (skin & jaw, lower_mouth)):
        untaken = [i for i in side_points if i not in taken]
        taken.update(untaken)
        yield allowed, np.asarray(untaken, np.int64), placed[untaken]
    free = np.asarray([i for i in range(MESH_POINTS) if i not in taken], np.int64)
    yield skin, free, placed[free]


def _open_skin(head: HeadModel) -> np.ndarray:
    """(F,) bool: the outer skin, without the eye sacks (pockets of the skin behind the lids)."""
    skin: np.ndarray = head.face_part == PART_ID["skin"]
    if head.part_masks is not None:
        skin = skin & ~head.part_masks.eye_sack_faces
    return skin


def _along_margin(head: HeadModel, allowed: np.ndarray, skin: np.ndarray, canon: np.ndarray, placed: np.ndarray,
                  corners: tuple[int, int], idx: Sequence[int]) -> np.ndarray:
    """Targets (len(idx), 3) on the border of `skin` owned by `allowed` faces, between the two corners."""
    idx = list(idx)
    a, b = placed[corners[0]], placed[corners[1]]
    axis = (b - a)[:2]
    width = float(np.linalg.norm(axis))
    verts = head.vertices.astype(np.float64)
    border = _border_vertices(head.faces, skin, allowed)
    rel = verts[border] - a
    s = rel[:, :2] @ axis / width ** 2
    off = np.abs(rel[:, 0] * axis[1] - rel[:, 1] * axis[0]) / width       # distance from the corner line
    near = (s > -0.05) & (s < 1.05) & (off < 0.5 * width) & (verts[border, 2] > min(a[2], b[2]) - 0.25 * width)
    if near.sum() < 3:
        return placed[idx]                                                # no opening here: snap freely
    order = np.argsort(s[near])
    s_sorted, pts = s[near][order], verts[border][near][order]
    ca, cb = canon[corners[0]], canon[corners[1]]
    caxis = (cb - ca)[:2]
    t = (canon[idx] - ca)[:, :2] @ caxis / float(caxis @ caxis)
    targets: np.ndarray = np.stack([np.interp(t, s_sorted, pts[:, k]) for k in range(3)], axis=1)
    return targets


def _border_vertices(faces: np.ndarray, skin: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Vertices on edges that border the skin (used by one skin face only) and belong to an allowed face."""
    tri = faces[skin]
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    owner_allowed = np.tile(allowed[skin], 3)
    _, inverse, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    single = counts[inverse.reshape(-1)] == 1
    return np.unique(edges[single & owner_allowed])


def _mouth_sides(canon: np.ndarray) -> tuple[list[int], list[int]]:
    """Canonical points around the mouth, split by the lip line: above (upper) and below (lower, with the jaw)."""
    corners = canon[[61, 291]]
    line_y = 0.5 * (canon[13, 1] + canon[14, 1])
    half = 0.5 * abs(corners[1, 0] - corners[0, 0])
    near = (np.abs(canon[:MESH_POINTS, 0]) < 0.95 * half) & (np.abs(canon[:MESH_POINTS, 1] - line_y) < 0.6 * half)
    near[[61, 291, 78, 308]] = False                     # the corners belong to both lips
    idx = np.flatnonzero(near)
    upper = [int(i) for i in idx if canon[i, 1] > line_y]
    lower = [int(i) for i in idx if canon[i, 1] <= line_y]
    return upper, lower


def _moves(head: HeadModel, blendshape: str) -> np.ndarray:
    """(F,) bool: faces whose mean motion under the blendshape reaches MOVES of its largest motion on skin."""
    motion = np.linalg.norm(head.expression_basis[index_of(blendshape)], axis=1)
    per_face = motion[head.faces].mean(axis=1)
    peak = per_face[head.face_part == PART_ID["skin"]].max(initial=0.0)
    if peak <= 0:
        raise CorrespondenceError(f"head model {head.model_id!r}: blendshape {blendshape} moves no skin")
    moving: np.ndarray = per_face >= MOVES * peak
    return moving


def _iris_targets(head: HeadModel, eye: int, ring_offsets: np.ndarray) -> np.ndarray:
    """Pupil and iris-ring positions (5, 3) on the neutral eyeball `eye` (0 left, 1 right)."""
    part = EYEBALL_PARTS[eye]
    verts = head.vertices[head.part_vertices(part)].astype(np.float64)
    if len(verts) == 0:
        raise CorrespondenceError(f"head model {head.model_id!r} has no {part} to place the iris on")
    centre = head.eye_centers[eye].astype(np.float64)
    name = ("pupil_left", "pupil_right")[eye]
    pupil = (head.vertices[head.landmarks[name]].astype(np.float64) if name in head.landmarks
             else verts[np.argmax(verts[:, 2])])
    radius = np.linalg.norm(pupil - centre)
    # Ring points: the canonical ring offsets laid on the sphere through the pupil.
    ring = pupil + ring_offsets
    ring = centre + radius * (ring - centre) / np.linalg.norm(ring - centre, axis=1, keepdims=True)
    return np.vstack([pupil, ring])


def _from_keypoints(head: HeadModel, keypoints: np.ndarray) -> Correspondence:
    if keypoints.min() < 0 or keypoints.max() >= head.num_vertices:
        raise CorrespondenceError(f"head model {head.model_id!r}: mediapipe_keypoints index outside the mesh")
    canon = _canonical_face()
    triangles = np.zeros(NUM_POINTS, np.int64)
    bary = np.zeros((NUM_POINTS, 3))
    count = min(len(keypoints), NUM_POINTS)
    first_face = np.full(head.num_vertices, -1, np.int64)
    for corner in (2, 1, 0):                             # the earliest face using each vertex
        first_face[head.faces[::-1, corner]] = np.arange(len(head.faces))[::-1]
    for i, v in enumerate(keypoints[:count]):
        f = first_face[v]
        triangles[i] = f
        bary[i, list(head.faces[f]).index(v)] = 1.0
    if count < NUM_POINTS:                               # 468 keypoints: the iris from the eyeballs
        outer = [ANCHORS["eye_outer_right"], ANCHORS["eye_outer_left"]]
        src, dst = canon[outer], head.vertices[keypoints[outer]].astype(np.float64)
        scale = np.linalg.norm(dst[0] - dst[1]) / np.linalg.norm(src[0] - src[1])
        for side, (centre, ring) in enumerate(zip(IRIS_CENTRES, IRIS_RINGS)):
            eye_idx = 1 - side
            targets = _iris_targets(head, eye_idx, (canon[list(ring)] - canon[centre]) * scale)
            faces = np.flatnonzero(head.face_part == PART_ID[EYEBALL_PARTS[eye_idx]])
            idx = [centre, *ring]
            triangles[idx], bary[idx] = _snap(head.vertices, head.faces, faces, targets)
    return _finish(head, triangles, bary)


def _finish(head: HeadModel, triangles: np.ndarray, bary: np.ndarray) -> Correspondence:
    part = head.face_part[triangles]
    eye = np.where(part == PART_ID["eyeball_left"], 0, np.where(part == PART_ID["eyeball_right"], 1, -1))
    out = Correspondence(head.model_id, triangles.astype(np.int32), bary.astype(np.float32), eye.astype(np.int8))
    for a in (out.triangles, out.bary, out.eye):
        a.setflags(write=False)
    return out


# -- geometry helpers -----------------------------------------------------------------------------

def _fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(3, 4) least-squares affine map taking src points onto dst points."""
    homog = np.hstack([src, np.ones((len(src), 1))])
    sol, *_ = np.linalg.lstsq(homog, dst, rcond=None)
    affine: np.ndarray = sol.T
    return affine


def _apply_affine(affine: np.ndarray, pts: np.ndarray) -> np.ndarray:
    moved: np.ndarray = pts @ affine[:, :3].T + affine[:, 3]
    return moved


def _snap(vertices: np.ndarray, faces: np.ndarray, allowed: np.ndarray, points: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Closest point of the allowed triangles to each point: (triangle ids (P,), barycentrics (P, 3))."""
    if len(allowed) == 0:
        raise CorrespondenceError("no head-model triangles to bind a group of MediaPipe points to")
    tri = vertices[faces[allowed]].astype(np.float64)                      # (F, 3, 3)
    k = min(SNAP_CANDIDATES, len(allowed))
    _, cand = cKDTree(tri.mean(axis=1)).query(points, k=k)
    cand = cand.reshape(len(points), k)
    bary = _closest_barycentric(points[:, None, :], tri[cand])             # (P, k, 3)
    closest = np.einsum("pkc,pkcd->pkd", bary, tri[cand])
    best = np.argmin(np.linalg.norm(closest - points[:, None, :], axis=2), axis=1)
    rows = np.arange(len(points))
    return allowed[cand[rows, best]], bary[rows, best]


def _closest_barycentric(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentrics (..., 3) of the closest point to p (..., 3) on triangles (..., 3, 3)."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    ab, ac, ap = b - a, c - a, p - a
    d00, d01, d11 = (ab * ab).sum(-1), (ab * ac).sum(-1), (ac * ac).sum(-1)
    d20, d21 = (ap * ab).sum(-1), (ap * ac).sum(-1)
    denom = np.maximum(d00 * d11 - d01 * d01, 1e-30)
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    inside = (v >= 0) & (w >= 0) & (v + w <= 1)
    out = np.stack([1 - v - w, v, w], axis=-1)
    # Outside the triangle the closest point lies on an edge: take the best of the three clamped edges.
    best = np.full(v.shape, np.inf)
    edge_bary = np.zeros_like(out)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        e0, e1 = tri[..., i, :], tri[..., j, :]
        seg = e1 - e0
        t = np.clip(((p - e0) * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-30), 0.0, 1.0)
        d = np.linalg.norm(e0 + t[..., None] * seg - p, axis=-1)
        better = d < best
        best = np.where(better, d, best)
        cand = np.zeros_like(out)
        cand[..., i], cand[..., j] = 1 - t, t
        edge_bary = np.where(better[..., None], cand, edge_bary)
    return np.where(inside[..., None], out, edge_bary)
