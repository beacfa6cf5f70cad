"""Eye closure read from the eye apertures (avatar.track.eyelids), calibrated against the same eye open.

The fit reads the lids it sees (the iris model's contours, avatar.track.eyelids) in its own model's units:
its eyeBlink reaches 0.5 on an eye still 60 % open and stays at 0.2-0.35 on an eye squeezed shut (a
wink, a frown), whose contour keeps the lashes' width. So the eyeBlink channels are read instead from each
eye's aperture against the clip's open aperture (a high quantile of the recent apertures), a per-clip
calibration: 0.5 when the eye is half shut, the criterion benchmarks.track's reference counts blinks by.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from avatar.expressions import index_of

BLINK_CHANNELS = (index_of("eyeBlinkRight"), index_of("eyeBlinkLeft"))   # the apertures' order
# Apertures as fractions of the open aperture, from the iris model's contour (measured on talking-head
# clips and on renders of an avatar blinking): a closed eye reads 0.05-0.35 (0.4-0.5 squeezed shut: thick
# lashes and the contour's own width keep it above 0), eyes looking down 0.55-0.6, a smile's squint
# 0.6-0.75. The blink weight rises linearly from 0 at SQUINT_APERTURE to 1 at CLOSED_APERTURE, through 0.5
# at half the open aperture.
SQUINT_APERTURE = 0.75
CLOSED_APERTURE = 0.25
# The open aperture: this quantile of the last HISTORY frames' apertures (eyes are open most of the time).
OPEN_QUANTILE = 0.9
HISTORY = 150


def closure(aperture: np.ndarray, open_aperture: np.ndarray) -> np.ndarray:
    """(2,) blink weights in [0, 1] from apertures against the open ones."""
    fraction = np.asarray(aperture) / np.maximum(open_aperture, 1e-9)
    weights: np.ndarray = np.clip((SQUINT_APERTURE - fraction) / (SQUINT_APERTURE - CLOSED_APERTURE), 0.0, 1.0)
    return weights


class BlinkReader:
    """Blink weights per frame, with the open aperture learnt from the frames seen so far."""

    def __init__(self) -> None:
        self._history: deque[np.ndarray] = deque(maxlen=HISTORY)

    def __call__(self, current: np.ndarray) -> np.ndarray:
        """Blink weights (2,) (subject's right, left) for this frame's apertures (2,)."""
        self._history.append(current)
        open_aperture = np.quantile(np.stack(self._history), OPEN_QUANTILE, axis=0)
        return closure(current, open_aperture)
