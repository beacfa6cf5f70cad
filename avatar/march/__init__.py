"""The fused ray-march kernel: a C++ torch extension, built once at `make venv` (`make march`). It also
compiles the renderer's other per-frame CPU steps (rasterizer, occupancy marking, front-plane blend),
each giving exactly its torch version's result.

`load()` returns the compiled module, or None with `unavailable_reason()` saying why (not built, built
for another source/torch/Python, failed to import, or switched off with AVATARFORGE_MARCH=torch); the
renderer then runs its pure-torch march, which stays the reference. Nothing is compiled at run time:
a server must not stall its first frame on a compiler.

The build lands in avatar/march/_build with a stamp of what it was built from, so an edited source or
another torch is noticed and falls back instead of crashing.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from typing import Protocol, TypedDict, cast

import torch

SOURCE = Path(__file__).with_name("march.cpp")
BUILD_DIR = Path(__file__).with_name("_build")
MODULE_NAME = "avatarforge_march"
DISABLE_ENV = "AVATARFORGE_MARCH"  # "torch" forces the pure-torch march and the other steps' torch versions
# No floating-point contraction: a product and a sum that torch rounds separately must not be fused,
# or the kernel's arithmetic (and the rasterizer's, which is exact to the bit) departs from torch's.
CFLAGS = ("-O3", "-ffp-contract=off")


class MarchKernel(Protocol):
    """The compiled module's functions, as march.cpp declares them (see there for the arguments)."""

    def density(self, points: torch.Tensor, planes: list[torch.Tensor], axes: torch.Tensor, w1: torch.Tensor,
                b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, box_half: float, density_shift: float,
                threads: int) -> torch.Tensor: ...

    def occupancy_with_points(self, grid: torch.Tensor, points: torch.Tensor, box_half: float) -> torch.Tensor: ...

    def front_texels(self, rast: torch.Tensor, where: torch.Tensor, uv: torch.Tensor, faces_uv: torch.Tensor,
                     z: torch.Tensor, faces: torch.Tensor) -> list[torch.Tensor]: ...

    def blend_front(self, front: torch.Tensor, texels: torch.Tensor, texture: torch.Tensor, depth: torch.Tensor,
                    static0: torch.Tensor, dynamic: torch.Tensor, mask: torch.Tensor, depth_weight: torch.Tensor,
                    depth_channel: int) -> None: ...

    def rasterize(self, pos: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> torch.Tensor: ...

    def march(self, origins: torch.Tensor, dirs: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor, height: int,
              width: int, density_planes: list[torch.Tensor], colour_planes: list[torch.Tensor], axes: torch.Tensor,
              dw1: torch.Tensor, db1: torch.Tensor, dw2: torch.Tensor, db2: torch.Tensor, cw1: torch.Tensor,
              cb1: torch.Tensor, cw2: torch.Tensor, cb2: torch.Tensor, fine: torch.Tensor, coarse: torch.Tensor,
              box_half: float, samples_per_round: int, transmittance_eps: float, weight_eps: float,
              density_shift: float, sigmoid_widen: float, refine_optical: float, refine_bisections: int,
              threads: int) -> list[torch.Tensor]: ...


class _Outcome(TypedDict, total=False):
    module: MarchKernel | None
    reason: str | None


_state: _Outcome = {}


def build_stamp() -> str:
    """What a build depends on: the source, the compiler flags, torch's version and the Python ABI."""
    h = hashlib.sha256(SOURCE.read_bytes())
    h.update(f"{torch.__version__}|{sys.implementation.cache_tag}|{' '.join(CFLAGS)}".encode())
    return h.hexdigest()


def _library() -> Path:
    return BUILD_DIR / f"{MODULE_NAME}.so"


def build(verbose: bool = False) -> Path:
    """Compile the extension with the system C++ compiler and ninja (torch.utils.cpp_extension)."""
    from torch.utils import cpp_extension

    # ninja comes from PyPI into the venv's bin, which need not be on PATH under make.
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    BUILD_DIR.mkdir(exist_ok=True)
    stamp = BUILD_DIR / "stamp.txt"
    stamp.unlink(missing_ok=True)
    cpp_extension.load(name=MODULE_NAME, sources=[str(SOURCE)], build_directory=str(BUILD_DIR),
                       extra_cflags=list(CFLAGS), verbose=verbose)
    stamp.write_text(build_stamp())
    return _library()


def load() -> MarchKernel | None:
    """The compiled module, or None (see `unavailable_reason`). The outcome is cached per process."""
    if "module" not in _state:
        _state["module"], _state["reason"] = _load()
    return _state["module"]


def unavailable_reason() -> str | None:
    load()
    return _state["reason"]


def _load() -> tuple[MarchKernel | None, str | None]:
    if os.environ.get(DISABLE_ENV, "").lower() == "torch":
        return None, f"{DISABLE_ENV}=torch"
    stamp = BUILD_DIR / "stamp.txt"
    if not _library().exists() or not stamp.exists():
        return None, "the march kernel is not built (run `make march`)"
    if stamp.read_text().strip() != build_stamp():
        return None, "the march kernel was built from another source, torch or Python (run `make march`)"
    try:
        loader = importlib.machinery.ExtensionFileLoader(MODULE_NAME, str(_library()))
        spec = importlib.util.spec_from_file_location(MODULE_NAME, str(_library()), loader=loader)
        if spec is None:
            return None, f"the march kernel at {_library()} is not a loadable module"
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except ImportError as e:
        return None, f"the march kernel does not load: {e}"
    # The extension carries no type information: MarchKernel mirrors the signatures march.cpp binds.
    return cast(MarchKernel, module), None
