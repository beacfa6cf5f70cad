"""The subject's face as 478 landmarks in image pixels: from the detector, a caller's face box or landmarks.

Refusals (PortraitError) for portraits the avatar cannot be built from: no face, several faces of similar
size, a face too small to carry detail, a face turned further than the mesh models.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .detector import KEYPOINTS, Detection, detect_faces
from .errors import PortraitError
from .face_mesh import FaceMesh, face_mesh, roi_around_box, with_irises, yaw_degrees
from .landmarks import IBUG_LEFT_EYE, IBUG_RIGHT_EYE, parse_landmarks, validate_face_box
from .roi import line_angle

# A face narrower than this (detector box, original pixels) is stretched more than 5x into the 512 crop's
# ~250-pixel face: too little detail for an avatar.
MIN_FACE_PIXELS = 48
# Faces at least this fraction of the largest face's size make the subject ambiguous; smaller ones are
# background people and are ignored.
SIMILAR_FACE_RATIO = 0.6
# Below this face-presence probability the mesh did not find a face in the detector's box.
MIN_PRESENCE = 0.5
# At most this many detector candidates are checked with the mesh (bounds the work a busy picture causes).
MAX_CANDIDATES = 5
# Beyond this yaw the far side of the face is hidden and the mesh folds it onto the near side.
MAX_YAW_DEGREES = 60.0
# The detectors see the whole image shrunk to 128 / 192 pixels: a face under a few percent of a large
# image is too small for them, and cropping is the user's remedy.
NO_FACE_HINT = ("a frontal or three-quarter face is needed; a face small in a large image is missed, so "
                "crop around it; or supply face_box or landmarks")


@dataclass
class LocatedFace:
    landmarks: np.ndarray   # (478, 3) float64 image pixels x, y, relative depth z (same scale)
    source: str             # where the face position came from: "detector" | "face_box" | "landmarks"
    landmarks_source: str   # "face_mesh" (computed here) | "landmarks" (the caller's own)
    eye_contours: np.ndarray | None = None  # (2, 71, 3) the iris model's eye contours (image pixels) with
                                            # the computed mesh; None with the caller's landmarks


def locate_face(rgb: np.ndarray, face_box: ArrayLike | None = None, landmarks: ArrayLike | None = None
                ) -> LocatedFace:
    """478 landmarks of the portrait's subject. Caller landmarks win over a face box; either replaces
    detection (a face box or iBUG-68 set still runs the mesh inside it, so faces the detector misses,
    e.g. non-human ones, go through)."""
    height, width = rgb.shape[:2]
    if landmarks is not None:
        pts = parse_landmarks(landmarks, width, height)
        if len(pts) == 478:
            full = pts if pts.shape[1] == 3 else np.c_[pts, np.zeros(len(pts))]
            return LocatedFace(full.astype(np.float64), "landmarks", "landmarks")
        if len(pts) == 468:
            return LocatedFace(with_irises(rgb, pts), "landmarks", "landmarks")
        angle = line_angle(pts[IBUG_RIGHT_EYE].mean(axis=0), pts[IBUG_LEFT_EYE].mean(axis=0))
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        mesh = face_mesh(rgb, roi_around_box(np.r_[lo, hi - lo], angle))
        check_turn(mesh)
        return LocatedFace(mesh.points, "landmarks", "face_mesh", mesh.eye_contours)
    if face_box is not None:
        mesh = face_mesh(rgb, roi_around_box(validate_face_box(face_box, width, height)))
        check_turn(mesh)
        return LocatedFace(mesh.points, "face_box", "face_mesh", mesh.eye_contours)
    mesh = _detected_mesh(rgb)
    return LocatedFace(mesh.points, "detector", "face_mesh", mesh.eye_contours)


def _detected_mesh(rgb: np.ndarray) -> FaceMesh:
    # Detector candidates, largest first, are confirmed by the mesh's face-presence score: the detectors'
    # rare false hits (a body, a patterned cloth) are often larger than the real face.
    faces: list[tuple[Detection, FaceMesh]] = []
    for candidate in detect_faces(rgb)[:MAX_CANDIDATES]:
        if faces and candidate.size < SIMILAR_FACE_RATIO * faces[0][0].size:
            break  # neither the subject nor a rival
        eyes = candidate.keypoints[KEYPOINTS.index("eye_right")], candidate.keypoints[KEYPOINTS.index("eye_left")]
        mesh = face_mesh(rgb, roi_around_box(candidate.box, line_angle(*eyes)))
        if mesh.presence >= MIN_PRESENCE:
            faces.append((candidate, mesh))
    if not faces:
        raise PortraitError("no_face", f"no face found in the portrait ({NO_FACE_HINT})")
    if len(faces) > 1:
        where = "; ".join(_describe(f) for f, _ in faces)
        count = f"at least {len(faces)}" if len(faces) == MAX_CANDIDATES else str(len(faces))
        raise PortraitError("several_faces", f"{count} faces of similar size found ({where}); the portrait "
                                             f"must show one person: crop it, or supply face_box or landmarks")
    subject, mesh = faces[0]
    if subject.size < MIN_FACE_PIXELS:
        raise PortraitError("face_too_small", f"the face is only {int(subject.size)} pixels wide "
                                              f"({_describe(subject)}); at least {MIN_FACE_PIXELS} pixels are "
                                              f"needed: use a larger or closer-cropped portrait")
    check_turn(mesh)
    return mesh


def check_turn(mesh: FaceMesh) -> None:
    """PortraitError face_too_turned when the mesh is a face turned beyond MAX_YAW_DEGREES."""
    # Only for meshes that are confidently a face: on a caller's box around a non-human face the depth is
    # not a reliable measure of turn.
    if mesh.presence < MIN_PRESENCE:
        return
    yaw = yaw_degrees(mesh.points)
    if abs(yaw) > MAX_YAW_DEGREES:
        side = "right" if yaw > 0 else "left"
        raise PortraitError("face_too_turned", f"the face is turned about {abs(yaw):.0f} degrees to the image "
                                               f"{side}; at most {MAX_YAW_DEGREES:.0f} degrees from frontal can "
                                               f"be modelled: use a more frontal portrait")


def _describe(face: Detection) -> str:
    x, y, w, h = face.box
    return f"{max(w, h):.0f} px at x={x + w / 2:.0f}, y={y + h / 2:.0f}"
