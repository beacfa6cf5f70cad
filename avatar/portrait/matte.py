"""Foreground (head, hair, neck) matte of the aligned crop, from GrabCut seeded by the face geometry."""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

# GrabCut runs coarse-to-fine: the whole crop at COARSE_SIDE, then only a band around that boundary at
# FINE_SIDE. Max-flow over a large region of weak colour evidence takes tens of seconds at 256 px (a flat
# image costs ~35 s); the band keeps the fine pass small whatever the picture.
COARSE_SIDE = 128
FINE_SIDE = 256
COARSE_ITERATIONS = 5
FINE_ITERATIONS = 2
BAND_RADIUS = 3  # fine pixels either side of the coarse boundary left for the fine pass to decide
GRABCUT_SEED = 0x5EED
FEATHER_SIGMA = 2.0  # pixels of the 512 crop
# Below this histogram distance between certain-face and certain-background colours (Bhattacharyya, worst
# channel) GrabCut has nothing to separate on and the head-shape prior is used instead.
MIN_COLOUR_SEPARATION = 0.15
PRIOR_FEATHER_SIGMA = 6.0
SEED_FEATURES = ("eye_left", "eye_right", "mouth_center")


def foreground_matte(crop: np.ndarray, features: dict) -> tuple[np.ndarray, str]:
    """(S, S) float32 matte in [0, 1] for an aligned RGB crop, and how it was made ("grabcut" | "prior")."""
    size = crop.shape[0]
    coarse_img = cv2.resize(crop, (COARSE_SIDE, COARSE_SIDE), interpolation=cv2.INTER_AREA)
    coarse_seeds = seed_mask(COARSE_SIDE, _scaled(features, COARSE_SIDE / size))
    if colour_separation(coarse_img, coarse_seeds) < MIN_COLOUR_SEPARATION:
        prior = np.isin(seed_mask(size, features), (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
        return _feather(prior, PRIOR_FEATHER_SIGMA), "prior"

    coarse = _grabcut(coarse_img, coarse_seeds, COARSE_ITERATIONS)
    coarse = _main_component(coarse, features, COARSE_SIDE / size)

    fine_img = cv2.resize(crop, (FINE_SIDE, FINE_SIDE), interpolation=cv2.INTER_AREA)
    guess = cv2.resize(coarse.astype(np.uint8), (FINE_SIDE, FINE_SIDE), interpolation=cv2.INTER_NEAREST) > 0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BAND_RADIUS + 1, 2 * BAND_RADIUS + 1))
    band = (cv2.dilate(guess.astype(np.uint8), kernel) > 0) & ~(cv2.erode(guess.astype(np.uint8), kernel) > 0)
    fine_seeds = np.where(guess, cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
    fine_seeds[band] = np.where(guess[band], cv2.GC_PR_FGD, cv2.GC_PR_BGD)
    certain = seed_mask(FINE_SIDE, _scaled(features, FINE_SIDE / size))
    fine_seeds[certain == cv2.GC_FGD] = cv2.GC_FGD
    fine_seeds[certain == cv2.GC_BGD] = cv2.GC_BGD
    fine = _grabcut(fine_img, fine_seeds, FINE_ITERATIONS)
    fine = _main_component(fine, features, FINE_SIDE / size)
    return _feather(cv2.resize(fine.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR),
                    FEATHER_SIGMA), "grabcut"


def colour_separation(image: np.ndarray, seeds: np.ndarray) -> float:
    """How differently coloured the certain-face and certain-background seeds are (0 = identical)."""
    fg = (seeds == cv2.GC_FGD).astype(np.uint8)
    bg = (seeds == cv2.GC_BGD).astype(np.uint8)
    worst = 0.0
    for channel in range(3):
        h_fg = cv2.calcHist([image], [channel], fg, [32], [0, 256])
        h_bg = cv2.calcHist([image], [channel], bg, [32], [0, 256])
        worst = max(worst, float(cv2.compareHist(h_fg, h_bg, cv2.HISTCMP_BHATTACHARYYA)))
    return worst


def seed_mask(side: int, feats: dict) -> np.ndarray:
    """GrabCut labels: inner face certain, head ellipse and body probable, frame top and sides certain background."""
    eye_l, eye_r, mouth = feats["eye_left"], feats["eye_right"], feats["mouth_center"]
    eye_mid = 0.5 * (eye_l + eye_r)
    d = max(float(np.hypot(*(eye_l - eye_r))), 4.0 * side / 512)
    em = max(float(mouth[1] - eye_mid[1]), 0.5 * d)
    cx = float(eye_mid[0])

    mask = np.full((side, side), cv2.GC_PR_BGD, np.uint8)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)

    # Head including hair: wider than the face and reaching well above the brows.
    head_cy = eye_mid[1] - 0.15 * d
    head = ((xx - cx) / (1.25 * d)) ** 2 + ((yy - head_cy) / (1.75 * d)) ** 2 <= 1.0
    # Neck straight below the mouth, then shoulders widening toward the bottom of the frame.
    shoulder_top = mouth[1] + 1.0 * d
    body_half_width = 0.7 * d + 1.5 * np.maximum(yy - shoulder_top, 0.0)
    body = (np.abs(xx - cx) <= body_half_width) & (yy >= mouth[1])

    border = max(2, int(round(0.03 * side)))
    frame = np.zeros((side, side), bool)
    frame[:border, :] = True
    upper = int(round(0.6 * side))
    frame[:upper, :border] = True
    frame[:upper, -border:] = True
    corner = 0.22 * side
    frame |= (xx + yy < corner) | ((side - 1 - xx) + yy < corner)
    mask[frame & ~head] = cv2.GC_BGD
    mask[(head | body) & ~frame] = cv2.GC_PR_FGD

    inner_cy = 0.5 * (eye_mid[1] + mouth[1])
    inner = ((xx - cx) / (0.6 * d)) ** 2 + ((yy - inner_cy) / (0.5 * em + 0.25 * d)) ** 2 <= 1.0
    mask[inner] = cv2.GC_FGD
    return mask


def alpha_matte(alpha_crop: np.ndarray) -> np.ndarray:
    """The file's own transparency, warped into the crop, is a better matte than any segmentation."""
    return np.clip(alpha_crop.astype(np.float32) / 255.0, 0.0, 1.0)


def _grabcut(image: np.ndarray, seeds: np.ndarray, iterations: int) -> np.ndarray:
    mask = seeds.copy()
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(GRABCUT_SEED)  # GrabCut's GMM initialisation draws from OpenCV's RNG
    cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def _scaled(features: dict, f: float) -> dict:
    return {k: np.asarray(features[k], dtype=np.float64) * f for k in SEED_FEATURES}


def _main_component(fg: np.ndarray, features: dict, f: float) -> np.ndarray:
    """Keep the blob holding the face (stray background islands go), with its holes filled."""
    labels, count = ndimage.label(fg)
    if count > 1:
        centre = 0.5 * (0.5 * (features["eye_left"] + features["eye_right"]) + features["mouth_center"]) * f
        r, c = (int(np.clip(round(v), 0, fg.shape[0] - 1)) for v in (centre[1], centre[0]))
        keep = labels[r, c]
        if keep == 0:
            keep = int(np.argmax(np.bincount(labels.ravel())[1:]) + 1)
        fg = labels == keep
    return ndimage.binary_fill_holes(fg)


def _feather(matte: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(cv2.GaussianBlur(matte, (0, 0), sigma), 0.0, 1.0).astype(np.float32)
