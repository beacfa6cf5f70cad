"""The portrait's conditioning: CLIP ViT-H/14 vision and DINOv2-base tokens, from a local Hugging Face folder.

Both models are transformers classes built from the folder's config.json and weights (safetensors, or a
.bin read with weights_only): nothing is fetched from a hub. As upstream:
  clip  = CLIPVisionModelWithProjection(...).hidden_states[-2] of the CLIP-preprocessed portrait (B, 257, 1280)
  dino  = Dinov2Model(...).last_hidden_state of the DINO-preprocessed portrait (B, 257, 768)
  the unconditional CLIP branch encodes an all-zero (already normalised) image; DINO has no such branch.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# DINOv2-base's published preprocessing, used when the folder has no preprocessor_config.json.
_DINO_PREPROCESS = {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "resample": 3,
                    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}


@dataclass
class Conditioning:
    clip: torch.Tensor         # (1, 257, 1280) CLIP penultimate hidden states of the portrait
    clip_uncond: torch.Tensor  # (1, 257, 1280) the same for a zero image
    dino: torch.Tensor         # (1, 257, 768) DINOv2 last hidden state of the portrait


class ImageEncoders:
    """CLIP and DINOv2 loaded from `clip_dir` and `dino_dir` (Hugging Face layout)."""

    def __init__(self, clip_dir: Path, dino_dir: Path, device: torch.device, dtype: torch.dtype):
        from transformers import BitImageProcessorPil, CLIPImageProcessorPil, CLIPVisionModelWithProjection, Dinov2Model
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(hf_logging.ERROR)  # its load report would repeat on every server start
        self.device, self.dtype = device, dtype
        self.clip = CLIPVisionModelWithProjection.from_pretrained(
            clip_dir, local_files_only=True, dtype=dtype
        ).to(device).eval()  # type: ignore[arg-type]  # transformers types its wrapped `to` as an unbound method
        self.dino = Dinov2Model.from_pretrained(
            dino_dir, local_files_only=True, dtype=dtype
        ).to(device).eval()  # type: ignore[arg-type]  # transformers types its wrapped `to` as an unbound method
        self.clip_processor = CLIPImageProcessorPil()  # upstream uses the processor's defaults, not the folder's
        dino_cfg = dict(_DINO_PREPROCESS)
        processor_file = Path(dino_dir) / "preprocessor_config.json"
        if processor_file.is_file():
            dino_cfg.update({k: v for k, v in json.loads(processor_file.read_text()).items()
                             if k in ("size", "crop_size", "resample", "image_mean", "image_std", "do_center_crop",
                                      "do_resize", "do_normalize", "do_rescale", "rescale_factor")})
        self.dino_processor = BitImageProcessorPil(**dino_cfg)
        logging.getLogger(__name__).debug("image encoders loaded from %s and %s", clip_dir, dino_dir)

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> Conditioning:
        """(H, W, 3) uint8 RGB portrait -> its conditioning tokens."""
        clip_px = self.clip_processor(images=image, return_tensors="pt").pixel_values.to(self.device, self.dtype)
        dino_px = self.dino_processor(images=image, return_tensors="pt").pixel_values.to(self.device, self.dtype)
        both = torch.cat([clip_px, torch.zeros_like(clip_px)])
        hidden = self.clip(both, output_hidden_states=True).hidden_states[-2]
        dino = self.dino(dino_px).last_hidden_state
        return Conditioning(clip=hidden[:1], clip_uncond=hidden[1:], dino=dino)
