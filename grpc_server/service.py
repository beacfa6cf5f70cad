"""The AvatarForge gRPC servicer: every RPC of protos/avatarforge/v1/avatarforge.proto.

Threads: gRPC's pool runs the handlers; creates and exports run in a separate worker pool (they take
seconds and must never hold up streams); renders go through FrameRenderer's few slots.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import queue
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

import grpc
import numpy as np

from avatar.expressions import ARKIT_NAMES
from grpc_server import exports, torch_threads
from grpc_server.proto import pb, pb_grpc
from grpc_server.convert import avatar_info, frame_inputs, frame_spec
from grpc_server.errors import Cancelled, InvalidRequest, ShuttingDown, register_invalid_argument, rpc_errors
from grpc_server.auth import client_identity
from grpc_server.limits import MESSAGE_OVERHEAD, ClientSlots, LimitExceeded, ServerLimits, Slots, check_portrait_header
from grpc_server.rendering import FrameRenderer
from grpc_server.store import AvatarStore, check_id, is_out_of_space, out_of_space
from grpc_server.streaming import MAX_TRACK_FRAMES, StreamSession, TrackSession

log = logging.getLogger(__name__)

DEFAULT_GENERATOR = "projective"
_POLL_S = 0.2


def server_version() -> str:
    try:
        return metadata.version("avatarforge")
    except metadata.PackageNotFoundError:
        return "0.0.0+source"


@dataclass(frozen=True)
class ServiceOptions:
    limits: ServerLimits = ServerLimits()
    workers: int = 1          # threads for creates and exports
    render_slots: int = 2     # frames rendered at once, across all calls (the server passes its config)
    backend: str = "cpu"      # rasterizer backend
    auth_required: bool = False
    default_generator: str = DEFAULT_GENERATOR


class _SharedScratch:
    """An export's scratch directory, used by two threads: the job writes it, the handler streams it.

    Whichever lets go last removes it, so a call cancelled while the job is still writing leaves
    nothing behind. It lives inside the store (same filesystem: a full disk is RESOURCE_EXHAUSTED; a
    `.tmp-` name: swept at start-up if the process dies mid-export)."""

    def __init__(self, make: Callable[[], Path]):
        self._make = make
        self._holders = 2
        self._lock = threading.Lock()
        self.path: Path | None = None

    def create(self) -> Path:
        self.path = self._make()
        return self.path

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last and self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


class AvatarForgeService(pb_grpc.AvatarForgeServicer):
    def __init__(self, store: AvatarStore, options: ServiceOptions = ServiceOptions()):
        self.store = store
        self.options = options
        self.limits = options.limits
        self.stopping = threading.Event()
        self.stream_slots = Slots(self.limits.max_streams, "render streams")
        self.job_slots = Slots(self.limits.max_pending_jobs, "avatar creations and exports")
        self.client_stream_slots = ClientSlots(self.limits.max_streams_per_client, "render streams")
        self.client_job_slots = ClientSlots(self.limits.max_jobs_per_client, "avatar creations and exports")
        self.frame_renderer = FrameRenderer(options.render_slots, self.limits.max_message_bytes)
        self._jobs = ThreadPoolExecutor(max_workers=max(1, options.workers), thread_name_prefix="avatarforge-job")
        for module, name in (("exporter.options", "ExportError"), ("avatar.generators", "GeneratorError"),
                             ("avatar.track", "ClipError")):
            try:
                register_invalid_argument(getattr(importlib.import_module(module), name))
            except (ImportError, AttributeError):
                pass  # that component is not installed; its RPCs say so themselves

    # -- lifecycle ---------------------------------------------------------------------------------

    def check_open(self) -> None:
        if self.stopping.is_set():
            raise ShuttingDown()

    def begin_shutdown(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        self.stopping.set()
        self._jobs.shutdown(wait=False, cancel_futures=True)

    # -- background jobs with progress ------------------------------------------------------------

    def _job(self, context: grpc.ServicerContext, work: Callable[[Callable], object]) -> Iterator[pb.Progress]:
        """Run `work(progress)` in the worker pool, yielding its progress; returns work's result.

        The progress callback raises Cancelled once the call is gone, which is how a cancelled or
        timed-out create stops burning CPU: the generator unwinds, nothing was saved yet.
        """
        client = client_identity(context)
        self.client_job_slots.acquire(client)
        try:
            self.job_slots.acquire()
        except LimitExceeded:
            self.client_job_slots.release(client)
            raise
        events: queue.Queue = queue.Queue()
        gone = threading.Event()
        context.add_callback(gone.set)

        def progress(stage, fraction, message=""):
            if gone.is_set() or not context.is_active():
                raise Cancelled("the call ended")
            f = float(fraction)
            events.put(pb.Progress(stage=str(stage), fraction=min(max(f, 0.0), 1.0) if f == f else 0.0,
                                   message=str(message)))

        def run():
            try:
                torch_threads.apply()
                return work(progress)
            finally:
                self.job_slots.release()
                self.client_job_slots.release(client)

        try:
            future = self._jobs.submit(run)
        except RuntimeError:
            self.job_slots.release()
            self.client_job_slots.release(client)
            raise ShuttingDown() from None
        while True:
            try:
                yield events.get(timeout=_POLL_S)
                continue
            except queue.Empty:
                pass
            if future.done() and events.empty():
                return future.result()
            if not context.is_active():
                gone.set()
                raise Cancelled("the call ended")

    # -- avatars -----------------------------------------------------------------------------------

    def _generator(self, name: str):
        from avatar.generators import available, get_generator

        name = name or self.options.default_generator
        names = [g[0] for g in available()]
        if name not in names:
            raise InvalidRequest(f"unknown generator {name!r}; this server has: {', '.join(names)}")
        return get_generator(name)

    def _create_kwargs(self, generator, request: pb.CreateAvatarRequest) -> dict:
        kwargs: dict = {}
        if request.HasField("face_box"):
            b = request.face_box
            kwargs["face_box"] = (b.x, b.y, b.width, b.height)
        if request.HasField("landmarks"):
            xy = np.asarray(list(request.landmarks.xy), dtype=np.float32)
            if xy.size == 0 or xy.size % 2:
                raise InvalidRequest(f"landmarks must be x, y pairs; got {xy.size} numbers")
            kwargs["landmarks"] = xy.reshape(-1, 2)
        if "limits" in inspect.signature(generator.create).parameters:
            kwargs["limits"] = self.limits.portrait_limits()
        return kwargs

    @staticmethod
    def _relay(jobs, event_type):
        """Forward a job's progress as `event_type` messages; returns the job's result."""
        while True:
            try:
                progress = next(jobs)
            except StopIteration as done:
                return done.value
            yield event_type(progress=progress)

    @staticmethod
    def _known_id(generator, portrait: bytes, kwargs: dict) -> str:
        """The id the generator will give this request, when it can say without generating (so an
        existing avatar is answered at once); empty when it cannot."""
        id_for = getattr(generator, "avatar_id", None)
        if not callable(id_for):
            return ""
        return id_for(portrait, face_box=kwargs.get("face_box"), landmarks=kwargs.get("landmarks"))

    def CreateAvatar(self, request: pb.CreateAvatarRequest, context) -> Iterator[pb.CreateAvatarEvent]:
        with rpc_errors(context, "CreateAvatar"):
            self.check_open()
            portrait = bytes(request.portrait)
            if len(portrait) > self.limits.max_portrait_bytes:
                raise LimitExceeded(f"image too large ({len(portrait)} bytes > limit "
                                    f"{self.limits.max_portrait_bytes} bytes)")
            if not portrait:
                raise InvalidRequest("portrait is empty: send PNG, JPEG or WebP bytes")
            generator = self._generator(request.generator)
            kwargs = self._create_kwargs(generator, request)
            if "limits" not in kwargs:
                check_portrait_header(portrait, self.limits.portrait_limits())
            avatar_id = self._known_id(generator, portrait, kwargs)
            if avatar_id and self.store.exists(avatar_id):
                yield pb.CreateAvatarEvent(progress=pb.Progress(stage="done", fraction=1.0,
                                                                message="this avatar already exists"))
                yield pb.CreateAvatarEvent(avatar=avatar_info(self.store.info(avatar_id, include_thumbnail=True)))
                return

            def work(progress):
                avatar = generator.create(portrait, progress=progress, **kwargs)
                if request.display_name:
                    avatar.display_name = request.display_name
                progress("save", 1.0, "saving the avatar")
                return self.store.create(avatar)

            record = yield from self._relay(self._job(context, work), pb.CreateAvatarEvent)
            yield pb.CreateAvatarEvent(avatar=avatar_info(self.store.info(record.avatar_id, include_thumbnail=True)))

    def GetAvatar(self, request: pb.GetAvatarRequest, context) -> pb.AvatarInfo:
        with rpc_errors(context, "GetAvatar"):
            self.check_open()
            return avatar_info(self.store.info(request.avatar_id, include_thumbnail=request.include_thumbnail))

    def ListAvatars(self, request: pb.ListAvatarsRequest, context) -> pb.ListAvatarsResponse:
        with rpc_errors(context, "ListAvatars"):
            self.check_open()
            records, token = self.store.list(request.page_size, request.page_token)
            return pb.ListAvatarsResponse(avatars=[avatar_info(r) for r in records], next_page_token=token)

    def DeleteAvatar(self, request: pb.DeleteAvatarRequest, context) -> pb.DeleteAvatarResponse:
        with rpc_errors(context, "DeleteAvatar"):
            self.check_open()
            check_id(request.avatar_id)
            return pb.DeleteAvatarResponse(deleted=self.store.delete(request.avatar_id))

    # -- rendering ---------------------------------------------------------------------------------

    def Render(self, request: pb.RenderRequest, context) -> pb.Frame:
        with rpc_errors(context, "Render"):
            self.check_open()
            check_id(request.avatar_id)
            spec = frame_spec(request.options, self.limits)
            inputs = frame_inputs(request)
            received = time.perf_counter()
            pool = self.store.renderers(request.avatar_id)

            def cancelled() -> bool:
                remaining = context.time_remaining()
                return not context.is_active() or (remaining is not None and remaining <= 0)

            rendered = self.frame_renderer.render(pool, inputs, spec, cancelled)
            enc = rendered.encoded
            return pb.Frame(width=spec.width, height=spec.height, encoding=spec.encoding, data=enc.data,
                            depth=enc.depth, alpha=enc.alpha, render_ms=rendered.render_ms,
                            queue_ms=(time.perf_counter() - received) * 1e3 - rendered.render_ms)

    def RenderStream(self, request_iterator, context) -> Iterator[pb.Frame]:
        return StreamSession(self, request_iterator, context).run()

    # -- face tracking -----------------------------------------------------------------------------

    def TrackFace(self, request_iterator, context) -> Iterator[pb.TrackFaceResponse]:
        return TrackSession(self, request_iterator, context).run()

    # -- exports -----------------------------------------------------------------------------------

    def Export(self, request: pb.ExportRequest, context) -> Iterator[pb.ExportEvent]:
        with rpc_errors(context, "Export"):
            self.check_open()
            self.store.info(request.avatar_id)  # NOT_FOUND before anything else
            try:
                api = exports.exporter_api()
            except exports.ExporterMissing as e:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, str(e))
            formats = exports.formats_from_proto(request.formats)
            options = exports.options_from_proto(request.options)
            sources = exports.animation_sources(request.animation_source, formats)
            avatar = self.store.load(request.avatar_id)
            scratch = _SharedScratch(lambda: self.store.scratch_dir("export"))
            try:
                def work(progress):
                    try:
                        out_dir = scratch.create()
                        written = api.export(avatar, formats, options, sources, out_dir, progress)
                        return exports.checked_paths(out_dir, written)
                    except OSError as e:
                        if is_out_of_space(e):
                            raise out_of_space(e, f"export avatar {request.avatar_id}") from None
                        raise
                    finally:
                        scratch.release()

                paths = yield from self._relay(self._job(context, work), pb.ExportEvent)
                chunk = min(exports.MAX_CHUNK_BYTES, self.limits.max_message_bytes - MESSAGE_OVERHEAD)
                for rel in paths:
                    for piece in exports.file_chunks(scratch.path, rel, chunk):
                        yield pb.ExportEvent(chunk=piece)
            finally:
                scratch.release()

    # -- server ------------------------------------------------------------------------------------

    def GetServerInfo(self, request: pb.GetServerInfoRequest, context) -> pb.ServerInfo:
        with rpc_errors(context, "GetServerInfo"):
            from avatar.generators import available

            lim = self.limits
            return pb.ServerInfo(
                version=server_version(),
                generators=[pb.GeneratorInfo(name=n, version=v, description=d, available=not why, unavailable_reason=why)
                            for n, v, d, why in available()],
                default_generator=self.options.default_generator,
                limits=pb.Limits(max_portrait_bytes=lim.max_portrait_bytes, max_portrait_pixels=lim.max_portrait_pixels,
                                 max_streams=lim.max_streams, max_frame_pixels=lim.max_frame_pixels,
                                 max_message_bytes=lim.max_message_bytes, max_track_frames=MAX_TRACK_FRAMES),
                rasterizer_backend=self.options.backend,
                device="cuda:0" if self.options.backend == "nvdiffrast" else "cpu",
                expression_names=list(ARKIT_NAMES),
                auth_required=self.options.auth_required,
            )
