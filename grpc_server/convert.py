"""Proto messages <-> the application's and the avatar package's types. Validation errors are the
avatar package's own (CameraError, ExpressionError), FrameOptionsError or InvalidRequest, each with a
sentence for the caller."""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from avatar.camera import DEFAULT_FOV_DEG, DEFAULT_RADIUS, CameraError, Orbit, camera_vector, validate_camera_vector
from avatar.expressions import ARKIT_NAMES, ExpressionError, validate_weights, weights_from_map
from grpc_server.app.errors import InvalidRequest
from grpc_server.app.jobs import Progress
from grpc_server.app.rendering import FrameInputs, RenderOptions
from grpc_server.frames import DEFAULT_JPEG_QUALITY, DEFAULT_SIZE, FrameSpec
from grpc_server.limits import MAX_FRAME_SIDE, MIN_FRAME_SIDE, LimitExceeded, ServerLimits
from grpc_server.proto import pb
from grpc_server.store import AvatarRecord

# Head rotation beyond half a turn is almost certainly degrees sent as radians.
MAX_HEAD_ANGLE = math.pi
MAX_EYE_ANGLE = math.pi / 2
_DEFAULT_CAMERA = camera_vector(Orbit())


class FrameOptionsError(ValueError):
    """Frame options (size, encoding, quality, background) that cannot be used."""

    status = "INVALID_ARGUMENT"


UPSAMPLER_NAMES = {pb.UPSAMPLER_UNSPECIFIED: "edge", pb.EDGE: "edge", pb.BILINEAR: "bilinear"}


def camera_from_proto(msg: pb.Camera, has_camera: bool = True) -> np.ndarray:
    """Unset camera = the default orbit (front view, radius 2.7, FOV 18.837 degrees)."""
    kind = msg.WhichOneof("camera") if has_camera else None
    if kind is None:
        return _DEFAULT_CAMERA
    if kind == "orbit":
        o = msg.orbit
        return camera_vector(Orbit(yaw_deg=o.yaw_deg, pitch_deg=o.pitch_deg, roll_deg=o.roll_deg,
                                   radius=o.radius or DEFAULT_RADIUS, fov_deg=o.fov_deg or DEFAULT_FOV_DEG))
    return validate_camera_vector(list(msg.eg3d.values))


def expression_from_proto(msg: pb.Expression) -> np.ndarray:
    if len(msg.weights):
        return validate_weights(list(msg.weights))
    if msg.named:
        return weights_from_map(dict(msg.named))
    return np.zeros(len(ARKIT_NAMES), dtype=np.float32)


def head_pose_from_proto(msg: pb.HeadPose) -> tuple[float, float, float] | None:
    values = (float(msg.yaw), float(msg.pitch), float(msg.roll))
    if not all(math.isfinite(v) for v in values):
        raise CameraError(f"head pose must be finite numbers, got {values}")
    if any(abs(v) > MAX_HEAD_ANGLE for v in values):
        raise CameraError(f"head pose angles are radians and must be within [-pi, pi], got {values}")
    return None if values == (0.0, 0.0, 0.0) else values


def eye_from_proto(values: Iterable[float]) -> np.ndarray | None:
    values = list(values)
    if not len(values):
        return None
    eye = np.asarray(values, dtype=np.float64)
    if eye.shape != (4,):
        raise ExpressionError(f"eye must have 4 values (FaceVerse eye vector, radians), got {eye.size}")
    if not np.all(np.isfinite(eye)) or np.abs(eye).max() > MAX_EYE_ANGLE:
        raise ExpressionError(f"eye values must be finite radians within [-pi/2, pi/2], got {eye.tolist()}")
    return eye.astype(np.float32)


def frame_inputs(msg: pb.RenderRequest | pb.FrameRequest) -> FrameInputs:
    return FrameInputs(
        camera=camera_from_proto(msg.camera, msg.HasField("camera")),
        expression=expression_from_proto(msg.expression),
        head_pose=head_pose_from_proto(msg.head_pose),
        eye=eye_from_proto(msg.eye),
    )


def frame_spec(msg: pb.FrameOptions, limits: ServerLimits) -> FrameSpec:
    """Validated frame options; out-of-contract values are FrameOptionsError, values beyond this
    server's limits (pixels, message size) are LimitExceeded."""
    width, height = msg.width or DEFAULT_SIZE, msg.height or DEFAULT_SIZE
    for name, side in (("width", width), ("height", height)):
        if not MIN_FRAME_SIDE <= side <= MAX_FRAME_SIDE:
            raise FrameOptionsError(f"frame {name} {side} is outside {MIN_FRAME_SIDE}..{MAX_FRAME_SIDE} pixels")
    if width * height > limits.max_frame_pixels:
        raise LimitExceeded(f"frame {width}x{height} = {width * height} pixels is above this server's limit "
                            f"of {limits.max_frame_pixels} pixels")
    encoding = msg.encoding or pb.PNG
    if encoding not in (pb.RAW_RGBA8, pb.PNG, pb.JPEG):
        raise FrameOptionsError(f"unknown frame encoding {encoding}; use RAW_RGBA8, PNG or JPEG")
    quality = msg.jpeg_quality or DEFAULT_JPEG_QUALITY
    if not 1 <= quality <= 100:
        raise FrameOptionsError(f"jpeg_quality {quality} is outside 1..100")
    background = None
    if len(msg.background):
        bg = list(msg.background)
        if len(bg) != 3 or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in bg):
            raise FrameOptionsError(f"background must be 3 numbers in [0, 1] (RGB), got {bg}")
        background = (bg[0], bg[1], bg[2])
    spec = FrameSpec(width=width, height=height, encoding=encoding, jpeg_quality=quality,
                     include_depth=msg.include_depth, include_alpha=msg.include_alpha, background=background)
    need = spec.worst_case_bytes()
    if need > limits.max_message_bytes:
        raise LimitExceeded(f"a {width}x{height} frame with these options can take {need} bytes, above the "
                            f"{limits.max_message_bytes}-byte message limit; ask for a smaller size, "
                            f"fewer planes (depth/alpha) or PNG/JPEG")
    return spec


def render_options(msg: pb.FrameOptions, spec: FrameSpec) -> RenderOptions:
    """The renderer's options for frames of `spec`'s size (InvalidRequest for values out of range)."""
    if msg.upsampler not in UPSAMPLER_NAMES:
        raise InvalidRequest(f"unknown upsampler {msg.upsampler}; use EDGE or BILINEAR")
    return RenderOptions(height=spec.height, width=spec.width, neural_resolution=int(msg.neural_resolution),
                         upsampler=UPSAMPLER_NAMES[msg.upsampler])


def landmarks_from_proto(msg: pb.Landmarks) -> np.ndarray:
    """(N, 2) pixel x, y from the flat x, y, x, y, ... list."""
    xy = np.asarray(list(msg.xy), dtype=np.float32)
    if xy.size == 0 or xy.size % 2:
        raise InvalidRequest(f"landmarks must be x, y pairs; got {xy.size} numbers")
    return xy.reshape(-1, 2)


def progress(p: Progress) -> pb.Progress:
    return pb.Progress(stage=p.stage, fraction=p.fraction, message=p.message)


def avatar_info(record: AvatarRecord) -> pb.AvatarInfo:
    return pb.AvatarInfo(
        avatar_id=record.avatar_id,
        generator=record.generator,
        generator_version=record.generator_version,
        source_sha256=record.source_sha256,
        head_model_id=record.head_model_id,
        display_name=record.display_name,
        created_unix=record.created_unix,
        thumbnail_png=record.thumbnail_png or b"",
        portrait_camera=list(record.portrait_camera),
        schema_version=record.schema_version,
    )
