"""The dense landmark fit (avatar.fit): correspondence, round trips, robustness, bad input, real portraits."""
from __future__ import annotations

import math

import numpy as np
import pytest
from fit_helpers import SIZE, synthetic_landmarks

from avatar import camera as cam
from avatar.expressions import ARKIT_NAMES, index_of
from avatar.fit import FaceFit, LandmarkFitError, fit_landmarks, mean_face, model_points, shape_offsets
from avatar.fit.correspondence import IRIS_CENTRES, MESH_POINTS, NUM_POINTS, correspondence
from avatar.head_model import PART_ID, FaceVerseSource, embedded_head_model


@pytest.fixture(scope="module")
def head():
    return embedded_head_model()


def weights(**named) -> np.ndarray:
    w = np.zeros(52)
    for name, value in named.items():
        w[index_of(name)] = value
    return w


# -- correspondence --------------------------------------------------------------------------------

def test_correspondence_binds_mesh_points_to_skin_and_iris_points_to_the_eyeballs(head):
    from avatar.fit.correspondence import _register

    corr = correspondence(head)
    assert corr is correspondence(head)                       # computed once per head model id
    again = _register(head)                                      # and deterministic
    assert np.array_equal(again.triangles, corr.triangles) and np.array_equal(again.bary, corr.bary)
    assert corr.triangles.shape == (NUM_POINTS,) and np.allclose(corr.bary.sum(axis=1), 1.0, atol=1e-5)
    assert (corr.bary >= -1e-6).all()
    parts = head.face_part[corr.triangles]
    assert (parts[:MESH_POINTS] == PART_ID["skin"]).all()
    assert (parts[list(range(473, 478))] == PART_ID["eyeball_left"]).all()
    assert (parts[list(range(468, 473))] == PART_ID["eyeball_right"]).all()
    pts = corr.points(head, head.vertices)
    for name, mp in (("eye_outer_right", 33), ("eye_inner_left", 362), ("mouth_corner_left", 291),
                     ("nose_tip", 4), ("chin", 152), ("pupil_left", 473), ("pupil_right", 468)):
        assert np.linalg.norm(pts[mp] - head.vertices[head.landmarks[name]]) < 1e-4, name
    # Subject's left is +x; the face oval surrounds the features.
    assert pts[263, 0] > 0 > pts[33, 0]
    assert pts[10, 1] > pts[168, 1] > pts[4, 1] > pts[13, 1] > pts[152, 1]


def test_lip_and_lid_points_follow_their_own_side(head):
    corr = correspondence(head)
    rest = corr.points(head, head.vertices)
    opened = corr.points(head, head.posed(weights(jawOpen=1.0)))
    upper_inner, lower_inner = [13, 82, 312], [14, 87, 317]
    assert np.abs(opened[upper_inner] - rest[upper_inner]).max() < 0.002
    assert (opened[lower_inner, 1] - rest[lower_inner, 1] < -0.01).all()
    blink = corr.points(head, head.posed(weights(eyeBlinkLeft=1.0)))
    upper_lid, lower_lid = [386, 387, 385], [374, 373, 380]
    assert (blink[upper_lid, 1] - rest[upper_lid, 1] < -0.004).all()
    assert np.abs(blink[lower_lid] - rest[lower_lid]).max() < 0.002
    assert (blink[upper_lid, 1] - blink[lower_lid, 1]).max() < 0.004      # closed: the lids meet


def test_model_points_move_exactly_like_the_posed_head(head):
    """The fit's linear model (identity, expression, gaze about identity-dependent eye centres) agrees
    with HeadModel.posed at the bound points, up to the fixed mean-face offset per point."""
    corr = correspondence(head)
    rng = np.random.default_rng(1)
    offset = mean_face(head) - corr.points(head, head.vertices)
    for _ in range(2):
        identity = rng.uniform(-0.8, 0.8, len(head.identity_names))
        expression = weights(jawOpen=0.5, mouthSmileLeft=0.7, eyeBlinkRight=0.4)
        eye = rng.uniform(-0.3, 0.3, 4)
        surface = corr.points(head, head.posed(expression, identity, eye))
        model = model_points(head, identity, expression, eye)
        skin = np.arange(MESH_POINTS)
        assert np.abs(model[skin] - surface[skin] - offset[skin]).max() < 1e-5
        # Iris points turn with the gaze about the same centres: their offset is the rest offset turned.
        assert np.abs(np.linalg.norm(model[list(IRIS_CENTRES)] - surface[list(IRIS_CENTRES)], axis=1)
                      - np.linalg.norm(offset[list(IRIS_CENTRES)], axis=1)).max() < 1e-5


def test_a_model_with_its_own_mediapipe_keypoints_uses_them(head):
    """FaceVerse files may name the vertex of each MediaPipe point: those win over the registration."""
    import dataclasses

    own = correspondence(head)
    keypoints = head.faces[own.triangles, np.argmax(own.bary, axis=1)][:MESH_POINTS].astype(np.int32)
    source = FaceVerseSource(path="test", sha256="0" * 64, centre=(0.0, 0.0, 0.0), axis_flip=(1.0, 1.0, 1.0),
                             scale=1.0, mediapipe_keypoints=keypoints)
    other = dataclasses.replace(head, model_id="keypoints-test", faceverse=source)
    corr = correspondence(other)
    pts = corr.points(other, other.vertices)
    assert np.allclose(pts[:MESH_POINTS], other.vertices[keypoints], atol=1e-6)
    assert (other.face_part[corr.triangles[list(IRIS_CENTRES)]] != PART_ID["skin"]).all()   # irises on the eyes
    lm = synthetic_landmarks(model_points(other, None, weights(jawOpen=0.5)), cam.Orbit(10, 0, 0), noise=0.5)
    fit = fit_landmarks(other, lm, SIZE)
    assert abs(fit.expression[index_of("jawOpen")] - 0.5) < 0.15 and abs(fit.orbit.yaw_deg - 10) < 2


# -- round trips -----------------------------------------------------------------------------------

ROUND_TRIPS = [
    # (identity seed, expression, eye, orbit, shift)
    (0, dict(jawOpen=0.6), (0.0, 0.15, 0.0, 0.15), cam.Orbit(20, -6, 4, 2.6, 16.0), (0.03, -0.02, 0.0)),
    (1, dict(mouthSmileLeft=0.8, mouthSmileRight=0.8), (0.1, -0.2, 0.1, -0.2), cam.Orbit(-30, 8, -3, 3.0, 20.0),
     (0.0, 0.04, 0.0)),
    (2, dict(eyeBlinkLeft=0.9, eyeBlinkRight=0.9), (0.0, 0.0, 0.0, 0.0), cam.Orbit(5, 12, 0, 2.7, 18.837),
     (0.0, 0.0, 0.0)),
]


@pytest.mark.parametrize("seed, named, eye, orbit, shift", ROUND_TRIPS)
def test_round_trip_recovers_pose_expression_gaze(head, seed, named, eye, orbit, shift):
    identity = np.random.default_rng(seed).uniform(-0.6, 0.6, len(head.identity_names))
    expression = weights(**named)
    lm = synthetic_landmarks(model_points(head, identity, expression, np.array(eye)), orbit, shift, noise=0.7,
                             seed=seed)
    fit = fit_landmarks(head, lm, SIZE)
    assert isinstance(fit, FaceFit)
    for got, want in ((fit.orbit.yaw_deg, orbit.yaw_deg), (fit.orbit.pitch_deg, orbit.pitch_deg),
                      (fit.orbit.roll_deg, orbit.roll_deg)):
        assert abs(got - want) < 2.0
    for name, value in named.items():
        assert abs(fit.expression[index_of(name)] - value) < 0.15, name
    others = np.delete(fit.expression, [index_of(n) for n in named])
    assert others.max() < 0.3 and np.median(others) < 0.02
    assert np.abs(fit.eye - np.array(eye)).max() < 0.1
    assert fit.residual * SIZE < 1.5                            # ~ the noise (0.7 px per axis)
    assert set(fit.errors) == {"eyes", "brows", "nose", "mouth", "contour"}
    # The 25-vector is the orbit camera, and the head pose is the same pose seen from a frontal camera.
    assert np.allclose(fit.camera, cam.camera_vector(fit.orbit, fit.shift), atol=1e-5)
    frontal = cam.camera_vector(cam.Orbit(radius=fit.orbit.radius, fov_deg=fit.fov_deg))
    turned = cam.apply_head_pose(frontal, *fit.head_pose)
    assert np.allclose(turned[:16].reshape(4, 4)[:3, :3], fit.camera[:16].reshape(4, 4)[:3, :3], atol=1e-4)


@pytest.mark.parametrize("named", [{}, dict(eyeBlinkLeft=1.0, eyeBlinkRight=1.0), dict(jawOpen=0.6),
                                   dict(mouthSmileLeft=0.8, mouthSmileRight=0.8)])
def test_a_neutral_face_fits_neutral_and_blink_jaw_smile_come_back(head, named):
    """A face of another identity at weight 0 reads as neutral (no eyeWide, no mouthShrugLower), and a
    blink, jawOpen and smile on it are read back, each alone."""
    identity = np.random.default_rng(4).uniform(-0.6, 0.6, len(head.identity_names))
    lm = synthetic_landmarks(model_points(head, identity, weights(**named)), cam.Orbit(10, 0, 0), noise=0.5)
    fit = fit_landmarks(head, lm, SIZE)
    for name, value in named.items():
        assert fit.expression[index_of(name)] > 0.75 * value, (name, fit.expression[index_of(name)])
    others = np.delete(fit.expression, [index_of(n) for n in named])
    assert others.max() < 0.1, {n: round(float(v), 2) for n, v in zip(ARKIT_NAMES, fit.expression) if v >= 0.1}


def test_warm_start_with_fixed_identity_tracks_the_next_frame(head):
    identity = np.random.default_rng(3).uniform(-0.5, 0.5, len(head.identity_names))
    first = fit_landmarks(head, synthetic_landmarks(model_points(head, identity, weights(jawOpen=0.2)),
                                                    cam.Orbit(10, 0, 0), noise=0.5), SIZE)
    nxt = synthetic_landmarks(model_points(head, first.identity, weights(jawOpen=0.5)), cam.Orbit(14, 2, 0),
                              noise=0.5, seed=4)
    fit = fit_landmarks(head, nxt, SIZE, identity=first.identity, prior=first)
    assert np.array_equal(fit.identity, first.identity) and fit.fov_deg == pytest.approx(first.fov_deg)
    assert abs(fit.expression[index_of("jawOpen")] - 0.5) < 0.1
    assert abs(math.degrees(fit.head_pose[0]) - math.degrees(first.head_pose[0]) + 4.0) < 1.0


@pytest.mark.parametrize("named", [dict(jawOpen=0.4, browInnerUp=0.5), dict(browDownLeft=0.6, browDownRight=0.6),
                                   {}])
def test_with_the_identity_held_brows_and_frown_come_back(head, named):
    """A clip's fit (identity held) reads the brows: raised, frowning, with an open jaw; a still face stays
    neutral. (The portrait's prior, which holds small motions at 0, read browInnerUp 0.5 as 0.05.)"""
    identity = np.random.default_rng(8).uniform(-0.5, 0.5, len(head.identity_names))
    lm = synthetic_landmarks(model_points(head, identity, weights(**named)), cam.Orbit(12, 4, 0), noise=0.5, seed=8)
    fit = fit_landmarks(head, lm, SIZE, identity=identity)
    got = {n: round(float(fit.expression[index_of(n)]), 2) for n in named}
    for name, value in named.items():
        assert abs(got[name] - value) < 0.2, got
    others = np.delete(fit.expression, [index_of(n) for n in named])
    assert others.max() < 0.15, {n: round(float(v), 2) for n, v in zip(ARKIT_NAMES, fit.expression) if v >= 0.15}


def test_antagonists_are_not_read_together(head):
    """A corner drawn out and back by a smile and a frown together is read as a smile and a stretch: an
    engine's rig, driven by the weights, does not cancel the pair as this one does. Without the fit's
    penalty on the pair's product the frown came back beside the smile (0.31 and 0.07 with the identity
    free, 0.32 and 0.13 held), as in most frames of a talking clip."""
    pair = ("mouthSmileLeft", "mouthFrownLeft")
    identity = np.random.default_rng(9).uniform(-0.5, 0.5, len(head.identity_names))
    lm = synthetic_landmarks(model_points(head, identity, weights(**dict.fromkeys(pair, 0.4))), cam.Orbit(8, 2, 0),
                             noise=0.5, seed=9)
    for held in (None, identity):
        fit = fit_landmarks(head, lm, SIZE, identity=held)
        read = {n: round(float(v), 2) for n, v in zip(ARKIT_NAMES, fit.expression) if v >= 0.03}
        assert min(fit.expression[index_of(n)] for n in pair) < 0.03, read
        assert read.get("mouthSmileLeft", 0) > 0.2 and read.get("mouthStretchLeft", 0) > 0.1, read


def test_a_clips_neutral_removes_the_persons_proportions_from_the_expression(head):
    """A person whose eyes differ from the model where no identity parameter reaches (heavy upper lids):
    alone, a frame reads them as a half blink; with the neutral estimated from several frames
    of the clip (other poses, a passing jawOpen), the still face reads neutral and jawOpen comes back."""
    from avatar.fit import neutral_offsets

    identity = np.random.default_rng(7).uniform(-0.5, 0.5, len(head.identity_names))
    person = np.zeros((NUM_POINTS, 3))
    upper_lids = [246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398]
    person[upper_lids, 1] = -0.006                               # ~2 mm lower, life size

    def frame(k, **named):
        orbit = cam.Orbit(8 * math.sin(k), 4 * math.cos(k), 0)
        return synthetic_landmarks(model_points(head, identity, weights(**named)) + person, orbit, noise=0.5, seed=k)

    still = frame(0)
    alone = fit_landmarks(head, still, SIZE, identity=identity)
    assert alone.expression.max() > 0.2                          # the proportions read as expression
    clip = [frame(k, jawOpen=0.5 if k == 3 else 0.0) for k in range(1, 9)]
    fits = [fit_landmarks(head, lm, SIZE, identity=identity) for lm in clip]
    neutral = neutral_offsets(head, fits, clip, SIZE)
    assert neutral.shape == (NUM_POINTS, 3) and not neutral[MESH_POINTS:].any()
    calm = fit_landmarks(head, still, SIZE, identity=identity, neutral=neutral)
    assert calm.expression.max() < 0.1, {n: round(float(v), 2) for n, v in zip(ARKIT_NAMES, calm.expression)
                                         if v >= 0.1}
    assert calm.residual < alone.residual
    opened = fit_landmarks(head, frame(20, jawOpen=0.6), SIZE, identity=identity, neutral=neutral)
    assert abs(opened.expression[index_of("jawOpen")] - 0.6) < 0.1
    with pytest.raises(LandmarkFitError, match="neutral must be"):
        fit_landmarks(head, still, SIZE, neutral=np.zeros((468, 3)))


def test_outliers_do_not_break_the_fit(head):
    lm = synthetic_landmarks(model_points(head, None, weights(jawOpen=0.6)), cam.Orbit(15, 0, 0), noise=0.5)
    bad = np.random.default_rng(5).choice(MESH_POINTS, 12, replace=False)
    lm[bad, :2] += np.random.default_rng(6).normal(0, 40, (12, 2))
    fit = fit_landmarks(head, lm, SIZE)
    assert abs(fit.orbit.yaw_deg - 15) < 2.0
    assert abs(fit.expression[index_of("jawOpen")] - 0.6) < 0.15
    assert fit.errors["mouth"] * SIZE < 5.0


def test_468_points_without_depth_are_accepted(head):
    lm = synthetic_landmarks(model_points(head, None, weights(mouthSmileLeft=0.8, mouthSmileRight=0.8)),
                             cam.Orbit(-10, 5, 0))[:MESH_POINTS, :2]
    fit = fit_landmarks(head, lm, SIZE)
    assert fit.expression[index_of("mouthSmileLeft")] > 0.6 and abs(fit.orbit.yaw_deg + 10) < 2.0


# -- bad input -------------------------------------------------------------------------------------

def _good(head):
    return synthetic_landmarks(model_points(head), cam.Orbit())


@pytest.mark.parametrize("mutate, words", [
    (lambda lm: lm[:100], "shape"),
    (lambda lm: lm.reshape(-1), "shape"),
    (lambda lm: np.where(np.arange(len(lm))[:, None] == 7, np.nan, lm), "NaN"),
    (lambda lm: lm + np.array([2000.0, 0.0, 0.0]), "outside"),
    (lambda lm: np.full_like(lm, 256.0), "do not describe a face"),
    (lambda lm: "not landmarks", "numeric"),
])
def test_bad_landmarks_raise_a_sentence(head, mutate, words):
    with pytest.raises(LandmarkFitError, match=words) as info:
        fit_landmarks(head, mutate(_good(head)), SIZE)
    assert isinstance(info.value, ValueError)


def test_bad_size_identity_and_prior_raise(head):
    lm = _good(head)
    with pytest.raises(LandmarkFitError, match="image_size"):
        fit_landmarks(head, lm, float("nan"))
    with pytest.raises(LandmarkFitError, match="identity"):
        fit_landmarks(head, lm, SIZE, identity=np.zeros(3))
    with pytest.raises(LandmarkFitError, match="prior"):
        fit_landmarks(head, lm, SIZE, prior={"yaw": 0})


# -- shape offsets ---------------------------------------------------------------------------------

def test_shape_offsets_bring_the_head_onto_the_landmarks(head):
    """Landmarks of a face whose proportions the identity basis cannot reach: the offsets close most of
    the gap, vanish at the back of the head and move the eyeballs rigidly."""
    corr = correspondence(head)
    rng = np.random.default_rng(7)
    face = mean_face(head)
    face[:MESH_POINTS, 0] *= 1.0 + 0.08 * np.exp(-((face[:MESH_POINTS, 1] + 0.1) / 0.08) ** 2)  # wider jaw
    lm = synthetic_landmarks(face + rng.normal(0, 2e-4, face.shape), cam.Orbit(12, 3, 0))
    fit = fit_landmarks(head, lm, SIZE)
    offsets = shape_offsets(head, fit, lm, SIZE)
    assert offsets.shape == (head.num_vertices, 3) and offsets.dtype == np.float32

    def miss(extra):
        uv, _ = cam.project(corr.points(head, head.posed(fit.expression, fit.identity, fit.eye) + extra)
                            [:MESH_POINTS], fit.camera)
        return np.sqrt(np.mean(np.sum((uv * SIZE - lm[:MESH_POINTS, :2]) ** 2, axis=1)))

    before, after = miss(0.0), miss(offsets)
    assert after < 0.4 * before
    back = head.vertices[:, 2] < -0.05
    assert np.abs(offsets[back]).max() < 1e-6
    for part in ("eyeball_left", "eyeball_right"):
        idx = head.part_vertices(part)
        assert np.ptp(offsets[idx], axis=0).max() < 1e-7


def test_shape_offsets_take_the_profile_from_the_landmarks_depth(head):
    """A nose longer than the identity basis reaches: MediaPipe's relative depth carries it into the
    offsets (a turned view sees a profile, not the landmarks' x and y). Landmarks without a depth column
    (a caller's 2-D points, padded with zeros) are read as having none, not as a flat face."""
    corr = correspondence(head)
    face = mean_face(head)
    tip = face[4].copy()
    near_tip = np.exp(-np.sum((face[:MESH_POINTS, :2] - tip[:2]) ** 2, axis=1) / (2 * 0.02 ** 2))
    face[:MESH_POINTS, 2] += 0.02 * near_tip
    lm = synthetic_landmarks(face, cam.Orbit(12, 3, 0))

    def length(p):  # the nose tip's height over the eye corners
        return p[4, 2] - p[[33, 133, 362, 263], 2].mean()

    fit = fit_landmarks(head, lm, SIZE)
    posed = head.posed(fit.expression, fit.identity, fit.eye)
    before = length(face) - length(corr.points(head, posed))
    after = length(face) - length(corr.points(head, posed + shape_offsets(head, fit, lm, SIZE)))
    assert before > 0.008 and abs(after) < 0.3 * before, (before, after)

    flat = lm.copy()
    flat[:, 2] = 0.0
    without = fit_landmarks(head, flat, SIZE)
    assert np.allclose(without.identity, fit_landmarks(head, lm[:, :2], SIZE).identity)
    assert np.allclose(shape_offsets(head, without, flat, SIZE), shape_offsets(head, without, lm[:, :2], SIZE))


def test_a_portraits_fit_takes_the_profile_the_identity_shows_only_in_depth(head):
    """An identity component the landmarks show in depth alone (the embedded model's lip fullness): a lone
    portrait's fit (identity free) recovers most of it from MediaPipe's relative depth, so the head beyond
    the landmark cloud follows the person's profile; weighed as lightly as a clip's frames, the identity
    prior held it near the mean head (0.32 of 0.8)."""
    from avatar.fit.landmark_model import landmark_model

    motion = landmark_model(head).identity[:, :MESH_POINTS]
    depth = motion[..., 2] - motion[..., 2].mean(axis=1, keepdims=True)
    flat = np.linalg.norm(motion[..., :2].reshape(len(motion), -1), axis=1)
    j = int(np.argmax(np.linalg.norm(depth, axis=1) / (flat + 1e-9)))
    assert np.linalg.norm(depth[j]) > 10 * flat[j]                     # a profile, unseen in x and y
    true = np.zeros(len(head.identity_names))
    true[j] = 0.8 * head.identity_range[1]
    lm = synthetic_landmarks(model_points(head, true), cam.Orbit(12, 3, 0), noise=1.0)
    fit = fit_landmarks(head, lm, SIZE)
    assert fit.identity[j] > 0.5 * true[j], (fit.identity[j], true[j])


# -- real portraits --------------------------------------------------------------------------------

PORTRAITS = ("vermeer_pearl_earring.jpg", "sargent_lady_agnew.jpg", "einstein_1904.jpg")


@pytest.fixture(scope="module")
def prepared_portraits(shared_dir, astronaut_prepared):
    from avatar.portrait import prepare
    from avatar.portrait.models import missing_models

    if missing_models():
        pytest.skip("MediaPipe models are not installed (make models)")
    out = {"astronaut": astronaut_prepared}
    for name in PORTRAITS:
        out[name.split(".")[0]] = prepare((shared_dir / "reference" / "portraits" / name).read_bytes())
    return out


def test_real_portraits_fit_closely_with_plausible_pose_and_expression(head, prepared_portraits):
    fits = {}
    for name, portrait in prepared_portraits.items():
        fit = fit_landmarks(head, portrait.landmarks, portrait.image.shape[0])
        fits[name] = fit
        assert fit.residual < 0.016, (name, fit.residual * SIZE)          # ~8 px of a 512 crop
        # The mouth: the astronaut's broad, parted smile saturates the head's smile blendshapes (weight 1) on the
        # closed-lip neutral, ~8 px; closed-mouth portraits fit within ~2 px.
        assert fit.errors["mouth"] < 0.017 and fit.errors["eyes"] < 0.02, (name, fit.errors)
    smile = lambda f: 0.5 * (f.expression[index_of("mouthSmileLeft")] + f.expression[index_of("mouthSmileRight")])  # noqa: E731
    assert smile(fits["astronaut"]) > 0.3
    assert smile(fits["sargent_lady_agnew"]) < 0.2 and fits["sargent_lady_agnew"].expression[index_of("jawOpen")] < 0.2
    assert 25 < abs(math.degrees(fits["vermeer_pearl_earring"].head_pose[0])) < 45
    for name in ("astronaut", "sargent_lady_agnew", "einstein_1904"):
        assert abs(math.degrees(fits[name].head_pose[0])) < 20, name


def test_the_binding_is_the_models_whichever_head_asks_first(head, monkeypatch):
    """A personalised head (an avatar's) shares its model's id: bound first, its corrected surface would
    be registered as the model's binding, so the 478 points would depend on the order calls come in."""
    from avatar.fit import correspondence as binding

    offsets = np.zeros_like(head.vertices)
    offsets[:, 0] = 0.05 * head.vertices[:, 1]       # a sheared face: the canonical face lands elsewhere
    personal = head.personalised(offsets)
    monkeypatch.setattr(binding, "_cache", {})
    first = binding.correspondence(personal)
    monkeypatch.setattr(binding, "_cache", {})
    model = binding.correspondence(head)
    assert np.array_equal(first.triangles, model.triangles) and np.allclose(first.bary, model.bary)
