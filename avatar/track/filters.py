"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012): a low-pass whose cutoff rises with speed.

Still signals are smoothed hard (cutoff `min_cutoff` Hz), fast ones barely (cutoff grows by `beta` Hz per
unit/s of the smoothed speed), so a blink or a head turn is not delayed while the jitter of a still face
is removed. The speed itself is smoothed with cutoff `d_cutoff` Hz. Vectorised: one filter per channel,
each channel with its own parameters; channels marked `shared` open on one speed, the mean of theirs (the
points of a rigid body: one point's noise does not open its filter, the body's motion opens them all).
`gain` is the last sample's blend factor per channel (1: taken as is, the first sample after a reset; 0: a
repeated timestamp, not taken), which a pass backward in time can reuse (avatar.track.tracker).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    alpha: np.ndarray = 1.0 / (1.0 + tau / dt)
    return alpha


class OneEuroFilter:
    """Filters (C,) vectors arriving at increasing times (seconds)."""

    def __init__(self, min_cutoff: ArrayLike, beta: ArrayLike, d_cutoff: ArrayLike,
                 shared: ArrayLike | None = None) -> None:
        """Parameters: scalars or (C,) per channel; `shared`: (C,) bool, the channels with one speed."""
        self.shared = None if shared is None else np.asarray(shared, bool)
        self.min_cutoff = np.asarray(min_cutoff, np.float64)
        self.beta = np.asarray(beta, np.float64)
        self.d_cutoff = np.asarray(d_cutoff, np.float64)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None
        self.gain: np.ndarray | None = None

    def reset(self) -> None:
        self._x = self._dx = self._t = self.gain = None

    def __call__(self, sample: ArrayLike, t: float) -> np.ndarray:
        x = np.asarray(sample, np.float64)
        if self._x is None or self._dx is None or self._t is None:  # the first sample
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            self.gain = np.ones_like(x)
        elif t <= self._t:  # time did not advance (a repeated timestamp): nothing to smooth against
            self.gain = np.zeros_like(x)
        else:
            dt = t - self._t
            dx = (x - self._x) / dt
            self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
            speed = np.abs(self._dx)
            if self.shared is not None and self.shared.any():
                speed[self.shared] = speed[self.shared].mean()
            cutoff = self.min_cutoff + self.beta * speed
            self.gain = np.broadcast_to(_alpha(cutoff, dt), x.shape).copy()
            self._x = self._x + self.gain * (x - self._x)
            self._t = float(t)
        out: np.ndarray = self._x.copy()
        return out
