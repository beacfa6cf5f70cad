"""Export options and the one exception type every exporter raises for unusable input."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

DEFAULT_TEXTURE_SIZE = 1024
DEFAULT_STATIC_TRIANGLE_BUDGET = 20_000
DEFAULT_FRAME_RATE = 30.0


class ExportError(ValueError):
    """An export request that cannot be carried out; the message names the input and the problem."""

    status = "INVALID_ARGUMENT"


@dataclass(frozen=True)
class ExportOptions:
    texture_size: int = DEFAULT_TEXTURE_SIZE            # head texture edge, power of two in 256..4096;
                                                        # the static parts get half of it (at least 256)
    static_triangle_budget: int = DEFAULT_STATIC_TRIANGLE_BUDGET
    include_static: bool = True                         # hair/ears/neck mesh from the avatar's density
    target_normals: bool = True                         # NORMAL deltas in the morph targets
    frame_rate: float = DEFAULT_FRAME_RATE              # animation frames per second
    density_resolution: int = 96                        # marching-cubes grid for the static parts (~3 mm cells)

    def __post_init__(self) -> None:
        # The values come from flags, messages and scripts: checked as whatever they turned out to be.
        size: object = self.texture_size
        if not _is_int(size) or size < 256 or size > 4096 or size & (size - 1):
            raise ExportError(f"texture_size must be a power of two between 256 and 4096, got {size!r}")
        budget: object = self.static_triangle_budget
        if not _is_int(budget) or not 100 <= budget <= 1_000_000:
            raise ExportError(f"static_triangle_budget must be between 100 and 1000000, got {budget!r}")
        rate: object = self.frame_rate
        if not isinstance(rate, (int, float)) or not (0 < rate <= 1000):
            raise ExportError(f"frame_rate must be a number in (0, 1000] frames per second, got {rate!r}")
        resolution: object = self.density_resolution
        if not _is_int(resolution) or not 16 <= resolution <= 512:
            raise ExportError(f"density_resolution must be between 16 and 512, got {resolution!r}")

    @property
    def static_texture_size(self) -> int:
        # Hair, ears and neck cover less of the view than the face and carry less detail.
        return max(256, self.texture_size // 2)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
