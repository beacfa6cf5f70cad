"""ARKit-52 expression names and orders: the one place for them.

The canonical order is alphabetical, which is also FaceVerse v3's `exBase_52` order. Unreal's
`EARFaceBlendShape` enum and the Live Link Face CSV use other orders of the same names; all
mapping tables between orders are derived here from the name lists, never typed twice.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

ARKIT_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)
NUM_EXPRESSIONS = len(ARKIT_NAMES)
EYE_BLINKS = ("eyeBlinkLeft", "eyeBlinkRight")   # per eye, the left first (as every per-eye array)

# Unreal's EARFaceBlendShape enum order (PascalCase).
UNREAL_NAMES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft",
    "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight",
    "JawForward", "JawLeft", "JawRight", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker",
    "MouthLeft", "MouthRight", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight", "MouthRollLower",
    "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
    "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight",
    "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
    "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)


def _livelink_names() -> tuple[str, ...]:
    # The Live Link Face app records the Unreal order except that two pairs are swapped.
    names = list(UNREAL_NAMES)
    for a, b in (("JawLeft", "JawRight"), ("MouthLeft", "MouthRight")):
        i, j = names.index(a), names.index(b)
        names[i], names[j] = names[j], names[i]
    return tuple(names)


LIVELINK_NAMES: tuple[str, ...] = _livelink_names()
LIVELINK_HEAD_COLUMNS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
LIVELINK_HEADER: tuple[str, ...] = ("Timecode", "BlendShapeCount") + LIVELINK_NAMES + LIVELINK_HEAD_COLUMNS
LIVELINK_BLENDSHAPE_COUNT = len(LIVELINK_NAMES) + len(LIVELINK_HEAD_COLUMNS)  # 61, as the app writes it

_CANONICAL_INDEX = {n.lower(): i for i, n in enumerate(ARKIT_NAMES)}
# For each order, the canonical index of its k-th entry.
UNREAL_TO_CANONICAL = np.array([_CANONICAL_INDEX[n.lower()] for n in UNREAL_NAMES], dtype=np.int64)
LIVELINK_TO_CANONICAL = np.array([_CANONICAL_INDEX[n.lower()] for n in LIVELINK_NAMES], dtype=np.int64)
CANONICAL_TO_UNREAL = np.argsort(UNREAL_TO_CANONICAL)
CANONICAL_TO_LIVELINK = np.argsort(LIVELINK_TO_CANONICAL)

WEIGHT_TOLERANCE = 1e-6


class ExpressionError(ValueError):
    """An expression (weights or names) that cannot be used; the message says why."""


def index_of(name: str) -> int:
    """Canonical index of an ARKit name, matched case-insensitively (Unreal's PascalCase works too)."""
    try:
        return _CANONICAL_INDEX[name.lower()]
    except (KeyError, AttributeError):
        raise ExpressionError(f"unknown blendshape name {name!r}; expected one of the 52 ARKit names") from None


def validate_weights(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Check a 52-vector in canonical order and return it as float32, clipped into [0, 1].

    Values within WEIGHT_TOLERANCE outside [0, 1] are clipped (trackers round); anything further out,
    NaN or infinite is an error naming the blendshape.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (NUM_EXPRESSIONS,):
        raise ExpressionError(f"expression must have {NUM_EXPRESSIONS} weights in canonical order, got shape {w.shape}")
    bad = ~np.isfinite(w)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ExpressionError(f"weight for {ARKIT_NAMES[i]} is not a finite number ({w[i]})")
    out = (w < -WEIGHT_TOLERANCE) | (w > 1 + WEIGHT_TOLERANCE)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ExpressionError(f"weight for {ARKIT_NAMES[i]} is {w[i]:g}, outside [0, 1]")
    return np.clip(w, 0.0, 1.0).astype(np.float32)


def weights_from_map(weights: Mapping[str, float]) -> np.ndarray:
    """A name->weight map (any case) to a validated canonical 52-vector; unnamed targets are 0."""
    vec = np.zeros(NUM_EXPRESSIONS, dtype=np.float64)
    seen: dict[int, str] = {}
    for name, value in weights.items():
        i = index_of(name)
        if i in seen:
            raise ExpressionError(f"blendshape {ARKIT_NAMES[i]} given twice ({seen[i]!r} and {name!r})")
        seen[i] = name
        try:
            vec[i] = float(value)
        except (TypeError, ValueError):
            raise ExpressionError(f"weight for {name!r} is not a number: {value!r}") from None
    return validate_weights(vec)


def to_expression(value: Mapping[str, float] | Sequence[float] | np.ndarray | None) -> np.ndarray:
    """Accept what every API accepts: None (neutral), a 52-vector, or a name->weight map."""
    if value is None:
        return np.zeros(NUM_EXPRESSIONS, dtype=np.float32)
    if isinstance(value, Mapping):
        return weights_from_map(value)
    return validate_weights(value)


def reorder(weights: np.ndarray, to_canonical: np.ndarray) -> np.ndarray:
    """Weights given in another order (e.g. Live Link columns) to canonical order, along the last axis."""
    w = np.asarray(weights)
    out = np.empty_like(w)
    out[..., to_canonical] = w
    return out


def mirror_name(name: str) -> str:
    """The Left/Right partner of a name (subject's own left/right), or the name itself when unpaired."""
    canonical = ARKIT_NAMES[index_of(name)]
    if canonical.endswith("Left"):
        return canonical[:-4] + "Right"
    if canonical.endswith("Right"):
        return canonical[:-5] + "Left"
    return canonical
