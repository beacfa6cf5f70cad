"""The projective generator's residual passes: the texture is fitted to what the render reads at each pixel
of the portrait view, so surfaces the front plane holds coarsely (steep to the front view, along occlusion
edges) match the photo as well as the rest; the parts behind the skin's openings (eyeballs, mouth interior)
are corrected where each texel lands in the photo."""
import dataclasses
import types

import cv2
import numpy as np
import pytest

from avatar import camera
from avatar.expressions import index_of
from avatar.generators import projection, projective
from avatar.generators.projection import (
    FIT_DAMPING,
    fit_to_pixels,
    project_texture,
    sample_image,
    shown_share,
    surface_texels,
    view_depth,
)
from avatar.head_model import PART_ID, embedded_head_model
from avatar.render import Renderer
from avatar.surface_field import FRONT_RGB, encode_colour, sync_texture
from avatar.synthetic import synthetic_avatar


def texel_centres(n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) / n


def front_plane_points(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """World points (P, 3) at the centres of front-plane texels (row = y, column = x) of an n x n plane."""
    c = texel_centres(n) - 0.5
    return np.stack([c[cols], c[rows], np.zeros(len(rows))], axis=-1)


def test_a_texel_shown_over_several_pixels_takes_their_mean():
    """Where each front-plane texel reads its own texel and each pixel one front-plane texel, the fit is
    the values themselves; where a column of the front plane reads a single texel (a surface steep to the
    front view, stretched over several pixels of the portrait), that texel takes the pixels' mean; what
    no pixel reads, or the front plane does not take from the texture, does not change. (All of it less
    the damping's shrink: a texel read by k pixels keeps k / (k + FIT_DAMPING) of its fit.)"""
    n = 8
    u = texel_centres(n)
    front_uv = np.stack(np.meshgrid(u, u), axis=-1)           # texel (i, j) reads texture texel (i, j)
    shown = np.ones((n, n), bool)
    rows, cols = np.nonzero(shown)
    values = np.random.default_rng(0).normal(size=(n * n, 3))
    fit = fit_to_pixels(values, front_plane_points(rows, cols, n), front_uv, shown, n, iterations=1)
    np.testing.assert_allclose(fit[rows, cols], values / (1 + FIT_DAMPING), atol=1e-5)

    steep = front_uv.copy()
    steep[:, 3] = front_uv[5, 3]                               # the whole column reads texel (5, 3)
    rows = np.arange(n)
    cols = np.full(n, 3)
    values = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    fit = fit_to_pixels(values, front_plane_points(rows, cols, n), steep, shown, n, iterations=8)
    np.testing.assert_allclose(fit[5, 3], values.mean(axis=0) * n / (n + FIT_DAMPING), atol=1e-5)
    others = np.ones((n, n), bool)
    others[5, 3] = False
    assert np.abs(fit[others]).max() < 1e-9

    hidden = shown.copy()
    hidden[:, 3] = False                                       # static hair in front: the plane keeps its own
    fit = fit_to_pixels(values, front_plane_points(rows, cols, n), steep, hidden, n, iterations=8)
    assert np.abs(fit).max() < 1e-9


def test_a_texel_a_pixel_barely_reads_does_not_swing():
    """A pixel on an occlusion edge that reads a tenth of a texel (the rest of it is static hair): the
    texel moves by no more than the pixel's own error. Undamped, eight steps took it to ~5.7 times the
    error (the least-squares answer is 10 times), saturated colour wherever another view shows it."""
    n = 8
    u = texel_centres(n)
    front_uv = np.stack(np.meshgrid(u, u), axis=-1)
    shown = np.ones((n, n), bool)
    shown[:, 4] = False
    point = front_plane_points(np.array([2]), np.array([3]), n) + [0.9 / n, 0.0, 0.0]   # 0.1 on (2, 3)
    fit = fit_to_pixels(np.ones((1, 3)), point, front_uv, shown, n, iterations=8)
    assert 0 < fit[2, 3, 0] <= 1.0
    assert np.abs(np.delete(fit.reshape(-1, 3), 2 * n + 3, axis=0)).max() < 1e-9


def test_a_held_texel_keeps_its_colour_and_its_pixels_go_to_the_free_ones():
    """A pixel between two front-plane texels reads half of each one's texel; with one of them held (not
    free), the held one does not change and the other takes the whole pixel."""
    n = 8
    u = texel_centres(n)
    front_uv = np.stack(np.meshgrid(u, u), axis=-1)
    shown = np.ones((n, n), bool)
    between = front_plane_points(np.array([2]), np.array([3]), n) + [0.5 / n, 0.0, 0.0]   # half on (2, 4)
    both = fit_to_pixels(np.ones((1, 3)), between, front_uv, shown, n, iterations=8)
    np.testing.assert_allclose(both[2, 3], both[2, 4])
    free = np.ones((n, n), bool)
    free[2, 4] = False
    one = fit_to_pixels(np.ones((1, 3)), between, front_uv, shown, n, iterations=8, free=free)
    assert np.abs(one[2, 4]).max() == 0.0
    # least squares 0.5 x change = 1, damped: change = 0.5 / (0.5 ** 2 + FIT_DAMPING)
    np.testing.assert_allclose(one[2, 3], 0.5 / (0.25 + FIT_DAMPING), rtol=1e-3)


def test_sampling_no_points_gives_no_samples():
    """An empty set of points (a portrait with no hair beside the face) samples to an empty set: OpenCV's
    remap refuses an empty map."""
    assert sample_image(np.zeros((4, 4, 3), np.float32), np.zeros((0, 2), np.float32)).shape == (0, 3)
    assert sample_image(np.zeros((4, 4, 3), np.float32), np.zeros((2, 0, 2), np.float32)).shape == (2, 0, 3)


@pytest.fixture(scope="module")
def turned_head():
    """A synthetic head in a detailed texture (the answer), seen by a portrait camera turned 35 degrees:
    the photo is its render; and the photo's first-pass projection (whose weights the residual passes use)."""
    avatar = synthetic_avatar(0)
    cam = camera.camera_vector(yaw_deg=35.0)
    avatar.portrait_camera = cam
    r = avatar.planes.shape[-1]
    uu, vv = np.meshgrid(texel_centres(r), texel_centres(r))
    truth = np.stack([0.5 + 0.35 * np.sin(18 * np.pi * uu), 0.5 + 0.35 * np.sin(14 * np.pi * vv),
                      0.5 + 0.3 * np.sin(10 * np.pi * (uu + vv))], axis=-1)
    size = projective.REFINE_RENDER_SIZE
    avatar.planes[0, list(FRONT_RGB)] = encode_colour(truth).permute(2, 0, 1)
    sync_texture(avatar.planes)
    renderer = Renderer(avatar, neural_resolution=size)
    shot = renderer.render(cam, size=size)
    photo = shot.rgb.numpy() / np.maximum(shot.alpha.numpy(), 1e-3)[..., None]
    head = shot.alpha.numpy() > 0.95
    proj = project_texture(renderer.head, renderer.head_vertices(), (photo * 255 + 0.5).astype(np.uint8),
                           head.astype(np.float32), cam, r)
    return avatar, renderer, photo, head, proj


def refined(turned_head, texels: projective.ResidualTexels, passes: int = projective.REFINE_PASSES) -> np.ndarray:
    """The (R, R, 3) texture (stored logits) the residual passes make from a flat grey one."""
    avatar, renderer, photo, _, _ = turned_head
    grey = np.full((*avatar.planes.shape[-2:], 3), 0.5)
    avatar.planes[0, list(FRONT_RGB)] = encode_colour(grey).permute(2, 0, 1)
    sync_texture(avatar.planes)
    renderer.planes_changed(geometry=False)
    still = types.SimpleNamespace(expression=None, eye=None)
    for _ in range(passes):
        projective.ProjectiveGenerator._refine_texture(avatar, renderer, photo, np.ones(photo.shape[:2], bool),
                                                       texels, still)
        renderer.planes_changed(geometry=False)
    out: np.ndarray = avatar.planes[0, list(FRONT_RGB)].permute(1, 2, 0).numpy().copy()
    return out


def test_refine_fits_the_portrait_view_along_occlusion_edges(turned_head):
    """The residual passes reproduce the photo on the whole head, and within two pixels of the edges where
    the head occludes itself in the portrait view (nose, nostrils, lips, lids, jaw), where the render shows
    texels other than the one whose own projection lands on the pixel. Correcting each texel by the error
    at its own projection (the old passes) reached 31.3 dB on the head and 25.7 dB at the edges; these reach
    33.1 and 28.1 (33.3 and 28.6 with the eyeballs fitted through the front plane too)."""
    avatar, renderer, photo, head, proj = turned_head
    cam = avatar.portrait_camera
    size = photo.shape[0]
    refined(turned_head, projective.ResidualTexels.of(proj, cam))
    shot = renderer.render(cam, size=size)
    rendered = shot.rgb.numpy() / np.maximum(shot.alpha.numpy(), 1e-3)[..., None]

    verts = renderer.head_vertices()
    depth = view_depth(verts, renderer.head.faces, cam, size)
    seen = np.isfinite(depth)
    depth = np.where(seen, depth, 0.0)
    step = np.zeros((size, size), bool)
    for first, second in (np.s_[:-1, :], np.s_[1:, :]), (np.s_[:, :-1], np.s_[:, 1:]):
        jump = seen[first] & seen[second] & (np.abs(depth[first] - depth[second]) > 0.02)
        step[first] |= jump
        step[second] |= jump
    edges = cv2.dilate(step.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & head
    assert edges.sum() > 1000

    def psnr(where: np.ndarray) -> float:
        return float(-10 * np.log10(((rendered - photo) ** 2)[where].mean()))

    assert psnr(head) > 32.8, psnr(head)
    assert psnr(edges) > 27.8, psnr(edges)


def test_parts_behind_the_openings_are_corrected_where_they_land_not_through_the_front_plane(turned_head):
    """The front plane reads the eyeballs and the mouth's interior along the lids' and lips' edges, where a
    portrait shows lids, lashes and lips; fitted through it, those texels took the edges' colours, which a
    shut eye's corners and an open mouth's teeth then showed. So each texel of the parts behind the skin's
    openings moves by the re-render's error where it lands in the photo, as far as the photo shows it
    (those the lids and lips hide keep their first-pass colour), while the rest of the head is fitted
    through the front plane."""
    avatar, renderer, photo, _, proj = turned_head
    texels = projective.ResidualTexels.of(proj, avatar.portrait_camera)
    hidden = texels.inner & (texels.direct == 0)
    shown = texels.inner & (texels.direct > 0.5)
    assert hidden.sum() > 100 and shown.sum() > 100
    grey = float(encode_colour(np.full(3, 0.5))[0])
    refined(turned_head, texels, passes=0)
    shot = renderer.render(avatar.portrait_camera, size=photo.shape[0])       # the grey avatar's render
    alpha = shot.alpha.numpy()
    error = (projective._logit(photo) - projective._logit(shot.rgb.numpy() / np.maximum(alpha, 1e-3)[..., None]))
    error *= (alpha > 0.95)[..., None]
    where_they_land = sample_image(error.astype(np.float32), texels.uv) * texels.direct[..., None]
    change = refined(turned_head, texels, passes=1) - grey
    np.testing.assert_allclose(change[shown], where_they_land[shown], atol=1e-3)
    assert np.abs(change[hidden]).max() == 0.0
    assert (np.abs(change[~texels.inner]).max(axis=-1) > 0.1).sum() > 5000      # the rest is fitted

    through_the_plane = dataclasses.replace(texels, facing=proj.facing, inner=np.zeros_like(texels.inner))
    change = refined(turned_head, through_the_plane, passes=1) - grey
    # what the test guards against
    assert np.median(np.abs(change[shown] - where_they_land[shown]).max(axis=-1)) > 0.1


def test_the_lid_skin_a_blink_uncovers_is_what_the_portrait_shows_least():
    """shown_share of the head model's open eyes against its shut ones, from the front: every texel whose
    share is below 1 lies on a face the eyeBlink blendshapes move, those below a half are upper-lid skin
    (skin or the eye sack's, most above the eyes' centres), and the rest of the head is wholly shown (1)."""
    head = embedded_head_model()
    cam = camera.camera_vector(yaw_deg=0.0)
    r = 256
    shut = np.zeros(52, np.float32)
    shut[[index_of("eyeBlinkLeft"), index_of("eyeBlinkRight")]] = 1.0
    share = shown_share(head, head.posed(), head.posed(shut), cam, r)
    moving = np.abs(head.expression_basis[[index_of("eyeBlinkLeft"), index_of("eyeBlinkRight")]]).sum(axis=(0, 2)) > 0
    moved_faces = moving[head.faces].any(axis=1)
    points, _, covered, part = surface_texels(head, head.posed(), r)
    below = share < 1
    assert below.sum() > 100 and (share < 0.5).sum() > 20
    faces_of = projection._texel_faces(head, r)
    assert moved_faces[faces_of[below]].all()
    lid = share < 0.5
    assert np.isin(part[lid], [PART_ID["skin"], projection.EYE_SACK]).all()
    assert np.mean(points[lid][:, 1] > head.eye_centers[:, 1].min()) > 0.8     # the upper lids (and corners)
    assert (share[covered & ~moved_faces[np.maximum(faces_of, 0)]] == 1).all()
