"""AvatarArtist's triplane VAE: an AutoencoderKL of 3D convolutions over (channels, plane, row, column).

Independent definition whose state_dict matches the published `checkpoint-VAE/pytorch_model.bin` key for
key (manifest: shared/reference/avatarartist/vae_full_manifest.json).

Conventions (contract with the checkpoint):
  - tensors are (B, C, F, H, W) with F = 4 planes; the plane axis is never strided.
  - every convolution pads by replication before convolving; a pad of k - s per axis is split
    (ceil, floor), so the extra pixel is on the left.
  - `SamePad3d` registers its weight twice (`<p>.weight` is the very tensor `<p>.conv.weight`), as the
    checkpoint does; a strict load therefore needs both names (see `retie_aliases`).
  - GroupNorm: 32 groups, eps 1e-6. encode -> moments (B, 2*embed, F, h, w); logvar clamped to [-30, 20].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LATENT_SCALE = 0.3994218   # the DiT samples latents multiplied by this


def _same_pad(kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> tuple[int, ...]:
    """F.pad argument (last axis first) for a total pad of k - s per axis, extra pixel on the left."""
    pads: list[int] = []
    for k, s in reversed(list(zip(kernel, stride))):
        total = k - s
        pads += [total - total // 2, total // 2]
    return tuple(pads)


def _triple(v: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else v


class SamePad3d(nn.Module):
    """Replicate-pad then Conv3d without padding; output size = ceil(input / stride)."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int, int] = 3,
                 stride: int | tuple[int, int, int] = 1, bias: bool = True):
        super().__init__()
        kernel3, stride3 = _triple(kernel), _triple(stride)
        self.pad = _same_pad(kernel3, stride3)
        self.conv = nn.Conv3d(cin, cout, kernel3, stride=stride3, padding=0, bias=bias)
        self.weight = self.conv.weight  # the checkpoint's alias: one tensor under two names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(F.pad(x, self.pad, mode="replicate"))
        return out


class SamePadTranspose3d(nn.Module):
    """Replicate-pad then ConvTranspose3d cropping k - 1 per side: output = input * stride."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int, int] = 4,
                 stride: int | tuple[int, int, int] = 1):
        super().__init__()
        kernel3, stride3 = _triple(kernel), _triple(stride)
        self.pad = _same_pad(kernel3, stride3)
        self.convt = nn.ConvTranspose3d(cin, cout, kernel3, stride=stride3,
                                        padding=(kernel3[0] - 1, kernel3[1] - 1, kernel3[2] - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.convt(F.pad(x, self.pad, mode="replicate"))
        return out


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResBlock3d(nn.Module):
    """x + conv(silu(norm(conv(silu(norm(x)))))), same width in and out."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = _norm(channels)
        self.conv1 = SamePad3d(channels, channels, 3)
        self.norm2 = _norm(channels)
        self.conv2 = SamePad3d(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        out: torch.Tensor = x + self.conv2(F.silu(self.norm2(h)))
        return out


class _DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.down = SamePad3d(cin, cout, 4, stride=(1, 2, 2))
        self.res = ResBlock3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.res(self.down(x))
        return out


class _UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = SamePadTranspose3d(cin, cout, 4, stride=(1, 2, 2))
        self.res1 = ResBlock3d(cout)
        self.res2 = ResBlock3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.res2(self.res1(self.up(x)))
        return out


class Encoder3d(nn.Module):
    """(B, image_channels, F, H, W) -> (B, out_channels, F, H / 2^levels, W / 2^levels)."""

    def __init__(self, hidden: int, levels: int, image_channels: int, out_channels: int):
        super().__init__()
        # Registration order = the checkpoint's key order: blocks, then the first conv, then the head.
        self.conv_blocks = nn.ModuleList(_DownBlock(hidden * 2 ** i, hidden * 2 ** (i + 1)) for i in range(levels))
        self.conv_first = SamePad3d(image_channels, hidden, 3)
        top = hidden * 2 ** levels
        self.final_block = nn.Sequential(_norm(top), nn.SiLU(), SamePad3d(top, out_channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_first(x)
        for block in self.conv_blocks:
            h = block(h)
        out: torch.Tensor = self.final_block(h)
        return out


class Decoder3d(nn.Module):
    """(B, z_channels, F, h, w) -> (B, image_channels, F, h * 2^levels, w * 2^levels)."""

    def __init__(self, hidden: int, levels: int, z_channels: int, image_channels: int):
        super().__init__()
        widths = [hidden * 2 ** (levels - i) for i in range(levels)]
        self.conv_blocks = nn.ModuleList(_UpBlock(z_channels if i == 0 else widths[i - 1], widths[i])
                                         for i in range(levels))
        self.conv_out = SamePad3d(widths[-1], image_channels, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for block in self.conv_blocks:
            h = block(h)
        out: torch.Tensor = self.conv_out(h)
        return out


@dataclass(frozen=True)
class VAEConfig:
    """The published model: hidden 128 (the small reference uses 32), 3 levels of 2x, 8 latent channels."""
    hidden: int = 128
    levels: int = 3          # vae_model.yaml: downsample/upsample [4, 8, 8] -> log2(8) = 3 spatial halvings
    image_channels: int = 32
    z_channels: int = 8
    embed_dim: int = 8


@dataclass
class Posterior:
    """Diagonal Gaussian over latents; mean and logvar are (B, embed, F, h, w), logvar already clamped."""
    mean: torch.Tensor
    logvar: torch.Tensor

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + torch.exp(0.5 * self.logvar) * noise


class TriplaneVAE(nn.Module):
    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        self.encoder = Encoder3d(config.hidden, config.levels, config.image_channels, 2 * config.z_channels)
        self.decoder = Decoder3d(config.hidden, config.levels, config.z_channels, config.image_channels)
        self.quant_conv = SamePad3d(2 * config.z_channels, 2 * config.embed_dim, 1)
        self.post_quant_conv = SamePad3d(config.embed_dim, config.z_channels, 1)

    def tie_aliases(self) -> TriplaneVAE:
        """Make every `<p>.weight` the very tensor `<p>.conv.weight` again: conversions that rebuild
        parameters (to_empty, some device moves) give the two names separate copies."""
        for module in self.modules():
            if isinstance(module, SamePad3d):
                module.weight = module.conv.weight
        return self

    def moments(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 32, F, H, W) triplane -> (B, 2*embed, F, H/8, W/8): mean and raw logvar stacked on axis 1."""
        moments: torch.Tensor = self.quant_conv(self.encoder(x))
        return moments

    def encode(self, x: torch.Tensor) -> Posterior:
        mean, logvar = torch.chunk(self.moments(x), 2, dim=1)
        return Posterior(mean, logvar.clamp(-30.0, 20.0))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, embed, F, h, w) latent -> (B, 32, F, 8h, 8w) normalised triplane."""
        planes: torch.Tensor = self.decoder(self.post_quant_conv(z))
        return planes


def aliased_keys(model: nn.Module) -> dict[str, str]:
    """alias -> original for every state_dict name that shares its tensor with an earlier name
    (`<p>.conv.weight` -> `<p>.weight` for each SamePad3d)."""
    seen: dict[int, str] = {}
    out: dict[str, str] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        key = id(tensor)
        if key in seen:
            out[name] = seen[key]
        else:
            seen[key] = name
    return out


def retie_aliases(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with every alias present: missing aliases are filled from their originals; an alias
    whose tensor differs from its original means a damaged file (ValueError)."""
    out = dict(state)
    for alias, original in aliased_keys(model).items():
        if alias not in out and original in out:
            out[alias] = out[original]
        elif original not in out and alias in out:
            out[original] = out[alias]
        elif alias in out and not torch.equal(out[alias], out[original]):
            raise ValueError(f"VAE weights are inconsistent: {alias} and {original} must be the same tensor")
    return out


def num_unique_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() already yields each tensor once


__all__ = ["LATENT_SCALE", "Posterior", "TriplaneVAE", "VAEConfig", "aliased_keys", "num_unique_parameters",
           "retie_aliases"]
