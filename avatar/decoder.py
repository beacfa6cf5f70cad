"""The triplane decoder: mean of the three static-plane samples -> small MLP -> density and features.

Shapes follow EG3D's OSGDecoder (FC 32->64, softplus, FC 64->1+32) so AvatarArtist-style weights fit:
the raw density goes through softplus(raw - 1); the features through a widened sigmoid, of which
the first three are RGB.

Two buffers travel with the weights and tell the renderer how the neural texture becomes part of the
front (xy) plane when the head mesh is rasterized into it (see avatar.planes):
  raster.channel_mask  (C,) 1 where the rasterized texture replaces the static plane, 0 where the
                       static plane is kept under the mesh
  raster.depth_weight  (C,) added per channel times the rasterized surface depth z, so a channel can
                       carry the posed geometry exactly (all zeros = plain Next3D-style features)
  raster.depth_test    (1,) 1: the mesh replaces a texel only where it is nearer to the front viewer
                       than the static plane's own surface (read from the depth-carrying channel), so
                       static geometry in front of the face (hair) stays; 0: the mesh always replaces
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS = 32
HIDDEN = 64
DENSITY_SHIFT = 1.0
SIGMOID_WIDEN = 0.001


class TriplaneDecoder(nn.Module):
    # Buffers (see the module docstring), declared for the type checker: nn.Module resolves them at run time.
    raster_channel_mask: torch.Tensor
    raster_depth_weight: torch.Tensor
    raster_depth_test: torch.Tensor

    def __init__(self, channels: int = CHANNELS, hidden: int = HIDDEN):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(channels, hidden), nn.Softplus(), nn.Linear(hidden, 1 + channels))
        self.register_buffer("raster_channel_mask", torch.ones(channels))
        self.register_buffer("raster_depth_weight", torch.zeros(channels))
        self.register_buffer("raster_depth_test", torch.zeros(1))

    @property
    def layers(self) -> tuple[nn.Linear, nn.Linear]:
        """The MLP's two linear layers: (C -> hidden) and (hidden -> 1 + C)."""
        first, second = self.net[0], self.net[2]
        assert isinstance(first, nn.Linear) and isinstance(second, nn.Linear)  # as __init__ builds them
        return first, second

    @property
    def channels(self) -> int:
        return self.layers[0].in_features

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, C) mean plane features -> density (P,) >= 0 and activated features (P, C)."""
        out = self.net(features)
        density = F.softplus(out[:, 0] - DENSITY_SHIFT)
        feats = torch.sigmoid(out[:, 1:]) * (1 + 2 * SIGMOID_WIDEN) - SIGMOID_WIDEN
        return density, feats

    def state_for_asset(self) -> dict[str, torch.Tensor]:
        # Dots in buffer names are replaced so the keys stay flat and stable in the asset.
        return {k.replace("raster_", "raster."): v.detach().clone() for k, v in self.state_dict().items()}

    @classmethod
    def from_asset(cls, state: dict[str, torch.Tensor]) -> TriplaneDecoder:
        try:
            w0 = state["net.0.weight"]
            dec = cls(channels=w0.shape[1], hidden=w0.shape[0])
            # Avatars written before the depth test existed always replace.
            state = {"raster.depth_test": torch.zeros(1), **state}
            dec.load_state_dict({k.replace("raster.", "raster_"): v for k, v in state.items()}, strict=True)
        except (KeyError, RuntimeError) as e:
            raise ValueError(f"decoder weights do not fit the triplane decoder: {e}") from None
        return dec.eval()


class RenderField:
    """The decoder cut down to what rendering reads: density and RGB.

    Plane channels no first-layer weight reads, and hidden units that feed neither density nor RGB,
    are dropped; the 1/3 of the plane mean is folded into the first layer. The outputs are exactly the
    full decoder's density and first three features; rendering just samples fewer channels.
    """

    def __init__(self, decoder: TriplaneDecoder, outputs: int = 4):
        first, second = decoder.layers
        w1, b1 = first.weight.detach(), first.bias.detach()
        w2, b2 = second.weight.detach()[:outputs], second.bias.detach()[:outputs]
        hidden = torch.nonzero(w2.abs().sum(0) > 0).squeeze(1)
        channels = torch.nonzero(w1[hidden].abs().sum(0) > 0).squeeze(1)
        if len(channels) == 0:  # a decoder that reads nothing still needs one channel to sample
            channels = torch.zeros(1, dtype=torch.long)
        self.channels = channels
        self.positions = torch.arange(len(channels))  # where `channels` sit among the field's own: all of them
        self.w1 = (w1[hidden][:, channels] / 3.0).contiguous()
        self.b1 = b1[hidden].contiguous()
        self.w2 = w2[:, hidden].contiguous()
        self.b2 = b2.contiguous()

    def to(self, device: torch.device | str) -> RenderField:
        """The same field with its tensors on `device`."""
        moved = RenderField.__new__(RenderField)
        for name, value in vars(self).items():
            setattr(moved, name, value.to(device))
        return moved

    def density_only(self) -> RenderField:
        """The same field restricted to density: what the ray marcher needs to find surfaces."""
        sub = RenderField.__new__(RenderField)
        hidden = torch.nonzero(self.w2[0].abs() > 0).squeeze(1)
        used = torch.nonzero(self.w1[hidden].abs().sum(0) > 0).squeeze(1)
        if len(used) == 0:
            used = torch.zeros(1, dtype=torch.long)
        sub.channels = self.channels[used]
        sub.positions = used  # where these channels sit among self.channels
        sub.w1 = self.w1[hidden][:, used].contiguous()
        sub.b1 = self.b1[hidden].contiguous()
        sub.w2 = self.w2[:1, hidden].contiguous()
        sub.b2 = self.b2[:1].contiguous()
        return sub

    def __call__(self, summed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, len(channels)) sum of the three plane samples -> density (P,), RGB (P, 3) (or (P, 0)
        for a density-only field)."""
        out = F.linear(F.softplus(F.linear(summed, self.w1, self.b1)), self.w2, self.b2)
        density = F.softplus(out[:, 0] - DENSITY_SHIFT)
        rgb = torch.sigmoid(out[:, 1:4]) * (1 + 2 * SIGMOID_WIDEN) - SIGMOID_WIDEN
        return density, rgb


# World axes (0 = x, 1 = y, 2 = z) of each spatial plane's (column, row): plane axes are data.
PLANE_AXES = {"xy": (0, 1), "xz": (0, 2), "zx": (2, 0), "zy": (2, 1)}
# EG3D's order, which AvatarArtist checkpoints use. Its third plane is (z, x): the transpose of the
# second, a known quirk that leaves no plane for the side of the head. Generators that build their own
# planes may use a true side plane, "zy", in third place; the avatar records which.
EG3D_PLANES = ("xy", "xz", "zx")
SIDE_PLANES = ("xy", "xz", "zy")


def plane_coordinates(points: torch.Tensor, planes: tuple[str, str, str] = EG3D_PLANES,
                      box_half: float = 0.5) -> torch.Tensor:
    """(3, P, 2) grid_sample coordinates of world points (P, 3) on the three spatial planes."""
    p = points / box_half
    return torch.stack([p[:, list(PLANE_AXES[name])] for name in planes])


def sum_static_planes(planes: torch.Tensor, points: torch.Tensor, box_half: float = 0.5,
                      names: tuple[str, str, str] = EG3D_PLANES) -> torch.Tensor:
    """Sum of the three spatial plane features at world points (the decoder's input is their mean).

    planes: (3, C, H, W) in the order `names`; points (P, 3) in the head box. Each plane is sampled at
    (column, row) = its two world axes (PLANE_AXES), scaled so the box spans [-1, 1].
    """
    coords = plane_coordinates(points, names, box_half)
    sampled = F.grid_sample(planes, coords.unsqueeze(1), mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled.sum(dim=0).squeeze(1).transpose(0, 1)  # (P, C)


def sample_static_planes(planes: torch.Tensor, points: torch.Tensor, box_half: float = 0.5,
                         names: tuple[str, str, str] = EG3D_PLANES) -> torch.Tensor:
    """Mean of the three spatial plane features at world points: what the full decoder reads."""
    return sum_static_planes(planes, points, box_half, names) / 3.0
