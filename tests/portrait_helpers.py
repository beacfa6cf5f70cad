"""Portrait test inputs: astronaut bytes in several encodings, hand-built PNG headers, synthetic landmarks."""
from __future__ import annotations

import functools
import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image
from skimage import data as skdata


@functools.cache
def astronaut() -> np.ndarray:
    img = skdata.astronaut()
    img.setflags(write=False)
    return img


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None, **save_kwargs) -> bytes:
    img = Image.fromarray(np.ascontiguousarray(array))
    if mode is not None:
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt, **save_kwargs)
    return buf.getvalue()


@functools.cache
def astronaut_png() -> bytes:
    return encode(astronaut(), "PNG")


@functools.cache
def astronaut_jpeg(quality: int = 92) -> bytes:
    return encode(astronaut(), "JPEG", quality=quality)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with_header_size(width: int, height: int) -> bytes:
    """A well-formed PNG whose IHDR claims width x height RGB pixels but whose IDAT holds one byte of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00"))
            + png_chunk(b"IEND", b""))


def jpeg_with_orientation(upright: np.ndarray, orientation: int) -> bytes:
    """JPEG whose stored pixels are `upright` turned so that applying EXIF `orientation` restores it."""
    # Orientation tag -> how the stored raster relates to the upright image (inverse of the display transform).
    stored = {
        1: upright,
        3: np.rot90(upright, 2),
        6: np.rot90(upright, 1),    # viewer rotates 90 degrees clockwise to display
        8: np.rot90(upright, -1),   # viewer rotates 90 degrees counter-clockwise to display
    }[orientation]
    img = Image.fromarray(np.ascontiguousarray(stored))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def ibug68(eye_right, eye_left, mouth_right, mouth_left, face_box) -> np.ndarray:
    """A plausible iBUG-68 set built around the given eye centres and mouth corners (subject's left/right)."""
    eye_right, eye_left = np.asarray(eye_right, float), np.asarray(eye_left, float)
    mouth_right, mouth_left = np.asarray(mouth_right, float), np.asarray(mouth_left, float)
    x, y, w, h = face_box
    pts = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    pts[0:17] = np.c_[x + w / 2 + 0.5 * w * np.cos(t), y + 0.35 * h + 0.65 * h * np.sin(t)]   # jaw
    spacing = np.hypot(*(eye_left - eye_right))
    up = np.array([0.0, -0.25 * spacing])
    pts[17:22] = eye_right + up + np.c_[np.linspace(-0.3, 0.3, 5) * spacing, np.zeros(5)]    # brows
    pts[22:27] = eye_left + up + np.c_[np.linspace(-0.3, 0.3, 5) * spacing, np.zeros(5)]
    nose_top = 0.5 * (eye_left + eye_right)
    mouth_mid = 0.5 * (mouth_left + mouth_right)
    pts[27:31] = nose_top + np.outer(np.linspace(0.1, 0.7, 4), mouth_mid - nose_top)
    pts[31:36] = nose_top + 0.75 * (mouth_mid - nose_top) + np.c_[np.linspace(-0.2, 0.2, 5) * spacing, np.zeros(5)]
    ring = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eye_ring = np.c_[0.15 * spacing * np.cos(ring), 0.06 * spacing * np.sin(ring)]
    pts[36:42] = eye_right + eye_ring
    pts[42:48] = eye_left + eye_ring
    along = 0.5 * (mouth_left - mouth_right)          # mouth centre -> subject's left corner
    across = np.array([-along[1], along[0]])           # toward the chin
    outer = np.linspace(np.pi, -np.pi, 12, endpoint=False)   # starts at the subject's right corner (48)
    pts[48:60] = mouth_mid + np.outer(np.cos(outer), along) + 0.35 * np.outer(np.sin(outer), across)
    inner = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    pts[60:68] = mouth_mid + 0.8 * np.outer(np.cos(inner), along) + 0.15 * np.outer(np.sin(inner), across)
    return pts


def mediapipe478(eye_right, eye_left, mouth_right, mouth_left, filler) -> np.ndarray:
    """478 MediaPipe points: the indices prepare() reads are set, the rest sit at `filler`."""
    pts = np.tile(np.asarray(filler, float), (478, 1))
    eye_right, eye_left = np.asarray(eye_right, float), np.asarray(eye_left, float)
    spacing = np.hypot(*(eye_left - eye_right))
    dx = np.array([0.15 * spacing, 0.0])
    pts[33], pts[133] = eye_right - dx, eye_right + dx
    pts[362], pts[263] = eye_left - dx, eye_left + dx
    pts[468], pts[473] = eye_right, eye_left
    pts[61], pts[291] = mouth_right, mouth_left
    mid = 0.5 * (np.asarray(mouth_left, float) + np.asarray(mouth_right, float))
    pts[13], pts[14] = mid - [0, 3], mid + [0, 3]
    return pts


def astronaut_on_canvas(side: int, small: int) -> np.ndarray:
    """The astronaut shrunk to small x small pixels, centred on a flat grey side x side canvas."""
    canvas = np.full((side, side, 3), 200, np.uint8)
    at = (side - small) // 2
    canvas[at:at + small, at:at + small] = cv2.resize(astronaut(), (small, small), interpolation=cv2.INTER_AREA)
    return canvas
