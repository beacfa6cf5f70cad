"""The embedded head model (geometry, UV, blendshapes, identity) and the FaceVerse loader."""
from __future__ import annotations

import time

import numpy as np
import pytest
import trimesh
from head_model_helpers import (
    faceverse_dict,
    front_parts,
    surface_faces,
    uv_coverage,
    weights,
    winding_numbers,
    write_malicious_npy,
    write_npy_dict,
)

from avatar.expressions import ARKIT_NAMES
from avatar.head_model import PART_ID, PART_NAMES, HeadModel, HeadModelError, embedded_head_model, load_faceverse
from avatar.head_model.embedded import embedded_head_model as cached_builder
from avatar.head_model.geometry import DRAPE_SINK, _eye_wrap, build_rig, drape_ellipse, eye_centre
from avatar.head_model.shape import LID_RADIUS
from avatar.synthetic import prior_texture, vertex_colours

MM = 1e-3


@pytest.fixture(scope="module")
def model() -> HeadModel:
    return embedded_head_model()


def life(model: HeadModel, a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) * model.metres_per_unit)


# -- geometry -----------------------------------------------------------------------------------------

def test_skin_is_closed_and_outward(model):
    skin = trimesh.Trimesh(model.vertices, surface_faces(model), process=False)
    assert skin.is_watertight
    assert skin.is_winding_consistent
    assert skin.volume > 0
    for part in ("eyeball_left", "eyeball_right", "tongue", "teeth"):
        mesh = trimesh.Trimesh(model.vertices, model.faces[model.face_part == PART_ID[part]], process=False)
        assert mesh.is_watertight and mesh.volume > 0, part


def test_counts_types_and_box(model):
    n_skin = len(model.part_vertices("skin"))
    assert 5000 <= n_skin <= 20000
    assert model.vertices.dtype == np.float32 and model.faces.dtype == np.int32
    assert model.expression_basis.dtype == np.float32 and model.identity_basis.dtype == np.float32
    assert {PART_NAMES[i] for i in np.unique(model.vertex_part)} == set(PART_NAMES)
    assert {PART_NAMES[i] for i in np.unique(model.face_part)} == set(PART_NAMES)
    # The eye sacks are skin; the typed masks say which faces and vertices line them.
    sacks = model.part_masks.eye_sack_faces
    assert sacks.dtype == bool and 0 < sacks.sum() < 0.05 * len(model.faces)
    assert np.all(model.face_part[sacks] == PART_ID["skin"])
    assert np.all(model.vertex_part[model.part_masks.eye_sack_vertices] == PART_ID["skin"])
    assert model.model_id == "embedded-v1"
    for expr in (None, weights(jawOpen=1, tongueOut=1), weights(cheekPuff=1, mouthLeft=1, jawLeft=1)):
        for ident in (-np.ones(len(model.identity_names)), np.ones(len(model.identity_names))):
            v = model.posed(expr, ident)
            assert np.abs(v).max() < 0.5
    width = model.vertices[:, 0].max() - model.vertices[:, 0].min()
    assert 0.14 < width * model.metres_per_unit < 0.19    # life-size head including ears


def test_inner_parts_sit_in_their_pockets(model):
    # Mouth cavity and eye sacks are pockets of the outside world: their contents must not be inside
    # the flesh (winding number 0 against the closed skin), yet lie within the head's outer shell.
    skin = surface_faces(model)
    shell = model.faces[(model.face_part == PART_ID["skin"]) & ~model.part_masks.eye_sack_faces]
    for part in ("tongue", "teeth", "eyeball_left", "eyeball_right"):
        pts = model.vertices[model.part_vertices(part)[::7]]
        assert np.abs(winding_numbers(model.vertices, skin, pts)).max() < 0.5, part
        if part in ("tongue", "teeth"):
            assert winding_numbers(model.vertices, shell, pts).min() > 0.8, part


def test_mirror_map_is_an_exact_reflection(model):
    mirror = model.mirror
    assert np.array_equal(mirror[mirror], np.arange(model.num_vertices))
    reflected = model.vertices[mirror] * np.array([-1, 1, 1], np.float32)
    assert np.abs(reflected - model.vertices).max() < 1e-6


def test_landmarks_are_named_and_sided(model):
    v, lm = model.vertices, model.landmarks
    required = ["eye_outer_left", "eye_inner_left", "eye_outer_right", "eye_inner_right", "pupil_left",
                "pupil_right", "brow_left", "brow_right", "nose_tip", "mouth_corner_left", "mouth_corner_right",
                "lip_upper", "lip_lower", "chin", "ear_left", "ear_right"]
    assert set(required) <= set(lm)
    for name in required:
        if name.endswith("_left"):
            assert v[lm[name], 0] > 0, name
            assert v[lm[name.replace("_left", "_right")], 0] < 0, name
    assert v[lm["nose_tip"], 2] == v[:, 2].max()
    assert v[lm["eye_outer_left"], 0] > v[lm["eye_inner_left"], 0]
    assert v[lm["brow_left"], 1] > v[lm["pupil_left"], 1] > v[lm["nose_tip"], 1] > v[lm["lip_upper"], 1]
    assert v[lm["lip_upper"], 1] > v[lm["lip_lower"], 1] > v[lm["chin"], 1]
    assert model.vertex_part[lm["pupil_left"]] == PART_ID["eyeball_left"]
    np.testing.assert_allclose(np.linalg.norm(model.vertices[model.part_vertices("eyeball_left")]
                                              - model.eye_centers[0], axis=1), model.eyeball_radius,
                               atol=1e-5)


# -- UV --------------------------------------------------------------------------------------------------

def test_uv_in_unit_square_and_overlap_free(model):
    uv, fuv = model.uv, model.faces_uv
    assert uv.min() >= 0 and uv.max() <= 1
    count = uv_coverage(uv, fuv, res=1024)
    assert count.max() <= 1
    t = uv[fuv].astype(np.float64)
    area = 0.5 * np.abs((t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1])
                        - (t[:, 2, 0] - t[:, 0, 0]) * (t[:, 1, 1] - t[:, 0, 1]))
    assert abs(area.sum() - count.sum() / 1024 ** 2) < 0.01   # summed areas == covered area: no overlap


def test_face_is_laid_out_as_seen_from_the_front(model):
    luv = model.landmarks_uv
    assert luv["eye_outer_left"][0] > luv["nose_tip"][0] > luv["eye_outer_right"][0]
    assert luv["mouth_corner_left"][0] > luv["mouth_corner_right"][0]
    assert luv["brow_left"][1] > luv["nose_tip"][1] > luv["lip_upper"][1] > luv["chin"][1]
    u0, v0, u1, v1 = model.face_uv_rect
    for name in ("eye_outer_left", "eye_outer_right", "nose_tip", "mouth_corner_left", "chin", "brow_left"):
        u, v = luv[name]
        assert u0 <= u <= u1 and v0 <= v <= v1, name


# -- blendshapes ---------------------------------------------------------------------------------------

def test_each_blendshape_stays_in_its_region(model):
    n = model.num_vertices
    for k, name in enumerate(ARKIT_NAMES):
        energy = (model.expression_basis[k].astype(np.float64) ** 2).sum(axis=1)
        region = model.expression_regions[k]
        assert energy.sum() > 0, name
        assert energy[region].sum() >= 0.9 * energy.sum(), name
        assert 0 < region.sum() < 0.5 * n, name


def test_left_right_pairs_mirror(model):
    mirror = model.mirror
    flip = np.array([-1, 1, 1], np.float32)
    pairs = [(k, ARKIT_NAMES.index(n[:-4] + "Right")) for k, n in enumerate(ARKIT_NAMES) if n.endswith("Left")]
    assert len(pairs) == sum(n.endswith("Left") for n in ARKIT_NAMES) >= 20
    for left, right in pairs:
        dl, dr = model.expression_basis[left], model.expression_basis[right]
        err = np.abs(dl - dr[mirror] * flip).max()
        assert err <= 0.01 * np.linalg.norm(dl, axis=1).max(), ARKIT_NAMES[left]


def test_jaw_open_parts_the_lips(model):
    lm = model.landmarks
    rest = model.vertices
    assert life(model, rest[lm["lip_upper"]], rest[lm["lip_lower"]]) < 2 * MM
    opened = model.posed(weights(jawOpen=1))
    assert life(model, opened[lm["lip_upper"]], opened[lm["lip_lower"]]) >= 10 * MM
    assert opened[lm["chin"], 1] < rest[lm["chin"], 1]
    lower_teeth = model.part_vertices("teeth")[np.abs(model.expression_basis[ARKIT_NAMES.index("jawOpen")]
                                                      [model.part_vertices("teeth")]).sum(1) > 0]
    assert len(lower_teeth) > 0
    closed = model.posed(weights(jawOpen=1, mouthClose=1))
    assert life(model, closed[lm["lip_upper"]], closed[lm["lip_lower"]]) < 3 * MM


@pytest.mark.parametrize("side", ["Left", "Right"])
def test_blink_closes_lids_outside_the_eyeball(model, side):
    lm = model.landmarks
    s = side.lower()
    eye = 0 if side == "Left" else 1
    rest = model.vertices
    assert life(model, rest[lm[f"eye_top_{s}"]], rest[lm[f"eye_bottom_{s}"]]) > 5 * MM
    shut = model.posed(weights(**{f"eyeBlink{side}": 1}))
    assert life(model, shut[lm[f"eye_top_{s}"]], shut[lm[f"eye_bottom_{s}"]]) < 1 * MM
    skin = model.part_vertices("skin")
    radius = model.eyeball_radius
    for pose in (rest, shut, model.posed(weights(**{f"eyeWide{side}": 1, f"eyeSquint{side}": 1}))):
        assert np.linalg.norm(pose[skin] - model.eye_centers[eye], axis=1).min() > radius


def test_eye_sacks_clear_the_eyeballs(model):
    # Sample every eye-sack triangle (not just its corners): no part of the lining may cut the eyeball.
    faces = model.faces[model.part_masks.eye_sack_faces]
    bary = np.array([(a, b, 1 - a - b) for a in np.linspace(0, 1, 7) for b in np.linspace(0, 1, 7) if a + b <= 1])
    radius = model.eyeball_radius
    for pose in (model.vertices, model.posed(weights(eyeBlinkLeft=1, eyeBlinkRight=1)),
                 model.posed(weights(eyeWideLeft=1, eyeWideRight=1))):
        pts = np.einsum("kj,fjc->fkc", bary, pose[faces].astype(np.float64)).reshape(-1, 3)
        for centre in model.eye_centers:
            assert np.linalg.norm(pts - centre, axis=1).min() > radius



@pytest.mark.parametrize("side", [1, -1])
def test_the_eye_drape_lays_the_lids_on_the_eye_and_sinks_nothing_beyond(side):
    # Skin standing off the eye beyond its opening keeps its place: pulled onto the lid sphere, the brow and
    # cheek round the eye sank into a trench that read as goggles in a lit engine render. Skin inside the
    # sphere is lifted onto it, and the lids over the opening rest on it.
    centre = eye_centre(side)
    gx, gy = np.meshgrid(np.linspace(-0.12, 0.12, 49), np.linspace(-0.1, 0.1, 41))
    for depth in (0.03, 0.07):                                 # inside the lid sphere, then standing off it
        plane = np.stack([centre[0] + gx, centre[1] + gy, np.full_like(gx, centre[2] + depth)], -1).reshape(-1, 3)
        ellipse = drape_ellipse(plane, centre)
        before = np.linalg.norm(plane - centre, axis=1)
        after = np.linalg.norm(_eye_wrap(plane, side) - centre, axis=1)
        assert after.min() >= LID_RADIUS - 1e-9
        beyond = (ellipse >= DRAPE_SINK[1]) & (before > LID_RADIUS)
        assert (before - after)[beyond].max() < 1e-9              # never sunk toward the eye
        opening = ellipse < DRAPE_SINK[0]
        assert np.abs(after - LID_RADIUS)[opening].max() < 0.003


def test_personalised_lids_stay_clear_of_the_eyeball(model):
    """A shape correction that sinks the left lids into the eyeball (as portrait fits did, down to 0.70 of the
    radius) comes out with the skin at least as far from the eyeball's centre as the base model keeps it, at
    rest and at full blink, wide or squint; the eyeball itself moves rigidly, and the rest of the head is as
    the offsets say."""
    radius, centre = model.eyeball_radius, model.eye_centers[0]
    skin = model.part_vertices("skin")
    base_clearance = np.linalg.norm(model.vertices[skin] - centre, axis=1).min()
    shift = np.array([0.002, -0.001, 0.003], np.float32)
    offsets = np.zeros_like(model.vertices)
    lids = skin[np.linalg.norm(model.vertices[skin] - centre, axis=1) < 1.6 * radius]
    offsets[lids] = 0.3 * (centre - model.vertices[lids]) + shift
    ball = model.part_vertices("eyeball_left")
    offsets[ball] = shift
    assert np.linalg.norm(model.vertices[lids] + offsets[lids] - centre - shift, axis=1).min() < 0.8 * radius
    head = model.personalised(offsets)
    np.testing.assert_allclose(head.eye_centers[0], centre + shift, atol=1e-7)
    np.testing.assert_array_equal(head.vertices[ball], (model.vertices[ball] + shift).astype(np.float32))
    for pose in (None, weights(eyeBlinkLeft=1), weights(eyeWideLeft=1, eyeSquintLeft=1), weights(eyeSquintLeft=1)):
        v = head.posed(pose)
        assert np.linalg.norm(v[skin] - head.eye_centers[0], axis=1).min() >= base_clearance * (1 - 1e-5), pose
    # Away from that eye nothing changes: neither the corrected mesh nor any blendshape.
    far = np.ones(model.num_vertices, bool)
    far[skin[np.linalg.norm(model.vertices[skin] - centre, axis=1) < 3 * radius]] = False
    np.testing.assert_array_equal(head.vertices[far], (model.vertices + offsets)[far])
    np.testing.assert_array_equal(head.expression_basis[:, far], model.expression_basis[:, far])
    assert head.base_model is model

def test_a_personalised_blink_shuts_the_eye(model):
    """A correction that opens the left eye wider than the model's (lids pulled apart about the eye's
    centre, as a portrait with wide eyes fits) still shuts on a blink: the upper lid lands on the corrected
    lower lid, and a camera in front sees no eyeball through the closed lids."""
    import torch

    from avatar import camera as cam
    from avatar import raster

    radius, centre = model.eyeball_radius, model.eye_centers[0]
    skin = model.part_vertices("skin")
    offsets = np.zeros_like(model.vertices)
    rel = model.vertices[skin] - centre
    near = np.clip(2.0 - np.linalg.norm(rel, axis=1) / radius, 0, 1)        # fades out by 2 radii
    offsets[skin, 1] = 0.25 * rel[:, 1] * near
    head = model.personalised(offsets)
    camera = cam.camera_vector(fov_deg=5.0, shift=(float(centre[0]), float(centre[1]), 0.0))
    faces = torch.from_numpy(head.faces.astype(np.int32))
    ball = PART_ID["eyeball_left"]

    def eyeball_pixels(pose: np.ndarray | None) -> int:
        vertices = torch.from_numpy(head.posed(pose).astype(np.float32))
        face = raster.rasterize(raster.perspective_clip(vertices, camera), faces, 256, 256)[..., 3].numpy()
        shown = face[face > 0].astype(np.int64) - 1
        return int((head.face_part[shown] == ball).sum())

    assert eyeball_pixels(None) > 2000
    assert eyeball_pixels(weights(eyeBlinkLeft=1)) == 0


def test_eye_look_rotates_the_eyeball(model):
    radius = model.eyeball_radius
    for side, eye in (("Left", 0), ("Right", 1)):
        pupil = model.landmarks[f"pupil_{side.lower()}"]
        ids = model.part_vertices(f"eyeball_{side.lower()}")
        centre = model.eye_centers[eye]
        toward_nose = -1.0 if side == "Left" else 1.0
        for name, axis, sign in (("In", 0, toward_nose), ("Out", 0, -toward_nose), ("Up", 1, 1.0), ("Down", 1, -1.0)):
            v = model.posed(weights(**{f"eyeLook{name}{side}": 1}))
            move = v[pupil] - model.vertices[pupil]
            assert np.sign(move[axis]) == sign, name + side
            np.testing.assert_allclose(np.linalg.norm(v[ids] - centre, axis=1), radius, atol=1e-5)
            gaze0 = (model.vertices[pupil] - centre) / radius
            gaze1 = (v[pupil] - centre) / radius
            angle = np.degrees(np.arccos(np.clip(gaze0 @ gaze1, -1, 1)))
            assert 20 <= angle <= 30


def test_tongue_out_passes_the_lips(model):
    v = model.posed(weights(tongueOut=1))
    tongue = model.part_vertices("tongue")
    assert v[tongue, 2].max() > v[model.landmarks["lip_lower"], 2]


def test_named_shapes_move_the_right_way(model):
    lm = model.landmarks
    rest = model.vertices

    def moved(name, landmark):
        return model.posed(weights(**{name: 1}))[lm[landmark]] - rest[lm[landmark]]

    assert moved("mouthSmileLeft", "mouth_corner_left")[1] > 0
    assert moved("mouthSmileLeft", "mouth_corner_left")[0] > 0
    assert moved("mouthFrownLeft", "mouth_corner_left")[1] < 0
    assert np.allclose(moved("mouthSmileLeft", "mouth_corner_right"), 0)
    assert moved("browOuterUpLeft", "brow_left")[1] > 0
    assert moved("browDownLeft", "brow_left")[1] < 0
    assert moved("mouthLeft", "lip_upper")[0] > 0 and moved("mouthRight", "lip_upper")[0] < 0
    assert moved("jawLeft", "chin")[0] > 0 and moved("jawForward", "chin")[2] > 0
    assert moved("mouthPucker", "lip_upper")[2] > 0
    assert moved("eyeWideLeft", "eye_top_left")[1] > 0
    assert moved("eyeSquintLeft", "eye_bottom_left")[1] > 0
    cheek = moved("cheekPuff", "cheek_left")
    assert cheek[0] > 0 or cheek[2] > 0


# -- mouth and eyes ------------------------------------------------------------------------------------

def test_mouth_cavity_is_a_part_behind_the_lips(model):
    v, lm = model.vertices, model.landmarks
    cavity = model.part_vertices("mouth_cavity")
    faces = model.part_faces("mouth_cavity")
    assert len(cavity) > 100 and len(faces) > 200
    lips_z = min(v[lm["lip_upper"], 2], v[lm["lip_lower"], 2])
    assert v[cavity, 2].max() < lips_z
    # It lines the inside of the mouth: within the mouth's width, continuing the lip rim inward.
    half_width = 0.5 * abs(v[lm["mouth_corner_left"], 0] - v[lm["mouth_corner_right"], 0])
    assert np.abs(v[cavity, 0]).max() <= half_width * 1.2
    rim = np.unique(model.faces[faces])
    rim = rim[model.vertex_part[rim] == PART_ID["skin"]]
    assert lm["lip_upper"] in rim and lm["lip_lower"] in rim and lm["mouth_corner_left"] in rim


def test_jaw_open_shows_the_mouth_interior_from_the_front(model):
    pixel_mm2 = (1.0 / 512 * model.metres_per_unit * 1e3) ** 2
    rest = front_parts(model, model.vertices)
    opened = front_parts(model, model.posed(weights(jawOpen=1)))
    inside = [PART_ID[p] for p in ("mouth_cavity", "teeth", "tongue")]
    rest_mm2 = np.isin(rest, inside).sum() * pixel_mm2
    open_mm2 = np.isin(opened, inside).sum() * pixel_mm2
    assert rest_mm2 < 60            # closed lips: at most the thin gap between them
    assert open_mm2 > 500 and open_mm2 > 10 * rest_mm2
    assert (opened == PART_ID["mouth_cavity"]).sum() * pixel_mm2 > 300
    assert (opened == PART_ID["tongue"]).any() and (opened == PART_ID["teeth"]).any()
    # The eyes show eyeball through the lids, not the sacks behind them.
    for part in ("eyeball_left", "eyeball_right"):
        assert (rest == PART_ID[part]).sum() * pixel_mm2 > 100, part


def test_eyeball_uv_gives_the_visible_front_most_of_its_island(model):
    for eye, side in enumerate(("left", "right")):
        faces = model.part_faces(f"eyeball_{side}")
        centre = model.eye_centers[eye]
        gaze = model.vertices[model.landmarks[f"pupil_{side}"]] - centre
        centroid = model.vertices[model.faces[faces]].mean(axis=1) - centre
        angle = np.degrees(np.arccos(centroid @ gaze / np.linalg.norm(centroid, axis=1) / np.linalg.norm(gaze)))
        t = model.uv[model.faces_uv[faces]].astype(np.float64)
        area = 0.5 * np.abs((t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1])
                            - (t[:, 2, 0] - t[:, 0, 0]) * (t[:, 1, 1] - t[:, 0, 1]))
        # The front 45 degrees are ~15 % of the sphere's area; they get at least a quarter of the island.
        assert area[angle < 45].sum() >= 0.25 * area.sum(), side


def _luma(rgb):
    return rgb @ np.array([0.2126, 0.7152, 0.0722])


def test_region_colour_priors_are_plausible(model):
    skin = np.array([0.78, 0.6, 0.5])
    c = vertex_colours(model, skin).astype(np.float64)
    v = model.vertices
    teeth = model.part_vertices("teeth")
    front = teeth[v[teeth, 2] > np.percentile(v[teeth, 2], 80)]
    back = teeth[v[teeth, 2] < np.percentile(v[teeth, 2], 20)]
    incisor = c[front].mean(0)
    assert 0.7 < incisor.max() < 0.95                       # off-white, not paper white
    assert incisor[0] >= incisor[1] >= incisor[2]           # slightly warm
    assert incisor.max() - incisor.min() < 0.2              # but not yellow
    assert _luma(c[back].mean(0)) < 0.8 * _luma(incisor)    # darker toward the back
    tongue = c[model.part_vertices("tongue")].mean(0)
    assert tongue[0] > tongue[1] and tongue[0] > tongue[2] and 0.3 < tongue[0] < 0.75
    assert tongue[1] / tongue[0] > 0.35                     # muted, not cartoon red
    cavity = model.part_vertices("mouth_cavity")
    depth = v[cavity, 2].max() - v[cavity, 2]
    assert _luma(c[cavity]).max() < 0.25
    assert _luma(c[cavity[depth > 0.9 * depth.max()]]).max() < 0.06    # near black at the throat
    assert np.all(c[cavity, 0] >= c[cavity, 2])                        # red-brown, never blue
    for eye, side in enumerate(("left", "right")):
        ids = model.part_vertices(f"eyeball_{side}")
        rel = v[ids] - model.eye_centers[eye]
        gaze = v[model.landmarks[f"pupil_{side}"]] - model.eye_centers[eye]
        angle = np.degrees(np.arccos(np.clip(rel @ gaze / np.linalg.norm(rel, axis=1) / np.linalg.norm(gaze), -1, 1)))
        sclera = c[ids[angle > 45]].mean(0)
        iris = c[ids[(angle > 15) & (angle < 25)]].mean(0)
        assert 0.7 < sclera.min() and sclera.max() < 0.93 and sclera.max() - sclera.min() < 0.1
        assert 0.08 < _luma(iris) < 0.5 * _luma(sclera)
        assert _luma(c[model.landmarks[f"pupil_{side}"]]) < 0.06


def test_prior_texture_paints_a_round_iris_with_enough_texels(model):
    tex = prior_texture(model, (0.78, 0.6, 0.5), resolution=256).numpy()
    for side in ("left", "right"):
        u0, v0, u1, v1 = model.uv_islands[f"eyeball_{side}"]
        box = tex[int(v0 * 256):int(np.ceil(v1 * 256)), int(u0 * 256):int(np.ceil(u1 * 256))]
        dark = _luma(box) < 0.3                   # iris and pupil
        rows, cols = np.nonzero(dark)
        assert dark.sum() >= 60, side             # the iris is more than a smudge of texels
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert 0.75 < height / width < 1.33, side


def test_eye_rotation_centres_follow_the_identity(model):
    ident = np.zeros(len(model.identity_names), np.float32)
    ident[model.identity_names.index("eye_spacing")] = 1
    centres = model.eye_centers_for(ident)
    assert centres[0, 0] > model.eye_centers[0, 0] and centres[1, 0] < model.eye_centers[1, 0]
    v = model.posed(None, ident, eye=np.array([0.2, 0.3, -0.1, 0.25]))
    for eye, side in enumerate(("left", "right")):
        np.testing.assert_allclose(np.linalg.norm(v[model.part_vertices(f"eyeball_{side}")] - centres[eye], axis=1),
                                   model.eyeball_radius, atol=1e-5)


# -- identity ------------------------------------------------------------------------------------------

def test_identity_parameters(model):
    assert {"head_width", "face_height", "jaw_width", "nose_length", "eye_spacing"} <= set(model.identity_names)
    mirror = model.mirror
    for k, name in enumerate(model.identity_names):
        d = model.identity_basis[k]
        assert np.isfinite(d).all() and np.abs(d).max() > 0, name
        assert np.abs(d - d[mirror] * np.array([-1, 1, 1], np.float32)).max() < 1e-6, name
    ident = np.zeros(len(model.identity_names), np.float32)
    ident[model.identity_names.index("eye_spacing")] = 1
    v = model.identity_vertices(ident)
    lm = model.landmarks
    assert v[lm["pupil_left"], 0] - v[lm["pupil_right"], 0] > model.vertices[lm["pupil_left"], 0] * 2
    with pytest.raises(HeadModelError):
        model.identity_vertices(np.ones(2))


# -- caching and determinism ---------------------------------------------------------------------------

def test_cached_and_deterministic(model):
    assert embedded_head_model() is model
    start = time.perf_counter()
    fresh = cached_builder.__wrapped__()
    seconds = time.perf_counter() - start
    print(f"embedded head build: {seconds:.2f} s, {fresh.num_vertices} vertices, {len(fresh.faces)} faces")
    for field in ("vertices", "faces", "uv", "faces_uv", "vertex_part", "face_part", "identity_basis",
                  "expression_basis", "expression_regions", "eye_centers"):
        assert getattr(fresh, field).tobytes() == getattr(model, field).tobytes(), field
    assert fresh.landmarks == model.landmarks and fresh.landmarks_uv == model.landmarks_uv
    for array in ("mirror", "jaw_hinge", "eye_center_identity_basis"):
        assert getattr(fresh, array).tobytes() == getattr(model, array).tobytes(), array
    assert np.array_equal(fresh.part_masks.eye_sack_faces, model.part_masks.eye_sack_faces)
    assert not model.vertices.flags.writeable
    a, b = build_rig(), build_rig()
    for field in ("vertices", "faces", "uv", "faces_uv", "vertex_part", "face_part", "mouth_lower", "lid_reach"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes(), field


# -- FaceVerse loader ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faceverse_file(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("fv") / "faceverse_v3_1.npy"
    return write_npy_dict(path, faceverse_dict(model))


def test_faceverse_round_trip(faceverse_file, model):
    fv = load_faceverse(faceverse_file)
    scale = fv.faceverse.scale
    assert fv.faceverse.sha256 and fv.faceverse.path == str(faceverse_file)
    assert fv.faceverse.mediapipe_keypoints.shape == (478,) and fv.mirror is None
    assert np.abs(fv.vertices).max() <= 0.5
    assert np.array_equal(fv.faces, model.faces) and np.array_equal(fv.faces_uv, model.faces_uv)
    np.testing.assert_allclose(fv.uv, model.uv, atol=1e-6)
    # Same shape as the source up to the documented translate + uniform scale.
    src = model.vertices * 10.0
    np.testing.assert_allclose(fv.vertices / scale - (fv.vertices / scale).mean(0), src - src.mean(0), atol=1e-3)
    np.testing.assert_allclose(fv.expression_basis, model.expression_basis * 10.0 * scale, atol=1e-6)
    assert fv.identity_names[:2] == ("id_000", "id_001") and fv.identity_basis.shape[0] == 6
    assert np.array_equal(fv.vertex_part == PART_ID["eyeball_left"], model.vertex_part == PART_ID["eyeball_left"])
    for name in ("nose_tip", "lip_upper", "mouth_corner_left", "eye_outer_right", "brow_left", "chin"):
        assert fv.landmarks[name] == model.landmarks[name], name
    assert fv.landmarks["pupil_left"] == model.landmarks["pupil_left"]
    np.testing.assert_allclose(fv.eye_centers[0] / scale - fv.eye_centers[1] / scale,
                               (model.eye_centers[0] - model.eye_centers[1]) * 10.0, atol=1e-3)
    ipd = np.linalg.norm(fv.eye_centers[0] - fv.eye_centers[1]) * fv.metres_per_unit
    assert abs(ipd - 0.063) < 1e-6
    jaw = ARKIT_NAMES.index("jawOpen")
    assert fv.expression_regions[jaw][model.landmarks["lip_lower"]]
    assert not fv.expression_regions[jaw][model.landmarks["head_top"]]
    v = fv.posed(weights(jawOpen=1), np.zeros(6))
    assert v[fv.landmarks["lip_lower"], 1] < fv.vertices[fv.landmarks["lip_lower"], 1]
    # Region priors work without the embedded head's typed extras (no sack masks, no mirror map).
    colours = vertex_colours(fv, (0.78, 0.6, 0.5))
    assert np.isfinite(colours).all()
    assert _luma(colours[fv.landmarks["pupil_left"]]) < 0.06


def test_faceverse_upside_down_file_is_turned_upright(tmp_path, model, faceverse_file):
    upright = load_faceverse(faceverse_file)
    path = write_npy_dict(tmp_path / "flipped.npy", faceverse_dict(model, upside_down=True))
    fv = load_faceverse(path)
    np.testing.assert_allclose(fv.vertices, upright.vertices, atol=1e-5)
    np.testing.assert_allclose(fv.expression_basis, upright.expression_basis, atol=1e-6)


def test_faceverse_refuses_code_in_the_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = write_malicious_npy(tmp_path / "evil.npy", marker)
    with pytest.raises(HeadModelError, match=r"(posix|os|nt)\.system") as err:
        load_faceverse(path)
    assert "evil.npy" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("mutate, key", [
    (lambda d: d.pop("exBase_52"), "exBase_52"),
    (lambda d: d.pop("meanshape"), "meanshape"),
    (lambda d: d.update(exBase_52=d["exBase_52"][:, :40]), "exBase_52"),
    (lambda d: d.update(idBase=d["idBase"][:-3]), "idBase"),
    (lambda d: d.update(tri=d["tri"] + 10 ** 6), "tri"),
    (lambda d: (d.pop("uv"), d.pop("tri_uv")), "uv_per_ver"),
    (lambda d: d.update(ver_inds=np.array([5, 2, 1])), "ver_inds"),
    (lambda d: d.update(meanshape=np.full_like(d["meanshape"], np.nan)), "meanshape"),
])
def test_faceverse_bad_keys_are_named(tmp_path, model, mutate, key):
    data = faceverse_dict(model, n_identity=2)
    mutate(data)
    path = write_npy_dict(tmp_path / "bad.npy", data)
    with pytest.raises(HeadModelError, match=key) as err:
        load_faceverse(path)
    assert "bad.npy" in str(err.value)


def test_faceverse_rejects_non_model_files(tmp_path):
    with pytest.raises(HeadModelError, match="no such file"):
        load_faceverse(tmp_path / "missing.npy")
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros((3, 3)))
    with pytest.raises(HeadModelError, match=r"plain\.npy"):
        load_faceverse(plain)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy at all")
    with pytest.raises(HeadModelError, match=r"junk\.npy"):
        load_faceverse(junk)
    listy = write_npy_dict(tmp_path / "list.npy", np.array([1, 2, 3], dtype=object))
    with pytest.raises(HeadModelError, match="dict"):
        load_faceverse(listy)
