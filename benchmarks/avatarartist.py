"""AvatarArtist at full size on this machine: `python -m benchmarks.avatarartist` prints one JSON line.

No official weights exist here, so the published architectures are built at full size with random
weights (CLIP ViT-H/14 and DINOv2-base from their transformers configs, the DiT XL/2, the 3D VAE): the
time per operation does not depend on the values. Measured on the astronaut portrait, seed 0:
  encode_s        CLIP (portrait + zero image) and DINOv2 features
  dit_step_s      one sampler step (the conditional and unconditional branch in one batch of 2), median
  vae_decode_s    latent (1, 8, 4, 32, 32) -> planes (1, 32, 4, 256, 256)
  create_s        encode + `steps` sampler steps + VAE decode (what create runs before its thumbnail)
Each also as *_cpu_s (process CPU seconds): on a shared machine wall time includes waiting for a core.
Options: --steps N (default 20, upstream's count), --threads N (torch threads, default 1).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from types import SimpleNamespace

import numpy as np
import torch
from skimage import data

from avatar.generators.avatarartist.dit import DiTConfig, TriplaneDiT
from avatar.generators.avatarartist.generator import decode_planes, square_portrait
from avatar.generators.avatarartist.sampler import sample_latent
from avatar.generators.avatarartist.vae import TriplaneVAE, VAEConfig


def _random_full_size(module_cls, config):
    """Build on the meta device, then allocate and fill with small random values (no slow init)."""
    with torch.device("meta"):
        model = module_cls(config)
    model = model.to_empty(device="cpu")
    if hasattr(model, "tie_aliases"):
        model.tie_aliases()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.02 if p.ndim > 1 else 0.01))
    if hasattr(model, "reset_pos_embed"):
        model.reset_pos_embed()
    return model.eval()


class _Encoders:
    """CLIP ViT-H/14 vision and DINOv2-base at full size with random weights, same calls as ImageEncoders."""

    def __init__(self):
        from transformers import (
            BitImageProcessorPil,
            CLIPImageProcessorPil,
            CLIPVisionConfig,
            CLIPVisionModelWithProjection,
            Dinov2Config,
            Dinov2Model,
        )

        from avatar.generators.avatarartist.encoders import _DINO_PREPROCESS

        clip_cfg = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                    num_attention_heads=16, image_size=224, patch_size=14, projection_dim=1024,
                                    hidden_act="gelu")
        self.clip = CLIPVisionModelWithProjection(clip_cfg).eval()
        self.dino = Dinov2Model(Dinov2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                             image_size=518, patch_size=14)).eval()
        self.clip_processor = CLIPImageProcessorPil()
        self.dino_processor = BitImageProcessorPil(**_DINO_PREPROCESS)
        self.device, self.dtype = torch.device("cpu"), torch.float32

    def encode(self, image):
        from avatar.generators.avatarartist.encoders import ImageEncoders

        return ImageEncoders.encode(self, image)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    nets = SimpleNamespace(device=torch.device("cpu"), dtype=torch.float32,
                           networks=SimpleNamespace(dit=_random_full_size(TriplaneDiT, DiTConfig()),
                                                    vae=_random_full_size(TriplaneVAE, VAEConfig()),
                                                    mean=torch.zeros(1, 4, 1, 1, 1), std=torch.ones(1, 4, 1, 1, 1)))
    encoders = _Encoders()
    build_s = time.perf_counter() - t0
    portrait = square_portrait(data.astronaut())

    clocks = (time.perf_counter, time.process_time)
    start = [c() for c in clocks]
    cond = encoders.encode(portrait)
    encode = [c() - s for c, s in zip(clocks, start)]
    marks = [[c() for c in clocks]]
    latent = sample_latent(nets.networks.dit, cond, seed=0, steps=args.steps,
                           on_step=lambda i, n: marks.append([c() for c in clocks]))
    steps = np.diff(np.asarray(marks), axis=0)   # (steps, 2): wall, cpu
    start = [c() for c in clocks]
    planes = decode_planes(nets, latent)
    vae = [c() - s for c, s in zip(clocks, start)]
    out = {"device": "cpu", "dtype": "float32", "threads": args.threads, "steps": args.steps,
           "build_s": round(build_s, 1)}
    for k, suffix in ((0, "_s"), (1, "_cpu_s")):
        out.update({"encode" + suffix: round(encode[k], 1),
                    "dit_step" + suffix: round(statistics.median(steps[:, k]), 1),
                    "sampling" + suffix: round(float(steps[:, k].sum()), 1),
                    "vae_decode" + suffix: round(vae[k], 1),
                    "create" + suffix: round(encode[k] + float(steps[:, k].sum()) + vae[k], 1)})
    out.update(planes_shape=list(planes.shape), planes_finite=bool(torch.isfinite(planes).all()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
