"""The embedded head model (no files needed): built by our own code, deterministic, cached per process."""
from __future__ import annotations

import functools

import numpy as np

from avatar.head_model.base import EYEBALL_PARTS, PART_ID, HeadModel, PartMasks
from avatar.head_model.blendshapes import build_blendshapes
from avatar.head_model.geometry import SKIN_V0, Rig, build_rig, eye_centre
from avatar.head_model.identity import IDENTITY_NAMES, build_identity
from avatar.head_model.shape import EYEBALL_RADIUS, JAW_HINGE, METRES_PER_UNIT

MODEL_ID = "embedded-v1"
# The rig is modelled at a comfortable working size; the model is then scaled so its face fills the
# EG3D/FFHQ default view (radius 2.7, FOV 18.837 degrees) the way an FFHQ-aligned portrait does
# (eyes about a quarter of the frame apart), which leaves the box's margin for hair.
CANONICAL_SCALE = 0.67


def _face_uv_rect(uv: np.ndarray, faces: np.ndarray, faces_uv: np.ndarray, vertices: np.ndarray,
                  landmarks: dict[str, int]) -> tuple[float, float, float, float]:
    """UV rectangle holding the front of the face (brows to chin, ear-side of the eyes to the other)."""
    lo = np.array([vertices[landmarks["eye_outer_right"], 0] - 0.05, vertices[landmarks["chin"], 1] - 0.01])
    hi = np.array([vertices[landmarks["eye_outer_left"], 0] + 0.05, vertices[landmarks["brow_left"], 1] + 0.04])
    corner_v = vertices[faces].reshape(-1, 3)
    corner_uv = uv[faces_uv].reshape(-1, 2)
    sel = ((corner_v[:, 0] >= lo[0]) & (corner_v[:, 0] <= hi[0]) & (corner_v[:, 1] >= lo[1])
           & (corner_v[:, 1] <= hi[1]) & (corner_v[:, 2] > 0.2) & (corner_uv[:, 1] >= SKIN_V0))
    u0, v0 = corner_uv[sel].min(0)
    u1, v1 = corner_uv[sel].max(0)
    return float(u0), float(v0), float(u1), float(v1)


@functools.lru_cache(maxsize=1)
def embedded_head_model() -> HeadModel:
    """The default head model. Cached: every call returns the same (read-only) instance."""
    rig = build_rig()
    basis, regions = build_blendshapes(rig)
    basis = (basis * CANONICAL_SCALE).astype(np.float32)
    identity = (build_identity(rig) * CANONICAL_SCALE).astype(np.float32)
    vertices = (rig.vertices * CANONICAL_SCALE).astype(np.float32)
    faces = rig.faces.astype(np.int32)
    uv = rig.uv.astype(np.float32)
    faces_uv = rig.faces_uv.astype(np.int32)
    eye_centers = (np.stack([eye_centre(1), eye_centre(-1)]) * CANONICAL_SCALE).astype(np.float32)
    landmarks = dict(rig.landmarks)
    mirror = rig.mirror.astype(np.int32)
    jaw_hinge = (JAW_HINGE * CANONICAL_SCALE).astype(np.float32)
    eye_identity = _eye_identity(identity, rig)
    sack_faces = (rig.sack[rig.faces] >= 2).any(axis=1)
    masks = PartMasks(eye_sack_faces=sack_faces, eye_sack_vertices=rig.sack >= 2)
    arrays = [vertices, faces, uv, faces_uv, rig.vertex_part, rig.face_part, identity, basis, regions, eye_centers,
              mirror, jaw_hinge, eye_identity, masks.eye_sack_faces, masks.eye_sack_vertices]
    for a in arrays:
        a.setflags(write=False)
    return HeadModel(model_id=MODEL_ID, vertices=vertices, faces=faces, uv=uv, faces_uv=faces_uv,
                     vertex_part=rig.vertex_part, face_part=rig.face_part, landmarks=landmarks,
                     identity_names=IDENTITY_NAMES, identity_basis=identity, expression_basis=basis,
                     expression_regions=regions, eye_centers=eye_centers,
                     metres_per_unit=float(METRES_PER_UNIT / CANONICAL_SCALE),
                     mirror=mirror, eye_center_identity_basis=eye_identity,
                     eyeball_radius=float(EYEBALL_RADIUS * CANONICAL_SCALE), jaw_hinge=jaw_hinge,
                     uv_islands=dict(rig.islands),
                     landmarks_uv={k: _vertex_uv(v, faces, faces_uv, uv) for k, v in landmarks.items()},
                     face_uv_rect=_face_uv_rect(uv, faces, faces_uv, rig.vertices, landmarks), part_masks=masks)


def _vertex_uv(v: int, faces: np.ndarray, faces_uv: np.ndarray, uv: np.ndarray) -> tuple[float, float]:
    # The first face using the vertex is a skin face for rim vertices (skin faces come first).
    f, c = np.argwhere(faces == v)[0]
    return float(uv[faces_uv[f, c], 0]), float(uv[faces_uv[f, c], 1])


def _eye_identity(identity: np.ndarray, rig: Rig) -> np.ndarray:
    """(K, 2, 3): how each identity parameter moves the eye rotation centres (mean eyeball motion)."""
    out = np.zeros((identity.shape[0], 2, 3), np.float32)
    for e, name in enumerate(EYEBALL_PARTS):
        ids = np.flatnonzero(rig.vertex_part == PART_ID[name])
        out[:, e] = identity[:, ids].mean(axis=1)
    return out
