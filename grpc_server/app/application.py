"""AvatarForge's use cases in plain Python: create, get, list, delete, render, stream, export.

The gRPC servicer translates messages to these calls and back; the CLI's local mode calls them
directly. Threads: creates and exports run in the job pool (they take seconds and must never hold up
streams); frames render through FrameRenderer's few slots, with renderers from the cache.
"""
from __future__ import annotations

import builtins  # the class's own `list` method hides the type in its annotations
import os
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from avatar.asset import Avatar
from avatar.generators import DEFAULT_GENERATOR, available, get_generator
from avatar.generators import Generator as AvatarGenerator
from avatar.generators.projective import ProjectiveGenerator
from avatar.head_model import HeadModel
from avatar.portrait.decode import decode_image
from avatar.render import Renderer
from avatar.track import FaceTracker
from exporter.api import export, normalise_formats
from exporter.options import ExportOptions
from exporter.sources import AnimationSource
from grpc_server.app.errors import InvalidRequest, ShuttingDown
from grpc_server.app.exports import ExportedFiles, SharedScratch, checked_paths
from grpc_server.app.jobs import Jobs, Progress, ProgressFn, never
from grpc_server.app.march_policy import DEFAULT_MARCH_POLICY
from grpc_server.app.renderers import RendererCache, RendererPool
from grpc_server.app.rendering import FrameInputs, FrameRenderer, RenderedFrame, RenderOptions
from grpc_server.limits import ClientSlots, LimitExceeded, ServerLimits, Slots
from grpc_server.store import AvatarNotFound, AvatarRecord, check_id, is_out_of_space, out_of_space


class Store(Protocol):
    """What the application needs of persistence (grpc_server.store.AvatarStore is the directory-tree
    one; an object-storage store implements the same calls with the same errors)."""

    def exists(self, avatar_id: str) -> bool: ...
    def create(self, avatar: Avatar) -> AvatarRecord: ...
    def info(self, avatar_id: str, include_thumbnail: bool = False) -> AvatarRecord: ...
    def list(self, page_size: int = 0, page_token: str = "") -> tuple[builtins.list[AvatarRecord], str]: ...
    def delete(self, avatar_id: str) -> bool: ...
    def load(self, avatar_id: str) -> Avatar: ...
    def scratch_dir(self, purpose: str) -> Path:
        """A fresh local directory for an export's files, removed by the caller."""
        ...


@dataclass(frozen=True)
class AppOptions:
    limits: ServerLimits = ServerLimits()
    workers: int = 1            # creates and exports running at once
    render_slots: int = 2       # frames rendered at once, and renderers kept per avatar
    march_policy: str = DEFAULT_MARCH_POLICY  # how their marches share the cores (rendering.MARCH_POLICIES)
    cache_size: int = 8         # avatars whose renderers stay loaded
    backend: str = "cpu"        # rasterizer backend of the renderers
    default_generator: str = DEFAULT_GENERATOR
    head_model: HeadModel | None = None  # the head the projective generator fits; None = the embedded one


class Application:
    def __init__(self, store: Store, options: AppOptions = AppOptions()):
        self.store = store
        self.options = options
        self.limits = options.limits
        self.stopping = threading.Event()
        self.jobs = Jobs(options.workers, self.limits.max_pending_jobs, self.limits.max_jobs_per_client)
        self.stream_slots = Slots(self.limits.max_streams, "render streams")
        self.client_stream_slots = ClientSlots(self.limits.max_streams_per_client, "render streams")
        self.renderers: RendererCache[Renderer] = RendererCache(store.load, self._new_renderer, options.cache_size,
                                                                options.render_slots)
        self.frames = FrameRenderer(options.render_slots, options.march_policy)

    def _new_renderer(self, avatar: Avatar) -> Renderer:
        return Renderer(avatar, backend=self.options.backend)

    # -- lifecycle ---------------------------------------------------------------------------------

    def check_open(self) -> None:
        """ShuttingDown once shutdown has begun: new work goes to another replica."""
        if self.stopping.is_set():
            raise ShuttingDown()

    def begin_shutdown(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        self.stopping.set()
        self.jobs.close()

    # -- avatars -----------------------------------------------------------------------------------

    def generators(self) -> list[tuple[str, str, str, str]]:
        """(name, version, description, why it cannot run here or "") of every generator."""
        return available()

    def generator(self, name: str = "") -> AvatarGenerator:
        name = name or self.options.default_generator
        names = [g[0] for g in self.generators()]
        if name not in names:
            raise InvalidRequest(f"unknown generator {name!r}; this server has: {', '.join(names)}")
        if name == ProjectiveGenerator.name and self.options.head_model is not None:
            return ProjectiveGenerator(head=self.options.head_model)
        return get_generator(name)

    def create(self, portrait: bytes, *, generator: str = "", face_box: Sequence[float] | None = None,
               landmarks: np.ndarray | None = None, display_name: str = "", client: str = "local",
               cancelled: Callable[[], bool] = never) -> Generator[Progress, None, AvatarRecord]:
        """Create the avatar of a portrait (PNG, JPEG or WebP bytes), yielding progress; returns its record
        with the thumbnail. Idempotent: a portrait whose avatar exists is answered at once.

        `face_box` is (x, y, width, height) pixels of the portrait; `landmarks` (N, 2) pixel x, y.
        """
        self.check_open()
        if len(portrait) > self.limits.max_portrait_bytes:
            raise LimitExceeded(f"image too large ({len(portrait)} bytes > limit "
                                f"{self.limits.max_portrait_bytes} bytes)")
        if not portrait:
            raise InvalidRequest("portrait is empty: send PNG, JPEG or WebP bytes")
        maker = self.generator(generator)
        known = maker.avatar_id(portrait, face_box=face_box, landmarks=landmarks)
        if self.store.exists(known):
            yield Progress("done", 1.0, "this avatar already exists")
            return self.store.info(known, include_thumbnail=True)

        def work(progress: ProgressFn) -> AvatarRecord:
            avatar = maker.create(portrait, face_box=face_box, landmarks=landmarks, progress=progress,
                                  display_name=display_name, limits=self.limits.portrait_limits())
            progress("save", 1.0, "saving the avatar")
            return self.store.create(avatar)

        record = yield from self.jobs.run(work, client, cancelled)
        return self.store.info(record.avatar_id, include_thumbnail=True)

    def get(self, avatar_id: str, include_thumbnail: bool = False) -> AvatarRecord:
        self.check_open()
        return self.store.info(avatar_id, include_thumbnail=include_thumbnail)

    def list(self, page_size: int = 0, page_token: str = "") -> tuple[list[AvatarRecord], str]:
        """One page of avatars in id order and the token of the next page ("" after the last)."""
        self.check_open()
        return self.store.list(page_size, page_token)

    def delete(self, avatar_id: str) -> bool:
        """True when this call removed the avatar, False when it did not exist."""
        self.check_open()
        check_id(avatar_id)
        deleted = self.store.delete(avatar_id)
        self.renderers.evict(avatar_id)
        return deleted

    # -- rendering ---------------------------------------------------------------------------------

    def render(self, avatar_id: str, inputs: FrameInputs, options: RenderOptions,
               cancelled: Callable[[], bool] = never) -> RenderedFrame:
        self.check_open()
        check_id(avatar_id)
        return self.frames.render(self._pool(avatar_id), inputs, options, cancelled)

    def _pool(self, avatar_id: str) -> RendererPool[Renderer]:
        """The avatar's renderers, while the store still holds it: another replica on the same store may
        have deleted it since this one cached them."""
        if not self.store.exists(avatar_id):
            self.renderers.evict(avatar_id)
            raise AvatarNotFound(f"avatar {avatar_id} does not exist")
        return self.renderers.pool(avatar_id)

    @contextmanager
    def stream_slot(self, client: str = "local") -> Iterator[None]:
        """Hold one of the streams this service runs at once (and one of the client's) for the block."""
        self.check_open()
        self.client_stream_slots.acquire(client)
        try:
            with self.stream_slots:
                yield
        finally:
            self.client_stream_slots.release(client)

    def open_stream(self, avatar_id: str, options: RenderOptions) -> Stream:
        """The frames of one avatar at fixed options; call inside `stream_slot`."""
        check_id(avatar_id)
        return Stream(self, self._pool(avatar_id), options)

    # -- exports -----------------------------------------------------------------------------------

    def _export_inputs(self, avatar_id: str, formats: Sequence[str],
                       sources: Sequence[AnimationSource]) -> tuple[Avatar, builtins.list[str]]:
        self.check_open()
        self.store.info(avatar_id)  # NOT_FOUND before anything else
        names = normalise_formats(formats)
        check_animation_sources(sources, names)
        return self._pool(avatar_id).avatar, names

    def export(self, avatar_id: str, formats: Sequence[str], options: ExportOptions,
               sources: Sequence[AnimationSource] = (), *, client: str = "local",
               cancelled: Callable[[], bool] = never) -> Generator[Progress, None, ExportedFiles]:
        """Export in the job pool, yielding progress; returns the files, to be read (as chunks) and
        then closed, which removes them."""
        avatar, names = self._export_inputs(avatar_id, formats, sources)
        scratch = SharedScratch(lambda: self.store.scratch_dir("export"))

        def work(progress: ProgressFn) -> builtins.list[str]:
            try:
                out_dir = scratch.create()
                return checked_paths(out_dir, export(avatar, names, options, list(sources), out_dir, progress))
            except OSError as e:
                if is_out_of_space(e):
                    raise out_of_space(e, f"export avatar {avatar_id}") from None
                raise
            finally:
                scratch.release()

        try:
            paths = yield from self.jobs.run(work, client, cancelled)
        except BaseException:
            scratch.release()
            raise
        assert scratch.path is not None  # the job created it before it returned paths
        return ExportedFiles(scratch.path, paths, scratch.release)

    def export_to(self, avatar_id: str, formats: Sequence[str], options: ExportOptions,
                  sources: Sequence[AnimationSource], out_dir: str | os.PathLike[str],
                  progress: ProgressFn | None = None) -> builtins.list[str]:
        """Export straight into `out_dir` in this thread; returns the relative paths written."""
        avatar, names = self._export_inputs(avatar_id, formats, sources)
        return export(avatar, names, options, list(sources), Path(out_dir), progress)


class Stream:
    """One stream's frames: its avatar's renderers, options fixed for the stream, and a face tracker
    (made for the first driving image) that turns driving images into expressions."""

    def __init__(self, app: Application, pool: RendererPool[Renderer], options: RenderOptions):
        self._app = app
        self._pool = pool
        self.options = options
        self._tracker: FaceTracker | None = None

    def render(self, inputs: FrameInputs, driving_image: bytes = b"",
               cancelled: Callable[[], bool] = never) -> RenderedFrame:
        """One frame; a driving image (PNG/JPEG bytes) replaces the expression, head pose and gaze with
        those of the face tracked in it."""
        if driving_image:
            self._tracker = self._tracker or FaceTracker()
            tracked = self._tracker.track(decode_image(driving_image, self._app.limits.portrait_limits()))
            yaw, pitch, roll = (float(v) for v in tracked.head_pose)
            inputs = replace(inputs, expression=tracked.weights, eye=tracked.eye, head_pose=(yaw, pitch, roll))
        return self._app.frames.render(self._pool, inputs, self.options, cancelled)


def check_animation_sources(sources: Sequence[AnimationSource], formats: Sequence[str]) -> None:
    """InvalidRequest unless the animation format has a source and every source has a plain file name."""
    if "animation" in formats and not sources:
        raise InvalidRequest("ANIMATION export needs at least one animation_source (.npy, .csv or .json)")
    for name, _ in sources:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise InvalidRequest(f"animation_source file_name {name!r} must be a plain file name such as take1.csv")
