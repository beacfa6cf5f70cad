"""Rendered pixels <-> Frame bytes (RAW_RGBA8, PNG, JPEG, plus optional depth and alpha planes).

Used by the server to encode and by the Python client to decode, so both agree on one definition.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from grpc_server.limits import LimitExceeded
from grpc_server.proto import pb

if TYPE_CHECKING:  # the client decodes frames without loading the renderer
    from grpc_server.app.rendering import RenderedFrame

# Streaming favours speed over size: level 1 is several times faster than the default and only
# slightly larger on rendered faces.
PNG_COMPRESSION = 1
DEFAULT_JPEG_QUALITY = 90
DEFAULT_SIZE = 256
# Alpha below this is treated as empty (no depth, no colour to un-premultiply).
EMPTY_ALPHA = 1.0 / 512.0
# Room for a Frame's small fields beside its planes.
FRAME_FIELDS_BYTES = 256
ENCODING_NAMES: dict[int, str] = {pb.RAW_RGBA8: "RAW_RGBA8", pb.PNG: "PNG", pb.JPEG: "JPEG"}


class FrameError(ValueError):
    """Frame bytes that cannot be decoded (client side) or options that cannot be met."""

    status = "INTERNAL"


@dataclass(frozen=True)
class FrameSpec:
    """Validated output options of a frame (see FrameOptions in the proto)."""

    width: int = DEFAULT_SIZE
    height: int = DEFAULT_SIZE
    encoding: pb.Encoding = pb.PNG
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    include_depth: bool = False
    include_alpha: bool = False
    background: tuple[float, float, float] | None = None

    def worst_case_bytes(self) -> int:
        """An upper bound of the Frame message size, known before rendering.

        PNG and JPEG are bounded by the raw size (+ headers) rather than by a guess of their ratio, so
        whether a request fits never depends on the picture's content.
        """
        pixels = self.width * self.height
        data = pixels * 4 + (self.height + pixels // 1000 + 4096 if self.encoding != pb.RAW_RGBA8 else 0)
        extra = (pixels * 4 if self.include_depth else 0) + (pixels if self.include_alpha else 0)
        return data + extra + 256


@dataclass
class EncodedFrame:
    data: bytes
    depth: bytes = b""
    alpha: bytes = b""


def compose_rgba(rgb: np.ndarray, alpha: np.ndarray, background=None, premultiplied: bool = True) -> np.ndarray:
    """Float colour + alpha to (H, W, 4) uint8 with straight alpha.

    Without a background the colour is un-premultiplied (what PNG/RGBA consumers expect); with one, the
    avatar is composited over it and the alpha channel still tells where the avatar is.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    a = np.clip(np.asarray(alpha, dtype=np.float32), 0.0, 1.0)[..., None]
    if background is not None:
        bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
        colour = rgb + (1.0 - a) * bg if premultiplied else rgb * a + (1.0 - a) * bg
    elif premultiplied:
        colour = np.where(a > EMPTY_ALPHA, rgb / np.maximum(a, EMPTY_ALPHA), 0.0)
    else:
        colour = rgb
    out = np.empty(rgb.shape[:2] + (4,), dtype=np.uint8)
    out[..., :3] = np.clip(colour * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out[..., 3] = np.clip(a[..., 0] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def encode(rgb: np.ndarray, alpha: np.ndarray, depth: np.ndarray | None, spec: FrameSpec,
           premultiplied: bool = True) -> EncodedFrame:
    alpha = np.asarray(alpha, dtype=np.float32)
    if spec.encoding == pb.JPEG:
        # JPEG has no alpha: without a background the avatar sits on black (the premultiplied colour).
        background = spec.background if spec.background is not None else (0.0, 0.0, 0.0)
        rgba = compose_rgba(rgb, alpha, background, premultiplied)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgba[..., :3], cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(spec.jpeg_quality)])
        data = buf.tobytes()
    else:
        rgba = compose_rgba(rgb, alpha, spec.background, premultiplied)
        if spec.encoding == pb.RAW_RGBA8:
            ok, data = True, rgba.tobytes()
        else:
            ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA),
                                   [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
            data = buf.tobytes() if ok else b""
    if not ok:
        raise FrameError(f"could not encode a {spec.width}x{spec.height} {ENCODING_NAMES[spec.encoding]} frame")
    out = EncodedFrame(data=data)
    if spec.include_alpha:
        out.alpha = rgba[..., 3].tobytes()
    if spec.include_depth:
        if depth is None:
            raise FrameError("the renderer produced no depth for this frame")
        d = np.where(alpha > EMPTY_ALPHA, np.asarray(depth, dtype=np.float32), 0.0)
        out.depth = np.ascontiguousarray(d, dtype="<f4").tobytes()
    return out


def message(frame: RenderedFrame, spec: FrameSpec, max_message_bytes: int, received: float, seq: int = 0,
            dropped: int = 0) -> pb.Frame:
    """A rendered frame encoded as `spec` asks; LimitExceeded when it would not fit in one message.
    `received` is when the request was read (perf_counter), so queue_ms covers the wait and encoding."""
    enc = encode(frame.rgb, frame.alpha, frame.depth, spec)
    size = len(enc.data) + len(enc.depth) + len(enc.alpha) + FRAME_FIELDS_BYTES
    if size > max_message_bytes:
        raise LimitExceeded(f"the encoded frame is {size} bytes, above the {max_message_bytes}-byte "
                            f"message limit; ask for a smaller size or another encoding")
    return pb.Frame(seq=seq, width=spec.width, height=spec.height, encoding=spec.encoding, data=enc.data,
                    depth=enc.depth, alpha=enc.alpha, render_ms=frame.render_ms,
                    queue_ms=(time.perf_counter() - received) * 1e3 - frame.render_ms, dropped=dropped)


def decode(frame) -> np.ndarray:
    """A Frame message's `data` to (H, W, 4) uint8 RGBA (JPEG frames get alpha from `alpha` or 255)."""
    w, h = int(frame.width), int(frame.height)
    enc = frame.encoding or pb.PNG
    if enc == pb.RAW_RGBA8:
        if len(frame.data) != w * h * 4:
            raise FrameError(f"RAW_RGBA8 frame has {len(frame.data)} bytes, expected {w * h * 4} for {w}x{h}")
        return np.frombuffer(frame.data, dtype=np.uint8).reshape(h, w, 4).copy()
    img = cv2.imdecode(np.frombuffer(frame.data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.shape[:2] != (h, w):
        raise FrameError(f"{ENCODING_NAMES.get(enc, enc)} frame does not decode to {w}x{h}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    rgba = np.empty((h, w, 4), dtype=np.uint8)
    rgba[..., :3] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    rgba[..., 3] = decode_alpha(frame) if frame.alpha else 255
    return rgba


def decode_alpha(frame) -> np.ndarray:
    w, h = int(frame.width), int(frame.height)
    if len(frame.alpha) != w * h:
        raise FrameError(f"alpha plane has {len(frame.alpha)} bytes, expected {w * h}")
    return np.frombuffer(frame.alpha, dtype=np.uint8).reshape(h, w).copy()


def decode_depth(frame) -> np.ndarray:
    w, h = int(frame.width), int(frame.height)
    if len(frame.depth) != w * h * 4:
        raise FrameError(f"depth plane has {len(frame.depth)} bytes, expected {w * h * 4}")
    return np.frombuffer(frame.depth, dtype="<f4").reshape(h, w).astype(np.float32)
