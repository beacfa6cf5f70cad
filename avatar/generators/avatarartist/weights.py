"""The AvatarArtist weights folder: layout, checks and loading (every file read without running its code).

Layout of the folder (what the published Hugging Face repo `KumaPower/AvatarArtist` holds, plus FaceVerse):
  DiT.pth                            torch dict with `state_dict` (and preferably `state_dict_ema`)
  checkpoint-VAE/pytorch_model.bin   flat VAE state_dict (strict, both names of each aliased weight)
  render.pkl                         EG3D network pickle; only the decoder (OSGDecoder) is used for rendering
  image_encoder/                     CLIP ViT-H/14 vision, Hugging Face layout (config.json + weights)
  dinov2-base/                       DINOv2-base, Hugging Face layout (config.json + weights)
  final_mean.pt, final_std.pt        triplane de-normalisation (1 or 4 values, one per plane)
  faceverse_v3_1.npy                 the FaceVerse v3 model (from the FaceVerse authors, not the HF repo)
  avatarartist.json                  optional: {"dit": {...DiTConfig...}, "vae": {...VAEConfig...}} to load
                                     smaller models of the same classes (tests); absent = published sizes
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from avatar.generators.avatarartist.dit import DiTConfig, TriplaneDiT
from avatar.generators.avatarartist.render_pkl import RenderWeights, read_render_pkl
from avatar.generators.avatarartist.vae import TriplaneVAE, VAEConfig, retie_aliases

log = logging.getLogger(__name__)

ENV_VAR = "AVATARFORGE_AVATARARTIST_WEIGHTS"
DIT_FILE = "DiT.pth"
VAE_FILE = "checkpoint-VAE/pytorch_model.bin"
RENDER_FILE = "render.pkl"
CLIP_DIR = "image_encoder"
DINO_DIR = "dinov2-base"
MEAN_FILE, STD_FILE = "final_mean.pt", "final_std.pt"
FACEVERSE_FILE = "faceverse_v3_1.npy"
SIZES_FILE = "avatarartist.json"
REQUIRED = (DIT_FILE, VAE_FILE, RENDER_FILE, CLIP_DIR + "/config.json", DINO_DIR + "/config.json", MEAN_FILE,
            STD_FILE, FACEVERSE_FILE)
_POS_EMBED_KEYS = ("pos_embed", "base_model.pos_embed", "model.pos_embed")


class WeightsUnavailable(RuntimeError):
    """The AvatarArtist weights (or the FaceVerse model) are not where the server was told to look."""


class WeightsInvalid(WeightsUnavailable):
    """A weights file is present but is not what the loader expects; the message names file and problem."""


def missing_files(root: Path | None) -> list[str]:
    if root is None:
        return list(REQUIRED)
    return [name for name in REQUIRED if not (root / name).is_file()]


def unavailable_reason(root: Path | None) -> str:
    """'' when the folder is complete, else a sentence saying what is missing and where."""
    if root is None:
        return (f"AvatarArtist weights are not configured: pass --avatarartist-weights DIR or set {ENV_VAR}")
    if not root.is_dir():
        return f"AvatarArtist weights not found at {root} (no such directory)"
    missing = missing_files(root)
    if not missing:
        return ""
    if missing == [FACEVERSE_FILE]:
        return f"FaceVerse model missing: put faceverse_v3_1.npy (FaceVerse v3) in {root}"
    return f"AvatarArtist weights not found at {root}: missing {', '.join(missing)}"


def _torch_load(path: Path) -> object:
    """Plain tensors only. Memory-mapped when the file is in torch's zip format, so a DiT.pth holding both
    `state_dict` and `state_dict_ema` (2 x 2.9 GB) is not read into memory beside the model."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "zip" not in str(e).lower():
                raise
            return torch.load(path, map_location="cpu", weights_only=True)   # legacy (pre-1.6) format
    except Exception as e:  # noqa: BLE001 - any unreadable or code-carrying file gets one sentence
        raise WeightsInvalid(f"{path} cannot be read as plain tensors (weights_only): "
                             f"{str(e).splitlines()[0]}") from None


def _detail(error: Exception, limit: int = 400) -> str:
    """torch's load_state_dict message without its generic first line, shortened."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines[1:] or lines)
    return text if len(text) <= limit else text[:limit] + " ..."


@dataclass
class LoadReport:
    """Keys the non-strict DiT load did not use or did not find (upstream loads it non-strict)."""
    dit_source: str = ""
    dit_missing: list[str] = field(default_factory=list)
    dit_unexpected: list[str] = field(default_factory=list)


def _sizes(root: Path) -> tuple[DiTConfig, VAEConfig]:
    path = root / SIZES_FILE
    if not path.is_file():
        return DiTConfig(), VAEConfig()
    try:
        raw = json.loads(path.read_text())
        dit: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.get("dit", {}).items()}
        return DiTConfig(**dit), VAEConfig(**raw.get("vae", {}))
    except (ValueError, TypeError) as e:
        known = ", ".join(f.name for f in fields(DiTConfig))
        raise WeightsInvalid(f"{path}: not a valid size override ({e}); dit fields are {known}") from None


def load_dit(path: Path, config: DiTConfig, report: LoadReport) -> TriplaneDiT:
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise WeightsInvalid(f"{path} is not a DiT checkpoint: expected a dict with a 'state_dict' entry")
    report.dit_source = "state_dict_ema" if isinstance(ckpt.get("state_dict_ema"), dict) else "state_dict"
    state = dict(ckpt[report.dit_source])
    for key in _POS_EMBED_KEYS:   # the table is recomputed, never read (as upstream)
        state.pop(key, None)
    model = TriplaneDiT(config)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise WeightsInvalid(f"{path}: weights do not fit the DiT: {_detail(e)}") from None
    report.dit_missing = [k for k in result.missing_keys if k != "pos_embed"]
    report.dit_unexpected = list(result.unexpected_keys)
    if len(report.dit_missing) == len(model.state_dict()) - 1:
        raise WeightsInvalid(f"{path}: none of its {len(state)} keys is a DiT weight "
                             f"(first: {next(iter(state), 'none')!r}); a 'module.' prefix?")
    for kind, keys in (("missing", report.dit_missing), ("unexpected", report.dit_unexpected)):
        if keys:
            log.warning("DiT checkpoint %s: %d %s keys: %s", path, len(keys), kind, ", ".join(keys))
    model.reset_pos_embed()
    return model.eval()


def load_vae(path: Path, config: VAEConfig) -> TriplaneVAE:
    state = _torch_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsInvalid(f"{path} is not a flat VAE state_dict of tensors")
    model = TriplaneVAE(config)
    try:
        model.load_state_dict(retie_aliases(model, state), strict=True)
    except (RuntimeError, ValueError) as e:
        raise WeightsInvalid(f"{path}: weights do not fit the VAE: {_detail(e)}") from None
    return model.eval()


def load_stat(path: Path) -> torch.Tensor:
    """final_mean.pt / final_std.pt -> (1, n, 1, 1, 1) with n in (1, 4): broadcast over (B, F, C, H, W)."""
    value = _torch_load(path)
    if not isinstance(value, torch.Tensor) or value.numel() not in (1, 4):
        raise WeightsInvalid(f"{path}: expected a tensor of 1 or 4 values (one per plane)")
    return value.float().reshape(1, -1, 1, 1, 1)


@dataclass
class Networks:
    dit: TriplaneDiT
    vae: TriplaneVAE
    render: RenderWeights
    mean: torch.Tensor
    std: torch.Tensor
    report: LoadReport


def load_networks(root: Path) -> Networks:
    """Load everything but the image encoders and FaceVerse (loaded by their own modules)."""
    dit_config, vae_config = _sizes(root)
    report = LoadReport()
    dit = load_dit(root / DIT_FILE, dit_config, report)
    vae = load_vae(root / VAE_FILE, vae_config)
    try:
        render = read_render_pkl(root / RENDER_FILE)
    except ValueError as e:
        raise WeightsInvalid(str(e)) from None
    return Networks(dit=dit, vae=vae, render=render, mean=load_stat(root / MEAN_FILE),
                    std=load_stat(root / STD_FILE), report=report)
