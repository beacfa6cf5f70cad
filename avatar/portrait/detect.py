"""Face, eyes and mouth with OpenCV's bundled Haar cascades."""
from __future__ import annotations

import threading

import cv2
import numpy as np

from .errors import PortraitError
from .geometry import (FaceGeometry, box_prior_eyes, box_prior_mouth, mouth_corners_from_centre,
                       mouth_from_eyes)

# Faces are searched on a copy whose long side is this many pixels: big enough for a face filling a tenth of
# the frame, small enough to keep detection around 0.1 s on one core.
WORK_SIDE = 640
MAX_UPSCALE = 2.0
MIN_FACE = 24
# Eyes and mouth are searched in the face box resampled to this width, so cascade settings do not depend on
# the resolution of the upload.
FACE_NORM = 160
# A face only one cascade reports must be strongly supported to count (fewer false hits on textures).
LONE_FACE_MIN_NEIGHBOURS = 30
# Faces narrower than this (original pixels) carry too little detail for an avatar and are mostly false hits.
MIN_FACE_PIXELS = 40
# Eyes are searched in at most this many candidates, bounding the work a busy texture can cause.
MAX_CANDIDATES = 5
# A face at least this fraction of the image's short side is a portrait's subject even with no eye found.
BIG_FACE_FRACTION = 0.25
# A smile hit's box is wider than the lips; the corners sit at this fraction of its width from the centre.
SMILE_HALF_WIDTH = 0.35

_local = threading.local()  # CascadeClassifier objects are not safe to share between threads


def _cascade(name: str) -> cv2.CascadeClassifier:
    cache = getattr(_local, "cascades", None)
    if cache is None:
        cache = _local.cascades = {}
    if name not in cache:
        path = cv2.data.haarcascades + name
        clf = cv2.CascadeClassifier(path)
        if clf.empty():
            raise RuntimeError(f"OpenCV Haar cascade {path} could not be loaded")
        cache[name] = clf
    return cache[name]


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / float(aw * ah + bw * bh - inter)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def face_candidates(rgb: np.ndarray) -> list[np.ndarray]:
    """Frontal faces both cascades agree on (or one reports very strongly), best first, original pixels."""
    gray = _gray(rgb)
    h, w = gray.shape
    scale = min(MAX_UPSCALE, WORK_SIDE / max(h, w))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    work = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
    work = cv2.equalizeHist(work)

    found = _faces_confirmed(work, "haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")
    if not found:
        found = _faces_confirmed(work, "haarcascade_frontalface_alt2.xml", "haarcascade_frontalface_default.xml")
    # Confirmed by both cascades beats lone hits; then the biggest face is the subject.
    found.sort(key=lambda f: (f[1], f[0][2] * f[0][3], -f[0][0], -f[0][1]), reverse=True)
    return [np.asarray(box, dtype=np.float64) / scale for box, _ in found]


def detect_face_box(rgb: np.ndarray) -> np.ndarray | None:
    """Largest plausible frontal face as (x, y, w, h) in original pixels, or None."""
    geom = _first_plausible(rgb)
    return None if geom is None else geom.face_box


def _first_plausible(rgb: np.ndarray) -> FaceGeometry | None:
    short_side = min(rgb.shape[:2])
    for box in face_candidates(rgb)[:MAX_CANDIDATES]:
        if box[2] < MIN_FACE_PIXELS:
            continue
        geom = features_in_box(rgb, box, face_detected=True, source="detector")
        # Coins, bark and cell stains fool face cascades at small sizes; a small face must show an eye.
        if geom.detected["eye_left"] or geom.detected["eye_right"] or box[2] >= BIG_FACE_FRACTION * short_side:
            return geom
    return None


def _faces_confirmed(work: np.ndarray, primary: str, secondary: str) -> list:
    boxes, neighbours = _cascade(primary).detectMultiScale2(
        work, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE))
    out = []
    for box, count in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(neighbours).reshape(-1)):
        confirmed = _confirm(work, box, secondary)
        if confirmed or count >= LONE_FACE_MIN_NEIGHBOURS:
            out.append((tuple(int(v) for v in box), confirmed))
    return out


def _confirm(work: np.ndarray, box, cascade: str) -> bool:
    x, y, w, h = box
    pad = w // 2
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(work.shape[1], x + w + pad), min(work.shape[0], y + h + pad)
    hits = _cascade(cascade).detectMultiScale(work[y0:y1, x0:x1], scaleFactor=1.05, minNeighbors=5,
                                              minSize=(int(w * 0.6), int(h * 0.6)))
    return any(_iou((hx + x0, hy + y0, hw, hh), box) > 0.35
               for hx, hy, hw, hh in np.asarray(hits).reshape(-1, 4))


def detect_face(rgb: np.ndarray) -> FaceGeometry:
    geom = _first_plausible(rgb)
    if geom is None:
        raise PortraitError("no_face", f"no face found in the portrait (a frontal, upright face at least "
                                       f"{MIN_FACE_PIXELS} pixels wide is needed; or supply face_box or landmarks)")
    return geom


def features_in_box(rgb: np.ndarray, box: np.ndarray, face_detected: bool, source: str) -> FaceGeometry:
    """Eyes and mouth inside a face box; estimated from face proportions when the cascades find nothing."""
    roi, to_norm = _normalised_face(rgb, box)
    eyes = _find_eyes(roi)
    detected = {"face_box": bool(face_detected)}
    from_norm = lambda p: np.asarray(box[:2], dtype=np.float64) + np.asarray(p, dtype=np.float64) / to_norm

    prior_left, prior_right = box_prior_eyes(np.asarray(box, dtype=np.float64))
    eye_left, eye_right = prior_left, prior_right
    detected["eye_left"] = detected["eye_right"] = False
    if eyes.get("left") is not None:
        eye_left = from_norm(eyes["left"])
        detected["eye_left"] = True
    if eyes.get("right") is not None:
        eye_right = from_norm(eyes["right"])
        detected["eye_right"] = True
    if detected["eye_left"] != detected["eye_right"]:
        # One eye seen: mirror it across the face's vertical centre line rather than trusting the box prior.
        centre_x = box[0] + 0.5 * box[2]
        if detected["eye_left"]:
            eye_right = np.array([2 * centre_x - eye_left[0], eye_left[1]])
        else:
            eye_left = np.array([2 * centre_x - eye_right[0], eye_right[1]])

    mouth = _find_mouth(roi, (eye_left - box[:2]) * to_norm, (eye_right - box[:2]) * to_norm)
    if mouth is not None:
        centre = from_norm(mouth[0])
        mouth_left, mouth_right = mouth_corners_from_centre(centre, mouth[1] / to_norm, eye_left, eye_right)
        detected["mouth"] = True
    elif detected["eye_left"] and detected["eye_right"]:
        mouth_left, mouth_right, centre = mouth_from_eyes(eye_left, eye_right)
        detected["mouth"] = False
    else:
        mouth_left, mouth_right, centre = box_prior_mouth(np.asarray(box, dtype=np.float64))
        detected["mouth"] = False
    mouth_flag = detected.pop("mouth")
    detected.update(mouth_left=mouth_flag, mouth_right=mouth_flag, mouth_center=mouth_flag)
    return FaceGeometry(face_box=np.asarray(box, dtype=np.float64), eye_left=eye_left, eye_right=eye_right,
                        mouth_left=mouth_left, mouth_right=mouth_right, mouth_center=centre,
                        detected=detected, source=source)


def _normalised_face(rgb: np.ndarray, box) -> tuple[np.ndarray, float]:
    """The face box as a FACE_NORM-wide contrast-normalised grey patch, and the scale applied."""
    x, y, w, h = (float(v) for v in box)
    to_norm = FACE_NORM / w
    out_w, out_h = FACE_NORM, max(1, round(h * to_norm))
    # Sampling through an affine map handles boxes that stick out of the image (replicated edge).
    m = np.array([[to_norm, 0, -x * to_norm], [0, to_norm, -y * to_norm]], dtype=np.float64)
    interp = cv2.INTER_AREA if to_norm < 1 else cv2.INTER_LINEAR
    gray = _gray(rgb)
    if to_norm < 0.5:
        # Shrink first so the warp does not alias a large face.
        f = to_norm * 2
        gray = cv2.resize(gray, (max(1, round(gray.shape[1] * f)), max(1, round(gray.shape[0] * f))),
                          interpolation=interp)
        m = m @ np.diag([1 / (gray.shape[1] / rgb.shape[1]), 1 / (gray.shape[0] / rgb.shape[0]), 1.0])
    patch = cv2.warpAffine(gray, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
    return clahe.apply(patch), to_norm


def _find_eyes(roi: np.ndarray) -> dict:
    """Best eye pair in the upper face; 'left' is the subject's left (image right)."""
    w = roi.shape[1]
    h = roi.shape[0]
    top, bottom = int(0.12 * h), int(0.62 * h)
    band = roi[top:bottom]
    cands = []
    for name in ("haarcascade_eye_tree_eyeglasses.xml", "haarcascade_eye.xml"):
        boxes, _, weights = _cascade(name).detectMultiScale3(
            band, scaleFactor=1.05, minNeighbors=3, minSize=(int(0.12 * w), int(0.12 * w)),
            maxSize=(int(0.42 * w), int(0.42 * w)), outputRejectLevels=True)
        for (bx, by, bw, bh), wt in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            cx, cy = bx + bw / 2.0, by + top + bh / 2.0
            if 0.2 * h <= cy <= 0.55 * h:
                cands.append((cx, cy, float(bw), float(wt)))
    cands.sort()
    left_side = [c for c in cands if c[0] < 0.5 * w]
    right_side = [c for c in cands if c[0] >= 0.5 * w]
    best, best_score = None, -np.inf
    for a in left_side:
        for b in right_side:
            spacing = b[0] - a[0]
            if not (0.25 * w <= spacing <= 0.65 * w) or abs(b[1] - a[1]) > 0.15 * w:
                continue
            if max(a[2], b[2]) > 1.6 * min(a[2], b[2]):
                continue
            asym = abs(0.5 * (a[0] + b[0]) - 0.5 * w) / w
            score = a[3] + b[3] - 10.0 * asym - 10.0 * abs(b[1] - a[1]) / w
            if score > best_score:
                best, best_score = (a, b), score
    if best is not None:
        image_left, image_right = best
        return {"left": image_right[:2], "right": image_left[:2]}
    # A single confident eye is still informative about height and one side.
    singles = [c for c in cands if c[3] > 1.0 and 0.12 * w < abs(c[0] - 0.5 * w) < 0.35 * w]
    if singles:
        c = max(singles, key=lambda c: (c[3], c[0]))
        return {"left": c[:2]} if c[0] >= 0.5 * w else {"right": c[:2]}
    return {}


def _find_mouth(roi: np.ndarray, eye_left: np.ndarray, eye_right: np.ndarray):
    """(centre, half-width) of the mouth in patch pixels, or None."""
    w, h = roi.shape[1], roi.shape[0]
    top = int(0.55 * h)
    band = roi[top:]
    boxes, _, weights = _cascade("haarcascade_smile.xml").detectMultiScale3(
        band, scaleFactor=1.05, minNeighbors=3, minSize=(int(0.22 * w), int(0.11 * w)),
        maxSize=(int(0.75 * w), int(0.4 * w)), outputRejectLevels=True)
    mid_x = 0.5 * (eye_left[0] + eye_right[0])
    eye_y = 0.5 * (eye_left[1] + eye_right[1])
    spacing = abs(eye_left[0] - eye_right[0])
    best, best_score = None, -np.inf
    for (bx, by, bw, bh), wt in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
        cx, cy = bx + bw / 2.0, by + top + bh / 2.0
        if not (0.62 * h <= cy <= 0.95 * h) or abs(cx - mid_x) > 0.15 * w:
            continue
        drop = (cy - eye_y) / max(spacing, 1.0)
        if not 0.6 <= drop <= 1.5:
            continue
        score = float(wt) - 5.0 * abs(cx - mid_x) / w
        if wt > 0.5 and score > best_score:
            best, best_score = (np.array([cx, cy]), SMILE_HALF_WIDTH * bw), score
    return best
