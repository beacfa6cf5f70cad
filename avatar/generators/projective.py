"""The projective generator: portrait -> avatar by fitting and projection, on the CPU, without weights.

What it is, plainly: the head model is fitted densely to the face mesh MediaPipe finds (identity, the
portrait's expression, pose, camera; avatar.fit), corrected to the person's landmarks, and the photo is
projected onto it as the photo shows it, so the neutral avatar wears the texture without the portrait's
expression. The matte (without clothing) becomes hair and the rest of the head round the mesh, and the
whole head is described by four walls with colours for every side (avatar.generators.whole_head,
avatar.surface_field), read exactly by a constructed decoder. A few residual passes then correct the
texture so the avatar re-renders the photo: each fits the texture to the re-render's error through the way
the render reads it (projection.fit_to_pixels). It is a fit and a projection, not a learned prior: what the
photo does not show (the back, a hidden side) is continued from what it does show.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from avatar import camera as cam
from avatar import portrait as portrait_prep
from avatar.asset import Avatar, avatar_id_for
from avatar.decoder import SIDE_PLANES
from avatar.expressions import EYE_BLINKS, index_of
from avatar.fit import FaceFit, fit_landmarks, shape_offsets
from avatar.generators import ProgressFn
from avatar.generators.projection import (
    MATTE_MIN,
    Projection,
    fit_to_pixels,
    project_texture,
    sample_image,
    shown_share,
)
from avatar.generators.whole_head import PortraitView, bare_skin, build_walls, head_outline
from avatar.head_model import PART_ID, PART_NAMES, HeadModel, embedded_head_model
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
# Jacobi steps per pass fitting the texture to the re-render's error (fit_to_pixels): the first blurs the
# correction over a front-plane texel's footprint, the later ones restore what detail the front plane
# holds (frontal face PSNR, measured: +0.2 to +0.5 dB from 1 to 8 steps, +0.05 more at 16).
REFINE_ITERATIONS = 8
REFINE_RENDER_SIZE = 256
THUMBNAIL_SIZE = 256
CHIN_LANDMARK = 152  # MediaPipe face mesh: the chin's lowest point


def _no_progress(stage: str, fraction: float, message: str) -> None:
    return None


class ProjectiveGenerator:
    name = "projective"
    version = "33"
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
                               behind_fill=outline.fill, trust=_blink_trust(head, fit, posed),
                               bare_skin=bare_skin(view, outline, RESOLUTION))

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
        pixels = _pixel_uv(REFINE_RENDER_SIZE)
        photo = sample_image(prepared.image.astype(np.float32) / 255.0, pixels)
        in_matte = sample_image(prepared.matte.astype(np.float32)[..., None], pixels)[..., 0] > MATTE_MIN
        texels = ResidualTexels.of(proj, fit.camera)
        renderer = Renderer(avatar, head=self.head, neural_resolution=REFINE_RENDER_SIZE)
        for k in range(self.refine_passes):
            report("decoder", 0.65 + 0.25 * k / max(1, self.refine_passes), f"residual pass {k + 1}")
            self._refine_texture(avatar, renderer, photo, in_matte, texels, fit)
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
    def _refine_texture(avatar: Avatar, renderer: Renderer, photo: np.ndarray, in_matte: np.ndarray,
                        texels: ResidualTexels, fit: FaceFit) -> None:
        """Change the texture by what makes the render read the re-render's error (in logit space) at the
        pixels (fit_to_pixels): a fixed-point fit of the texture to the portrait. `photo` (S, S, 3) and
        `in_matte` (S, S) bool are the portrait at the refine render's pixels.

        The error goes to the texels the render reads at a pixel, not to the texel whose own projection
        lands there: they differ wherever the front plane is coarse on the surface the portrait shows.
        A surface steep to the front view (the inside of the eye towards the nose, a nostril's rim) is
        one or two front-plane texels that the portrait view stretches over several pixels; along an
        occlusion edge the front plane's interpolated depth shows texels the mesh hides from the
        portrait camera (the lip under a nostril). Corrected by their own projection those kept their
        mirrored or filled colour and showed as blocky patches and a jagged rim. A texel is moved by
        as much as the portrait sees it squarely (`texels.facing`): at a graze or from behind, one pixel
        of outline would recolour a surface that other views show whole. The parts behind the skin's
        openings are the exception (ResidualTexels). Only pixels where the portrait shows the person count:
        elsewhere its colour is the background."""
        result = renderer.render(avatar.portrait_camera, expression=fit.expression, eye=fit.eye,
                                 size=REFINE_RENDER_SIZE)
        alpha = result.alpha.numpy()
        rendered = result.rgb.numpy() / np.maximum(alpha, 1e-3)[..., None]
        used = (alpha > 0.95) & in_matte
        error = (_logit(photo) - _logit(rendered)) * used[..., None]
        origins, dirs = cam.generate_rays(avatar.portrait_camera, REFINE_RENDER_SIZE, REFINE_RENDER_SIZE)
        points = (origins + dirs * result.depth.reshape(-1, 1)).numpy()[used.reshape(-1)]
        front_uv, front_shown = renderer.composer.mesh_texels(fit.expression, fit.eye)
        change = fit_to_pixels(error.reshape(-1, 3)[used.reshape(-1)], points, front_uv.cpu().numpy(),
                               front_shown.cpu().numpy(), texels.facing.shape[0], REFINE_ITERATIONS,
                               free=~texels.inner)
        correction = change * texels.facing[..., None] + \
            sample_image(error.astype(np.float32), texels.uv) * (texels.direct * texels.inner)[..., None]
        channels = list(FRONT_RGB)
        corrected = avatar.planes[0, channels] + torch.from_numpy(correction).permute(2, 0, 1).float()
        avatar.planes[0, channels] = corrected.clamp(COLOUR_OFFSET - LOGIT_LIMIT, COLOUR_OFFSET + LOGIT_LIMIT)
        sync_texture(avatar.planes)


@dataclass(frozen=True)
class ResidualTexels:
    """How the residual passes move each texel of the neural texture (R, R; rows = v).

    Texels are fitted through the way the render reads them (fit_to_pixels), except the parts behind the
    skin's openings (the eyeballs, the mouth's cavity, teeth and tongue): those move by the re-render's
    error where each texel itself lands in the portrait, as far as the portrait shows that texel
    (Projection.direct; a texel the lids or lips hide keeps its first-pass colour). Expressions move the
    openings over them (a blink, a look, an open jaw), and the front plane reads them along the openings'
    edges, where the portrait shows the lids, lashes, the eye's corners and the lips: fitted through that
    reading, they took those colours. A shut eye then showed the eyeball's dark corner texels as two dark
    patches that the face mesh reads as an open eye's (the astronaut's left eye, half open in
    tests/test_track.py's blink clip when it was rendered at 192 px), and an open mouth showed lip-pink teeth
    (talking_d10's reenactment)."""

    facing: np.ndarray    # (R, R) float: how far a fitted texel takes its fit (Projection.facing, times .shown:
    #                       a collar or hair beside the jaw, fitted onto the skin behind it, is a streak at the side)
    inner: np.ndarray     # (R, R) bool: behind an opening, corrected where it lands in the portrait instead
    direct: np.ndarray    # (R, R) float: how far an inner texel takes that correction (Projection.direct)
    uv: np.ndarray        # (R, R, 2) where each texel lands in the portrait (normalised image coordinates)

    @classmethod
    def of(cls, proj: Projection, camera: np.ndarray) -> ResidualTexels:
        """The texels of a first-pass projection through the portrait's camera (4x4 + intrinsics vector)."""
        inner = np.isin(proj.part, [PART_ID[name] for name in PART_NAMES if name != "skin"])
        return cls(facing=proj.facing * proj.shown * ~inner, inner=inner, direct=proj.direct * proj.covered,
                   uv=cam.project(proj.points, camera)[0])


def _blink_trust(head: HeadModel, fit: FaceFit, posed: np.ndarray) -> np.ndarray:
    """(R, R) how far the portrait's colour of each texel holds when the eyes shut: the share of what the
    portrait camera shows of it with the eyeBlink blendshapes at 1 that it shows in the portrait
    (projection.shown_share). The upper-lid skin a blink uncovers is folded into the crease or seen
    edge-on in an open-eyed portrait: the pixels there are the crease's shadow and the lashes, which a shut
    lid would otherwise wear as dark bands like an open eye's outline; that skin takes the colour of the
    skin round it (the first pass's fill) as far as the portrait does not show it."""
    shut = np.array(fit.expression, dtype=np.float32)
    shut[[index_of(name) for name in EYE_BLINKS]] = 1.0
    return shown_share(head, posed, head.posed(shut, fit.identity, fit.eye), fit.camera, RESOLUTION)


def _logit(c: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    c = np.clip(c, eps, 1 - eps)
    logit: np.ndarray = np.log(c / (1 - c))
    return logit


def _pixel_uv(size: int) -> np.ndarray:
    c = (np.arange(size) + 0.5) / size
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return np.stack([xs, ys], axis=-1)
