"""Generators turn a portrait into an Avatar. Each registers under a name; `projective` is the default."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from numpy.typing import ArrayLike

from avatar.asset import Avatar
from avatar.portrait import PortraitLimits

ProgressFn = Callable[[str, float, str], None]
DEFAULT_GENERATOR = "projective"


class GeneratorError(ValueError):
    """An unknown generator name or settings a generator cannot use."""


class Generator(Protocol):
    name: str
    version: str
    description: str
    settings: dict[str, Any]

    def create(self, portrait_bytes: bytes, face_box: Sequence[float] | None = None,
               landmarks: ArrayLike | None = None, progress: ProgressFn | None = None,
               display_name: str = "", limits: PortraitLimits | None = None) -> Avatar:
        """`face_box` is (x, y, width, height) pixels of the portrait; `landmarks` (N, 2) pixel x, y."""
        ...

    def avatar_id(self, portrait_bytes: bytes, face_box: Sequence[float] | None = None,
                  landmarks: ArrayLike | None = None) -> str: ...

    def unavailable_reason(self) -> str:
        """Empty when `create` can run here; otherwise what is missing (models, weights) and how to fix it."""
        ...


_FACTORIES: dict[str, Callable[[], Generator]] = {}


def register(name: str, factory: Callable[[], Generator]) -> None:
    _FACTORIES[name] = factory


def get_generator(name: str = "") -> Generator:
    name = name or DEFAULT_GENERATOR
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise GeneratorError(f"unknown generator {name!r}; available: {', '.join(sorted(_FACTORIES))}") from None


def available() -> list[tuple[str, str, str, str]]:
    """(name, version, description, unavailable_reason) of every registered generator; the reason is
    empty for a generator that can run here."""
    out = []
    for name in sorted(_FACTORIES):
        g = _FACTORIES[name]()
        out.append((g.name, g.version, g.description, g.unavailable_reason()))
    return out


def _register_builtin() -> None:
    from avatar.generators.projective import ProjectiveGenerator
    register(ProjectiveGenerator.name, ProjectiveGenerator)
    from avatar.generators.avatarartist import AvatarArtistGenerator
    register(AvatarArtistGenerator.name, AvatarArtistGenerator)  # listed always; create says what is missing


_register_builtin()
