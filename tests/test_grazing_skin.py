"""Below the brows, a skin texel the portrait sees at a graze takes the photo's colour only as far as its pixel
shows bare skin (whole_head.bare_skin): a collar, hair beside the jaw or the background at the outline are
not the jaw's and neck's surface, and every side view stretches those texels into streaks."""
import cv2
import numpy as np

from avatar import camera
from avatar.generators.projection import project_texture
from avatar.generators.whole_head import HeadOutline, PortraitView, bare_skin
from avatar.head_model import PART_ID, embedded_head_model

SKIN = (205, 150, 125)
COLLAR = (250, 250, 250)
SKIN_BAND = 0.8   # the photo's skin reaches this far out of the head's half-width: beyond it the camera grazes


def _collared_photo(head, vertices, cam, s):
    """A frontal photo of the head: skin down a central band of it, a white collar either side of it where
    the camera sees the head at a graze, and the band as the photo's bare skin."""
    uv, _ = camera.project(vertices[head.part_vertices("skin")], cam)
    centre, half = uv[:, 0].mean() * s, 0.5 * np.ptp(uv[:, 0]) * s
    columns = np.abs(np.arange(s) + 0.5 - centre) < SKIN_BAND * half
    image = np.empty((s, s, 3), np.uint8)
    image[:, columns] = SKIN
    image[:, ~columns] = COLLAR
    bare = np.broadcast_to(columns, (s, s)).astype(np.float32)
    return image, bare


def test_a_grazing_skin_texel_beside_the_face_takes_the_skin_not_the_collar():
    """The same photo projected with and without the photo's bare skin: the skin texels below the brows that
    the camera sees at a graze and that land on the collar were the collar's white (a streak in a side view)
    and now take the fill of the skin round them, the more the nearer edge-on; those it sees squarely keep the
    photo's colour (the portrait view needs them)."""
    s = 256
    head = embedded_head_model()
    vertices = head.identity_vertices()
    cam = camera.camera_vector()
    image, bare = _collared_photo(head, vertices, cam, s)
    matte = np.ones((s, s), np.float32)
    before = project_texture(head, vertices, image, matte, cam, 128)
    after = project_texture(head, vertices, image, matte, cam, 128, bare_skin=bare)

    brow_y = vertices[[head.landmarks["brow_left"], head.landmarks["brow_right"]], 1].mean()
    uv, _ = camera.project(before.points, cam)
    px = np.clip((uv * s).astype(np.int64), 0, s - 1)
    on_collar = bare[px[..., 1], px[..., 0]] == 0
    below = (before.part == PART_ID["skin"]) & before.covered & (before.points[..., 1] < brow_y) & on_collar
    grazing = below & (before.direct > 0.05) & (before.facing < 0.5)
    edge_on = below & (before.direct > 0.05) & (before.facing < 0.25)
    square = below & (before.direct >= 1) & (before.facing >= 1)
    assert edge_on.sum() > 50 and square.sum() > 50
    blue = 2   # the channel that tells the collar (250) from the skin (125)
    collar, skin = COLLAR[blue] / 255, SKIN[blue] / 255
    was, now = before.texture[..., blue], after.texture[..., blue]
    assert was[grazing].mean() > collar - 0.05
    assert now[grazing].mean() < was[grazing].mean() - 0.05
    # The nearer edge-on, the more of the fill (here partly the squarely seen collar's, whose texels are its
    # nearest seen neighbours): a third of the way to the skin at least.
    assert now[edge_on].mean() < was[edge_on].mean() - (collar - skin) / 3
    np.testing.assert_allclose(after.texture[square], before.texture[square], atol=1e-5)
    # The residual passes move a grazing texel by no more than the projection trusts its pixel.
    assert after.shown[edge_on].mean() < 0.25
    assert (after.shown[square] == 1).all()


def test_bare_skin_is_the_face_and_skin_coloured_neck_not_a_collar_or_the_background():
    """A face (the landmark hull), a neck of the face's colour below it, a white collar beside the neck and a
    background outside the head's silhouette: the face is bare skin, out to where its pixels read the texture
    (two texels of the planes past its edge), and so is the neck; the collar and the background are not."""
    s, resolution = 256, 256
    rng = np.random.default_rng(0)
    image = np.clip(np.array(SKIN) + rng.normal(0, 4, (s, s, 3)), 0, 255).astype(np.uint8)
    face = np.zeros((s, s), np.uint8)
    cv2.ellipse(face, (128, 100), (50, 70), 0, 0, 360, 1, -1)
    face = face > 0
    rows, cols = np.mgrid[:s, :s]
    neck = (rows > 160) & (np.abs(cols - 128) < 30) & ~face
    collar = (rows > 190) & (np.abs(cols - 128) >= 30) & (np.abs(cols - 128) < 70)
    image[collar] = COLLAR
    silhouette = face | neck | collar
    image[~silhouette] = (90, 110, 140)
    view = PortraitView(image=image, matte=silhouette.astype(np.float32), camera=camera.camera_vector(),
                        face_mask=face, chin_row=170.0)
    outline = HeadOutline(silhouette=silhouette, skin=face | neck | collar, mesh_mask=silhouette,
                          hair=np.zeros((s, s), bool), fill=None, centre_z=0.0)
    shown = bare_skin(view, outline, resolution)
    read = cv2.dilate(face.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0        # within a texel of the hull
    beyond = ~(cv2.dilate(face.astype(np.uint8), np.ones((17, 17), np.uint8)) > 0)  # over three texels off it
    assert (shown[read] == 1).all()
    assert shown[neck & beyond].mean() > 0.9    # the few pixels the noise takes 3 deviations off the face's colour
    assert shown[collar & beyond].max() == 0
    assert shown[~silhouette & beyond].max() == 0
