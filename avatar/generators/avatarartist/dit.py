"""AvatarArtist's DiT (TriDitCLIPDINO XL/2): samples the triplane latent from CLIP and DINOv2 tokens.

Independent definition whose state_dict matches the published `DiT.pth` key for key (manifest:
shared/reference/avatarartist/dit_full_manifest.json). Attention is torch's scaled_dot_product_attention.

Contract:
  x (B, 8, 128, 32) latent seen as an image (4 planes of 32 rows stacked); timestep (B,) in [0, 1000);
  clip (B, 257, 1280) CLIP ViT-H/14 penultimate hidden states; dino (B, 257, 768) DINOv2 last hidden state.
  forward -> (B, 16, 128, 32): noise prediction in channels [:8], the learned variance in [8:].
Structure: patch 2 -> 1024 tokens on a (64, 16) grid + a fixed sin-cos table; adaLN-single blocks whose
self-attention also sees the 256 resampled DINO tokens (the outputs for those are dropped) and whose
cross-attention reads the 16 resampled CLIP tokens of its own sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DiTConfig:
    """Defaults are the published XL/2 model; the small reference model shrinks hidden, depth and heads."""
    input_size: tuple[int, int] = (128, 32)
    patch_size: int = 2
    in_channels: int = 8
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    caption_channels: int = 1280
    dino_channels: int = 768
    clip_tokens: int = 16
    dino_tokens: int = 256
    resampler_depth: int = 4
    resampler_heads: int = 12
    resampler_head_dim: int = 64

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels   # noise and variance

    @property
    def grid(self) -> tuple[int, int]:
        return self.input_size[0] // self.patch_size, self.input_size[1] // self.patch_size


def sincos_table(dim: int, base_h: int, base_w: int, tokens: int) -> torch.Tensor:
    """The model's own (1, tokens, dim) position table.

    The published model builds it for a square grid of side sqrt(tokens) whose coordinates are scaled by
    base/side, although its tokens lie on a (base_h, base_w) grid: token i*side + j gets column code j*base_w/side
    in the first half of the channels and row code i*base_h/side in the second. Reproduced as is, since the
    weights were trained with it.
    """
    side = math.isqrt(tokens)
    rows = np.arange(side, dtype=np.float32) / (side / base_h)
    cols = np.arange(side, dtype=np.float32) / (side / base_w)
    col_grid, row_grid = np.meshgrid(cols, rows)   # (side, side); [i, j] -> cols[j], rows[i]
    half = dim // 2
    omega = 1.0 / 10000 ** (np.arange(half // 2, dtype=np.float64) / (half / 2.0))

    def codes(pos: np.ndarray) -> np.ndarray:
        angles = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    table = np.concatenate([codes(col_grid), codes(row_grid)], axis=1)
    return torch.from_numpy(table).float().unsqueeze(0)


def timestep_features(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) [cos, sin] features at geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, cin: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens: torch.Tensor = self.proj(x).flatten(2).transpose(1, 2)   # row-major tokens
        return tokens


class TimestepEmbedder(nn.Module):
    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        dtype = next(self.mlp.parameters()).dtype   # the first Linear's weight
        embedded: torch.Tensor = self.mlp(timestep_features(t, self.freq_dim).to(dtype))
        return embedded


class Mlp(nn.Module):
    """fc1 -> tanh-GELU -> fc2 (names as the checkpoint has them)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
        return out


class PerceiverAttention(nn.Module):
    """Latents attend to cat(features, latents); both sides layer-normed; no biases."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * head_dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x, latents = self.norm1(x), self.norm2(latents)
        b, n, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (t.reshape(b, -1, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v)   # scale 1/sqrt(head_dim), as the model's q, k scaling
        out: torch.Tensor = self.to_out(attended.transpose(1, 2).reshape(b, n, -1))
        return out


class Resampler(nn.Module):
    """Perceiver resampler: (B, L, cin) tokens -> (B, 1, T, dim) learned-query summaries."""

    def __init__(self, cin: int, dim: int, tokens: int, depth: int, heads: int, head_dim: int, ff_mult: int = 4):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, tokens, dim) / dim ** 0.5)
        self.proj_in = nn.Linear(cin, dim)
        self.proj_out = Mlp(dim, dim)
        self.norm_out = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, heads, head_dim),
                           nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * ff_mult, bias=False), nn.GELU(),
                                         nn.Linear(dim * ff_mult, dim, bias=False))])
            for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        latents = self.latents.expand(x.shape[0], -1, -1)
        x = self.proj_in(x)
        for layer in self.layers:
            attn, ff = layer.children()
            latents = latents + attn(x, latents)
            latents = latents + ff(latents)
        summaries: torch.Tensor = self.norm_out(self.proj_out(latents)).unsqueeze(1)
        return summaries


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out: torch.Tensor = self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        return out


class CrossAttention(nn.Module):
    """Image tokens (B, N, C) attend to their own sample's condition tokens (B, L, C)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q_linear(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
        k, v = self.kv_linear(cond).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out: torch.Tensor = self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        return out


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """adaLN-single block: gated self-attention over (x, DINO tokens), cross-attention to CLIP, gated MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.cross_attn = CrossAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim ** 0.5)

    def forward(self, x: torch.Tensor, clip: torch.Tensor, t0: torch.Tensor, dino: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        shift_sa, scale_sa, gate_sa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table[None] + t0.reshape(b, 6, c)).chunk(6, dim=1)
        h = self.attn(torch.cat([_modulate(self.norm1(x), shift_sa, scale_sa), dino], dim=1))[:, :n]
        x = x + gate_sa * h
        x = x + self.cross_attn(x, clip)
        out: torch.Tensor = x + gate_mlp * self.mlp(_modulate(self.norm2(x), shift_mlp, scale_mlp))
        return out


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch: int, cout: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch * patch * cout)
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim ** 0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.scale_shift_table[None] + t[:, None]).chunk(2, dim=1)
        out: torch.Tensor = self.linear(_modulate(self.norm_final(x), shift, scale))
        return out


class TriplaneDiT(nn.Module):
    pos_embed: torch.Tensor   # a registered buffer

    def __init__(self, config: DiTConfig = DiTConfig()):
        super().__init__()
        c = config
        self.config = c
        dim = c.hidden_size
        gh, gw = c.grid
        # Registration order = the checkpoint's key order.
        self.x_embedder = PatchEmbed(c.patch_size, c.in_channels, dim)
        self.t_embedder = TimestepEmbedder(dim)
        self.register_buffer("pos_embed", sincos_table(dim, gh, gw, gh * gw))
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.dino_embedder = Resampler(c.dino_channels, dim, c.dino_tokens, c.resampler_depth, c.resampler_heads,
                                       c.resampler_head_dim)
        self.y_embedder = Resampler(c.caption_channels, dim, c.clip_tokens, c.resampler_depth, c.resampler_heads,
                                    c.resampler_head_dim)
        self.blocks = nn.ModuleList(DiTBlock(dim, c.num_heads, c.mlp_ratio) for _ in range(c.depth))
        self.final_layer = FinalLayer(dim, c.patch_size, c.out_channels)

    def reset_pos_embed(self) -> None:
        """Recompute the position table (the checkpoint's copy is ignored, as upstream does)."""
        gh, gw = self.config.grid
        self.pos_embed.copy_(sincos_table(self.config.hidden_size, gh, gw, gh * gw))

    def condition(self, clip: torch.Tensor, dino: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Resampled tokens: CLIP (B, 16, C) and DINO (B, 256, C). Independent of x and t, so a sampler
        computes them once."""
        return self.y_embedder(clip).squeeze(1), self.dino_embedder(dino).squeeze(1)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, clip: torch.Tensor, dino: torch.Tensor,
                tokens: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        dtype = self.pos_embed.dtype
        x = self.x_embedder(x.to(dtype)) + self.pos_embed
        t = self.t_embedder(timestep.to(dtype))
        t0 = self.t_block(t)
        clip_tokens, dino_tokens = tokens if tokens is not None else self.condition(clip.to(dtype), dino.to(dtype))
        for block in self.blocks:
            x = block(x, clip_tokens, t0, dino_tokens)
        return self.unpatchify(self.final_layer(x, t))

    def forward_eps(self, x: torch.Tensor, timestep: torch.Tensor, clip: torch.Tensor, dino: torch.Tensor,
                    tokens: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The noise prediction alone (what a DPM-Solver needs): channels [:in_channels]."""
        return self.forward(x, timestep, clip, dino, tokens)[:, :self.config.in_channels]

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, p*p*C) -> (B, C, gh*p, gw*p), tokens row-major on the (gh, gw) grid."""
        gh, gw = self.config.grid
        p, c = self.config.patch_size, self.config.out_channels
        x = x.reshape(x.shape[0], gh, gw, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, gh * p, gw * p)
