"""The projective generator: portrait -> avatar by fitting and projection, on the CPU, without weights.

What it is, plainly: the head model is fitted to the face's eyes and mouth, the photo is projected
onto the fitted mesh to fill the neural texture (mirrored where only one side is seen, region priors
where nothing is), the matte is inflated into static geometry for hair, ears and neck, and the decoder
is constructed to read those planes exactly (avatar.surface_field). A few residual passes then correct
the texture so the avatar re-renders the photo from the portrait camera. It is a projection, not a
learned prior: unseen parts are guesses, and hair has no real 3D structure.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from avatar import camera as cam
from avatar import portrait as portrait_prep
from avatar.asset import Avatar, avatar_id_for
from avatar.generators.fit import fit_head
from avatar.generators.projection import project_texture, sample_image, static_geometry
from avatar.head_model import HeadModel, embedded_head_model
from avatar.render import Renderer
from avatar.surface_field import (COLOUR_OFFSET, FRONT_RGB, LOGIT_LIMIT, SEMANTICS, depth_maps, split_depth,
                                  surface_decoder, surface_planes)

RESOLUTION = 256
REFINE_PASSES = 2
REFINE_RENDER_SIZE = 256
THUMBNAIL_SIZE = 256


def _no_progress(stage: str, fraction: float, message: str) -> None:
    return None


class ProjectiveGenerator:
    name = "projective"
    version = "1"
    description = "CPU fit-and-project generator: head model fitted to the face, photo projected onto it (no learned prior)"

    def __init__(self, head: HeadModel | None = None, refine_passes: int = REFINE_PASSES):
        self.head = head or embedded_head_model()
        self.settings = {"resolution": RESOLUTION, "refine_passes": refine_passes, "head_model": self.head.model_id}

    def create(self, portrait_bytes: bytes, face_box=None, landmarks=None, progress=None,
               display_name: str = "", limits=None) -> Avatar:
        report = progress or _no_progress
        report("decode", 0.02, "decoding and validating the portrait")
        prepared = portrait_prep.prepare(portrait_bytes, limits or portrait_prep.PortraitLimits(),
                                         face_box=face_box, landmarks=landmarks)
        report("fit", 0.25, "fitting the head model to the face")
        head = self.head
        fit = fit_head(head, prepared.features, prepared.image.shape[0])
        verts = head.identity_vertices(fit.identity)

        report("texture", 0.4, "projecting the portrait onto the head")
        proj = project_texture(head, verts, prepared.image, prepared.matte, fit.camera, RESOLUTION)

        report("planes", 0.55, "building static planes from the matte")
        z_front, z_back, covered = depth_maps(verts, head.faces, RESOLUTION)
        silhouette, zf_static, zb_static, front_rgb, back_rgb = static_geometry(
            prepared.matte, prepared.image, fit.camera, z_front.numpy(), z_back.numpy(), covered.numpy(), RESOLUTION)
        zf, zb, sil = torch.from_numpy(zf_static), torch.from_numpy(zb_static), torch.from_numpy(silhouette)
        planes = surface_planes(torch.from_numpy(proj.texture), torch.from_numpy(front_rgb),
                                torch.from_numpy(back_rgb), zf, zb, sil, split_depth(zf, zb, sil), RESOLUTION)

        report("decoder", 0.65, "fitting the decoder to re-render the portrait")
        decoder = surface_decoder()
        settings = self._request_settings(face_box, landmarks)
        avatar = Avatar(
            avatar_id=avatar_id_for(portrait_bytes, self.name, self.version, settings),
            planes=planes,
            decoder=decoder.state_for_asset(),
            identity=fit.identity,
            portrait_camera=fit.camera,
            head_model_id=head.model_id,
            generator=self.name,
            generator_version=self.version,
            generator_settings=settings,
            source_sha256=prepared.source_sha256,
            channel_semantics=dict(SEMANTICS, fit_residual=fit.residual, fit_errors=fit.errors),
            portrait=prepared.image,
            display_name=display_name,
        )
        texel_uv, _ = cam.project(proj.points, fit.camera)
        photo = sample_image(prepared.image.astype(np.float32) / 255.0, _pixel_uv(REFINE_RENDER_SIZE))
        renderer = Renderer(avatar, head=head, neural_resolution=REFINE_RENDER_SIZE)
        for k in range(self.settings["refine_passes"]):
            report("decoder", 0.65 + 0.25 * k / max(1, self.settings["refine_passes"]), f"residual pass {k + 1}")
            self._refine_texture(avatar, renderer, photo, texel_uv, proj.seen * proj.covered)
            renderer.planes_changed(geometry=False)

        report("thumbnail", 0.95, "rendering the thumbnail")
        avatar.thumbnail = renderer.render(fit.camera, size=THUMBNAIL_SIZE).rgba8()
        report("done", 1.0, "avatar ready")
        return avatar

    def avatar_id(self, portrait_bytes: bytes, face_box=None, landmarks=None) -> str:
        """The id `create` will give this request, known without generating (requests are idempotent)."""
        return avatar_id_for(portrait_bytes, self.name, self.version, self._request_settings(face_box, landmarks))

    def _request_settings(self, face_box, landmarks) -> dict:
        # Caller-supplied geometry changes the avatar, so it is part of the content address.
        marks = None
        if landmarks is not None:
            marks = hashlib.sha256(np.asarray(landmarks, dtype=np.float32).tobytes()).hexdigest()
        return dict(self.settings, face_box=None if face_box is None else [float(v) for v in face_box],
                    landmarks=marks)

    @staticmethod
    def _refine_texture(avatar: Avatar, renderer: Renderer, photo: np.ndarray, texel_uv: np.ndarray,
                        weight: np.ndarray) -> None:
        """Move each seen texel's colour by the re-render's error (in logit space) where that texel
        lands in the photo: a fixed-point fit of the texture to the portrait."""
        result = renderer.render(avatar.portrait_camera, size=REFINE_RENDER_SIZE)
        alpha = result.alpha.numpy()
        rendered = result.rgb.numpy() / np.maximum(alpha, 1e-3)[..., None]
        error = (_logit(photo) - _logit(rendered)) * (alpha[..., None] > 0.95)
        correction = sample_image(error.astype(np.float32), texel_uv) * weight[..., None]
        channels = list(FRONT_RGB)
        corrected = avatar.planes[0, channels] + torch.from_numpy(correction).permute(2, 0, 1).float()
        avatar.planes[0, channels] = corrected.clamp(COLOUR_OFFSET - LOGIT_LIMIT, COLOUR_OFFSET + LOGIT_LIMIT)


def _logit(c: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    c = np.clip(c, eps, 1 - eps)
    return np.log(c / (1 - c))


def _pixel_uv(size: int) -> np.ndarray:
    c = (np.arange(size) + 0.5) / size
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return np.stack([xs, ys], axis=-1)
