"""The Avatar asset: one directory per avatar, content-addressed, written atomically, verified on load.

Layout of `<store>/<avatar_id>/`:
  avatar.safetensors  planes, decoder weights, head identity and shape correction, the portrait's expression
                      (safetensors: no pickle, no code on load)
  avatar.json         schema version, generator, source sha256, portrait camera, head model id, channel
                      semantics, and the sha256 of every other file (checked on load)
  portrait.png        the aligned portrait (optional)
  thumbnail.png       the avatar rendered from the portrait camera (optional)
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from avatar.decoder import EG3D_PLANES, PLANE_AXES
from avatar.expressions import NUM_EXPRESSIONS

SCHEMA_VERSION = 1
PLANE_SHAPE = (4, 32, 256, 256)
TENSORS_FILE = "avatar.safetensors"
META_FILE = "avatar.json"
PORTRAIT_FILE = "portrait.png"
THUMBNAIL_FILE = "thumbnail.png"
_ID_RE = re.compile(r"^[0-9a-f]{64}$")
_DECODER_PREFIX = "decoder."


class AssetError(ValueError):
    """An avatar directory or file that cannot be read or written; the message names the file and problem."""


@dataclass(eq=False)
class Avatar:
    avatar_id: str
    planes: torch.Tensor                 # (4, 32, 256, 256) float32: neural texture (UV) + three static planes
    decoder: dict[str, torch.Tensor]     # avatar.decoder.TriplaneDecoder state dict
    identity: np.ndarray                 # (K,) head model identity parameters
    portrait_camera: np.ndarray          # (25,) EG3D camera the portrait was taken from
    head_model_id: str
    generator: str
    generator_version: str
    generator_settings: dict[str, Any]
    source_sha256: str
    channel_semantics: dict[str, Any]
    portrait: np.ndarray | None = None   # (512, 512, 3) uint8, aligned
    thumbnail: np.ndarray | None = None  # (H, W, 4) uint8
    display_name: str = ""
    created_unix: float = field(default_factory=time.time)
    plane_names: tuple[str, str, str] = EG3D_PLANES  # the static planes' axes (avatar.decoder.PLANE_AXES)
    portrait_expression: np.ndarray | None = None   # (52,) ARKit weights the portrait shows (rendering with
                                                     # them reproduces the photo; weight 0 is neutral)
    shape_offsets: np.ndarray | None = None         # (N, 3) per-vertex shape correction of the head model
                                                     # (avatar.head_registry.head_for_avatar)
    portrait_eye: np.ndarray | None = None          # (4,) the portrait's gaze, FaceVerse eye vector
                                                     # (HeadModel.posed); with portrait_expression it
                                                     # reproduces the photo


def is_valid_avatar_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID_RE.match(value))


def avatar_id_for(portrait_bytes: bytes, generator: str, version: str, settings: Mapping[str, Any]) -> str:
    """Same portrait + generator + settings -> same id, so creating twice is idempotent."""
    h = hashlib.sha256()
    h.update(hashlib.sha256(portrait_bytes).digest())
    h.update(json.dumps({"generator": generator, "version": version, "settings": settings}, sort_keys=True).encode())
    return h.hexdigest()


def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_avatar(avatar: Avatar) -> dict[str, bytes]:
    """The files of an avatar directory as bytes (name -> content)."""
    if not is_valid_avatar_id(avatar.avatar_id):
        raise AssetError(f"avatar id {avatar.avatar_id!r} is not 64 lowercase hex digits")
    if tuple(avatar.planes.shape) != PLANE_SHAPE:
        raise AssetError(f"planes must have shape {PLANE_SHAPE}, got {tuple(avatar.planes.shape)}")
    tensors = {"planes": avatar.planes.detach().float().contiguous().cpu(),
               "identity": torch.as_tensor(np.asarray(avatar.identity, dtype=np.float32))}
    if avatar.shape_offsets is not None:
        tensors["shape_offsets"] = torch.as_tensor(np.asarray(avatar.shape_offsets, dtype=np.float32))
    if avatar.portrait_expression is not None:
        tensors["portrait_expression"] = torch.as_tensor(np.asarray(avatar.portrait_expression, dtype=np.float32))
    if avatar.portrait_eye is not None:
        tensors["portrait_eye"] = torch.as_tensor(np.asarray(avatar.portrait_eye, dtype=np.float32))
    tensors.update({_DECODER_PREFIX + k: v.detach().float().contiguous().cpu() for k, v in avatar.decoder.items()})
    files = {TENSORS_FILE: st_save(tensors)}
    if avatar.portrait is not None:
        files[PORTRAIT_FILE] = _png_bytes(avatar.portrait)
    if avatar.thumbnail is not None:
        files[THUMBNAIL_FILE] = _png_bytes(avatar.thumbnail)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "avatar_id": avatar.avatar_id,
        "generator": avatar.generator,
        "generator_version": avatar.generator_version,
        "generator_settings": avatar.generator_settings,
        "source_sha256": avatar.source_sha256,
        "portrait_camera": [float(x) for x in np.asarray(avatar.portrait_camera).reshape(-1)],
        "head_model_id": avatar.head_model_id,
        "channel_semantics": avatar.channel_semantics,
        "plane_names": list(avatar.plane_names),
        "display_name": avatar.display_name,
        "created_unix": avatar.created_unix,
        "files": {name: _sha256(data) for name, data in sorted(files.items())},
    }
    files[META_FILE] = json.dumps(meta, indent=2, sort_keys=True).encode()
    return files


def save_avatar(avatar: Avatar, store_root: str | os.PathLike[str]) -> Path:
    """Write `store_root/<avatar_id>/` atomically: a temporary sibling directory renamed into place.

    If the avatar already exists (a concurrent create of the same portrait won), the existing one is
    kept and the temporary directory discarded: ids are content hashes, so both are the same avatar.
    """
    root = Path(store_root)
    root.mkdir(parents=True, exist_ok=True)
    files = encode_avatar(avatar)
    final = root / avatar.avatar_id
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{avatar.avatar_id[:12]}-", dir=root))
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / META_FILE).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AssetError(f"{path}: file is missing") from None
    except OSError as e:
        raise AssetError(f"{path}: cannot be read ({e.strerror})") from None


def _decode_png(path: Path, data: bytes, channels: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return np.asarray(img.convert("RGBA" if channels == 4 else "RGB"))
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for broken files
        raise AssetError(f"{path}: not a readable PNG ({e})") from None


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked `avatar.json` of an avatar directory (schema, required keys, file list), without
    reading any other file; the one reader of the manifest. Problems raise AssetError naming the file."""
    meta_path = Path(directory) / META_FILE
    try:
        meta = json.loads(_read(meta_path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AssetError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise AssetError(f"{meta_path}: expected a JSON object")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise AssetError(f"{meta_path}: schema version {version!r} is not supported "
                         f"(this build reads {SCHEMA_VERSION})")
    required = ("avatar_id", "generator", "generator_version", "source_sha256", "portrait_camera",
                "head_model_id", "channel_semantics", "files")
    missing = [k for k in required if k not in meta]
    if missing:
        raise AssetError(f"{meta_path}: missing keys {', '.join(missing)}")
    if not isinstance(meta["files"], dict) or TENSORS_FILE not in meta["files"]:
        raise AssetError(f"{meta_path}: 'files' must list {TENSORS_FILE} and its sha256")
    return meta


def load_avatar(directory: str | os.PathLike[str]) -> Avatar:
    """Read and verify an avatar directory; any problem raises AssetError naming the file."""
    d = Path(directory)
    meta_path = d / META_FILE
    meta = read_manifest(d)

    contents = {}
    for name, digest in meta["files"].items():
        if name not in (TENSORS_FILE, PORTRAIT_FILE, THUMBNAIL_FILE):
            raise AssetError(f"{meta_path}: unexpected file entry {name!r}")
        data = _read(d / name)
        if _sha256(data) != digest:
            raise AssetError(f"{d / name}: sha256 mismatch (file is corrupt or was modified)")
        contents[name] = data

    tensor_path = d / TENSORS_FILE
    try:
        tensors = st_load(contents[TENSORS_FILE])
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise AssetError(f"{tensor_path}: not a readable safetensors file ({e})") from None
    for key in ("planes", "identity"):
        if key not in tensors:
            raise AssetError(f"{tensor_path}: tensor {key!r} is missing")
    planes = tensors["planes"].float()
    if tuple(planes.shape) != PLANE_SHAPE:
        raise AssetError(f"{tensor_path}: planes have shape {tuple(planes.shape)}, expected {PLANE_SHAPE}")
    if not torch.isfinite(planes).all():
        raise AssetError(f"{tensor_path}: planes contain NaN or infinite values")
    decoder = {k[len(_DECODER_PREFIX):]: v.float() for k, v in tensors.items() if k.startswith(_DECODER_PREFIX)}
    if not decoder:
        raise AssetError(f"{tensor_path}: decoder weights are missing")

    camera = np.asarray(meta["portrait_camera"], dtype=np.float32)
    if camera.shape != (25,):
        raise AssetError(f"{meta_path}: portrait_camera must have 25 values, got {camera.size}")
    plane_names = tuple(meta.get("plane_names", EG3D_PLANES))
    if len(plane_names) != 3 or any(name not in PLANE_AXES for name in plane_names):
        raise AssetError(f"{meta_path}: plane_names must be three of {sorted(PLANE_AXES)}, got {list(plane_names)}")
    offsets = tensors.get("shape_offsets")
    if offsets is not None and (offsets.ndim != 2 or offsets.shape[1] != 3 or not torch.isfinite(offsets).all()):
        raise AssetError(f"{tensor_path}: shape_offsets must be finite (N, 3) values")
    expression = tensors.get("portrait_expression")
    if expression is not None and (tuple(expression.shape) != (NUM_EXPRESSIONS,)
                                   or not torch.isfinite(expression).all()):
        raise AssetError(f"{tensor_path}: portrait_expression must be {NUM_EXPRESSIONS} finite weights")
    eye = tensors.get("portrait_eye")
    if eye is not None and (tuple(eye.shape) != (4,) or not torch.isfinite(eye).all()):
        raise AssetError(f"{tensor_path}: portrait_eye must be 4 finite values")
    return Avatar(
        avatar_id=meta["avatar_id"],
        planes=planes,
        decoder=decoder,
        identity=tensors["identity"].numpy().astype(np.float32),
        portrait_camera=camera,
        head_model_id=meta["head_model_id"],
        generator=meta["generator"],
        generator_version=meta["generator_version"],
        generator_settings=meta.get("generator_settings", {}),
        source_sha256=meta["source_sha256"],
        channel_semantics=meta["channel_semantics"],
        portrait=_decode_png(d / PORTRAIT_FILE, contents[PORTRAIT_FILE], 3) if PORTRAIT_FILE in contents else None,
        thumbnail=_decode_png(d / THUMBNAIL_FILE, contents[THUMBNAIL_FILE], 4) if THUMBNAIL_FILE in contents else None,
        display_name=meta.get("display_name", ""),
        created_unix=float(meta.get("created_unix", 0.0)),
        plane_names=plane_names,
        portrait_expression=None if expression is None else expression.numpy().astype(np.float32),
        shape_offsets=None if offsets is None else offsets.numpy().astype(np.float32),
        portrait_eye=None if eye is None else eye.numpy().astype(np.float32),
    )
