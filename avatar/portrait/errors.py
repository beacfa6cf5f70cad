"""The exception types and the input limits of portrait preparation."""
from __future__ import annotations

from dataclasses import dataclass

REASONS = frozenset({
    "not_an_image",
    "unsupported_format",
    "too_large",
    "too_small",
    "truncated",
    "no_face",
    "several_faces",
    "face_too_small",
    "face_too_turned",
    "bad_face_box",
    "bad_landmarks",
})


class PortraitError(ValueError):
    """A portrait that cannot be prepared; ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, message: str):
        if reason not in REASONS:
            raise ValueError(f"unknown portrait error reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message


class PerceptionUnavailable(RuntimeError):
    """The face perception models are not installed (or damaged): a server condition, not bad input.
    The message names the cache directory and `make models`."""


@dataclass(frozen=True)
class PortraitLimits:
    """Upload limits; checked before any pixel is decoded."""

    max_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    min_side: int = 64

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "min_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PortraitLimits.{name} must be a positive integer, got {value!r}")
