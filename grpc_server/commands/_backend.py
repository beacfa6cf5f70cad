"""The two places a command can work: a local store (through the application layer, in this process)
or a running server (through the Python client). Both satisfy `Backend`, so each command is written
once; their failures carry a sentence (domain errors locally, ClientError from a server).

The application, the client and the models are imported when a backend is made, not when the CLI
starts: `serve` sets OpenMP's thread count before torch loads, and `--help` stays instant.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from exporter.options import ExportOptions

if TYPE_CHECKING:
    from exporter.sources import AnimationSource
    from grpc_server.app.jobs import ProgressFn


class Backend(Protocol):
    def create(self, portrait: bytes, generator: str, display_name: str, progress: ProgressFn) -> str:
        """Create (or find: creates are idempotent) the avatar of a portrait's bytes; returns its id."""

    def render(self, avatar_id: str, yaw: float, pitch: float, roll: float, expression: dict[str, float],
               size: int) -> np.ndarray:
        """One square frame as (size, size, 4) uint8 straight-alpha RGBA; the orbit angles in degrees."""

    def export(self, avatar_id: str, formats: list[str], options: ExportOptions, sources: list[AnimationSource],
               out_dir: Path, progress: ProgressFn) -> list[str]:
        """Export into `out_dir`; returns the relative paths written."""


class LocalBackend:
    def __init__(self, store: Path, head_model: str = ""):
        from avatar.head_registry import use_head_model
        from grpc_server.app.application import Application, AppOptions
        from grpc_server.store import AvatarStore

        head = use_head_model(head_model) if head_model else None
        self.store = AvatarStore(store)
        self.app = Application(self.store, AppOptions(head_model=head))

    @contextmanager
    def _naming_the_store(self) -> Iterator[None]:
        from grpc_server.store import AvatarNotFound

        try:
            yield
        except AvatarNotFound as e:
            raise AvatarNotFound(f"{e} (it is not in the store {self.store.root})") from None

    def create(self, portrait: bytes, generator: str, display_name: str, progress: ProgressFn) -> str:
        jobs = self.app.create(portrait, generator=generator, display_name=display_name)
        while True:
            try:
                p = next(jobs)
            except StopIteration as done:
                return str(done.value.avatar_id)
            progress(p.stage, p.fraction, p.message)

    def render(self, avatar_id: str, yaw: float, pitch: float, roll: float, expression: dict[str, float],
               size: int) -> np.ndarray:
        from avatar.camera import camera_vector
        from avatar.expressions import weights_from_map
        from grpc_server.app.rendering import FrameInputs, RenderOptions
        from grpc_server.frames import compose_rgba

        inputs = FrameInputs(camera=camera_vector(yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll),
                             expression=weights_from_map(expression), head_pose=None, eye=None)
        with self._naming_the_store():
            frame = self.app.render(avatar_id, inputs, RenderOptions(height=size, width=size))
        return compose_rgba(frame.rgb, frame.alpha)

    def export(self, avatar_id: str, formats: list[str], options: ExportOptions, sources: list[AnimationSource],
               out_dir: Path, progress: ProgressFn) -> list[str]:
        with self._naming_the_store():
            return self.app.export_to(avatar_id, formats, options, sources, out_dir, progress)

    def close(self) -> None:
        self.app.close()


class RemoteBackend:
    def __init__(self, address: str, token: str | None):
        from grpc_server.client import AvatarForgeClient

        self.client = AvatarForgeClient(address, token=token)

    def create(self, portrait: bytes, generator: str, display_name: str, progress: ProgressFn) -> str:
        return self.client.create(portrait, generator=generator, display_name=display_name,
                                  progress=lambda p: progress(p.stage, p.fraction, p.message))

    def render(self, avatar_id: str, yaw: float, pitch: float, roll: float, expression: dict[str, float],
               size: int) -> np.ndarray:
        return self.client.render(avatar_id, yaw=yaw, pitch=pitch, roll=roll, expression=expression or None,
                                  size=size)

    def export(self, avatar_id: str, formats: list[str], options: ExportOptions, sources: list[AnimationSource],
               out_dir: Path, progress: ProgressFn) -> list[str]:
        from grpc_server.exports import options_to_proto

        written = self.client.export(avatar_id, formats, out_dir, options=options_to_proto(options),
                                     animation=sources, progress=lambda p: progress(p.stage, p.fraction, p.message))
        return [Path(p).relative_to(out_dir).as_posix() for p in written]

    def close(self) -> None:
        self.client.close()


@contextmanager
def open_backend(store: Path, server: str | None, token: str | None, head_model: str = "") -> Iterator[Backend]:
    """The server at `server` when one is named, else the local `store`."""
    backend: LocalBackend | RemoteBackend = RemoteBackend(server, token) if server else LocalBackend(store, head_model)
    try:
        yield backend
    finally:
        backend.close()
