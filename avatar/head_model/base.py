"""The head model interface: one dataclass, whatever the source (embedded or FaceVerse)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from scipy.spatial import cKDTree

from avatar.expressions import EYE_BLINKS, NUM_EXPRESSIONS, index_of

# Part ids used in `vertex_part` / `face_part`.
PART_NAMES: tuple[str, ...] = ("skin", "eyeball_left", "eyeball_right", "mouth_cavity", "teeth", "tongue")
PART_ID = {n: i for i, n in enumerate(PART_NAMES)}
# The eyeballs in the order of every per-eye array (eye_centers, the eye 4-vector): the left eye first.
EYEBALL_PARTS = ("eyeball_left", "eyeball_right")
LANDING_NEIGHBOURS = 4   # rest vertices a blinked lid vertex takes the shape correction of, by inverse distance
MOVED = 1e-6             # world units: a vertex a blendshape moves less than this is not moved by it


class HeadModelError(ValueError):
    """A head model file or parameter set that cannot be used; the message names the file and problem."""


@dataclass(frozen=True, eq=False)
class PartMasks:
    """Pockets of the closed skin surface that are not parts of their own.

    The eye sacks continue the lid skin behind the lids around each eyeball (part "skin"); they are
    never seen from outside except through the eye opening, in the gap between lid and eyeball.
    """

    eye_sack_faces: np.ndarray      # (F,) bool
    eye_sack_vertices: np.ndarray   # (N,) bool, the lid rims excluded (they are lid skin)


@dataclass(frozen=True, eq=False)
class FaceVerseSource:
    """Where a FaceVerse model came from and how it was moved into the project's world:
    world = (diag(axis_flip) @ (p - centre)) * scale."""

    path: str
    sha256: str
    centre: tuple[float, float, float]
    axis_flip: tuple[float, float, float]
    scale: float
    expression_basis_171: np.ndarray | None = None  # (171, N, 3) float32 in world units, when the file has it
    mediapipe_keypoints: np.ndarray | None = None   # (478,) or (468,) int32 vertex index per MediaPipe point


@dataclass(frozen=True, eq=False)
class HeadModel:
    """A triangle mesh with a UV layout, an identity basis and the 52 ARKit blendshapes.

    Coordinates are the project's world (head centred at the origin, +y up, +z out of the face,
    inside [-0.5, 0.5]^3); `metres_per_unit` converts to life size for exports.
    Blendshapes are linear per-vertex deltas at weight 1, in canonical (alphabetical ARKit) order.
    """

    model_id: str
    vertices: np.ndarray            # (N, 3) float32, neutral expression, zero identity
    faces: np.ndarray               # (F, 3) int32, counter-clockwise seen from outside
    uv: np.ndarray                  # (T, 2) float32 in [0, 1], v up (OBJ/glTF-flipped on export)
    faces_uv: np.ndarray            # (F, 3) int32 indices into `uv` (UV seams need their own corners)
    vertex_part: np.ndarray         # (N,) int8 ids into PART_NAMES
    face_part: np.ndarray           # (F,) int8 ids into PART_NAMES
    landmarks: dict[str, int]       # name -> vertex index (eye corners, pupils, brows, nose tip, ...)
    identity_names: tuple[str, ...]
    identity_basis: np.ndarray      # (K, N, 3) float32 per unit of each identity parameter
    expression_basis: np.ndarray    # (52, N, 3) float32 deltas at weight 1
    expression_regions: np.ndarray  # (52, N) bool: the vertices each blendshape is meant to move
    eye_centers: np.ndarray         # (2, 3) float32 rotation centres of the left (+x) and right eyeballs
    metres_per_unit: float
    identity_range: tuple[float, float] = (-1.0, 1.0)
    # Optional, typed: what a source knows beyond the common arrays (None / empty where it does not).
    mirror: np.ndarray | None = None                  # (N,) int32: the vertex mirroring each one across x = 0
    eye_center_identity_basis: np.ndarray | None = None  # (K, 2, 3) float32: eye centre motion per identity unit
    eyeball_radius: float | None = None               # world units
    jaw_hinge: np.ndarray | None = None               # (3,) float32: a point on the jaw's rotation axis (along x)
    uv_islands: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)  # name -> (u0, v0, u1, v1)
    landmarks_uv: dict[str, tuple[float, float]] = field(default_factory=dict)  # landmark name -> (u, v)
    face_uv_rect: tuple[float, float, float, float] | None = None  # (u0, v0, u1, v1) holding the front of the face
    part_masks: PartMasks | None = None
    faceverse: FaceVerseSource | None = None
    personalised_from: HeadModel | None = None      # the model before a per-person shape correction

    def __post_init__(self) -> None:
        n = len(self.vertices)
        checks = {
            "vertices": self.vertices.shape == (n, 3),
            "faces": self.faces.ndim == 2 and self.faces.shape[1] == 3 and self.faces.max(initial=0) < n,
            "faces_uv": self.faces_uv.shape == self.faces.shape and self.faces_uv.max(initial=0) < len(self.uv),
            "vertex_part": self.vertex_part.shape == (n,),
            "face_part": self.face_part.shape == (len(self.faces),),
            "identity_basis": self.identity_basis.shape == (len(self.identity_names), n, 3),
            "expression_basis": self.expression_basis.shape == (NUM_EXPRESSIONS, n, 3),
            "expression_regions": self.expression_regions.shape == (NUM_EXPRESSIONS, n),
            "eye_centers": self.eye_centers.shape == (2, 3),
            "mirror": self.mirror is None or self.mirror.shape == (n,),
            "eye_center_identity_basis": self.eye_center_identity_basis is None
            or self.eye_center_identity_basis.shape == (len(self.identity_names), 2, 3),
            "part_masks": self.part_masks is None or (self.part_masks.eye_sack_faces.shape == (len(self.faces),)
                                                      and self.part_masks.eye_sack_vertices.shape == (n,)),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise HeadModelError(f"head model {self.model_id!r} has inconsistent arrays: {', '.join(bad)}")

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    def part_vertices(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.vertex_part == PART_ID[name])

    def part_faces(self, name: str) -> np.ndarray:
        """Indices into `faces` of the faces of one part."""
        return np.flatnonzero(self.face_part == PART_ID[name])

    def personalised(self, offsets: np.ndarray) -> HeadModel:
        """The same model (id, topology, identity basis) with a per-person shape correction (N, 3) added to
        the mean vertices, e.g. avatar.fit.shape_offsets; eyeballs carry their rotation centres along, and
        skin the correction would put too close to an eyeball is kept clear of it (`_skin_clear_of_eyeballs`,
        which also adjusts those vertices' blendshape deltas)."""
        off = np.asarray(offsets, dtype=np.float32)
        if off.shape != self.vertices.shape or not np.all(np.isfinite(off)):
            raise HeadModelError(f"shape offsets must be {self.vertices.shape} finite values, got {off.shape}")
        centres = self.eye_centers.copy()
        for side, part in enumerate(EYEBALL_PARTS):
            idx = self.part_vertices(part)
            if len(idx):
                centres[side] += off[idx].mean(axis=0)
        basis = self._lids_closing_on_the_correction(off)
        vertices, basis = self._skin_clear_of_eyeballs(self.vertices + off, centres, basis)
        return replace(self, vertices=vertices.astype(np.float32), expression_basis=basis, eye_centers=centres,
                       personalised_from=self.base_model)

    def _lids_closing_on_the_correction(self, off: np.ndarray) -> np.ndarray:
        """The expression basis (52, N, 3) with each blink's lid landing on the corrected face.

        A blink carries the upper lid onto the lower lid's margin; with a correction that differs between
        the two lids (the person's eye opens wider or narrower than the model's), the lid moved by the base
        model's delta stops short of the corrected lower lid (or passes it) and a sliver of eyeball shows
        through the shut eye. So a vertex a blink moves takes, in its blinked pose, the correction of the
        surface it lands on (interpolated from the nearest rest vertices) rather than its own."""
        basis: np.ndarray = self.expression_basis.copy()
        skin = self.part_vertices("skin")
        if not len(skin):
            return basis
        tree = cKDTree(self.vertices[skin])
        for name in EYE_BLINKS:
            k = index_of(name)
            moved = skin[np.linalg.norm(basis[k, skin], axis=1) > MOVED]
            if not len(moved):
                continue
            landed = self.vertices[moved] + basis[k, moved]
            distance, near = tree.query(landed, k=LANDING_NEIGHBOURS)
            weight = 1.0 / np.maximum(distance, 1e-6)
            there = np.einsum("pk,pkd->pd", weight, off[skin][near]) / weight.sum(axis=1, keepdims=True)
            basis[k, moved] += there - off[moved]
        return basis

    @cached_property
    def eye_clearance(self) -> np.ndarray:
        """(2,) world units: per eye (left first), the closest any skin vertex comes to that eyeball's centre,
        at rest or at any blendshape's full weight (inf without that eyeball)."""
        skin, reach = self._skin_reach
        out = np.full(2, np.inf)
        for side, part in enumerate(EYEBALL_PARTS):
            if not len(self.part_vertices(part)) or not len(skin):
                continue
            rest = np.linalg.norm(self.vertices[skin] - self.eye_centers[side], axis=1)
            near = skin[rest - reach < rest.min()]   # only these can come closer than the rest pose's closest
            posed = self.vertices[near] + self.expression_basis[:, near]
            out[side] = min(rest.min(), np.linalg.norm(posed - self.eye_centers[side], axis=-1).min())
        return out

    @cached_property
    def _skin_reach(self) -> tuple[np.ndarray, np.ndarray]:
        """The skin's vertex indices and how far each moves at most, over the blendshapes at full weight."""
        skin = self.part_vertices("skin")
        return skin, np.linalg.norm(self.expression_basis[:, skin], axis=-1).max(axis=0)

    def _skin_clear_of_eyeballs(self, vertices: np.ndarray, centres: np.ndarray, basis: np.ndarray
                                ) -> tuple[np.ndarray, np.ndarray]:
        """(vertices (N, 3), expression basis (52, N, 3)) for corrected neutral `vertices`, eyeball centres
        `centres` (2, 3) and blendshape deltas `basis` (52, N, 3): skin pushed out along the radius from each
        eyeball's centre to the base model's `eye_clearance`, at the neutral and at each blendshape's full
        weight. Eyeballs and other parts are left as they are.

        Why: a per-person correction is smooth over the face while each eyeball moves rigidly (by its lids'
        mean correction), so it can carry lid skin, and the sack behind it, into the eyeball; and a blink,
        made for the base model's lids, can then sweep a corrected lid through it. Lit, the eyeball pokes
        through the lid: a jagged line along the upper lid and a lump at the outer corner. The clearance is
        measured on the base model (its design), whatever the model, not assumed here.
        """
        eyes = [(c, r) for c, r in zip(centres, self.base_model.eye_clearance) if np.isfinite(r)]
        skin, reach = self._skin_reach
        if not eyes or not len(skin):
            return vertices, basis
        margin = np.min([np.linalg.norm(vertices[skin] - c, axis=1) - r for c, r in eyes], axis=0)
        near = skin[margin < reach]               # only these can come too close in some pose
        poses = vertices[near] + np.concatenate([np.zeros((1, len(near), 3)), basis[:, near]])
        pushed = np.zeros(poses.shape[:2], bool)
        for centre, radius in eyes:
            outward = poses - centre
            distance = np.linalg.norm(outward, axis=-1)
            short = distance < radius
            poses[short] = centre + outward[short] * (radius / np.maximum(distance[short], 1e-12))[:, None]
            pushed |= short
        out, basis = vertices.copy(), basis.copy()
        out[near] = poses[0]
        # Only the deltas of pushed vertices are rewritten: elsewhere (v + d) - v would round d.
        changed = pushed[1:] | pushed[:1]
        deltas = basis[:, near]
        deltas[changed] = (poses[1:] - poses[:1])[changed]
        basis[:, near] = deltas
        return out, basis

    @property
    def base_model(self) -> HeadModel:
        """The model without any per-person shape correction."""
        return self.personalised_from or self

    def eye_centers_for(self, identity: np.ndarray | None = None) -> np.ndarray:
        """(2, 3) eye rotation centres for an identity (None = mean head)."""
        if identity is None or self.eye_center_identity_basis is None:
            return self.eye_centers
        return (self.eye_centers + np.tensordot(np.asarray(identity, dtype=np.float32),
                                                self.eye_center_identity_basis, axes=1)).astype(np.float32)

    def identity_vertices(self, identity: np.ndarray | None = None) -> np.ndarray:
        """Neutral vertices for an identity parameter vector (None = mean head)."""
        v = self.vertices
        if identity is not None:
            idv = np.asarray(identity, dtype=np.float32)
            if idv.shape != (len(self.identity_names),) or not np.all(np.isfinite(idv)):
                raise HeadModelError(f"identity must be {len(self.identity_names)} finite values, got {idv.shape}")
            v = v + np.tensordot(idv, self.identity_basis, axes=1)
        return v.astype(np.float32)

    def posed(self, expression: np.ndarray | None = None, identity: np.ndarray | None = None,
              eye: np.ndarray | None = None) -> np.ndarray:
        """Vertices (N, 3) float32 for an identity, a validated canonical 52-vector and an optional
        FaceVerse eye 4-vector (radians per eye, left eye first: +down, then +toward world +x, i.e. image right
        from the default camera)."""
        v = self.identity_vertices(identity)
        if expression is not None:
            v = v + np.tensordot(np.asarray(expression, dtype=np.float32), self.expression_basis, axes=1)
        if eye is not None:
            v = self._rotate_eyes(v, np.asarray(eye, dtype=np.float64), self.eye_centers_for(identity))
        return v.astype(np.float32)

    def _rotate_eyes(self, v: np.ndarray, eye: np.ndarray, centres: np.ndarray) -> np.ndarray:
        if eye.shape != (4,) or not np.all(np.isfinite(eye)):
            raise HeadModelError("eye rotation must be 4 finite radians (FaceVerse layout)")
        v = v.copy()
        for side, (part, centre) in enumerate(zip(EYEBALL_PARTS, centres)):
            down, right = eye[2 * side], eye[2 * side + 1]
            # Pitch about x (positive looks down = -y), then yaw about y (positive toward +x).
            cp, sp, cy, sy = np.cos(down), np.sin(down), np.cos(right), np.sin(right)
            rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
            ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
            idx = self.part_vertices(part)
            v[idx] = (v[idx] - centre) @ (ry @ rx).T + centre
        return v
