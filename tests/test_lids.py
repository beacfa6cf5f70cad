"""The lids a fit reads: the iris model's eye contours, not the face mesh's own lids (which barely close).
A portrait with closed or downcast eyes is fitted as such, so its neutral avatar has open eyes (issue 9)."""
import numpy as np
import pytest

from avatar.expressions import index_of
from avatar.fit import fit_landmarks
from avatar.head_model import embedded_head_model
from avatar.portrait import prepare
from avatar.portrait.face_mesh import LID_RING
from benchmarks.reenact import png_bytes, read_frames

# talking_d3: eyes open and looking ahead at frame 192; closed over a downward look at frame 132.
OPEN_FRAME, CLOSED_FRAME = 192, 132
UPPER_LOWER = ((159, 145), (386, 374))   # mid upper and lower lid of each eye (MediaPipe)


@pytest.fixture(scope="module")
def frames(shared_dir):
    wanted = {OPEN_FRAME, CLOSED_FRAME}
    clip = shared_dir / "reference" / "videos" / "talking_d3.mp4"
    return {i: prepare(png_bytes(rgb)) for i, rgb in read_frames(clip, 6) if i in wanted}


def lid_gap(points):
    return np.mean([np.linalg.norm(points[u, :2] - points[lo, :2]) for u, lo in UPPER_LOWER])


def test_lids_come_from_the_eye_contours(frames):
    for prepared in frames.values():
        assert prepared.eye_contours is not None and prepared.eye_contours.shape == (2, 71, 3)
        refined = prepared.landmarks_with_lids()
        rings = [i for ring in LID_RING for i in ring]
        others = np.setdiff1d(np.arange(478), rings)
        assert np.array_equal(refined[others], prepared.landmarks[others])
    closed = frames[CLOSED_FRAME]
    # The mesh's own lids stay apart on the closed eye; the contours close.
    assert lid_gap(closed.landmarks_with_lids()) < 0.7 * lid_gap(closed.landmarks)


def test_a_closed_eyed_portrait_is_fitted_closed(frames):
    head = embedded_head_model()

    def blink(prepared):
        fit = fit_landmarks(head, prepared.landmarks_with_lids(), prepared.image.shape[0])
        return max(fit.expression[index_of("eyeBlinkLeft")], fit.expression[index_of("eyeBlinkRight")])

    assert blink(frames[OPEN_FRAME]) < 0.1
    assert blink(frames[CLOSED_FRAME]) > 0.25
