"""Neural texture -> front plane: the posed head mesh rasterized orthographically into the xy plane.

As in Next3D/AvatarArtist, the expression lives in the mesh: the posed mesh is rasterized from the
front, every covered plane texel looks up the neural texture (plane 0) at the mesh's UV there, and
the result replaces the static xy plane where the decoder's channel mask says so. The rasterized
surface depth is added through the decoder's depth weights, so geometry follows the mesh exactly.

Plane 0 is indexed like the xy plane: column = u, row = v (row 0 at v = 0).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from avatar import march, raster
from avatar.decoder import TriplaneDecoder
from avatar.head_model import EYEBALL_PARTS, HeadModel


class FrontPlaneComposer:
    """Builds the (3, C', H, W) static planes of one avatar for an expression, for the channels C' the
    caller reads (all by default); only channels the decoder marks as rasterized are recomputed.

    Only the front plane depends on the expression, and only where the moving part of the mesh lands:
    the front with the still part composed is built once (`still_front`), and each expression copies
    it and composes the texels the moving part wins (`front`). Front planes are channels-last in
    memory, (H, W, C') permuted to (C', H, W), which is the march kernel's layout.

    Everything it holds and returns lives on `device` (`moving_faces` excepted: an index for callers).
    """

    def __init__(self, head: HeadModel, identity: np.ndarray, planes: torch.Tensor, decoder: TriplaneDecoder,
                 backend: str = "cpu", channels: torch.Tensor | None = None, cache_size: int = 4,
                 device: torch.device | str = "cpu"):
        self.head = head
        self.device = torch.device(device)
        self.identity = np.asarray(identity, dtype=np.float32)
        ch = torch.arange(planes.shape[1]) if channels is None else channels.cpu()
        self.static = planes[1:4][:, ch].contiguous().to(self.device)
        mask = decoder.raster_channel_mask.cpu()[ch]
        dynamic = torch.nonzero(mask > 0).squeeze(1)
        self.texture = planes[0:1][:, ch[dynamic]].contiguous().to(self.device)
        self.mask = mask[dynamic].view(-1, 1).to(self.device)
        weights = decoder.raster_depth_weight.cpu()[ch][dynamic]
        self.depth_weight = weights.view(-1, 1).to(self.device)
        self.dynamic = dynamic.to(self.device)
        # The channel whose value carries the surface depth, and which way is nearer, for the depth test.
        self.depth_channel = int(weights.abs().argmax()) if bool(decoder.raster_depth_test[0] > 0) and \
            bool(weights.abs().max() > 0) else None
        self.backend = backend
        self.faces = torch.from_numpy(head.faces.astype(np.int32)).to(self.device)
        self.faces_uv = torch.from_numpy(head.faces_uv.astype(np.int32)).to(self.device)
        self.uv = torch.from_numpy(head.uv.astype(np.float32)).to(self.device)
        self._cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size
        self._posed: tuple[bytes, np.ndarray] | None = None  # the last expression's posed vertices
        # Triangles no expression or gaze can move are rasterized once; each frame rasterizes only the
        # others, and only those facing the front view: every part is a closed surface, so a triangle
        # facing away is always hidden behind one facing the viewer.
        moving = np.abs(head.expression_basis).sum(axis=(0, 2)) > 0
        for part in EYEBALL_PARTS:
            moving[head.part_vertices(part)] = True
        face_moves = moving[head.faces].any(axis=1)
        self.moving_faces = torch.from_numpy(np.flatnonzero(face_moves))
        self._moving = self.moving_faces.to(self.device)
        self._moving_corners = self.faces[self._moving].long().t().reshape(-1)  # corner k of every face, then k+1
        fixed = torch.from_numpy(np.flatnonzero(~face_moves)).to(self.device)
        height, width = self.static.shape[-2:]
        verts = torch.from_numpy(head.identity_vertices(self.identity)).to(self.device)
        rast = raster.rasterize(raster.orthographic_clip(verts, "xy"), self.faces[fixed], height, width,
                                backend=backend)
        ids = rast[..., 3].long()
        rast[..., 3] = torch.where(ids > 0, fixed[(ids - 1).clamp(min=0)] + 1, 0).float()
        self.fixed_raster = rast
        self.still_front = self.static[0].permute(1, 2, 0).contiguous().permute(2, 0, 1)
        self._compose(self.still_front, verts, rast, rast[..., 3].reshape(-1) > 0)

    def vertices(self, expression: np.ndarray | None, eye: np.ndarray | None) -> np.ndarray:
        """(N, 3) posed head vertices; the last expression's are kept (the renderer asks twice per
        frame), so do not write to them."""
        key = _key(expression, eye)
        if self._posed is None or self._posed[0] != key:
            self._posed = key, self.head.posed(expression, self.identity, eye)
        return self._posed[1]

    def planes(self, expression: np.ndarray | None = None, eye: np.ndarray | None = None) -> torch.Tensor:
        """(3, C', H, W) static planes with the xy plane composed for this expression (a new tensor)."""
        return torch.cat([self.front(expression, eye)[None], self.static[1:]])

    def front(self, expression: np.ndarray | None = None, eye: np.ndarray | None = None) -> torch.Tensor:
        """(C', H, W) front plane composed for this expression, channels-last in memory (cached; do not
        write to it)."""
        key = _key(expression, eye)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        out = self.still_front
        if len(self.dynamic):
            verts = torch.from_numpy(self.vertices(expression, eye)).to(self.device)
            rast, wins = self._moving_raster(verts)
            out = out.clone(memory_format=torch.preserve_format)
            self._compose(out, verts, rast, wins.reshape(-1))
        self._cache[key] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def _moving_raster(self, verts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Front-view raster (H, W, 4) of the posed moving part, ids into the full face list, and
        (H, W) where it is nearer than the still part."""
        h, w = self.fixed_raster.shape[:2]
        x, y = verts[:, 0].index_select(0, self._moving_corners), verts[:, 1].index_select(0, self._moving_corners)
        a_x, b_x, c_x = x.view(3, -1)
        a_y, b_y, c_y = y.view(3, -1)
        facing = ((b_x - a_x) * (c_y - a_y) - (b_y - a_y) * (c_x - a_x)) > 0
        sub = self._moving[facing]
        rast = raster.rasterize(raster.orthographic_clip(verts, "xy"), self.faces[sub], h, w, backend=self.backend)
        flat = rast.view(-1, 4)
        covered = torch.nonzero(flat[:, 3]).squeeze(1)
        fixed = self.fixed_raster.view(-1, 4)[covered]
        nearer = torch.zeros(h * w, dtype=torch.bool, device=rast.device)
        nearer[covered] = (fixed[:, 3] == 0) | (flat[covered, 2] < fixed[:, 2])
        flat[covered, 3] = (sub[flat[covered, 3].long() - 1] + 1).float()
        return rast, nearer.view(h, w)

    def front_raster(self, verts: torch.Tensor) -> torch.Tensor:
        """Orthographic front-view raster of the posed mesh, ids into the full face list."""
        rast, nearer = self._moving_raster(verts)
        return torch.where(nearer[..., None], rast, self.fixed_raster)

    def mesh_texels(self, expression: np.ndarray | None = None, eye: np.ndarray | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the front plane for this pose is read from the neural texture, and where in it: (H, W, 2)
        UV (u, v in [0, 1]) and (H, W) bool, the texels `front` composes from the posed mesh (covered, and
        nearer than the static surface when the decoder asks for the depth test)."""
        verts = torch.from_numpy(self.vertices(expression, eye)).to(self.device)
        rast = self.front_raster(verts)
        h, w = rast.shape[:2]
        flat = rast.reshape(1, -1, 4)
        uv = raster.interpolate(self.uv, flat, self.faces_uv)[0]
        shown = flat[0, :, 3] > 0
        if self.depth_channel is not None:
            k = self.depth_channel
            depth = raster.interpolate(verts[:, 2:3].contiguous(), flat, self.faces)[0, :, 0]
            texture = F.grid_sample(self.texture[:, k:k + 1], (uv * 2 - 1).view(1, 1, -1, 2), mode="bilinear",
                                    padding_mode="border", align_corners=False)[0, 0, 0]
            mesh = texture + self.depth_weight[k, 0] * depth
            static = self.static[0, self.dynamic[k]].reshape(-1)
            shown &= ~((static - mesh) * self.depth_weight[k, 0].sign() > 0)
        return uv.view(h, w, 2), shown.view(h, w)

    def _compose(self, front: torch.Tensor, verts: torch.Tensor, rast: torch.Tensor, where: torch.Tensor) -> None:
        """Write into `front` (C', H, W), channels-last, the texels `where` (H*W,) of the raster `rast`
        of the mesh at `verts`, over the static front plane."""
        if not len(self.dynamic):
            return
        kernel = march.load() if self.device.type == "cpu" and verts.dtype == torch.float32 else None
        if kernel is not None:  # the same operations compiled, around the same grid_sample
            texels, grid, depth = kernel.front_texels(rast, where, self.uv, self.faces_uv, verts[:, 2].contiguous(),
                                                      self.faces)
            if len(texels):
                texture = F.grid_sample(self.texture, grid.view(1, 1, -1, 2), mode="bilinear", padding_mode="border",
                                        align_corners=False)[0, :, 0].contiguous()
                kernel.blend_front(front.permute(1, 2, 0).view(-1, front.shape[0]), texels, texture, depth,
                                   self.static[0].reshape(self.static.shape[1], -1), self.dynamic, self.mask.view(-1),
                                   self.depth_weight.view(-1), -1 if self.depth_channel is None else self.depth_channel)
            return
        texels = torch.nonzero(where).squeeze(1)
        if not len(texels):
            return
        flat = rast.reshape(-1, 4)[texels].view(1, -1, 4)
        uv = raster.interpolate(self.uv, flat, self.faces_uv)[0]
        depth = raster.interpolate(verts[:, 2:3], flat, self.faces)[0, :, 0]
        grid = (uv * 2 - 1).view(1, 1, -1, 2)
        texture = F.grid_sample(self.texture, grid, mode="bilinear", padding_mode="border",
                                align_corners=False)[0, :, 0]
        dynamic = texture + self.depth_weight * depth
        sel = self.static[0].reshape(self.static.shape[1], -1)[self.dynamic][:, texels]
        mask = self.mask
        if self.depth_channel is not None:
            k = self.depth_channel
            static_nearer = (sel[k] - dynamic[k]) * self.depth_weight[k, 0].sign() > 0
            mask = mask * (~static_nearer).float().view(1, -1)
        texel_rows = front.permute(1, 2, 0).view(-1, front.shape[0])  # (H*W, C') over the same memory
        texel_rows[texels.unsqueeze(1), self.dynamic.unsqueeze(0)] = (sel * (1 - mask) + dynamic * mask).t()


def _key(expression: np.ndarray | None, eye: np.ndarray | None) -> bytes:
    """What identifies a pose: the expression and gaze as float32 bytes."""
    return b"".join(np.asarray(a, dtype=np.float32).tobytes() if a is not None else b"-" for a in (expression, eye))
