"""The CUDA backend: nvdiffrast's CUDA rasterizer behind the same call as the CPU reference."""
from __future__ import annotations

import importlib.util
import threading

import torch


class RasterizerUnavailable(RuntimeError):
    """A rasterizer backend that cannot run on this machine; the message says what is missing."""


_contexts: dict[int, object] = {}
# Render threads (one per stream) ask for a context at once; without the lock two of them could each
# build one for the same device, and one would be thrown away after allocating its CUDA buffers.
_contexts_lock = threading.Lock()


def missing_requirement() -> str | None:
    """Why the nvdiffrast backend cannot run here, or None when it can."""
    if not torch.cuda.is_available():
        return "torch reports no CUDA device (torch.cuda.is_available() is False)"
    if importlib.util.find_spec("nvdiffrast") is None:
        return "the nvdiffrast package is not installed (pip install nvdiffrast, or the project's [cuda] extra)"
    return None


def _context(device: torch.device) -> object:
    """The rasterizer context of a CUDA device with an index."""
    import nvdiffrast.torch as dr

    # Creating a context allocates CUDA buffers; one per device is reused across calls.
    with _contexts_lock:
        if device.index not in _contexts:
            _contexts[device.index] = dr.RasterizeCudaContext(device=device)
        return _contexts[device.index]


def rasterize_nvdiffrast(pos: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W, 4) float32 raster of already validated inputs, returned on the device `pos` came from."""
    reason = missing_requirement()
    if reason is not None:
        raise RasterizerUnavailable(f"the nvdiffrast rasterizer backend is unavailable: {reason}")
    try:
        import nvdiffrast.torch as dr
    except ImportError as exc:
        raise RasterizerUnavailable("the nvdiffrast rasterizer backend is unavailable: importing nvdiffrast.torch "
                                    f"failed ({exc})") from exc

    # A CUDA tensor's device always carries its index; anything else goes to the current device.
    device = pos.device if pos.device.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    if faces.shape[0] == 0:
        return torch.zeros(height, width, 4, dtype=torch.float32, device=pos.device)
    gpu_pos = pos.to(device=device, dtype=torch.float32).contiguous().unsqueeze(0)
    gpu_tri = faces.to(device=device, dtype=torch.int32).contiguous()
    rast: torch.Tensor = dr.rasterize(_context(device), gpu_pos, gpu_tri, resolution=[height, width])[0]
    return rast[0].to(pos.device)
