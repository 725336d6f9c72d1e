"""One-Euro filter (Casiez, Roussel, Vogel, CHI 2012) for 3D joints: smooth at rest, little lag in motion.

Legend: ``H`` hands, ``K`` joints. Each joint is filtered as a 3D point: its speed (norm of the
filtered derivative, m/s) sets the cutoff ``min_cutoff + beta * speed`` (Hz) of a first-order low-pass.
A joint that is lost (NaN) comes out NaN and restarts from its next measurement, so a hand that
reappears elsewhere is not dragged across the room.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Vectorised One-Euro filter over points.

    Args:
        min_cutoff: cutoff at rest, Hz.
        beta: cutoff increase per unit of speed, Hz per (m/s).
        d_cutoff: cutoff of the derivative's low-pass, Hz.
        enabled: False passes measurements through unchanged.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 20.0, d_cutoff: float = 1.0, enabled: bool = True):
        self.min_cutoff, self.beta, self.d_cutoff, self.enabled = (
            float(min_cutoff),
            float(beta),
            float(d_cutoff),
            enabled,
        )
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t_ns: int | None = None

    def reset(self) -> None:
        self._x = self._dx = self._t_ns = None

    def __call__(self, points: np.ndarray, t_ns: int) -> np.ndarray:
        """Filter one measurement.

        Args:
            points: (..., 3) float, metres; NaN rows = joint not measured.
            t_ns: measurement time, ns (the capture time).
        Returns:
            (..., 3) float32 filtered points (NaN where the input is NaN).
        """
        x = np.asarray(points, dtype=np.float64)
        if not self.enabled:
            return x.astype(np.float32)
        if self._x is None or self._x.shape != x.shape or self._t_ns is None or t_ns <= self._t_ns:
            self._x, self._dx, self._t_ns = x.copy(), np.zeros_like(x), int(t_ns)
            return x.astype(np.float32)
        dt = (t_ns - self._t_ns) * 1e-9
        self._t_ns = int(t_ns)
        seen = np.isfinite(x).all(axis=-1)
        fresh = seen & ~np.isfinite(self._x).all(axis=-1)  # (re)appeared: start from the measurement
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1.0 - a_d) * self._dx
        speed = np.linalg.norm(dx_hat, axis=-1, keepdims=True)
        a = _alpha(self.min_cutoff + self.beta * speed, dt)
        x_hat = a * x + (1.0 - a) * self._x
        x_hat[fresh] = x[fresh]
        dx_hat[fresh] = 0.0
        x_hat[~seen] = np.nan
        dx_hat[~seen] = 0.0
        self._x, self._dx = x_hat, dx_hat
        return x_hat.astype(np.float32)
