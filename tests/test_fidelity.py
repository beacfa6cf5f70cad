"""The fidelity benchmark's measuring pieces (benchmarks.fidelity_metrics, observe, reenact) on known inputs."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from benchmarks import fidelity_metrics as fm

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "videos"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def centre() -> np.ndarray:
    mask = np.zeros((128, 128), bool)
    mask[24:104, 24:104] = True
    return mask


def shifted(image: np.ndarray, pixels: int) -> np.ndarray:
    return np.roll(image, pixels, axis=1)


def test_psnr_and_ssim_of_an_image_with_itself_are_perfect(photo, centre):
    assert fm.masked_psnr(photo, photo, centre) == math.inf
    assert fm.masked_ssim(photo, photo, centre) == pytest.approx(1.0)


def test_psnr_and_ssim_fall_as_the_image_moves(photo, centre):
    psnr = [fm.masked_psnr(shifted(photo, k), photo, centre) for k in (1, 3, 8)]
    ssim = [fm.masked_ssim(shifted(photo, k), photo, centre) for k in (1, 3, 8)]
    assert psnr[0] > psnr[1] > psnr[2] > 5
    assert 1.0 > ssim[0] > ssim[1] > ssim[2]


def test_psnr_only_looks_inside_the_mask(photo, centre):
    spoiled = photo.copy()
    spoiled[~centre] = 0.0
    assert fm.masked_psnr(spoiled, photo, centre) == math.inf
    assert math.isnan(fm.masked_psnr(photo, photo, np.zeros_like(centre)))  # too few pixels to score


def test_similarity_recovers_a_known_transform_and_warps_back(photo):
    angle, scale, shift = math.radians(12.0), 1.1, np.array([5.0, -3.0])
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    truth = np.array([[c, -s, shift[0]], [s, c, shift[1]]])
    points = np.random.default_rng(0).uniform(30, 100, size=(40, 2))
    estimate = fm.similarity(points, fm.apply(truth, points))
    np.testing.assert_allclose(estimate, truth, atol=1e-9)
    moved = fm.warp(photo, truth, photo.shape[:2])
    back = fm.warp(moved, fm.similarity(fm.apply(truth, points), points), photo.shape[:2])
    inner = np.zeros(photo.shape[:2], bool)
    inner[40:88, 40:88] = True
    assert fm.masked_psnr(back, photo, inner) > 25  # two bilinear resamplings, nothing else


def test_similarity_rejects_points_that_fix_nothing():
    with pytest.raises(ValueError, match="similarity"):
        fm.similarity(np.ones((5, 2)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="matching"):
        fm.similarity(np.ones((5, 2)), np.ones((4, 2)))


def test_regions_hull_chin_line_and_mask_scores():
    hull = fm.hull_mask(np.array([[10, 10], [50, 10], [50, 30], [10, 30], [30, 20]]), (64, 64))
    assert abs(int(hull.sum()) - 41 * 21) <= 41 + 21  # the rectangle, give or take its border
    above = fm.above_line((64, 64), np.array([32.0, 40.0]), np.array([0.0, -1.0]))
    assert above[:40].all() and not above[41:].any()
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :6] = True
    b[:, 3:] = True
    scores = fm.mask_scores(a, b)
    assert scores["iou"] == pytest.approx(30 / 100)
    assert scores["precision"] == pytest.approx(30 / 60)
    assert scores["recall"] == pytest.approx(30 / 70)


def test_sharpness_is_one_for_the_same_image_and_less_for_a_blurred_one(photo, centre):
    assert fm.sharpness_ratio(photo, photo, centre) == pytest.approx(1.0)
    blurred = cv2.GaussianBlur(photo, (0, 0), 2.0)
    assert fm.sharpness_ratio(blurred, photo, centre) < 0.6


def test_silhouette_holes_finds_a_hole_and_passes_a_solid_disc():
    disc = np.zeros((64, 64), np.float32)
    cv2.circle(disc, (32, 32), 20, 1.0, -1)
    assert fm.silhouette_holes(disc)["min_alpha"] == pytest.approx(1.0)
    holed = disc.copy()
    holed[30:34, 30:34] = 0.3
    holes = fm.silhouette_holes(holed)
    assert holes["min_alpha"] == pytest.approx(0.3)
    assert 0 < holes["frac_below_098"] < 0.05
    # A head the frame cuts keeps its soft rim where it leaves the frame: that is no hole.
    wide = np.zeros((64, 96), np.float32)
    cv2.circle(wide, (44, 32), 20, 1.0, -1)   # its rim runs along the frame's edge
    cut = cv2.GaussianBlur(wide, (0, 0), 1.0)[:, :64]
    assert fm.silhouette_holes(cut)["min_alpha"] > 0.98


def test_yaw_bins_and_their_medians():
    assert [fm.yaw_bin(d) for d in (0, 4.9, 5, -14, 25, 59.9, 60)] == ["0-5", "0-5", "5-15", "5-15", "25-40",
                                                                       "40-60", None]
    records = [{"bin": "0-5", "x": 1.0}, {"bin": "0-5", "x": 3.0}, {"bin": "0-5", "x": math.nan},
               {"bin": "25-40", "x": 7.0}, {"bin": None, "x": 100.0}]
    summary = fm.summarise_bins(records, ("x",))
    assert summary == {"0-5": {"frames": 3, "x": 2.0}, "25-40": {"frames": 1, "x": 7.0}}


def test_score_frame_rewards_the_target_itself_over_a_shifted_one(photo):
    matte = np.zeros(photo.shape[:2], np.float32)
    cv2.circle(matte, (64, 60), 40, 1.0, -1)
    face = fm.hull_mask(np.array([[44, 40], [84, 40], [84, 90], [44, 90]]), matte.shape)
    above = fm.above_line(matte.shape, np.array([64.0, 95.0]), np.array([0.0, -1.0]))
    points = np.array([[50.0, 55.0], [78.0, 55.0], [64.0, 80.0]])
    common = dict(target_rgb=photo, target_matte=matte, face=face, above_chin=above, target_points=points,
                  interocular=28.0)
    same = fm.score_frame(photo * matte[..., None], matte, pred_points=points, **common)
    assert same["face_psnr"] == math.inf and same["head_psnr"] == math.inf
    assert same["head_iou"] == 1.0 and same["landmark_error"] == 0.0 and same["sharpness"] == pytest.approx(1.0)
    moved = shifted(photo * matte[..., None], 6)
    off = fm.score_frame(moved, shifted(matte, 6), pred_points=points + [6.0, 0.0], **common)
    assert off["face_psnr"] < 30 and off["head_psnr"] < 30 and off["face_ssim"] < same["face_ssim"]
    assert off["head_iou"] < 0.9 and off["landmark_error"] == pytest.approx(100 * 6 / 28)


def test_read_frames_rejects_a_file_that_is_not_a_video(tmp_path):
    from benchmarks.reenact import ClipError, read_frames

    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"not a video at all")
    with pytest.raises(ClipError, match=r"clip\.mp4"):
        read_frames(bogus, step=1)


@pytest.mark.skipif(not CLIPS.is_dir(), reason="test clips are in ../shared/reference/videos")
def test_a_clip_frame_gives_a_face_with_plausible_geometry():
    from benchmarks.observe import observe
    from benchmarks.reenact import read_frames

    frames = read_frames(sorted(CLIPS.glob("*.mp4"))[0], step=100, limit=2)
    assert [i for i, _ in frames] == [0, 100] and frames[0][1].ndim == 3
    rgb = frames[0][1]
    seen = observe(rgb)
    assert seen is not None and seen.points.shape == (478, 2)
    h, w = rgb.shape[:2]
    assert 0.1 * w < seen.interocular < 0.8 * w
    _, up = seen.chin_and_up()
    assert up[1] < -0.8  # an upright talking head: the forehead is above the chin
    face = seen.face_mask((h, w))
    assert 0.03 < face.mean() < 0.6 and face[int(seen.points[1, 1]), int(seen.points[1, 0])]  # nose tip inside
    assert seen.mouth_open() >= 0.0
    assert observe(np.full_like(rgb, 127)) is None  # a grey frame has no face


@pytest.mark.skipif(not CLIPS.is_dir(), reason="test clips are in ../shared/reference/videos")
def test_reenactment_scores_a_target_against_the_baseline():
    from avatar.generators import get_generator
    from benchmarks.reenact import run_clip

    generator = get_generator("projective")
    summary, ours, base = run_clip(sorted(CLIPS.glob("*.mp4"))[0], generator, generator.head, step=200,
                                   max_targets=1)
    assert summary["targets_scored"] == 1 and len(ours) == len(base) == 1
    assert abs(summary["source_yaw"]) < 5.0  # the most frontal of the mouth-closed sampled frames
    avatar, baseline = ours[0], base[0]
    assert avatar["frame"] == baseline["frame"] != summary["source_frame"]
    assert avatar["bin"] == baseline["bin"] is not None
    for record in (avatar, baseline):
        assert 8 < record["face_psnr"] < 60 and 0 < record["face_ssim"] < 1
        assert 0 < record["head_iou"] <= 1 and record["landmark_error"] < 50
