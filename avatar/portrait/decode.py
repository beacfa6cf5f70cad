"""Untrusted image bytes -> 8-bit RGB pixels, refusing bombs and broken files before they cost memory."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageCms, ImageOps

from .errors import PortraitError, PortraitLimits

# Pillow names a multi-picture JPEG (most phone cameras) "MPO"; it is still a JPEG.
ACCEPTED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP"}
EXPECTED = "PNG, JPEG or WebP expected"
# Transparent pixels become white: portraits cut out for an engine are usually shown on white.
ALPHA_BACKGROUND = 255
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def decode_image(data: bytes, limits: PortraitLimits = PortraitLimits()) -> np.ndarray:
    """Decode PNG/JPEG/WebP bytes to an upright (H, W, 3) uint8 RGB array."""
    rgb, _alpha = decode_image_with_alpha(data, limits)
    return rgb


def decode_image_with_alpha(data: bytes, limits: PortraitLimits = PortraitLimits()
                            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Like decode_image, also returning the (H, W) uint8 alpha channel when the file has transparency."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PortraitError("not_an_image",
                            f"portrait must be bytes, got {type(data).__name__} ({EXPECTED})")
    data = bytes(data)
    if len(data) > limits.max_bytes:
        raise PortraitError("too_large",
                            f"image too large ({len(data)} bytes > limit {limits.max_bytes} bytes)")
    if not data:
        raise PortraitError("not_an_image", f"not an image: the portrait is empty ({EXPECTED})")

    img = _open_header_only(data)
    width, height = img.size
    if width * height > limits.max_pixels:
        raise PortraitError("too_large", f"image too large ({width} x {height} = {width * height} pixels "
                                         f"> limit {limits.max_pixels})")
    if min(width, height) < limits.min_side:
        raise PortraitError("too_small", f"image too small ({width} x {height}; each side must be at least "
                                         f"{limits.min_side} pixels)")
    try:
        img.load()
        upright = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as exc:  # a frame or tile larger than the header admitted
        raise PortraitError("too_large", f"image too large ({exc})") from None
    except _DECODE_ERRORS as exc:
        kind = ACCEPTED_FORMATS[str(img.format)]  # the header check admitted only these formats
        raise PortraitError("truncated", f"the {kind} image is truncated or corrupt "
                                         f"and cannot be decoded ({exc})") from None
    return _to_rgb8(upright)


def _open_header_only(data: bytes) -> Image.ImageFile.ImageFile:
    """Parse only the header with the accepted decoders.

    Image.open would refuse huge sizes itself, but only above its own process-wide limit and with a message
    that hides the dimensions; asking the decoders directly keeps our per-call limit authoritative.
    """
    prefix = data[:16]
    Image.init()
    for fmt in ("PNG", "JPEG", "WEBP"):
        entry = Image.OPEN.get(fmt)
        if entry is None:
            continue
        factory, accept = entry
        verdict = accept(prefix) if accept else True
        if not verdict or isinstance(verdict, str):
            continue
        try:
            img = factory(io.BytesIO(data), "")   # no file name, as Image.open passes for a stream
        except Image.DecompressionBombError as exc:  # WebP's header parser checks the canvas itself
            raise PortraitError("too_large", f"image too large ({exc})") from None
        except _DECODE_ERRORS as exc:
            raise PortraitError("truncated", f"the {fmt if fmt != 'WEBP' else 'WebP'} image header is "
                                             f"truncated or corrupt ({exc})") from None
        if img.format not in ACCEPTED_FORMATS:
            break
        return img
    other = _identify_other_format(data)
    if other:
        raise PortraitError("unsupported_format", f"unsupported image format {other} ({EXPECTED})")
    raise PortraitError("not_an_image", f"not an image ({EXPECTED})")


def _identify_other_format(data: bytes) -> str | None:
    """Name a format we refuse, so the user learns why; the file is never decoded."""
    try:
        with Image.open(io.BytesIO(data)) as other:
            name: str | None = other.format
            return name
    except Exception:  # noqa: BLE001 - any failure here just means "not an image we can name"
        return None


def _to_rgb8(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey: keep the top 8 bits' worth of range instead of clipping at 255.
        grey = np.asarray(img, dtype=np.float64) / 257.0
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None
    if img.mode == "F":
        grey = np.asarray(img, dtype=np.float64)
        scale = 255.0 if grey.size and np.nanmax(grey) <= 1.0 else 1.0
        grey = np.clip(np.rint(np.nan_to_num(grey) * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None

    alpha = None
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode in ("P", "L", "RGB", "1")
                                                            and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.uint8).copy()
        colour = rgba.convert("RGB")
        if img.mode in ("RGBA", "RGBa"):
            colour.info["icc_profile"] = img.info.get("icc_profile")
        img = colour
    rgb = np.asarray(_to_srgb(img), dtype=np.uint8)
    if alpha is not None:
        if alpha.min() == 255:
            alpha = None
        else:
            a = alpha.astype(np.float32)[..., None] / 255.0
            rgb = np.rint(rgb * a + ALPHA_BACKGROUND * (1.0 - a)).astype(np.uint8)
    return np.ascontiguousarray(rgb), alpha


def _to_srgb(img: Image.Image) -> Image.Image:
    """Honour an embedded ICC profile (CMYK print files, Display-P3 phone photos); else plain conversion."""
    icc = img.info.get("icc_profile")
    if icc and img.mode in ("RGB", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(img, source, _SRGB, outputMode="RGB")
            if converted is not None:   # None only for in-place conversions, which this is not
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile is common and harmless: fall back to the untagged conversion
    return img.convert("RGB")
