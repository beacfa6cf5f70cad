"""The projective generator: portrait -> avatar by fitting and projection, on the CPU, without weights.

What it is, plainly: the head model is fitted densely to the face mesh MediaPipe finds (identity, the
portrait's expression, pose, camera; avatar.fit), corrected to the person's landmarks, and the photo is
projected onto it as the photo shows it, so the neutral avatar wears the texture without the portrait's
expression. The matte (without clothing) becomes hair and the rest of the head round the mesh, and the
whole head is described by four walls with colours for every side (avatar.generators.whole_head,
avatar.surface_field), read exactly by a constructed decoder. A few residual passes then correct the
texture so the avatar re-renders the photo. It is a fit and a projection, not a learned prior: what the
photo does not show (the back, a hidden side) is continued from what it does show.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from avatar import camera as cam
from avatar import portrait as portrait_prep
from avatar.asset import Avatar, avatar_id_for
from avatar.decoder import SIDE_PLANES
from avatar.fit import FaceFit, fit_landmarks, shape_offsets
from avatar.generators import ProgressFn
from avatar.generators.projection import project_texture, sample_image
from avatar.generators.whole_head import PortraitView, build_walls, head_outline
from avatar.head_model import HeadModel, embedded_head_model
from avatar.portrait.landmarks import face_hull_mask
from avatar.portrait.models import missing_models, model_dir
from avatar.render import Renderer
from avatar.surface_field import (
    COLOUR_OFFSET,
    FRONT_RGB,
    LOGIT_LIMIT,
    SEMANTICS,
    surface_decoder,
    surface_planes,
    sync_texture,
)

RESOLUTION = 256
REFINE_PASSES = 2
REFINE_RENDER_SIZE = 256
THUMBNAIL_SIZE = 256
CHIN_LANDMARK = 152  # MediaPipe face mesh: the chin's lowest point


def _no_progress(stage: str, fraction: float, message: str) -> None:
    return None


class ProjectiveGenerator:
    name = "projective"
    version = "18"
    description = ("CPU fit-and-project generator: head model fitted to the face, photo projected onto it "
                   "(no learned prior)")

    def __init__(self, head: HeadModel | None = None, refine_passes: int = REFINE_PASSES):
        self.head = head or embedded_head_model()
        self.refine_passes = refine_passes
        self.settings: dict[str, Any] = {"resolution": RESOLUTION, "refine_passes": refine_passes,
                                         "head_model": self.head.model_id}

    def create(self, portrait_bytes: bytes, face_box: Sequence[float] | None = None,
               landmarks: ArrayLike | None = None, progress: ProgressFn | None = None,
               display_name: str = "", limits: portrait_prep.PortraitLimits | None = None) -> Avatar:
        report = progress or _no_progress
        report("decode", 0.02, "decoding and validating the portrait")
        prepared = portrait_prep.prepare(portrait_bytes, limits or portrait_prep.PortraitLimits(),
                                         face_box=face_box, landmarks=landmarks)
        report("fit", 0.25, "fitting the head model to the face")
        size = prepared.image.shape[0]
        lidded = prepared.landmarks_with_lids()
        fit = fit_landmarks(self.head, lidded, size)
        # The identity basis is small: a smooth correction makes the mesh land on the person's landmarks.
        offsets = shape_offsets(self.head, fit, lidded, size)
        head = self.head.personalised(offsets)
        posed = head.posed(fit.expression, fit.identity, fit.eye)
        view = PortraitView(image=prepared.image, matte=prepared.matte, camera=fit.camera,
                            face_mask=face_hull_mask(prepared.landmarks, size),
                            chin_row=float(prepared.landmarks[CHIN_LANDMARK, 1]))
        outline = head_outline(head, fit.identity, view)

        report("texture", 0.4, "projecting the portrait onto the head")
        # The photo is projected onto the head as the photo shows it (its expression); the texture is
        # then worn by the neutral head.
        proj = project_texture(head, posed, prepared.image, prepared.matte, fit.camera, RESOLUTION,
                               behind_fill=outline.fill)

        report("planes", 0.55, "building hair and the whole head from the matte")
        walls = build_walls(head, fit.identity, proj.texture, view, outline, RESOLUTION)
        planes = surface_planes(proj.texture, walls)

        report("decoder", 0.65, "refining the texture to re-render the portrait")
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
            portrait_expression=fit.expression,
            shape_offsets=offsets,
            portrait_eye=fit.eye,
            portrait=prepared.image,
            display_name=display_name,
            plane_names=SIDE_PLANES,
        )
        texel_uv, _ = cam.project(proj.points, fit.camera)
        photo = sample_image(prepared.image.astype(np.float32) / 255.0, _pixel_uv(REFINE_RENDER_SIZE))
        renderer = Renderer(avatar, head=self.head, neural_resolution=REFINE_RENDER_SIZE)
        for k in range(self.refine_passes):
            report("decoder", 0.65 + 0.25 * k / max(1, self.refine_passes), f"residual pass {k + 1}")
            # Only texels the photo shows themselves: a mirrored texel's own projection lands elsewhere.
            self._refine_texture(avatar, renderer, photo, texel_uv, proj.direct * proj.covered, fit)
            renderer.planes_changed(geometry=False)

        report("thumbnail", 0.95, "rendering the thumbnail")
        avatar.thumbnail = renderer.render(fit.camera, expression=fit.expression, eye=fit.eye,
                                           size=THUMBNAIL_SIZE).rgba8()
        report("done", 1.0, "avatar ready")
        return avatar

    def avatar_id(self, portrait_bytes: bytes, face_box: Sequence[float] | None = None,
                  landmarks: ArrayLike | None = None) -> str:
        """The id `create` will give this request, known without generating (requests are idempotent)."""
        return avatar_id_for(portrait_bytes, self.name, self.version, self._request_settings(face_box, landmarks))

    def unavailable_reason(self) -> str:
        missing = missing_models()
        if not missing:
            return ""
        return (f"MediaPipe face models missing from {model_dir()}: {', '.join(missing)}; run `make models` "
                f"(or set AVATARFORGE_MODEL_DIR to a folder that holds them)")

    def _request_settings(self, face_box: Sequence[float] | None, landmarks: ArrayLike | None) -> dict[str, Any]:
        # Caller-supplied geometry changes the avatar, so it is part of the content address.
        marks = None
        if landmarks is not None:
            marks = hashlib.sha256(np.asarray(landmarks, dtype=np.float32).tobytes()).hexdigest()
        return dict(self.settings, face_box=None if face_box is None else [float(v) for v in face_box],
                    landmarks=marks)

    @staticmethod
    def _refine_texture(avatar: Avatar, renderer: Renderer, photo: np.ndarray, texel_uv: np.ndarray,
                        weight: np.ndarray, fit: FaceFit) -> None:
        """Move each seen texel's colour by the re-render's error (in logit space) where that texel
        lands in the photo: a fixed-point fit of the texture to the portrait."""
        result = renderer.render(avatar.portrait_camera, expression=fit.expression, eye=fit.eye,
                                 size=REFINE_RENDER_SIZE)
        alpha = result.alpha.numpy()
        rendered = result.rgb.numpy() / np.maximum(alpha, 1e-3)[..., None]
        error = (_logit(photo) - _logit(rendered)) * (alpha[..., None] > 0.95)
        correction = sample_image(error.astype(np.float32), texel_uv) * weight[..., None]
        channels = list(FRONT_RGB)
        corrected = avatar.planes[0, channels] + torch.from_numpy(correction).permute(2, 0, 1).float()
        avatar.planes[0, channels] = corrected.clamp(COLOUR_OFFSET - LOGIT_LIMIT, COLOUR_OFFSET + LOGIT_LIMIT)
        sync_texture(avatar.planes)


def _logit(c: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    c = np.clip(c, eps, 1 - eps)
    logit: np.ndarray = np.log(c / (1 - c))
    return logit


def _pixel_uv(size: int) -> np.ndarray:
    c = (np.arange(size) + 0.5) / size
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return np.stack([xs, ys], axis=-1)
