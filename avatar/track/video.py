"""Video clips for the tracker: frames decoded by OpenCV's FFmpeg backend (mp4, mov, webm, ...), within limits.

Every clip that cannot be used is a ClipError (a ValueError, INVALID_ARGUMENT at the service) with a
sentence: not a file, not a video, zero frames, a codec that decodes nothing, a truncated file. A clip
beyond the limits (bytes or frames) is a ClipTooLong, a PortraitError with reason "too_large", so every
layer that maps upload limits (RESOURCE_EXHAUSTED) maps it too.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from avatar.portrait.errors import PortraitError

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi")
# A container's frame count is an estimate for some formats; fewer decoded frames than this fraction of
# it (and more than a couple missing) means the file was cut short.
TRUNCATED_FRACTION = 0.95
DEFAULT_FRAME_RATE = 30.0


class ClipError(ValueError):
    """A clip that cannot be tracked; the message says why."""


class ClipTooLong(PortraitError):
    """A clip beyond the tracker's limits (bytes or frames); the message states the limit."""

    def __init__(self, message: str):
        super().__init__("too_large", message)


@dataclass(frozen=True)
class ClipLimits:
    """What one clip may hold: ten minutes at 30 fps and 512 MiB by default."""

    max_frames: int = 18_000
    max_bytes: int = 512 * 2**20

    def check_bytes(self, size: int, name: str) -> None:
        if size > self.max_bytes:
            raise ClipTooLong(f"{name}: the clip is {size} bytes, above the limit of {self.max_bytes} bytes")

    def check_frames(self, count: int, name: str) -> None:
        if count > self.max_frames:
            raise ClipTooLong(f"{name}: the clip has more than {self.max_frames} frames, the limit per clip")


@dataclass(frozen=True)
class ClipInfo:
    frame_rate: float      # frames per second (DEFAULT_FRAME_RATE when the container does not say)
    width: int
    height: int
    declared_frames: int   # the container's frame count, 0 when unknown


class Clip:
    """An open clip: `info`, then `frames()` once (RGB uint8 (H, W, 3), in order). Use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], limits: ClipLimits = ClipLimits(), name: str | None = None):
        self.path = Path(path)
        self.name = name or self.path.name  # what error messages call the clip (an upload's own name)
        self.limits = limits
        if not self.path.is_file():
            raise ClipError(f"{self.path}: no such video file")
        limits.check_bytes(self.path.stat().st_size, self.name)
        if self.path.stat().st_size == 0:
            raise ClipError(f"{self.name}: the file is empty, not a video")
        self._capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self._capture.isOpened():
            self._capture.release()
            raise ClipError(f"{self.name}: not a video OpenCV's FFmpeg backend can open (mp4, mov or webm "
                            f"with a common codec is needed; the file may be truncated or of another kind)")
        rate = self._capture.get(cv2.CAP_PROP_FPS)
        declared = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.info = ClipInfo(
            frame_rate=float(rate) if math.isfinite(rate) and 1.0 <= rate <= 1000.0 else DEFAULT_FRAME_RATE,
            width=int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            declared_frames=int(declared) if math.isfinite(declared) and declared > 0 else 0)
        if self.info.declared_frames:
            limits.check_frames(self.info.declared_frames, self.name)

    def frames(self) -> Iterator[np.ndarray]:
        """Decoded frames; ClipError when none decodes or the clip ends well before its declared length."""
        count = 0
        try:
            while True:
                ok, bgr = self._capture.read()
                if not ok or bgr is None:
                    break
                count += 1
                self.limits.check_frames(count, self.name)
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            self.close()
        if count == 0:
            raise ClipError(f"{self.name}: no frame could be decoded (zero frames, or a codec this server's "
                            f"FFmpeg cannot read)")
        declared = self.info.declared_frames
        if declared and count < TRUNCATED_FRACTION * declared and declared - count > 2:
            raise ClipError(f"{self.name}: the clip is truncated: its header declares {declared} frames, but "
                            f"only {count} could be decoded")

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> Clip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def clip_file(data: bytes, name: str, limits: ClipLimits = ClipLimits()) -> Iterator[Path]:
    """Clip bytes (an upload) as a temporary file OpenCV can open; the suffix of `name` is kept."""
    limits.check_bytes(len(data), name)
    suffix = Path(name).suffix.lower() or ".mp4"
    with tempfile.TemporaryDirectory(prefix="avatarforge-clip-") as tmp:
        path = Path(tmp) / f"clip{suffix}"
        path.write_bytes(data)
        yield path


def is_video_name(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_SUFFIXES
