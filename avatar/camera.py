"""Camera math: the EG3D 25-vector, friendly orbit parameters, rays and projection. The one place for it.

World: head at the origin, +y up, +z out of the face toward the default camera, right-handed, so the
subject's own left is +x. Cameras are OpenCV-style (x right, y down, z forward, looking at the
origin); the 25-vector is cam2world 4x4 row-major followed by normalised 3x3 intrinsics (focal and
principal point as fractions of the image size).

Friendly parameters, in degrees: yaw > 0 orbits the camera toward +x (it sees the subject's left
cheek), pitch > 0 raises it (it looks down on the head), roll turns the image clockwise about the
view axis. `fov_deg` is EG3D's field of view: the focal length is 1 / (sqrt(2) tan(fov / 2)), so the
default 18.837 degrees gives FFHQ's 4.26.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

DEFAULT_RADIUS = 2.7
DEFAULT_FOV_DEG = 18.837
# Volume rendering depth range along a ray for the default radius (AvatarArtist's ray_start/ray_end);
# for other radii the range moves with the camera distance.
RAY_START_OFFSET = 2.25 - DEFAULT_RADIUS
RAY_END_OFFSET = 3.3 - DEFAULT_RADIUS
BOX_HALF = 0.5  # the head lives in [-0.5, 0.5]^3 ("box_warp" 1)


class CameraError(ValueError):
    """A camera that cannot be used; the message says why."""


@dataclass(frozen=True)
class Orbit:
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    radius: float = DEFAULT_RADIUS
    fov_deg: float = DEFAULT_FOV_DEG

    def validate(self) -> Orbit:
        values = (self.yaw_deg, self.pitch_deg, self.roll_deg, self.radius, self.fov_deg)
        if not all(math.isfinite(v) for v in values):
            raise CameraError(f"camera values must be finite numbers, got {values}")
        if abs(self.pitch_deg) >= 89.0:
            raise CameraError(f"camera pitch {self.pitch_deg:g} deg is outside (-89, 89)")
        if not (math.sqrt(3) * BOX_HALF + 0.05 < self.radius <= 100.0):
            raise CameraError(f"camera radius {self.radius:g} must be in (0.92, 100] (outside the head's box)")
        if not (1.0 <= self.fov_deg <= 120.0):
            raise CameraError(f"camera fov {self.fov_deg:g} deg must be in [1, 120]")
        return self


def focal_from_fov(fov_deg: float) -> float:
    return 1.0 / (math.sqrt(2.0) * math.tan(math.radians(fov_deg) / 2.0))


def fov_from_focal(focal: float) -> float:
    return math.degrees(2.0 * math.atan(1.0 / (math.sqrt(2.0) * focal)))


_WORLD_ORIGIN = np.zeros(3)
_WORLD_UP = np.array([0.0, 1.0, 0.0])
_WORLD_ORIGIN.flags.writeable = _WORLD_UP.flags.writeable = False  # shared defaults, so never mutable


def look_at(origin: np.ndarray, target: np.ndarray = _WORLD_ORIGIN, up: np.ndarray = _WORLD_UP) -> np.ndarray:
    """cam2world (4x4) for an OpenCV camera at `origin` looking at `target` with world `up` up in the image."""
    forward = target - origin
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, down, forward, origin
    return m


def orbit_to_cam2world(orbit: Orbit, shift: ArrayLike = (0.0, 0.0, 0.0)) -> np.ndarray:
    """cam2world of an orbit about the origin, the whole camera then moved by `shift` (world units)."""
    o = orbit.validate()
    yaw, pitch, roll = (math.radians(v) for v in (o.yaw_deg, o.pitch_deg, o.roll_deg))
    origin = o.radius * np.array([math.cos(pitch) * math.sin(yaw), math.sin(pitch), math.cos(pitch) * math.cos(yaw)])
    c2w = look_at(origin)
    c, s = math.cos(roll), math.sin(roll)
    # Rolling the camera clockwise in the image = rotating its x/y axes about its forward axis.
    spin = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    c2w[:3, :3] = c2w[:3, :3] @ spin
    c2w[:3, 3] += np.asarray(shift, dtype=np.float64)
    return c2w


def intrinsics(fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    f = focal_from_fov(fov_deg)
    return np.array([[f, 0.0, 0.5], [0.0, f, 0.5], [0.0, 0.0, 1.0]])


def camera_vector(orbit: Orbit | None = None, shift: ArrayLike = (0.0, 0.0, 0.0), **kwargs: float) -> np.ndarray:
    """EG3D 25-vector from an Orbit (or its fields as keyword arguments), optionally shifted."""
    orbit = orbit or Orbit(**kwargs)
    c2w = orbit_to_cam2world(orbit, shift)
    return np.concatenate([c2w.reshape(-1), intrinsics(orbit.fov_deg).reshape(-1)]).astype(np.float32)


def validate_camera_vector(vec: ArrayLike) -> np.ndarray:
    """Check a 25-vector: finite, a proper rotation, a camera outside the head's box, sane intrinsics."""
    v = np.asarray(vec, dtype=np.float64).reshape(-1)
    if v.shape != (25,):
        raise CameraError(f"camera vector must have 25 values (cam2world 4x4 + intrinsics 3x3), got {v.size}")
    if not np.all(np.isfinite(v)):
        raise CameraError("camera vector contains NaN or infinite values")
    c2w, k = v[:16].reshape(4, 4), v[16:].reshape(3, 3)
    r = c2w[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-3) or np.linalg.det(r) < 0.99:
        raise CameraError("camera vector's cam2world 3x3 is not a rotation (orthonormal, det +1)")
    if not np.allclose(c2w[3], [0, 0, 0, 1], atol=1e-6):
        raise CameraError("camera vector's cam2world last row must be 0 0 0 1")
    if np.abs(c2w[:3, 3]).max() <= BOX_HALF:
        raise CameraError("camera is inside the head's box [-0.5, 0.5]^3")
    if not (k[0, 0] > 0.05 and k[1, 1] > 0.05 and np.allclose(k[2], [0, 0, 1], atol=1e-6)):
        raise CameraError("camera intrinsics must be normalised: fx, fy > 0 and last row 0 0 1")
    return v.astype(np.float32)


def orbit_from_camera_vector(vec: ArrayLike) -> Orbit:
    """The orbit parameters of a 25-vector that looks at the origin (what `camera_vector` makes)."""
    v = validate_camera_vector(vec).astype(np.float64)
    c2w, k = v[:16].reshape(4, 4), v[16:].reshape(3, 3)
    origin = c2w[:3, 3]
    radius = float(np.linalg.norm(origin))
    yaw = math.degrees(math.atan2(origin[0], origin[2]))
    pitch = math.degrees(math.asin(np.clip(origin[1] / radius, -1, 1)))
    unrolled = look_at(origin)[:3, :3]
    spin = unrolled.T @ c2w[:3, :3]
    roll = math.degrees(math.atan2(spin[1, 0], spin[0, 0]))
    return Orbit(yaw, pitch, roll, radius, fov_from_focal(float(k[1, 1])))


def ray_bounds(cam: np.ndarray) -> tuple[float, float]:
    """Near/far depth along rays for this camera: AvatarArtist's range, moved with the camera distance."""
    radius = float(np.linalg.norm(np.asarray(cam, dtype=np.float64)[:16].reshape(4, 4)[:3, 3]))
    return max(radius + RAY_START_OFFSET, 0.01), radius + RAY_END_OFFSET


def generate_rays(cam: ArrayLike, height: int, width: int,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space ray origins and unit directions through pixel centres, row-major (H*W, 3) each."""
    v = torch.as_tensor(np.asarray(cam, dtype=np.float64).reshape(-1))
    c2w, k = v[:16].reshape(4, 4), v[16:].reshape(3, 3)
    ys, xs = torch.meshgrid(
        (torch.arange(height, dtype=torch.float64) + 0.5) / height,
        (torch.arange(width, dtype=torch.float64) + 0.5) / width,
        indexing="ij",
    )
    x_cam = (xs - k[0, 2]) / k[0, 0]
    y_cam = (ys - k[1, 2]) / k[1, 1]
    dirs_cam = torch.stack([x_cam, y_cam, torch.ones_like(x_cam)], dim=-1).reshape(-1, 3)
    dirs = dirs_cam @ c2w[:3, :3].T
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = c2w[:3, 3].expand_as(dirs)
    return origins.to(dtype).contiguous(), dirs.to(dtype).contiguous()


def project(points: ArrayLike, cam: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) to normalised image coordinates (..., 2) in [0, 1] and camera depth (...)."""
    v = np.asarray(cam, dtype=np.float64).reshape(-1)
    c2w, k = v[:16].reshape(4, 4), v[16:].reshape(3, 3)
    p = np.asarray(points, dtype=np.float64)
    cam_pts = (p - c2w[:3, 3]) @ c2w[:3, :3]
    z = cam_pts[..., 2]
    uv = np.stack([k[0, 0] * cam_pts[..., 0] / z + k[0, 2], k[1, 1] * cam_pts[..., 1] / z + k[1, 2]], axis=-1)
    return uv, z


def view_cosine(points: ArrayLike, normals: ArrayLike, cam: ArrayLike) -> np.ndarray:
    """Cosine (...) between unit surface normals (..., 3) at world points (..., 3) and the direction from each
    point to the camera's centre: 1 facing the camera, 0 at a graze, negative facing away."""
    origin = np.asarray(cam, dtype=np.float64).reshape(-1)[:16].reshape(4, 4)[:3, 3]
    to_cam = origin - np.asarray(points, dtype=np.float64)
    to_cam /= np.maximum(np.linalg.norm(to_cam, axis=-1, keepdims=True), 1e-8)
    cosine: np.ndarray = (np.asarray(normals, dtype=np.float64) * to_cam).sum(-1)
    return cosine


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation matrix from radians (FaceVerse's Euler convention: R = Rz(roll) Ry(yaw) Rx(pitch))."""
    cx, sx = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    cz, sz = math.cos(roll), math.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rotation: np.ndarray = rz @ ry @ rx
    return rotation


def head_pose_from_rotation(rotation: ArrayLike) -> tuple[float, float, float]:
    """(yaw, pitch, roll) radians of a head rotation matrix; the inverse of `head_rotation` (|yaw| < 90 deg)."""
    r = np.asarray(rotation, dtype=np.float64)
    yaw = math.asin(float(np.clip(-r[2, 0], -1.0, 1.0)))
    return yaw, math.atan2(r[2, 1], r[2, 2]), math.atan2(r[1, 0], r[0, 0])


def apply_head_pose(cam: ArrayLike, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The camera that sees the still head as the original camera sees the head rotated by (yaw, pitch, roll).

    The whole avatar (mesh and static planes) turns together, so turning the camera the opposite way
    is exact and keeps the planes untouched.
    """
    values = (yaw, pitch, roll)
    if not all(math.isfinite(float(x)) for x in values):
        raise CameraError(f"head pose must be finite radians, got {values}")
    v: np.ndarray = np.asarray(cam, dtype=np.float64).reshape(-1).copy()
    c2w = v[:16].reshape(4, 4)
    r_inv = np.eye(4)
    r_inv[:3, :3] = head_rotation(*values).T
    v[:16] = (r_inv @ c2w).reshape(-1)
    return v.astype(np.float32)
