"""The AvatarArtist generator: portrait -> CLIP/DINOv2 tokens -> DiT (DPM-Solver++, CFG) -> VAE -> triplane.

The result is an Avatar in this project's format: planes (4, 32, 256, 256) in EG3D plane order (plane 0 =
neural texture in FaceVerse v3 UV space), the decoder weights from render.pkl, the FaceVerse head at its
mean identity (upstream's default when no tracked identity exists), and the EG3D frontal portrait camera.
Runs on CUDA in float16 when present, else on the CPU in float32 (minutes per avatar: see the README).
The same portrait, seed and weights give the same avatar.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from avatar import camera as cam
from avatar.asset import Avatar, avatar_id_for
from avatar.decoder import EG3D_PLANES
from avatar.generators.avatarartist import weights as W
from avatar.generators.avatarartist.encoders import ImageEncoders
from avatar.generators.avatarartist.sampler import GUIDANCE, STEPS, sample_latent
from avatar.generators.avatarartist.vae import LATENT_SCALE
from avatar.head_model import HeadModel, HeadModelError, load_faceverse
from avatar.head_registry import register_head_model
from avatar.portrait.decode import decode_image
from avatar.portrait.errors import PortraitLimits
from avatar.render import Renderer

log = logging.getLogger(__name__)

PORTRAIT_SIZE = 512     # upstream's inputs are 512x512 crops
THUMBNAIL_SIZE = 256
PLANES = 4

_configured: Path | None = None
_loaded: dict[Path, _Loaded] = {}
_heads: dict[Path, HeadModel] = {}
_load_lock = threading.RLock()


def configure(weights_dir: str | Path | None) -> None:
    """Set the weights folder for this process (the server's and CLI's --avatarartist-weights).
    None or '' falls back to the AVATARFORGE_AVATARARTIST_WEIGHTS environment variable.
    The folder's FaceVerse head is registered at once, so stored AvatarArtist avatars render after a restart."""
    global _configured
    _configured = Path(weights_dir).expanduser() if weights_dir else None
    root = weights_dir_now()
    if root is not None and (root / W.FACEVERSE_FILE).is_file():
        try:
            faceverse_head(root)
        except W.WeightsInvalid as e:   # create will say so; the server still starts
            log.warning("AvatarArtist: %s", e)


def faceverse_head(root: Path) -> HeadModel:
    """The weights folder's FaceVerse head, loaded once per process and registered by its id."""
    path = root / W.FACEVERSE_FILE
    with _load_lock:
        if path not in _heads:
            try:
                _heads[path] = load_faceverse(path)
            except HeadModelError as e:   # the server's file, not the caller's input
                raise W.WeightsInvalid(str(e)) from None
            register_head_model(_heads[path])   # the store and renderer find the avatar's mesh by id
        return _heads[path]


def weights_dir_now() -> Path | None:
    """The configured weights folder, else the environment variable's, else None."""
    if _configured is not None:
        return _configured
    raw = os.environ.get(W.ENV_VAR, "").strip()
    return Path(raw).expanduser() if raw else None


def _device() -> tuple[torch.device, torch.dtype]:
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.float16
    return torch.device("cpu"), torch.float32


class _Loaded:
    """Every network of one weights folder, loaded once per process."""

    def __init__(self, root: Path):
        device, dtype = _device()
        start = time.perf_counter()
        self.networks = W.load_networks(root)
        try:
            self.encoders = ImageEncoders(root / W.CLIP_DIR, root / W.DINO_DIR, device, dtype)
        except (OSError, ValueError) as e:   # transformers' own sentence names the missing or bad file
            raise W.WeightsInvalid(f"the image encoders in {root} cannot be loaded: {e}") from None
        self.head = faceverse_head(root)
        self.networks.dit.to(device, dtype)
        self.networks.vae.to(device, dtype).tie_aliases()
        self.device, self.dtype = device, dtype
        log.info("AvatarArtist weights loaded from %s in %.1f s (%s, %s)", root, time.perf_counter() - start,
                 device, dtype)


def _fingerprint(root: Path) -> str:
    """Cheap identity of a weights folder (names, sizes, mtimes): part of the avatar id."""
    h = hashlib.sha256()
    for name in sorted(W.REQUIRED):
        st = (root / name).stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _load(root: Path) -> _Loaded:
    with _load_lock:
        if root not in _loaded:
            _loaded[root] = _Loaded(root)
        return _loaded[root]


def square_portrait(image: np.ndarray, size: int = PORTRAIT_SIZE) -> np.ndarray:
    """Centre square crop, resized to size x size (no face detection: every domain is accepted)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(image[top:top + side, left:left + side])
    return np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC))


def _no_progress(stage: str, fraction: float, message: str) -> None:
    return None


class AvatarArtistGenerator:
    name = "avatarartist"
    version = "1"
    description = ("AvatarArtist: DiT + 3D-VAE triplane prior from the published weights (CUDA fp16; "
                   "CPU float32 takes tens of minutes)")

    def __init__(self, root: Path | None = None, seed: int = 0, steps: int = STEPS, guidance: float = GUIDANCE):
        self.root = root if root is not None else weights_dir_now()
        self.settings: dict[str, Any] = {"seed": int(seed), "steps": int(steps), "guidance": float(guidance)}

    def unavailable_reason(self) -> str:
        """'' when the weights folder is complete; else what is missing and where (checked on every call:
        files may appear while the server runs)."""
        return W.unavailable_reason(self.root)

    def _require(self) -> Path:
        reason = self.unavailable_reason()
        if reason or self.root is None:
            raise W.WeightsUnavailable(f"the avatarartist generator cannot run: {reason}")
        return self.root

    def _request_settings(self, root: Path) -> dict[str, Any]:
        return dict(self.settings, weights=_fingerprint(root))

    def avatar_id(self, portrait_bytes: bytes, face_box: object = None, landmarks: object = None) -> str:
        root = self._require()
        return avatar_id_for(portrait_bytes, self.name, self.version, self._request_settings(root))

    def create(self, portrait_bytes: bytes, face_box: object = None, landmarks: object = None,
               progress: Callable[[str, float, str], None] | None = None, display_name: str = "",
               limits: PortraitLimits | None = None) -> Avatar:
        """face_box and landmarks are accepted for the common interface and not used: the networks
        take the whole (square-cropped) portrait."""
        report = progress or _no_progress
        root = self._require()
        report("load", 0.01, "loading the AvatarArtist networks")
        nets = _load(root)
        report("decode", 0.05, "decoding the portrait")
        portrait = square_portrait(decode_image(portrait_bytes, limits or PortraitLimits()))
        report("encode", 0.08, "CLIP and DINOv2 features of the portrait")
        cond = nets.encoders.encode(portrait)
        steps = self.settings["steps"]

        def on_step(i: int, n: int) -> None:
            report("sample", 0.1 + 0.7 * i / n, f"denoising step {i}/{n}")

        latent = sample_latent(nets.networks.dit, cond, self.settings["seed"], steps, self.settings["guidance"],
                               on_step=on_step)
        report("decode_planes", 0.82, "decoding the triplane")
        planes = decode_planes(nets, latent)
        head = nets.head
        camera = cam.camera_vector()
        settings = self._request_settings(root)
        avatar = Avatar(
            avatar_id=avatar_id_for(portrait_bytes, self.name, self.version, settings),
            planes=planes,
            decoder=nets.networks.render.decoder,
            identity=np.zeros(len(head.identity_names), dtype=np.float32),
            portrait_camera=camera,
            head_model_id=head.model_id,
            generator=self.name,
            generator_version=self.version,
            generator_settings=settings,
            source_sha256=hashlib.sha256(portrait_bytes).hexdigest(),
            channel_semantics={"kind": "avatarartist", "plane0": "neural texture (FaceVerse v3 UV)",
                               "planes1_3": "static triplane (EG3D order)",
                               "dit_weights": nets.networks.report.dit_source,
                               "dit_missing_keys": len(nets.networks.report.dit_missing),
                               "dit_unexpected_keys": len(nets.networks.report.dit_unexpected)},
            portrait=portrait,
            display_name=display_name,
            plane_names=EG3D_PLANES,
        )
        report("thumbnail", 0.92, "rendering the thumbnail")
        avatar.thumbnail = Renderer(avatar, head=head).render(camera, size=THUMBNAIL_SIZE).rgba8()
        report("done", 1.0, "avatar ready")
        return avatar


@torch.no_grad()
def decode_planes(nets: _Loaded, latent: torch.Tensor) -> torch.Tensor:
    """(1, 8, 128, 32) sampled latent -> (4, 32, 256, 256) de-normalised float32 planes on the CPU."""
    vae = nets.networks.vae
    z = (latent / LATENT_SCALE).reshape(1, latent.shape[1], PLANES, latent.shape[2] // PLANES, latent.shape[3])
    planes = vae.decode(z.to(nets.device, nets.dtype)).float().permute(0, 2, 1, 3, 4)   # (1, F, C, H, W)
    planes = planes * nets.networks.std.to(planes.device) + nets.networks.mean.to(planes.device)
    return planes[0].cpu().contiguous()
