"""Eye closure read from the eye apertures (avatar.track.eyelids.apertures), calibrated against the same eye open.

The fit reads the lids it sees (the iris model's contours, avatar.portrait.face_mesh.refined_lids) in its own
model's units: its eyeBlink reaches 0.5 on an eye still 60 % open and stays at 0.2-0.35 on an eye squeezed shut (a
wink, a frown), whose contour keeps the lashes' width. So the eyeBlink channels are read instead from each
eye's aperture against the clip's open aperture (a high quantile of its apertures), a per-clip
calibration: 0.5 when the eye is half shut, the criterion benchmarks.track's reference counts blinks by.

The open aperture is the whole clip's when the whole clip is known (`clip_open_aperture`: a file tracked
whole), else learnt from the frames seen so far (a live stream). Early in a clip the frames so far may
hold few wide-open eyes, so a past-only open aperture reads low there and misses a partial closure.
"""
from __future__ import annotations

from collections import deque

import numpy as np
from numpy.typing import ArrayLike

from avatar.expressions import index_of
from avatar.track.filters import OneEuroFilter

BLINK_CHANNELS = (index_of("eyeBlinkRight"), index_of("eyeBlinkLeft"))   # the apertures' order
# Apertures as fractions of the open aperture, from the iris model's contour (measured on talking-head
# clips and on renders of an avatar blinking): a closed eye reads 0.05-0.35 (0.4-0.5 squeezed shut: thick
# lashes and the contour's own width keep it above 0), eyes looking down 0.55-0.6, a smile's squint
# 0.6-0.75. The blink weight rises linearly from 0 at SQUINT_APERTURE to 1 at CLOSED_APERTURE, through 0.5
# at half the open aperture.
SQUINT_APERTURE = 0.75
CLOSED_APERTURE = 0.25
# The open aperture: this quantile of the clip's apertures, or live of the last HISTORY frames' (eyes are
# open most of the time).
OPEN_QUANTILE = 0.9
HISTORY = 150
# One-Euro parameters of the blink weights (min_cutoff Hz, beta Hz per unit/s, d_cutoff Hz): smoothed as
# hard as the head while an eye stays shut or open (the aperture of a shut eye wavers about half open on
# some faces, and a blink must not break in two), but followed at once when the lid moves (a step 0 -> 1 is
# at 0.94 on its first frame, 0 -> 0.4 at 0.87). Measured on the reference clips (benchmarks.track): onset
# lag 0-0.7 frames against the unsmoothed reading; beta 2.0 held a smaller step back (0.77) and 10.0 let a
# shut eye's waver split its blink.
BLINK_FILTER = (1.0, 4.0, 8.0)


def closure(aperture: np.ndarray, open_aperture: np.ndarray) -> np.ndarray:
    """(2,) blink weights in [0, 1] from apertures against the open ones."""
    fraction = np.asarray(aperture) / np.maximum(open_aperture, 1e-9)
    weights: np.ndarray = np.clip((SQUINT_APERTURE - fraction) / (SQUINT_APERTURE - CLOSED_APERTURE), 0.0, 1.0)
    return weights


def clip_open_aperture(apertures: ArrayLike) -> np.ndarray:
    """(2,) the open aperture of a whole clip from its (T, 2) apertures (NaN rows: frames without a face)."""
    out: np.ndarray = np.nanquantile(np.asarray(apertures, np.float64), OPEN_QUANTILE, axis=0)
    return out


class BlinkReader:
    """Blink weights per frame, each eye's aperture against its open aperture: `open_aperture` (2,) when
    given (the whole clip's, `clip_open_aperture`), else learnt from the frames seen so far. `smooth`: through
    a One-Euro filter (BLINK_FILTER), which `reset()` restarts (after a lost face)."""

    def __init__(self, open_aperture: ArrayLike | None = None, smooth: bool = True) -> None:
        self._open = None if open_aperture is None else np.asarray(open_aperture, np.float64)
        self._history: deque[np.ndarray] = deque(maxlen=HISTORY)
        self._filter = OneEuroFilter(*BLINK_FILTER) if smooth else None

    def reset(self) -> None:
        if self._filter is not None:
            self._filter.reset()

    def __call__(self, current: np.ndarray, t: float) -> np.ndarray:
        """Blink weights (2,) (subject's right, left) for this frame's apertures (2,) at `t` seconds."""
        open_aperture = self._open
        if open_aperture is None:
            self._history.append(current)
            open_aperture = np.quantile(np.stack(self._history), OPEN_QUANTILE, axis=0)
        weights = closure(current, open_aperture)
        return weights if self._filter is None else self._filter(weights, t)
