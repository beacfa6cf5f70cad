"""Hair the photo shows hanging beside the face stays hair (avatar.generators.whole_head.head_silhouette):
below mouth height only hair that hangs on from the head counts as the head, and light on the hair where it
leaves the head must not cut what hangs below it off the head."""
import numpy as np

from avatar import camera
from avatar.generators.whole_head import PortraitView, head_silhouette

S = 256
HAIR, SKIN, LIT = (60, 40, 30), (225, 190, 165), (215, 175, 140)


def _portrait(lit_band: bool) -> tuple[PortraitView, np.ndarray, np.ndarray]:
    """A frontal head with dark hair hanging beside the face to below the chin, and no clothing in the frame
    (the hair is told from the face's colour). With `lit_band`, the hanging hair is lit across a few rows
    just below mouth height, as bright as the face (a painted highlight at the ears). The view, the hair
    hanging below the band, and the mesh mask (face and neck)."""
    rows, cols = np.mgrid[:S, :S]
    head = ((cols - 128) / 70.0) ** 2 + ((rows - 110) / 90.0) ** 2 <= 1
    face = ((cols - 128) / 40.0) ** 2 + ((rows - 120) / 55.0) ** 2 <= 1
    neck = (abs(cols - 128) < 25) & (rows > 150) & (rows < 240)
    hanging = (abs(cols - 128) < 70) & (rows > 110) & (rows < 215) & ~neck & ~face
    image = np.full((S, S, 3), 235, np.uint8)
    person = head | neck | hanging
    image[person] = HAIR
    image[face | neck] = SKIN
    # head_silhouette follows hair down from mouth height: chin 175, face top 65 -> row 120.
    band = hanging & (rows >= 117) & (rows <= 122)
    if lit_band:
        image[band] = LIT
    view = PortraitView(image=image, matte=person.astype(np.float32), camera=camera.camera_vector(),
                        face_mask=face, chin_row=175.0)
    below = hanging & (rows > 130) & (rows < 210)
    return view, below, face | neck


def test_hair_lit_where_it_leaves_the_head_still_hangs_from_it():
    # Measured before: with the lit band none of the hair below it was the head (its colour test found no
    # hair at mouth height to follow down); without the band all of it.
    view, below, mesh = _portrait(lit_band=True)
    assert head_silhouette(view, mesh_mask=mesh)[below].mean() > 0.95


def test_unlit_hanging_hair_is_the_head():
    view, below, mesh = _portrait(lit_band=False)
    assert head_silhouette(view, mesh_mask=mesh)[below].mean() > 0.95
