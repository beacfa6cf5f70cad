"""Image-comparison pieces of the fidelity benchmark: masked PSNR/SSIM, landmark alignment, regions, binning.

Conventions: images are float arrays (H, W, 3) in [0, 1]; masks are bool (H, W); points are (N, 2) pixel
x, y. Every function is pure, so tests exercise it on synthetic images.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import SimilarityTransform

# |delta yaw| bins between source and target, degrees: (label, low, high); the low edge is inclusive.
YAW_BINS = (("0-5", 0.0, 5.0), ("5-15", 5.0, 15.0), ("15-25", 15.0, 25.0), ("25-40", 25.0, 40.0),
            ("40-60", 40.0, 60.0))
# Pixels needed in a region before it is scored (fewer: the frame is left out of that figure).
MIN_REGION_PIXELS = 64
# Alpha above which a rendered pixel counts as part of the head.
ALPHA_SOLID = 0.5


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, data range 1) over the pixels of `mask`; inf for identical pixels, nan for too few pixels."""
    if mask.sum() < MIN_REGION_PIXELS:
        return math.nan
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(a[mask].astype(np.float64), b[mask].astype(np.float64),
                                             data_range=1.0))


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM over the pixels of `mask`. Both images are blacked out outside the mask first, so windows
    on the region's border compare the region, not whatever surrounds it in each image."""
    if mask.sum() < MIN_REGION_PIXELS:
        return math.nan
    m = mask[..., None].astype(np.float64)
    _, full = structural_similarity(a * m, b * m, channel_axis=2, data_range=1.0, full=True)
    return float(full.mean(axis=2)[mask].mean())


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (rotation, uniform scale, shift) taking points `src` onto `dst`."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    transform = SimilarityTransform.from_estimate(src, dst)
    if not transform:
        raise ValueError(f"the points do not determine a similarity transform: {transform}")
    return transform.params[:2].copy()


def apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return pts @ affine[:, :2].T + affine[:, 2]


def warp(image: np.ndarray, affine: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`image` resampled through `affine` (its pixels -> output pixels) into an (H, W) frame; zero outside."""
    h, w = shape
    return cv2.warpAffine(image.astype(np.float32), affine, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bool (H, W) mask of the convex hull of `points`."""
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(points, np.float64)).astype(np.int32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def above_line(shape: tuple[int, int], point: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Bool (H, W): pixels on the `up` side of the line through `point` perpendicular to `up` (the chin
    line, with `up` from the chin toward the forehead)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    up = np.asarray(up, np.float64) / max(np.hypot(*up), 1e-9)
    return (xs + 0.5 - point[0]) * up[0] + (ys + 0.5 - point[1]) * up[1] >= 0


def mask_scores(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """IoU, precision (of the predicted mask) and recall (of the target's) of two bool masks."""
    inter = float((predicted & target).sum())
    union = float((predicted | target).sum())
    return {"iou": inter / union if union else math.nan,
            "precision": inter / float(predicted.sum()) if predicted.any() else math.nan,
            "recall": inter / float(target.sum()) if target.any() else math.nan}


def edge_detail(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of the grey image inside `mask` (per unit intensity per pixel)."""
    grey = cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    # The mask's own border is not detail: score only pixels whose 3x3 neighbourhood lies inside it.
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if inner.sum() < MIN_REGION_PIXELS:
        return math.nan
    return float(np.hypot(gx, gy)[inner].mean())


def sharpness_ratio(rendered: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Edge detail of `rendered` over that of `target` inside `mask` (1 = as sharp, < 1 = blurrier)."""
    ref = edge_detail(target, mask)
    return edge_detail(rendered, mask) / ref if ref and ref > 0 else math.nan


def landmark_error(points: np.ndarray, target: np.ndarray, interocular: float) -> float:
    """Mean point-to-point distance in % of the inter-ocular distance."""
    d = np.linalg.norm(np.asarray(points, np.float64) - np.asarray(target, np.float64), axis=1)
    return float(100.0 * d.mean() / interocular)


def silhouette_holes(alpha: np.ndarray, threshold: float = ALPHA_SOLID, erode: int = 2) -> dict[str, float]:
    """Alpha inside the silhouette: the outline of alpha > threshold with holes filled, less `erode` pixels
    of anti-aliased border. Reports the minimum and the fraction of those pixels below 0.98."""
    from scipy.ndimage import binary_fill_holes

    solid = binary_fill_holes(alpha > threshold)
    if erode:
        # Outside the frame counts as empty: a head the frame cuts has its anti-aliased rim there too.
        solid = cv2.erode(solid.astype(np.uint8), np.ones((2 * erode + 1,) * 2, np.uint8),
                          borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    if not solid.any():
        return {"min_alpha": math.nan, "frac_below_098": math.nan}
    inside = alpha[solid]
    return {"min_alpha": float(inside.min()), "frac_below_098": float((inside < 0.98).mean())}


def yaw_bin(delta_yaw_deg: float) -> str | None:
    """The bin label of |delta yaw| in degrees; None beyond the last bin."""
    d = abs(float(delta_yaw_deg))
    for label, lo, hi in YAW_BINS:
        if lo <= d < hi:
            return label
    return None


def median(values) -> float | None:
    """Median of the finite values (rounded for the JSON line), None when there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return round(float(np.median(finite)), 3) if finite else None


def summarise_bins(records: list[dict], keys: tuple[str, ...]) -> dict[str, dict]:
    """Per yaw bin: the frame count and the median of each key. `records` carry a "bin" label."""
    out = {}
    for label, _, _ in YAW_BINS:
        rows = [r for r in records if r.get("bin") == label]
        if rows:
            out[label] = {"frames": len(rows), **{k: median(r.get(k) for r in rows) for k in keys}}
    return out


def score_frame(pred_rgb: np.ndarray, pred_alpha: np.ndarray, target_rgb: np.ndarray, target_matte: np.ndarray,
                face: np.ndarray, above_chin: np.ndarray, pred_points: np.ndarray | None = None,
                target_points: np.ndarray | None = None, interocular: float = math.nan) -> dict[str, float]:
    """All per-frame figures of a prediction already aligned to its target.

    pred_rgb is premultiplied by pred_alpha (over black); target_matte is the target's person matte in
    [0, 1]. The face region is `face`; the head region is each side's matte (alpha > 0.5) on the
    `above_chin` side, compared as masks (IoU, precision, recall) and as colours over black inside their
    union, so missing hair and extra geometry both cost PSNR.
    """
    head_target = (target_matte > ALPHA_SOLID) & above_chin
    head_pred = (pred_alpha > ALPHA_SOLID) & above_chin
    masks = mask_scores(head_pred, head_target)
    out = {
        "face_psnr": masked_psnr(pred_rgb, target_rgb, face),
        "face_ssim": masked_ssim(pred_rgb, target_rgb, face),
        "sharpness": sharpness_ratio(pred_rgb, target_rgb, face),
        "head_iou": masks["iou"],
        "head_precision": masks["precision"],
        "head_recall": masks["recall"],
        "head_psnr": masked_psnr(pred_rgb, target_rgb * target_matte[..., None], head_target | head_pred),
        "landmark_error": math.nan,
    }
    if pred_points is not None and target_points is not None and math.isfinite(interocular):
        out["landmark_error"] = landmark_error(pred_points, target_points, interocular)
    return out
