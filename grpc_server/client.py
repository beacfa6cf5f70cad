"""Python client of the AvatarForge service.

    with AvatarForgeClient("127.0.0.1:50051") as client:
        avatar_id = client.create("me.jpg", progress=lambda p: print(p.stage, p.fraction))
        rgba = client.render(avatar_id, yaw=20, expression={"jawOpen": 0.6})

Every failure is a ClientError carrying the gRPC status code and the server's sentence.
"""
from __future__ import annotations

import builtins  # the class's own `list` method hides the type in its annotations
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar, cast

import grpc
import numpy as np

from grpc_server import frames
from grpc_server.proto import pb, pb_grpc

# Frames and exports can be large; the server's own limit (ServerInfo.limits.max_message_bytes) governs.
CLIENT_MAX_MESSAGE = 256 * 2**20
E = TypeVar("E", bound=int)
ENCODINGS = {"raw": pb.RAW_RGBA8, "raw_rgba8": pb.RAW_RGBA8, "png": pb.PNG, "jpeg": pb.JPEG, "jpg": pb.JPEG}
MODES = {"every_frame": pb.EVERY_FRAME, "latest_wins": pb.LATEST_WINS}
UPSAMPLERS = {"edge": pb.EDGE, "bilinear": pb.BILINEAR}
FORMATS = {"glb": pb.GLB, "tables": pb.TABLES, "animation": pb.ANIMATION, "triplane": pb.TRIPLANE}


class ClientError(Exception):
    """A failed call: `code` is the grpc.StatusCode, `message` the server's sentence."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


# Statuses gRPC makes up on the client side carry terse details; say what happened instead.
_LOCAL_DETAILS = {
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"):
        "deadline exceeded: the server did not finish before the call's timeout",
    (grpc.StatusCode.CANCELLED, "Locally cancelled by application!"): "the call was cancelled by this client",
}


def _wrap(e: grpc.RpcError) -> ClientError:
    code = (e.code() if hasattr(e, "code") else None) or grpc.StatusCode.UNKNOWN
    details = (e.details() if hasattr(e, "details") else str(e)) or ""
    return ClientError(code, _LOCAL_DETAILS.get((code, details), details))


@dataclass
class StreamFrame:
    """One decoded frame of `stream()`/`render_frame()`."""

    seq: int
    rgba: np.ndarray                 # (H, W, 4) uint8
    depth: np.ndarray | None         # (H, W) float32 when asked for
    render_ms: float
    queue_ms: float
    dropped: int
    encoded_bytes: int
    message: pb.Frame | None = field(repr=False, default=None)


def _enum(value: object, table: Mapping[str, E], what: str) -> E:
    """A proto enum value from its name in `table` (any case) or its number."""
    if isinstance(value, int):
        return cast(E, value)  # the number itself: the server says whether it knows it
    try:
        return table[str(value).lower()]
    except KeyError:
        raise ValueError(f"unknown {what} {value!r}; one of {', '.join(table)}") from None


def expression_message(expression) -> pb.Expression | None:
    """None, a 52-vector in canonical order, or a name -> weight map."""
    if expression is None:
        return None
    if isinstance(expression, pb.Expression):
        return expression
    if isinstance(expression, Mapping):
        return pb.Expression(named={str(k): float(v) for k, v in expression.items()})
    return pb.Expression(weights=[float(v) for v in np.asarray(expression, dtype=np.float64).reshape(-1)])


def camera_message(yaw=0.0, pitch=0.0, roll=0.0, radius=0.0, fov=0.0, camera=None) -> pb.Camera:
    """`camera` (an EG3D 25-vector) wins over the orbit parameters (degrees; 0 radius/fov = defaults)."""
    if camera is not None:
        return pb.Camera(eg3d=pb.Eg3dCamera(values=[float(v) for v in np.asarray(camera).reshape(-1)]))
    return pb.Camera(orbit=pb.OrbitCamera(yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll, radius=radius, fov_deg=fov))


def frame_request(seq: int = 0, yaw=0.0, pitch=0.0, roll=0.0, radius=0.0, fov=0.0, camera=None, expression=None,
                  head_pose: Sequence[float] | None = None, eye: Sequence[float] | None = None) -> pb.FrameRequest:
    req = pb.FrameRequest(seq=seq, camera=camera_message(yaw, pitch, roll, radius, fov, camera))
    expr = expression_message(expression)
    if expr is not None:
        req.expression.CopyFrom(expr)
    if head_pose is not None:
        req.head_pose.CopyFrom(pb.HeadPose(yaw=head_pose[0], pitch=head_pose[1], roll=head_pose[2]))
    if eye is not None:
        req.eye.extend(float(v) for v in eye)
    return req


def frame_options(size=256, encoding="png", jpeg_quality=0, depth=False, alpha=False, background=None,
                  neural_resolution: int = 0, upsampler="edge") -> pb.FrameOptions:
    """`neural_resolution` (8..1024, 0 = the server's default) is where the volume is marched on the
    frame's longer side; `upsampler` ("edge" or "bilinear") how that image is resampled to `size`."""
    w, h = (size, size) if isinstance(size, int) else (size[1], size[0])
    return pb.FrameOptions(width=w, height=h, encoding=_enum(encoding, ENCODINGS, "encoding"),
                           jpeg_quality=jpeg_quality, include_depth=depth, include_alpha=alpha,
                           background=list(background) if background is not None else [],
                           neural_resolution=neural_resolution, upsampler=_enum(upsampler, UPSAMPLERS, "upsampler"))


def _decode(frame: pb.Frame) -> StreamFrame:
    return StreamFrame(seq=frame.seq, rgba=frames.decode(frame),
                       depth=frames.decode_depth(frame) if frame.depth else None,
                       render_ms=frame.render_ms, queue_ms=frame.queue_ms, dropped=frame.dropped,
                       encoded_bytes=len(frame.data), message=frame)


class AvatarForgeClient:
    def __init__(self, address: str, token: str | None = None, tls_ca: str | bytes | None = None,
                 client_cert: str | bytes | None = None, client_key: str | bytes | None = None,
                 timeout: float | None = None, tls: bool | None = None):
        """`tls_ca` (PEM path or bytes) or `tls=True` (system roots) selects TLS; `client_cert`/`client_key`
        add a client certificate for mutual TLS. `timeout` is the default deadline for unary calls."""
        options = [("grpc.max_receive_message_length", CLIENT_MAX_MESSAGE),
                   ("grpc.max_send_message_length", CLIENT_MAX_MESSAGE)]
        if tls_ca is not None or client_cert is not None or tls:
            creds = grpc.ssl_channel_credentials(root_certificates=_pem(tls_ca), private_key=_pem(client_key),
                                                 certificate_chain=_pem(client_cert))
            self._channel = grpc.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout
        self.stub = pb_grpc.AvatarForgeStub(self._channel)

    # -- plumbing ------------------------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, timeout=None):
        try:
            return method(request, metadata=self._metadata, timeout=timeout or self._timeout)
        except grpc.RpcError as e:
            raise _wrap(e) from None

    def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ClientError(grpc.StatusCode.UNAVAILABLE, f"server not reachable within {timeout} s") from None

    # -- avatars -------------------------------------------------------------------------------------

    def create(self, portrait: str | os.PathLike | bytes, generator: str = "", face_box=None, landmarks=None,
               progress: Callable[[pb.Progress], None] | None = None, display_name: str = "",
               timeout: float | None = None) -> str:
        """Create (or find, it is idempotent) the avatar of a portrait; returns its id."""
        data = portrait if isinstance(portrait, (bytes, bytearray)) else Path(portrait).read_bytes()
        req = pb.CreateAvatarRequest(portrait=bytes(data), generator=generator, display_name=display_name)
        if face_box is not None:
            x, y, w, h = face_box
            req.face_box.CopyFrom(pb.FaceBox(x=x, y=y, width=w, height=h))
        if landmarks is not None:
            req.landmarks.CopyFrom(pb.Landmarks(xy=[float(v) for v in np.asarray(landmarks).reshape(-1)]))
        info = self.create_info(req, progress, timeout)
        return info.avatar_id

    def create_info(self, request: pb.CreateAvatarRequest, progress=None, timeout=None) -> pb.AvatarInfo:
        try:
            for event in self.stub.CreateAvatar(request, metadata=self._metadata, timeout=timeout):
                if event.HasField("avatar"):
                    return event.avatar
                if progress is not None:
                    progress(event.progress)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        raise ClientError(grpc.StatusCode.INTERNAL, "CreateAvatar ended without an avatar")

    def get(self, avatar_id: str, include_thumbnail: bool = False) -> pb.AvatarInfo:
        return self._call(self.stub.GetAvatar, pb.GetAvatarRequest(avatar_id=avatar_id,
                                                                   include_thumbnail=include_thumbnail))

    def list(self, page_size: int = 0) -> Iterator[pb.AvatarInfo]:
        """Every avatar, fetching page after page."""
        token = ""
        while True:
            page = self._call(self.stub.ListAvatars, pb.ListAvatarsRequest(page_size=page_size, page_token=token))
            yield from page.avatars
            token = page.next_page_token
            if not token:
                return

    def delete(self, avatar_id: str) -> bool:
        return self._call(self.stub.DeleteAvatar, pb.DeleteAvatarRequest(avatar_id=avatar_id)).deleted

    # -- rendering -----------------------------------------------------------------------------------

    def render_frame(self, avatar_id: str, yaw=0.0, pitch=0.0, roll=0.0, radius=0.0, fov=0.0, camera=None,
                     expression=None, head_pose=None, eye=None, size=256, encoding="png", jpeg_quality=0,
                     depth=False, alpha=False, background=None, timeout: float | None = None,
                     neural_resolution: int = 0, upsampler="edge") -> StreamFrame:
        fr = frame_request(0, yaw, pitch, roll, radius, fov, camera, expression, head_pose, eye)
        req = pb.RenderRequest(avatar_id=avatar_id, camera=fr.camera, expression=fr.expression,
                               head_pose=fr.head_pose, eye=fr.eye,
                               options=frame_options(size, encoding, jpeg_quality, depth, alpha, background,
                                                     neural_resolution, upsampler))
        return _decode(self._call(self.stub.Render, req, timeout))

    def render(self, avatar_id: str, yaw=0.0, pitch=0.0, roll=0.0, radius=0.0, fov=0.0, camera=None,
               expression=None, head_pose=None, eye=None, size=256, encoding="png", jpeg_quality=0,
               background=None, timeout: float | None = None, neural_resolution: int = 0,
               upsampler="edge") -> np.ndarray:
        """One frame as (H, W, 4) uint8 RGBA (yaw/pitch/roll in degrees; `size` an int or (H, W))."""
        return self.render_frame(avatar_id, yaw, pitch, roll, radius, fov, camera, expression, head_pose, eye,
                                 size, encoding, jpeg_quality, background=background, timeout=timeout,
                                 neural_resolution=neural_resolution, upsampler=upsampler).rgba

    def stream(self, avatar_id: str, requests: Iterable[pb.FrameRequest | dict], mode="every_frame", size=256,
               encoding="raw", jpeg_quality=0, depth=False, alpha=False, background=None,
               timeout: float | None = None, decode: bool = True, neural_resolution: int = 0,
               upsampler="edge") -> Iterator[StreamFrame | pb.Frame]:
        """Frames for a sequence of requests (FrameRequest messages, or dicts of `frame_request` arguments;
        a dict without `seq` gets its position). Breaking out of the loop cancels the stream."""
        start = pb.RenderStreamRequest(start=pb.StreamStart(
            avatar_id=avatar_id, mode=_enum(mode, MODES, "mode"),
            options=frame_options(size, encoding, jpeg_quality, depth, alpha, background, neural_resolution,
                                  upsampler)))

        def messages():
            yield start
            for i, r in enumerate(requests):
                if isinstance(r, Mapping):
                    r = frame_request(**{"seq": i, **r})
                yield pb.RenderStreamRequest(frame=r)

        call = self.stub.RenderStream(messages(), metadata=self._metadata, timeout=timeout)
        try:
            for frame in call:
                yield _decode(frame) if decode else frame
        except grpc.RpcError as e:
            raise _wrap(e) from None
        finally:
            call.cancel()

    def track(self, frames: Iterable[bytes], mode="every_frame", frame_rate: float = 0.0,
              without_smoothing: bool = False, timeout: float | None = None
              ) -> tuple[builtins.list[str], Iterator[pb.TrackedFace]]:
        """TrackFace for a sequence of JPEG/PNG frames (seq = position): the 52 channel names the
        weights follow, and an iterator of TrackedFace. Breaking out of the loop cancels the stream."""
        start = pb.TrackFaceRequest(start=pb.TrackStart(mode=_enum(mode, MODES, "mode"), frame_rate=frame_rate,
                                                        without_smoothing=without_smoothing))

        def messages():
            yield start
            for i, image in enumerate(frames):
                yield pb.TrackFaceRequest(frame=pb.TrackFrame(seq=i, image=image))

        call = self.stub.TrackFace(messages(), metadata=self._metadata, timeout=timeout)
        try:
            first = next(call)
        except grpc.RpcError as e:
            call.cancel()
            raise _wrap(e) from None
        if not first.HasField("header"):
            call.cancel()
            raise ClientError(grpc.StatusCode.INTERNAL, "TrackFace did not begin with its header")

        def faces():
            try:
                for response in call:
                    yield response.face
            except grpc.RpcError as e:
                raise _wrap(e) from None
            finally:
                call.cancel()
        return list(first.header.channel_names), faces()

    # -- exports -------------------------------------------------------------------------------------

    def export(self, avatar_id: str, formats: Sequence[str | int], out_dir: str | os.PathLike, options=None,
               animation: Sequence[str | os.PathLike | tuple[str, bytes]] | None = None,
               progress: Callable[[pb.Progress], None] | None = None,
               timeout: float | None = None) -> builtins.list[Path]:
        """Export into out_dir; returns the written paths. Each file's sha256 is checked against the
        server's; a mismatch raises ClientError(DATA_LOSS) and the damaged file is removed."""
        req = pb.ExportRequest(avatar_id=avatar_id, formats=[_enum(f, FORMATS, "export format") for f in formats])
        if options is not None:
            req.options.CopyFrom(options if isinstance(options, pb.ExportOptions) else pb.ExportOptions(**options))
        for src in animation or ():
            if isinstance(src, tuple):
                name, data = src
            else:
                name, data = Path(src).name, Path(src).read_bytes()
            req.animation_source.add(file_name=name, data=data)
        root = Path(out_dir)
        written: builtins.list[Path] = []
        current = None  # (path, file object, hasher, bytes written)
        try:
            for event in self.stub.Export(req, metadata=self._metadata, timeout=timeout):
                if event.HasField("progress"):
                    if progress is not None:
                        progress(event.progress)
                    continue
                chunk = event.chunk
                if current is None or current[0] != chunk.path:
                    if current is not None:
                        raise ClientError(grpc.StatusCode.DATA_LOSS, f"{current[0]} ended without its last chunk")
                    target = _safe_target(root, chunk.path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    current = [chunk.path, open(target, "wb"), hashlib.sha256(), 0, target]
                if chunk.offset != current[3]:
                    raise ClientError(grpc.StatusCode.DATA_LOSS,
                                      f"{chunk.path}: chunk at offset {chunk.offset}, expected {current[3]}")
                current[1].write(chunk.data)
                current[2].update(chunk.data)
                current[3] += len(chunk.data)
                if chunk.last:
                    current[1].close()
                    digest, size, target = current[2].hexdigest(), current[3], current[4]
                    current = None
                    if digest != chunk.sha256 or size != chunk.size:
                        target.unlink(missing_ok=True)
                        raise ClientError(grpc.StatusCode.DATA_LOSS,
                                          f"{chunk.path}: received {size} bytes with sha256 {digest}, the server "
                                          f"sent {chunk.size} bytes with sha256 {chunk.sha256}")
                    written.append(target)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        finally:
            if current is not None:
                current[1].close()
                current[4].unlink(missing_ok=True)
        return written

    # -- server --------------------------------------------------------------------------------------

    def info(self) -> pb.ServerInfo:
        return self._call(self.stub.GetServerInfo, pb.GetServerInfoRequest())


def _pem(value) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).expanduser().read_bytes()


def _safe_target(root: Path, rel: str) -> Path:
    """A server-named path, refused unless it stays inside out_dir."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel:
        raise ClientError(grpc.StatusCode.DATA_LOSS, f"the server sent an unsafe file path {rel!r}")
    return root.joinpath(*p.parts)
