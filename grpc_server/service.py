"""The AvatarForge gRPC servicer: every RPC of protos/avatarforge/v1/avatarforge.proto, each one a
translation between messages and a call of the application layer (grpc_server.app)."""
from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from importlib import metadata
from typing import TypeVar

import grpc

from avatar.expressions import ARKIT_NAMES
from avatar.render import render_device
from grpc_server import convert, exports, frames
from grpc_server.app.application import Application
from grpc_server.app.exports import MAX_CHUNK_BYTES
from grpc_server.app.jobs import Progress
from grpc_server.auth import client_identity
from grpc_server.errors import rpc_errors
from grpc_server.limits import MESSAGE_OVERHEAD
from grpc_server.proto import pb, pb_grpc
from grpc_server.streaming import MAX_TRACK_FRAMES, StreamSession, TrackSession

T = TypeVar("T")
E = TypeVar("E", pb.CreateAvatarEvent, pb.ExportEvent)


def server_version() -> str:
    try:
        return metadata.version("avatarforge")
    except metadata.PackageNotFoundError:
        return "0.0.0+source"


def relay(jobs: Generator[Progress, None, T], event_type: type[E]) -> Generator[E, None, T]:
    """Forward a job's progress as `event_type(progress=...)` messages; returns the job's result.
    Closing this generator (the call went away) closes the job's."""
    try:
        while True:
            try:
                progress = next(jobs)
            except StopIteration as done:
                return done.value
            yield event_type(progress=convert.progress(progress))
    finally:
        jobs.close()


class AvatarForgeService(pb_grpc.AvatarForgeServicer):
    def __init__(self, app: Application, auth_required: bool = False):
        self.app = app
        self.limits = app.limits
        self.auth_required = auth_required

    @staticmethod
    def _gone(context: grpc.ServicerContext) -> bool:
        remaining: float | None = context.time_remaining()  # None without a deadline
        return not context.is_active() or (remaining is not None and remaining <= 0)

    # -- avatars -----------------------------------------------------------------------------------

    def CreateAvatar(self, request: pb.CreateAvatarRequest, context: grpc.ServicerContext
                     ) -> Iterator[pb.CreateAvatarEvent]:
        with rpc_errors(context, "CreateAvatar"):
            box = request.face_box
            record = yield from relay(self.app.create(
                bytes(request.portrait), generator=request.generator, display_name=request.display_name,
                face_box=(box.x, box.y, box.width, box.height) if request.HasField("face_box") else None,
                landmarks=convert.landmarks_from_proto(request.landmarks) if request.HasField("landmarks") else None,
                client=client_identity(context), cancelled=lambda: not context.is_active()), pb.CreateAvatarEvent)
            yield pb.CreateAvatarEvent(avatar=convert.avatar_info(record))

    def GetAvatar(self, request: pb.GetAvatarRequest, context: grpc.ServicerContext) -> pb.AvatarInfo:
        with rpc_errors(context, "GetAvatar"):
            return convert.avatar_info(self.app.get(request.avatar_id, request.include_thumbnail))

    def ListAvatars(self, request: pb.ListAvatarsRequest, context: grpc.ServicerContext) -> pb.ListAvatarsResponse:
        with rpc_errors(context, "ListAvatars"):
            records, token = self.app.list(request.page_size, request.page_token)
            return pb.ListAvatarsResponse(avatars=[convert.avatar_info(r) for r in records], next_page_token=token)

    def DeleteAvatar(self, request: pb.DeleteAvatarRequest, context: grpc.ServicerContext) -> pb.DeleteAvatarResponse:
        with rpc_errors(context, "DeleteAvatar"):
            return pb.DeleteAvatarResponse(deleted=self.app.delete(request.avatar_id))

    # -- rendering ---------------------------------------------------------------------------------

    def Render(self, request: pb.RenderRequest, context: grpc.ServicerContext) -> pb.Frame:
        with rpc_errors(context, "Render"):
            self.app.check_open()
            spec = convert.frame_spec(request.options, self.limits)
            options = convert.render_options(request.options, spec)
            inputs = convert.frame_inputs(request)
            received = time.perf_counter()
            frame = self.app.render(request.avatar_id, inputs, options, lambda: self._gone(context))
            return frames.message(frame, spec, self.limits.max_message_bytes, received)

    def RenderStream(self, request_iterator: Iterator[pb.RenderStreamRequest], context: grpc.ServicerContext
                     ) -> Iterator[pb.Frame]:
        return StreamSession(self.app, request_iterator, context).run()

    def TrackFace(self, request_iterator: Iterator[pb.TrackFaceRequest], context: grpc.ServicerContext
                  ) -> Iterator[pb.TrackFaceResponse]:
        return TrackSession(self.app, request_iterator, context).run()

    # -- exports -----------------------------------------------------------------------------------

    def Export(self, request: pb.ExportRequest, context: grpc.ServicerContext) -> Iterator[pb.ExportEvent]:
        with rpc_errors(context, "Export"):
            formats = exports.formats_from_proto(request.formats)
            files = yield from relay(self.app.export(
                request.avatar_id, formats, exports.options_from_proto(request.options),
                exports.animation_sources(request.animation_source, formats), client=client_identity(context),
                cancelled=lambda: not context.is_active()), pb.ExportEvent)
            with files:
                for chunk in files.chunks(min(MAX_CHUNK_BYTES, self.limits.max_message_bytes - MESSAGE_OVERHEAD)):
                    yield pb.ExportEvent(chunk=exports.chunk_message(chunk))

    # -- server ------------------------------------------------------------------------------------

    def GetServerInfo(self, request: pb.GetServerInfoRequest, context: grpc.ServicerContext) -> pb.ServerInfo:
        with rpc_errors(context, "GetServerInfo"):
            lim, backend = self.limits, self.app.options.backend
            return pb.ServerInfo(
                version=server_version(),
                generators=[pb.GeneratorInfo(name=n, version=v, description=d, available=not why,
                                             unavailable_reason=why) for n, v, d, why in self.app.generators()],
                default_generator=self.app.options.default_generator,
                limits=pb.Limits(max_portrait_bytes=lim.max_portrait_bytes, max_portrait_pixels=lim.max_portrait_pixels,
                                 max_streams=lim.max_streams, max_frame_pixels=lim.max_frame_pixels,
                                 max_message_bytes=lim.max_message_bytes, max_track_frames=MAX_TRACK_FRAMES),
                rasterizer_backend=backend,
                device=str(render_device(backend)),
                expression_names=list(ARKIT_NAMES),
                auth_required=self.auth_required,
            )
