"""One calibrated camera: intrinsics, lens distortion, pose; projection and undistortion in NumPy.

Conventions (docs/calibration.md has the long version):

* Camera frame: ``X_cam = R @ X_world + t`` (x right, y down, z forward). Units are whatever the
  calibration's translations are in; handstream works in metres (see ``unit_scale`` when loading).
* Pixels: OpenCV convention, the centre of the top-left pixel is ``(0, 0)``; ``x`` is the column.
* ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` (skew ``s`` is usually 0).
* Normalized coordinates are ``(x/z, y/z)`` of a point in the camera frame, before distortion.
* "Ideal" (undistorted) pixels are ``K @ (x/z, y/z, 1)``: where a distortion-free pinhole camera with the
  same ``K`` would see the point; :attr:`Camera.projection_matrix` maps world points to them, which is
  what triangulation needs.
* NaN means "not seen / not known": NaN input gives NaN output, and so do points that cannot be
  projected (behind the camera) or undistorted (outside the distortion model's valid range).

Distortion models (``Camera.model``) and the layout of ``Camera.dist``:

``"pinhole"``
    no distortion; ``dist`` is empty.
``"opencv"``
    OpenCV's standard rational + tangential model, ``dist = (k1, k2, p1, p2, k3, k4, k5, k6)``
    (always stored with 8 entries; shorter inputs are zero-padded)::

        r2 = x^2 + y^2
        g  = (1 + k1 r2 + k2 r2^2 + k3 r2^3) / (1 + k4 r2 + k5 r2^2 + k6 r2^3)
        xd = x g + 2 p1 x y + p2 (r2 + 2 x^2)
        yd = y g + p1 (r2 + 2 y^2) + 2 p2 x y

``"fisheye"``
    the equidistant model of ``cv2.fisheye``, ``dist = (k1, k2, k3, k4)``::

        r = sqrt(x^2 + y^2),  theta = atan(r)
        theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)
        (xd, yd) = (theta_d / r) (x, y)

Distorted pixels are then ``K @ (xd, yd, 1)``.

Why one module: a lens model is its distortion formula, its Jacobian and its undistortion solver together
(the solvers stop where the formula folds back, which only the formula knows); split across files a reader
follows one lens through three of them. The input checks at the top are here because every message they
make names a camera field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import cv2
import numpy as np

from handstream.errors import HandstreamError

MODELS = ("pinhole", "opencv", "fisheye")
"""The distortion models a :class:`Camera` supports."""

_NUM_DIST = {"pinhole": 0, "opencv": 8, "fisheye": 4}
_ROTATION_TOL = 1e-6
# Undistortion: Newton iterations stop when the distorted residual is below this (normalized units,
# relative to 1 + |point|); results whose residual stays above _ACCEPT_TOL are reported as NaN.
_SOLVE_TOL = 1e-14
_ACCEPT_TOL = 1e-9
_MAX_ITERS = 60  # fisheye bisection/Newton: enough for float64 even when bisecting
_NEWTON_ITERS = 20  # opencv: Newton from OpenCV's estimate converges in 1-3; from a poor start in < 15
_MAX_HALVINGS = 8


# ------------------------------------------------------------------------------------------------
# Validation helpers (also used by the calibration readers, so that messages name file fields)
# ------------------------------------------------------------------------------------------------


def _describe(shape: tuple[int, ...]) -> str:
    """'a 3x3 matrix' / 'a list of 3 numbers' / 'a number' for an expected shape."""
    if len(shape) == 0:
        return "a number"
    if len(shape) == 1:
        return f"a list of {shape[0]} numbers"
    return "a " + "x".join(str(n) for n in shape) + " matrix"


def as_float_array(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Convert ``value`` to a finite float64 array of exactly ``shape``, or raise HandstreamError.

    Args:
        value: nested lists / array of numbers.
        shape: the expected shape, e.g. ``(3, 3)``.
        where: location for the message, e.g. ``"calib.toml: cam_1.matrix"``.
    Returns:
        A new float64 array of shape ``shape``.
    """
    expected = _describe(shape)
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        # Ragged nested lists end up here as well as strings and other non-numbers.
        rows = _ragged_rows(value)
        got = f"rows of lengths {rows}" if rows else f"{type(value).__name__} {value!r:.60}"
        raise HandstreamError(f"{where}: expected {expected}, got {got}") from None
    if arr.shape != shape:
        if len(shape) == 2 and arr.ndim == 2 and arr.shape[0] != shape[0]:
            got = f"{arr.shape[0]} rows"
        elif len(shape) == 2 and arr.ndim == 2:
            got = f"rows of length {arr.shape[1]}"
        elif arr.ndim == 1:
            got = f"{arr.shape[0]} numbers"
        elif arr.ndim == 0:
            got = "a single number"
        else:
            got = f"shape {arr.shape}"
        raise HandstreamError(f"{where}: expected {expected}, got {got}")
    if not np.all(np.isfinite(arr)):
        raise HandstreamError(f"{where}: expected finite numbers, got {arr.tolist()}")
    return arr


def _ragged_rows(value: Any) -> list[int] | None:
    if isinstance(value, list | tuple) and all(isinstance(row, list | tuple) for row in value):
        return [len(row) for row in value]
    return None


def as_image_size(value: Any, where: str) -> tuple[int, int]:
    """Convert ``[width, height]`` to a tuple of two positive ints, or raise HandstreamError."""
    arr = as_float_array(value, (2,), where)
    if np.any(arr != np.round(arr)) or np.any(arr <= 0):
        raise HandstreamError(f"{where}: expected [width, height] as positive integers, got {arr.tolist()}")
    return int(arr[0]), int(arr[1])


def rotation_error(R: np.ndarray) -> float:
    """How far a (3, 3) matrix is from a rotation: ``max |R R^T - I|`` (inf when ``det(R) <= 0``)."""
    if np.linalg.det(R) <= 0:
        return float("inf")
    return float(np.abs(R @ R.T - np.eye(3)).max())


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, dtype=np.float64)  # a private copy
    arr.flags.writeable = False
    return arr


def _points(value: Any, last: int, what: str) -> np.ndarray:
    """A float64 array whose last axis has ``last`` entries (raises HandstreamError otherwise)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != last:
        raise HandstreamError(f"{what}: expected an array of shape (..., {last}), got shape {arr.shape}")
    return arr


def rodrigues_to_matrix(rvec: Any) -> np.ndarray:
    """Rotation vector (3,) (axis times angle in radians, as cv2.Rodrigues) -> (3, 3) rotation matrix."""
    r = np.asarray(rvec, dtype=np.float64).reshape(3)
    angle = float(np.linalg.norm(r))
    if angle == 0.0:
        return np.eye(3)
    k = r / angle
    k_cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.cos(angle) * np.eye(3) + (1 - np.cos(angle)) * np.outer(k, k) + np.sin(angle) * k_cross


def matrix_to_rodrigues(R: Any) -> np.ndarray:
    """(3, 3) rotation matrix -> rotation vector (3,), accurate to ~1e-15 at every angle up to pi.

    Goes through the unit quaternion (Shepperd's method picks the best-conditioned formula), then
    ``angle = 2 atan2(|v|, w)``; cv2.Rodrigues loses ~1e-12 near 180 degrees, this does not.
    """
    R = np.asarray(R, dtype=np.float64)
    trace = np.trace(R)
    i = int(np.argmax([trace, R[0, 0], R[1, 1], R[2, 2]]))
    if i == 0:
        w = np.sqrt(1 + trace) / 2
        v = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (4 * w)
    else:
        a = i - 1
        b, c = (a + 1) % 3, (a + 2) % 3
        v = np.zeros(3)
        v[a] = np.sqrt(1 + 2 * R[a, a] - trace) / 2
        v[b] = (R[b, a] + R[a, b]) / (4 * v[a])
        v[c] = (R[c, a] + R[a, c]) / (4 * v[a])
        w = (R[c, b] - R[b, c]) / (4 * v[a])
    if w < 0:  # q and -q are the same rotation; pick the one with angle in [0, pi]
        w, v = -w, -v
    s = float(np.linalg.norm(v))
    if s == 0.0:
        return np.zeros(3)
    return v / s * (2 * np.arctan2(s, w))


# ------------------------------------------------------------------------------------------------
# Distortion models on flat (N, 2) arrays of finite normalized coordinates
# ------------------------------------------------------------------------------------------------


def _opencv_distort(xy: np.ndarray, d: np.ndarray, jacobian: bool = False):
    """OpenCV rational + tangential model. xy (N, 2) -> distorted (N, 2) [, Jacobian (N, 2, 2)]."""
    k1, k2, p1, p2, k3, k4, k5, k6 = d
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    num = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    den = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
    g = num / den
    xd = x * g + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * g + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    out = np.stack([xd, yd], axis=-1)
    if not jacobian:
        return out
    # dg/d(r2) by the quotient rule; d(r2)/dx = 2x.
    dnum = k1 + r2 * (2 * k2 + 3 * k3 * r2)
    dden = k4 + r2 * (2 * k5 + 3 * k6 * r2)
    dg = (dnum * den - num * dden) / (den * den)
    jxx = g + 2 * x * x * dg + 2 * p1 * y + 6 * p2 * x
    jyy = g + 2 * y * y * dg + 6 * p1 * y + 2 * p2 * x
    jxy = 2 * x * y * dg + 2 * p1 * x + 2 * p2 * y  # the Jacobian is symmetric
    J = np.stack([np.stack([jxx, jxy], -1), np.stack([jxy, jyy], -1)], -2)
    return out, J


def _fisheye_theta_d(theta: np.ndarray, k: np.ndarray) -> np.ndarray:
    t2 = theta * theta
    return theta * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))))


def _fisheye_distort(xy: np.ndarray, k: np.ndarray) -> np.ndarray:
    """cv2.fisheye model. xy (N, 2) normalized -> (N, 2) distorted normalized."""
    r = np.hypot(xy[:, 0], xy[:, 1])
    theta_d = _fisheye_theta_d(np.arctan(r), k)
    # Same guard as OpenCV (r > 1e-8), so that results match it bit for bit near the axis.
    small = r <= 1e-8
    scale = np.where(small, 1.0, theta_d / np.where(small, 1.0, r))
    return xy * scale[:, None]


def _solve2x2(J: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve J (N, 2, 2) @ s = b (N, 2) in closed form (NaN where J is singular)."""
    a, bb, c, d = J[:, 0, 0], J[:, 0, 1], J[:, 1, 0], J[:, 1, 1]
    det = a * d - bb * c
    with np.errstate(divide="ignore", invalid="ignore"):
        s0 = (d * b[:, 0] - bb * b[:, 1]) / det
        s1 = (a * b[:, 1] - c * b[:, 0]) / det
    return np.stack([s0, s1], axis=-1)


# ------------------------------------------------------------------------------------------------
# Camera
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated camera (immutable; arrays are read-only float64 copies).

    Attributes:
        name: unique name within a rig (used in topics such as ``frame.<name>``).
        size: ``(width, height)`` of the image in pixels.
        K: (3, 3) intrinsic matrix ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``, pixels.
        dist: distortion coefficients, layout by ``model`` (see the module docstring): pinhole ``(0,)``,
            opencv ``(8,)`` = k1, k2, p1, p2, k3, k4, k5, k6 (shorter input is zero-padded; longer input
            is accepted only if the extra thin-prism/tilt terms are zero), fisheye ``(4,)`` = k1..k4.
        model: ``"pinhole"``, ``"opencv"`` or ``"fisheye"``. ``None`` (the default) means ``"pinhole"``
            when ``dist`` is empty or all zero, else ``"opencv"``.
        R: (3, 3) rotation world -> camera.
        t: (3,) translation world -> camera: ``X_cam = R @ X_world + t``.

    Raises:
        HandstreamError: on a wrong shape, non-finite values, non-positive focal lengths, a ``K`` that is
            not upper triangular with last row ``[0, 0, 1]``, or an ``R`` that is not a rotation
            (``|R R^T - I| > 1e-6`` or ``det R <= 0``).
    """

    name: str
    size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(0))
    model: str | None = None
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise HandstreamError(f"camera name: expected a non-empty string, got {self.name!r}")
        here = f"camera {self.name!r}"
        size = as_image_size(self.size, f"{here}: size")

        K = as_float_array(self.K, (3, 3), f"{here}: K")
        if np.abs(K[2] - [0, 0, 1]).max() > 1e-9 or abs(K[1, 0]) > 1e-9:
            raise HandstreamError(f"{here}: K: expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
        K[2] = [0.0, 0.0, 1.0]
        K[1, 0] = 0.0
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise HandstreamError(f"{here}: K: focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")

        try:
            dist_in = np.asarray(self.dist, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise HandstreamError(f"{here}: dist: expected a list of numbers, got {self.dist!r:.60}") from None
        if not np.all(np.isfinite(dist_in)):
            raise HandstreamError(f"{here}: dist: expected finite numbers, got {dist_in.tolist()}")
        model = self.model
        if model is None:
            model = "opencv" if np.any(dist_in != 0) else "pinhole"
        if model not in MODELS:
            raise HandstreamError(f"{here}: model: expected one of {', '.join(MODELS)}, got {model!r}")
        dist = _normalize_dist(dist_in, model, here)

        R = as_float_array(self.R, (3, 3), f"{here}: R")
        err = rotation_error(R)
        if err > _ROTATION_TOL:
            detail = "det(R) <= 0" if err == float("inf") else f"|R R^T - I| = {err:.2g}"
            raise HandstreamError(f"{here}: R: expected a rotation matrix, got one with {detail}")
        t_in = self.t
        if isinstance(t_in, np.ndarray) and t_in.shape in ((3, 1), (1, 3)):  # as OpenCV returns them
            t_in = t_in.reshape(3)
        t = as_float_array(t_in, (3,), f"{here}: t")

        # Frozen dataclass: assign the validated values through object.__setattr__.
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "K", _readonly(K))
        object.__setattr__(self, "dist", _readonly(dist))
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "R", _readonly(R))
        object.__setattr__(self, "t", _readonly(t))

    # --- simple properties ------------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return self.size[0]

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return self.size[1]

    @cached_property
    def projection_matrix(self) -> np.ndarray:
        """(3, 4) ``K @ [R | t]``: world points -> ideal (undistorted) homogeneous pixels."""
        P = self.K @ np.concatenate([self.R, self.t[:, None]], axis=1)
        P.flags.writeable = False
        return P

    @cached_property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world coordinates, ``-R^T t``."""
        c = -self.R.T @ self.t
        c.flags.writeable = False
        return c

    @cached_property
    def _K_inv(self) -> np.ndarray:
        return np.linalg.inv(self.K)

    def __repr__(self) -> str:
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        return (
            f"Camera(name={self.name!r}, size={self.size}, model={self.model!r}, "
            f"f=({fx:.6g}, {fy:.6g}), c=({cx:.6g}, {cy:.6g}), center={np.round(self.center, 6).tolist()})"
        )

    # --- projection -------------------------------------------------------------------------------

    def world_to_camera(self, points_3d: Any) -> np.ndarray:
        """World points (..., 3) -> camera-frame points (..., 3), ``R @ X + t``, same units."""
        X = _points(points_3d, 3, f"camera {self.name!r}: points_3d")
        return X @ self.R.T + self.t

    def project(self, points_3d: Any) -> np.ndarray:
        """Project world points to distorted pixels.

        Args:
            points_3d: (..., 3) world points (calibration units, normally metres).
        Returns:
            (..., 2) float64 pixels (OpenCV convention, with lens distortion), NaN for NaN input and for
            points at or behind the camera plane (camera-frame depth ``z <= 0``). Points outside the image
            are projected too (no clipping to the image).
        """
        X = self.world_to_camera(points_3d)
        flat = X.reshape(-1, 3)
        out = np.full((flat.shape[0], 2), np.nan)
        ok = flat[:, 2] > 0  # False for NaN as well, without warnings
        out[ok] = self.distort(flat[ok, :2] / flat[ok, 2:3])
        return out.reshape(X.shape[:-1] + (2,))

    def distort(self, normalized: Any) -> np.ndarray:
        """Apply lens distortion and ``K`` to normalized coordinates.

        Args:
            normalized: (..., 2) undistorted normalized coordinates ``(x/z, y/z)`` in the camera frame.
        Returns:
            (..., 2) distorted pixels; NaN where the input has NaN.
        """
        xy = _points(normalized, 2, f"camera {self.name!r}: normalized")
        flat = xy.reshape(-1, 2)
        out = np.full_like(flat, np.nan)
        ok = np.isfinite(flat).all(axis=1)
        if self.model == "opencv":
            xyd = _opencv_distort(flat[ok], self.dist)
        elif self.model == "fisheye":
            xyd = _fisheye_distort(flat[ok], self.dist)
        else:
            xyd = flat[ok]
        out[ok] = xyd @ self.K[:2, :2].T + self.K[:2, 2]
        return out.reshape(xy.shape)

    # --- undistortion -----------------------------------------------------------------------------

    def normalize(self, pixels: Any) -> np.ndarray:
        """Remove ``K`` and lens distortion: distorted pixels -> undistorted normalized coordinates.

        Args:
            pixels: (..., 2) distorted pixels.
        Returns:
            (..., 2) normalized coordinates ``(x/z, y/z)``; NaN for NaN input and for pixels the model
            cannot undistort: beyond the radius where the distortion curve folds back (the calibration
            is not valid there and the inverse is ambiguous) or, for fisheye, at 90 degrees or more
            off-axis (no pinhole-plane point exists).
        """
        uv = _points(pixels, 2, f"camera {self.name!r}: pixels")
        flat = uv.reshape(-1, 2)
        out = np.full_like(flat, np.nan)
        ok = np.isfinite(flat).all(axis=1)
        q = (flat[ok] - self.K[:2, 2]) @ self._K_inv[:2, :2].T  # distorted normalized coordinates
        if self.model == "opencv":
            out[ok] = self._undistort_opencv(q)
        elif self.model == "fisheye":
            out[ok] = self._undistort_fisheye(q)
        else:
            out[ok] = q
        return out.reshape(uv.shape)

    def undistort_points(self, pixels: Any) -> np.ndarray:
        """Distorted pixels -> ideal pinhole pixels (``K`` applied to the undistorted coordinates).

        Args:
            pixels: (..., 2) distorted pixels as seen in the image.
        Returns:
            (..., 2) ideal pixels, consistent with :attr:`projection_matrix`; NaN where
            :meth:`normalize` gives NaN.
        """
        xy = self.normalize(pixels)
        return xy @ self.K[:2, :2].T + self.K[:2, 2]

    def unproject(self, pixels: Any, depth: Any = None) -> np.ndarray:
        """Back-project distorted pixels to world rays or world points.

        Args:
            pixels: (..., 2) distorted pixels.
            depth: None, a scalar or an array broadcastable to (...): camera-frame depth ``z`` (not the
                distance along the ray), in calibration units.
        Returns:
            (..., 3): unit ray directions in the world frame when ``depth`` is None, otherwise world
            points at that depth. NaN where the pixel cannot be undistorted.
        """
        xy = self.normalize(pixels)
        rays = np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], axis=-1)  # camera frame, z = 1
        if depth is None:
            dirs = rays @ self.R  # R^T applied to row vectors
            return dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
        d = np.broadcast_to(np.asarray(depth, dtype=np.float64), xy.shape[:-1])
        return (rays * d[..., None] - self.t) @ self.R

    @cached_property
    def _fold_limit(self) -> tuple[float, float]:
        """Valid range of the distortion model: ``(limit, largest distorted radius inside it)``.

        ``limit`` is the largest undistorted radius ``r`` (opencv) or angle theta (fisheye) before the
        distortion curve folds back (its slope along a ray from the centre reaches 0). Inside it the
        model is monotone and the inverse unique; beyond it the calibration is meaningless. The rational
        model can also have a pole (denominator 0), which ends the range as well. Tangential terms are
        ignored here (they are small); the radial curve is sampled densely out to ~89.99 degrees.
        """
        if self.model == "pinhole":  # no distortion: every radius is valid
            return float("inf"), float("inf")
        theta = np.linspace(0.0, np.pi / 2, 8193)[:-1]
        if self.model == "fisheye":
            k = self.dist
            t2 = theta * theta
            slope = 1 + t2 * (3 * k[0] + t2 * (5 * k[1] + t2 * (7 * k[2] + t2 * 9 * k[3])))
            radius, distorted = theta, _fisheye_theta_d(theta, k)
            bad = ~(slope > 0)
            if not bad.any():  # the whole half-sphere in front of the camera is valid
                return float(np.pi / 2), float(_fisheye_theta_d(np.float64(np.pi / 2), k))
        else:
            r = np.tan(theta)
            k1, k2, _, _, k3, k4, k5, k6 = self.dist
            r2 = r * r
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                num = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
                den = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
                dnum = k1 + r2 * (2 * k2 + 3 * k3 * r2)
                dden = k4 + r2 * (2 * k5 + 3 * k6 * r2)
                slope = num / den + 2 * r2 * (dnum * den - num * dden) / (den * den)
                radius, distorted = r, r * num / den
                bad = ~(slope > 0) | ~(den > 0) | ~np.isfinite(distorted)
            if not bad.any():
                return float("inf"), float("inf")
        last = max(int(np.argmax(bad)) - 1, 0)  # the last sample before the first bad one
        return float(radius[last]), float(np.max(distorted[: last + 1]))

    def _undistort_fisheye(self, q: np.ndarray) -> np.ndarray:
        """Invert the fisheye model: distorted normalized (N, 2) -> normalized (N, 2).

        theta_d(theta) is monotone on [0, theta_max]; each point's theta is found by Newton's method kept
        inside a shrinking bracket (bisection when a Newton step leaves it), which cannot diverge.
        """
        k = self.dist
        theta_d = np.hypot(q[:, 0], q[:, 1])
        theta_max, theta_d_max = self._fold_limit
        valid = theta_d < theta_d_max  # beyond: more than 90 degrees off-axis, or past the fold
        td = theta_d[valid]
        lo, hi = np.zeros_like(td), np.full_like(td, theta_max)
        theta = np.clip(td, 0.0, theta_max)
        for _ in range(_MAX_ITERS):
            f = _fisheye_theta_d(theta, k) - td
            lo = np.where(f < 0, theta, lo)
            hi = np.where(f > 0, theta, hi)
            t2 = theta * theta
            slope = 1 + t2 * (3 * k[0] + t2 * (5 * k[1] + t2 * (7 * k[2] + t2 * 9 * k[3])))
            new = theta - f / slope
            # Bisect where Newton leaves the bracket (or produced NaN); landing on its edge is fine.
            outside = ~((new >= lo) & (new <= hi))
            new = np.where(outside, 0.5 * (lo + hi), new)
            step = np.abs(new - theta)
            theta = new
            if np.all(step <= 1e-15 * (1 + theta)):
                break
        out = np.full_like(q, np.nan)
        # x = tan(theta) * (q / |q|); on the axis (theta_d = 0) the point is the centre itself.
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(td > 0, np.tan(theta) / np.where(td > 0, td, 1.0), 1.0)
        out[valid] = q[valid] * scale[:, None]
        return out

    def _undistort_opencv(self, q: np.ndarray) -> np.ndarray:
        """Invert the OpenCV model: distorted normalized (N, 2) -> normalized (N, 2).

        OpenCV's own fixed-point iteration (C++, fast) gives a starting point; a damped Newton iteration
        on distort(x) = q then makes it exact to ~1e-14. Two safeguards keep the root the one a real lens
        produces: a Newton step is halved until it reduces the residual, and iterates must stay inside
        the fold radius. Points that do not converge (no root inside the valid range) come back as NaN.
        """
        d = self.dist
        r_fold, rq_max = self._fold_limit
        rq = np.hypot(q[:, 0], q[:, 1])
        out = np.full_like(q, np.nan)
        # Beyond the largest radius the lens can produce (5% margin for the tangential terms): no root.
        reachable = rq <= 1.05 * rq_max
        q, rq = q[reachable], rq[reachable]
        if len(q) == 0:
            return out

        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-15)
        x = cv2.undistortPoints(q.reshape(-1, 1, 2), np.eye(3), d, criteria=criteria).reshape(-1, 2)
        # Restart from q (pulled inside the fold) wherever OpenCV's iteration diverged or left the range.
        restart = ~(np.hypot(x[:, 0], x[:, 1]) < r_fold)
        x[restart] = q[restart] * np.minimum(1.0, 0.5 * r_fold / np.maximum(rq[restart], 1e-300))[:, None]

        scale = 1.0 + rq
        stuck = np.zeros(len(q), dtype=bool)  # no step along the Newton direction reduces the residual
        for _ in range(_NEWTON_ITERS):
            F, J = _opencv_distort(x, d, jacobian=True)
            res = F - q
            err = np.abs(res).max(axis=1)
            todo = np.flatnonzero((err > _SOLVE_TOL * scale) & ~stuck)
            if todo.size == 0:
                break
            step = _solve2x2(J[todo], res[todo])
            t = np.ones(todo.size)
            pending = np.arange(todo.size)
            for _halving in range(_MAX_HALVINGS):  # backtracking line search on the max-residual
                idx = todo[pending]
                cand = x[idx] - t[pending, None] * step[pending]
                cand_err = np.abs(_opencv_distort(cand, d) - q[idx]).max(axis=1)
                good = (cand_err < err[idx]) & (np.hypot(cand[:, 0], cand[:, 1]) < r_fold)
                x[idx[good]] = cand[good]
                pending = pending[~good]
                if pending.size == 0:
                    break
                t[pending] *= 0.5
            stuck[todo[pending]] = True
        final_err = np.abs(_opencv_distort(x, d) - q).max(axis=1)
        x[~(final_err <= _ACCEPT_TOL * scale)] = np.nan
        out[reachable] = x
        return out

    # --- conversions ------------------------------------------------------------------------------

    def scaled(self, unit_scale: float) -> Camera:
        """This camera with the translation multiplied by ``unit_scale`` (e.g. mm -> m: 1e-3).

        Use it when a calibration's lengths are not metres; rotation and intrinsics are unchanged.
        """
        s = _unit_scale(unit_scale, "unit_scale")
        return dataclasses.replace(self, t=self.t * s)

    def with_pose(self, R: Any, t: Any) -> Camera:
        """This camera with another pose: R (3, 3) world -> camera rotation, t (3,) translation."""
        return dataclasses.replace(self, R=R, t=t)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python (TOML/JSON-ready) dict: name, size [w, h], model, K, dist, R, t as lists."""
        return {
            "name": self.name,
            "size": list(self.size),
            "model": self.model,
            "K": self.K.tolist(),
            "dist": self.dist.tolist(),
            "R": self.R.tolist(),
            "t": self.t.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "camera") -> Camera:
        """Inverse of :meth:`to_dict`. ``dist``, ``model``, ``R`` and ``t`` are optional.

        Raises:
            HandstreamError: naming ``where`` and the field when a field is missing or malformed.
        """
        if not isinstance(data, dict):
            raise HandstreamError(f"{where}: expected a table/dict, got {type(data).__name__}")
        for key in ("name", "size", "K"):
            if key not in data:
                raise HandstreamError(f"{where}: missing field {key!r}")
        unknown = set(data) - {"name", "size", "model", "K", "dist", "R", "t"}
        if unknown:
            raise HandstreamError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {
            "name": data["name"],
            "size": as_image_size(data["size"], f"{where}.size"),
            "K": as_float_array(data["K"], (3, 3), f"{where}.K"),
            "model": data.get("model"),
        }
        if "dist" in data:
            kwargs["dist"] = as_float_array(data["dist"], (len(np.ravel(data["dist"])),), f"{where}.dist")
        if "R" in data:
            kwargs["R"] = as_float_array(data["R"], (3, 3), f"{where}.R")
        if "t" in data:
            kwargs["t"] = as_float_array(data["t"], (3,), f"{where}.t")
        try:
            return cls(**kwargs)
        except HandstreamError as exc:
            raise HandstreamError(f"{where}: {exc}") from None


def _normalize_dist(dist: np.ndarray, model: str, here: str) -> np.ndarray:
    """Bring coefficients to the stored layout of ``model`` (see :class:`Camera`), or raise."""
    n = _NUM_DIST[model]
    if model == "pinhole":
        if np.any(dist != 0):
            raise HandstreamError(f"{here}: dist: a pinhole camera has no distortion, got {dist.tolist()}")
        return np.zeros(0)
    if model == "fisheye":
        if dist.size not in (0, 4):
            raise HandstreamError(f"{here}: dist: expected 4 fisheye coefficients k1..k4, got {dist.size}")
        return dist if dist.size else np.zeros(4)
    # opencv: k1 k2 p1 p2 [k3 [k4 k5 k6 [s1 s2 s3 s4 [tx ty]]]]; thin prism and tilt are not modelled.
    if dist.size > n and np.any(dist[n:] != 0):
        raise HandstreamError(
            f"{here}: dist: only k1, k2, p1, p2, k3, k4, k5, k6 are supported; the thin-prism/tilt "
            f"coefficients after the 8th must be zero, got {dist[n:].tolist()}"
        )
    if dist.size > 14:
        raise HandstreamError(f"{here}: dist: expected at most 14 OpenCV coefficients, got {dist.size}")
    out = np.zeros(n)
    out[: min(dist.size, n)] = dist[:n]
    return out


def _unit_scale(value: Any, where: str) -> float:
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise HandstreamError(f"{where}: expected a positive number, got {value!r}") from None
    if not np.isfinite(s) or s <= 0:
        raise HandstreamError(f"{where}: expected a positive number, got {value!r}")
    return s
