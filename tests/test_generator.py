"""The projective generator: fidelity to the photo, the portrait's expression removed, a whole head from
every side, hair kept and clothing dropped, local expressions, determinism."""
import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from avatar import camera
from avatar.expressions import index_of
from avatar.fit.landmark_fit import model_points
from avatar.generators import GeneratorError, available, get_generator
from avatar.generators.quality import frontal_psnr
from avatar.portrait import PerceptionUnavailable, prepare
from avatar.portrait.landmarks import face_hull_mask
from avatar.render import Renderer

SIZE = 256
MOUTH_CORNERS = (61, 291)   # MediaPipe face mesh
EYE_OUTER = (33, 263)


@pytest.fixture(scope="module")
def renderer(astronaut_avatar):
    return Renderer(astronaut_avatar)


@pytest.fixture(scope="module")
def einstein(shared_dir):
    data = (shared_dir / "reference" / "portraits" / "einstein_1904.jpg").read_bytes()
    return get_generator().create(data), prepare(data)


def project(renderer, avatar, names, cam):
    verts = renderer.head.identity_vertices(avatar.identity)
    uv, _ = camera.project(np.stack([verts[renderer.head.landmarks[n]] for n in names]), cam)
    return uv * SIZE


def box_mean(diff, centre, half):
    x, y = np.round(centre).astype(int)
    return float(diff[max(0, y - half):y + half, max(0, x - half):x + half].mean())


def photo(avatar):
    return cv2.resize(avatar.portrait, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def test_registry():
    listed = {name: why for name, _, _, why in available()}
    assert listed["projective"] == ""
    assert get_generator().name == "projective"
    with pytest.raises(GeneratorError, match="unknown generator 'nope'"):
        get_generator("nope")


def test_missing_models_make_the_generator_unavailable(tmp_path, monkeypatch, astronaut_png):
    monkeypatch.setenv("AVATARFORGE_MODEL_DIR", str(tmp_path))
    reason = get_generator().unavailable_reason()
    assert "make models" in reason and str(tmp_path) in reason
    with pytest.raises(PerceptionUnavailable, match="make models"):
        get_generator().create(astronaut_png)


def test_frontal_rerender_matches_portrait(astronaut_avatar, astronaut_prepared):
    face = face_hull_mask(astronaut_prepared.landmarks, astronaut_prepared.image.shape[0])
    assert frontal_psnr(astronaut_avatar, face, SIZE) >= 27


def test_fitted_mesh_lands_on_the_photo(astronaut_avatar, astronaut_prepared, renderer):
    """The dense fit: the head model's face-mesh points, posed with the stored portrait expression and
    seen by the portrait camera, land on the face mesh found in the photo."""
    crop = astronaut_prepared.image.shape[0]
    pts = model_points(renderer.head, astronaut_avatar.identity, astronaut_avatar.portrait_expression)[:468]
    uv, _ = camera.project(pts, astronaut_avatar.portrait_camera)
    found = astronaut_prepared.landmarks[:468, :2] / crop
    ocular = np.linalg.norm(found[EYE_OUTER[0]] - found[EYE_OUTER[1]])
    error = np.linalg.norm(uv - found, axis=1) / ocular
    assert np.median(error) < 0.05 and np.percentile(error, 90) < 0.12


def test_portrait_expression_is_removed(astronaut_avatar, renderer):
    """The astronaut smiles: the smile is stored as weights and the neutral avatar does not smile."""
    weights = astronaut_avatar.portrait_expression
    assert weights is not None and weights.shape == (52,)
    assert min(weights[index_of("mouthSmileLeft")], weights[index_of("mouthSmileRight")]) > 0.2
    cam = astronaut_avatar.portrait_camera
    as_photo = renderer.render(cam, weights, size=SIZE).over((0, 0, 0))
    neutral = renderer.render(cam, size=SIZE).over((0, 0, 0))
    corners = project(renderer, astronaut_avatar, ["mouth_corner_left", "mouth_corner_right"], cam)
    target = photo(astronaut_avatar)
    for corner in corners:
        assert box_mean(np.abs(as_photo - target).mean(-1), corner, 6) < box_mean(np.abs(neutral - target).mean(-1),
                                                                                 corner, 6)


@pytest.mark.parametrize("yaw", range(0, 360, 30))
def test_whole_head_from_every_side(renderer, yaw):
    """No holes, no see-through: inside the silhouette the head is opaque from every direction."""
    res = renderer.render(camera.camera_vector(yaw_deg=yaw), size=SIZE)
    alpha = res.alpha.numpy()
    silhouette = ndimage.binary_fill_holes(alpha > 0.5)
    inner = ndimage.binary_erosion(silhouette, iterations=3)
    assert inner.sum() > 0.1 * SIZE * SIZE
    assert (alpha[inner] >= 0.98).mean() >= 0.995


def test_top_of_the_head_is_covered(renderer):
    res = renderer.render(camera.camera_vector(pitch_deg=70), size=SIZE)
    inner = ndimage.binary_erosion(ndimage.binary_fill_holes(res.alpha.numpy() > 0.5), iterations=3)
    assert (res.alpha.numpy()[inner] >= 0.98).mean() >= 0.995


def test_back_of_a_haired_head_is_hair(astronaut_avatar, astronaut_prepared, renderer):
    """From behind, the astronaut's head shows her hair's colour, not her skin's."""
    img = astronaut_prepared.image.astype(np.float32) / 255
    marks = astronaut_prepared.landmarks
    face = face_hull_mask(marks, img.shape[0])
    skin = np.median(img[face], axis=0)
    crown = (astronaut_prepared.matte > 0.5) & (np.arange(img.shape[0])[:, None] < marks[:468, 1].min() - 10)
    hair = np.median(img[crown], axis=0)
    back = renderer.render(camera.camera_vector(yaw_deg=180), size=SIZE)
    upper = (back.alpha.numpy() > 0.9) & (np.arange(SIZE)[:, None] < SIZE * 0.45)
    seen = np.median(back.over((0, 0, 0))[upper], axis=0)
    assert np.linalg.norm(seen - hair) < np.linalg.norm(seen - skin)


def test_hair_kept_and_clothing_dropped(einstein):
    """Seen from the portrait camera the avatar covers the person's head and hair, and not the suit."""
    avatar, prepared = einstein
    size = prepared.image.shape[0]
    alpha = Renderer(avatar).render(avatar.portrait_camera, avatar.portrait_expression, size=size).alpha.numpy()
    person = prepared.matte > 0.5
    marks = prepared.landmarks[:468]
    rows, cols = np.arange(size)[:, None], np.arange(size)[None, :]
    chin, top = marks[152, 1], marks[:, 1].min()
    width = marks[:, 0].max() - marks[:, 0].min()
    head = person & (rows < chin - 0.1 * (chin - top))
    # Below the chin, beside the neck: the suit's shoulders and lapels.
    suit = person & (rows > chin) & (np.abs(cols - marks[152, 0]) > 0.45 * width)
    assert suit.sum() > 1000 and head.sum() > 1000
    assert (alpha[head] > 0.5).mean() > 0.9
    assert (alpha[suit] > 0.5).mean() < 0.3


def test_jaw_open_moves_the_mouth_only(astronaut_avatar, renderer):
    cam = astronaut_avatar.portrait_camera
    neutral = renderer.render(cam, size=SIZE).over((0, 0, 0))
    jaw = renderer.render(cam, {"jawOpen": 1.0}, size=SIZE).over((0, 0, 0))
    diff = np.abs(jaw - neutral).mean(-1)
    mouth = project(renderer, astronaut_avatar, ["lip_upper", "lip_lower"], cam).mean(0)
    assert box_mean(diff, mouth + [0, 6], 14) >= 0.05
    brows = project(renderer, astronaut_avatar, ["brow_left", "brow_right"], cam)
    above = int(brows[:, 1].min()) - 4
    assert diff[:above].mean() < 0.01 and diff[:above].max() < 0.1


def test_blink_left_closes_the_subjects_left_eye(astronaut_avatar, renderer):
    cam = astronaut_avatar.portrait_camera
    neutral = renderer.render(cam, size=SIZE).over((0, 0, 0))
    blink = renderer.render(cam, {"eyeBlinkLeft": 1.0}, size=SIZE).over((0, 0, 0))
    diff = np.abs(blink - neutral).mean(-1)
    left, right = project(renderer, astronaut_avatar, ["pupil_left", "pupil_right"], cam)
    assert left[0] > right[0]  # the subject's left eye is on the image's right
    assert box_mean(diff, left, 8) >= 0.03
    assert box_mean(diff, right, 8) < 0.002


def test_deterministic_with_progress(astronaut_png, astronaut_avatar):
    events = []
    again = get_generator("projective").create(astronaut_png, progress=lambda s, f, m: events.append((s, f)))
    fractions = [f for _, f in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"decode", "fit", "texture", "planes", "decoder", "thumbnail", "done"} <= {s for s, _ in events}
    assert again.avatar_id == astronaut_avatar.avatar_id
    assert get_generator().avatar_id(astronaut_png) == again.avatar_id  # known without generating
    assert torch.equal(again.planes, astronaut_avatar.planes)
    assert all(torch.equal(again.decoder[k], astronaut_avatar.decoder[k]) for k in again.decoder)
    assert np.array_equal(again.identity, astronaut_avatar.identity)
    assert np.array_equal(again.portrait_expression, astronaut_avatar.portrait_expression)
    assert np.array_equal(again.portrait_eye, astronaut_avatar.portrait_eye)
    assert np.array_equal(again.thumbnail, astronaut_avatar.thumbnail)


@pytest.mark.parametrize("yaw", [-45, 45])
def test_side_views_are_faces_where_the_model_says(astronaut_avatar, renderer, yaw):
    """MediaPipe's face mesh, run on the avatar rendered at +-45 degrees, finds the face, and its points
    agree with the head model's own points seen by that camera (median within 5 % of the inter-ocular
    distance, measured face on)."""
    from avatar.fit.correspondence import correspondence
    from avatar.portrait.locate import locate_face

    size = 512
    cam = camera.camera_vector(yaw_deg=yaw)
    rgb = (renderer.render(cam, size=size).over((0.5, 0.5, 0.5)) * 255).astype(np.uint8)
    found = locate_face(rgb).landmarks[:468, :2] / size
    head = renderer.head
    model = correspondence(head).points(head, head.identity_vertices(astronaut_avatar.identity))[:468]
    uv, _ = camera.project(model, cam)
    front, _ = camera.project(model[list(EYE_OUTER)], camera.camera_vector())
    ocular = np.linalg.norm(front[0] - front[1])
    error = np.linalg.norm(found - uv, axis=1) / ocular
    assert np.median(error) < 0.05


def test_fill_reads_hair_past_a_skin_coloured_matte_edge():
    """The unseen back of a head continues the hair at the silhouette's sides. A matte's edge blends hair
    with a pale background into a thin skin-coloured rim, and a highlight in the hair can read as skin:
    neither may stop the fill from reading the hair (it would paint the back of the head with the neck)."""
    from avatar.generators.whole_head import EdgeFill, PortraitView

    s = 256
    rows, cols = np.mgrid[:s, :s]
    hair, skin = np.array([90, 50, 30]), np.array([225, 190, 165])
    head = ((cols - 128) / 80.0) ** 2 + ((rows - 120) / 100.0) ** 2 <= 1
    face = ((cols - 128) / 45.0) ** 2 + ((rows - 135) / 60.0) ** 2 <= 1
    neck = (abs(cols - 128) < 30) & (rows > 190)
    silhouette = head | neck
    rim = silhouette & ~ndimage.binary_erosion(silhouette, iterations=2)
    highlight = (abs(cols - 70) < 3) & (abs(rows - 100) < 3)
    image = np.full((s, s, 3), 200, np.uint8)
    image[head] = hair
    image[face | neck | rim | highlight] = skin
    chin_row = 195.0
    avoid = (face | rim | highlight) & (rows <= chin_row)
    view = PortraitView(image=image, matte=silhouette.astype(np.float32), camera=camera.camera_vector(),
                        face_mask=face, chin_row=chin_row)
    fill = EdgeFill(view, silhouette, avoid, centre_z=0.0)
    back_of_head = np.array([[x, -0.05, -0.15] for x in (-0.1, 0.0, 0.1)])
    colour = fill(back_of_head) * 255
    assert np.all(np.linalg.norm(colour - hair, axis=1) < 0.25 * np.linalg.norm(skin - hair))


def test_silhouette_keeps_an_earring_inside_the_hair():
    """Below the jaw only hair-coloured pixels hanging from the head count as head; an earring inside the
    hanging hair is not hair-coloured but is enclosed by it, and must not leave a notch through the hair."""
    from avatar.generators.whole_head import PortraitView, head_silhouette

    s = 256
    rows, cols = np.mgrid[:s, :s]
    hair, skin, cloth, yellow = (40, 30, 35), (225, 190, 165), (40, 60, 160), (230, 200, 40)
    head = ((cols - 128) / 70.0) ** 2 + ((rows - 110) / 90.0) ** 2 <= 1
    face = ((cols - 128) / 40.0) ** 2 + ((rows - 120) / 55.0) ** 2 <= 1
    neck = (abs(cols - 128) < 25) & (rows > 150) & (rows < 215)
    hanging = (abs(cols - 128) < 70) & (rows > 110) & (rows < 220) & ~neck & ~face
    body = rows >= 215
    earring = (abs(cols - 175) < 6) & (abs(rows - 185) < 8)
    person = head | neck | hanging | body
    image = np.full((s, s, 3), 230, np.uint8)
    image[person] = hair
    image[face | neck] = skin
    image[body] = cloth
    image[earring] = yellow
    view = PortraitView(image=image, matte=person.astype(np.float32), camera=camera.camera_vector(),
                        face_mask=face, chin_row=175.0)
    silhouette = head_silhouette(view, mesh_mask=face | neck)
    assert silhouette[earring].all()
    assert not silhouette[body & (abs(cols - 128) > 100)].any()  # the shoulders stay out


def test_visibility_allows_a_pixel_of_slope_but_not_occlusion():
    """A texel may land anywhere in its pixel: on a surface turning away from the camera it may lie as deep
    as the neighbouring pixel's surface and still be seen; a surface behind an occluder stays unseen."""
    from avatar.generators.projection import VISIBILITY_EPS, _visibility_depth

    depth = np.full((8, 8), np.inf)
    depth[2:6, 2:6] = np.linspace(1.0, 1.3, 4)[None, :]   # a flank turning away, 0.1 deeper per pixel
    limit = _visibility_depth(depth)
    assert limit[3, 3] >= 1.2 and limit[3, 3] + VISIBILITY_EPS < 1.2 + 0.05   # its neighbour's depth, no more
    assert np.isinf(limit[0, 0]) and np.isinf(limit[7, 7])                   # nothing there to be seen


def _hair_round_a_face(resolution: int):
    """The embedded head's neutral mesh, a frontal portrait view of it (256 px) whose hair covers the head and
    falls straight down either side of the face to below the chin, and the hair volume built from it at
    `resolution`: (hair, head, neutral, view, face mask)."""
    from avatar.fit.correspondence import correspondence
    from avatar.generators.whole_head import PortraitView, _mesh_mask, hair_volume
    from avatar.head_model import embedded_head_model

    s = 256
    head = embedded_head_model()
    neutral = head.identity_vertices()
    cam = camera.camera_vector()
    uv, _ = camera.project(correspondence(head).points(head, neutral)[:468], cam)
    face = face_hull_mask(uv * s, s)
    view = PortraitView(image=np.zeros((s, s, 3), np.uint8), matte=np.ones((s, s), np.float32), camera=cam,
                        face_mask=face, chin_row=float(uv[:, 1].max() * s))
    mesh = _mesh_mask(neutral, head.faces, view)
    rows, cols = np.mgrid[:s, :s]
    face_cols = np.flatnonzero(face.any(axis=0))
    hair_px = (mesh | ((cols > face_cols[0] - 25) & (cols < face_cols[-1] + 25) & (rows < view.chin_row + 10))) & ~face
    silhouette = hair_px | face
    hair = hair_volume(view, silhouette, face, mesh, hair_px, head, neutral, resolution)
    return hair, head, neutral, view, face


def test_hair_beside_the_cheeks_is_geometry_in_front_of_the_ears():
    """Hair the photo shows hanging beside the cheeks is hair geometry from the face's outline back to the
    head, so a side view shows hair there rather than the face mesh's texture; it never lies over the face
    the photo shows."""
    from avatar.surface_field import texel_centres

    n = 128
    hair, head, neutral, view, face = _hair_round_a_face(n)
    c = texel_centres(n)
    marks = {k: neutral[head.landmarks[k]] for k in ("ear_left", "brow_left", "cheek_left", "chin")}
    ear_z = marks["ear_left"][2]
    # In front of the ears (a quarter of the way to the cheekbone), from the brows down to the chin.
    ahead = c > ear_z + 0.25 * (marks["cheek_left"][2] - ear_z)
    band = (c < marks["brow_left"][1]) & (c > marks["chin"][1])
    for side in (c > 0, c < 0):
        beside = hair[side][:, band][:, :, ahead]
        assert beside.any(axis=(0, 2)).mean() > 0.8   # nearly every row between brows and chin
    # None of it over the cheeks and jaw the photo shows.
    xs, ys, zs = np.nonzero(hair)
    in_front = (c[zs] > ear_z) & band[ys]
    huv, _ = camera.project(np.stack([c[xs], c[ys], c[zs]], axis=-1)[in_front], view.camera)
    s = face.shape[0]
    px = np.clip((huv * s).astype(int), 0, s - 1)
    assert not face[px[:, 1], px[:, 0]].any()


def test_the_hair_edges_are_smooth_at_the_walls_resolution():
    """The hair volume is built on a coarser grid than the walls. Copied voxel by voxel its edges are stairs
    two wall texels high, which every turned view showed along the hairline; resampled smoothly, the
    edge runs through the coarse voxels: many of the coarse cells on the hair's outer surface are part
    hair, part air at the walls' resolution (none are, copied)."""
    from scipy import ndimage

    from avatar.head_walls import mesh_inside

    r = 256
    hair, head, neutral, _, _ = _hair_round_a_face(r)
    cells = hair.reshape(r // 2, 2, r // 2, 2, r // 2, 2).sum(axis=(1, 3, 5))
    # Away from the head, where the mesh's own finer surface cuts the hair.
    clear = ~ndimage.binary_dilation(mesh_inside(neutral, head.faces, r).reshape(
        r // 2, 2, r // 2, 2, r // 2, 2).any(axis=(1, 3, 5)))
    part = (cells > 0) & (cells < 8) & clear
    full = cells == 8
    outer = full & ~ndimage.binary_erosion(full) & clear
    assert outer.sum() > 1000
    assert part.sum() > 0.3 * outer.sum()


def test_the_mirror_takes_the_light_of_the_side_it_stands_in_for():
    """A portrait lit from one side: where both sides are seen, the photo's colour is half its mirror's.
    The mirror filling the unseen part of the shaded side takes that side's light (not a pale patch on a
    shaded cheek), and a mirrored edge (an outline the photo shows a few texels off on the other side)
    comes out soft, not as a second hard outline."""
    from avatar.generators.projection import match_mirror

    r = 256                                   # the generator's texture size
    cols = np.arange(r)[None, :].repeat(r, 0)
    region = np.ones((r, r), bool)
    both = cols < 128                         # both sides seen here; only the mirror beyond
    weight = np.where(both, 1.0, 0.0)
    m_weight = np.ones((r, r))
    m_colour = np.full((r, r, 3), 0.8)
    m_colour[:, 176:180] = 0.1                # a dark outline in the mirror image
    colour = np.where(both[..., None], 0.4, 0.0)
    out = match_mirror(colour, weight, m_colour, m_weight, region)
    assert np.abs(out[:, 220:] - 0.4).max() < 0.05          # the shaded side's light, not the lit side's 0.8
    edge = out[:, 164:192, 0]
    assert edge.min() > 0.15 and np.abs(np.diff(edge, axis=1)).max() < 0.1   # softened, not a step
