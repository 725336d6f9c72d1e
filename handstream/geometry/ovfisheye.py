"""Meta's OVFishEye62 lens model (AssemblyHands head-mounted cameras) and its cv2.fisheye approximation.

OVFishEye62 (6 radial + 2 tangential coefficients), for a camera-frame point ``(x, y, z)``::

    theta   = atan2(sqrt(x^2 + y^2), z)                        angle off the optical axis
    theta_d = theta (1 + k1 theta^2 + k2 theta^4 + ... + k6 theta^12)
    (u, v)  = theta_d (x, y) / sqrt(x^2 + y^2)                 radially distorted
    r2 = u^2 + v^2
    u += p1 (r2 + 2 u^2) + 2 p2 u v                            tangential, Meta's convention:
    v += p2 (r2 + 2 v^2) + 2 p1 u v                            p1 pairs with u (OpenCV pairs p2 with x)
    pixel = (fx u + s v + cx, fy v + cy)

(The tangential convention follows facebookresearch/hand_tracking_toolkit's ``OVR62Distortion``.)

handstream's :class:`~handstream.geometry.camera.Camera` supports the 4-term ``cv2.fisheye`` model, whose
radial curve has the same form with k1..k4 only. :func:`fit_fisheye_to_ovfisheye62` fits those 4 terms
by linear least squares to the 6-term curve over the angles the image covers, and the tangential terms
(~1e-3) are dropped. The resulting error, measured over the image by ``tests/test_calibration_io.py``,
is documented in docs/calibration.md.
"""

from __future__ import annotations

import numpy as np


def project_ovfisheye62(points_cam: np.ndarray, K: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Exact OVFishEye62 projection.

    Args:
        points_cam: (..., 3) points in the camera frame (any length unit).
        K: (3, 3) intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``.
        coeffs: (8,) ``k1, k2, k3, k4, k5, k6, p1, p2`` (the JSON keys of that name).
    Returns:
        (..., 2) pixels (OpenCV convention). Points up to 180 degrees off-axis are projected (the model
        is defined there); NaN input gives NaN.
    """
    X = np.asarray(points_cam, dtype=np.float64)
    k = np.asarray(coeffs, dtype=np.float64)
    x, y, z = X[..., 0], X[..., 1], X[..., 2]
    r = np.hypot(x, y)
    theta = np.arctan2(r, z)
    theta_d = _radial(theta, k[:6])
    # On the axis (r = 0) the direction (x, y) / r is undefined but theta_d = 0: the point is the centre.
    scale = theta_d / np.where(r > 0, r, 1.0)
    u, v = x * scale, y * scale
    p1, p2 = k[6], k[7]
    r2 = u * u + v * v
    u, v = u + p1 * (r2 + 2 * u * u) + 2 * p2 * u * v, v + p2 * (r2 + 2 * v * v) + 2 * p1 * u * v
    return np.stack([K[0, 0] * u + K[0, 1] * v + K[0, 2], K[1, 1] * v + K[1, 2]], axis=-1)


def ovfisheye62_theta_max(K: np.ndarray, size: tuple[int, int], radial: np.ndarray) -> float:
    """Largest angle off-axis (radians) that the image covers: the angle of its farthest corner.

    Args:
        K: (3, 3) intrinsics.
        size: ``(width, height)`` in pixels; the corners are the outer pixel edges (-0.5, w - 0.5, ...).
        radial: (6,) k1..k6 (tangential terms are ignored: they move the corners by < 1%).
    Returns:
        theta_max in radians, at most the angle where the radial curve stops increasing.
    """
    w, h = size
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])
    normalized = (corners - K[:2, 2]) @ np.linalg.inv(K[:2, :2]).T
    theta_d_corner = np.hypot(normalized[:, 0], normalized[:, 1]).max()
    theta = np.linspace(0.0, np.pi, 20001)
    theta_d = _radial(theta, np.asarray(radial, dtype=np.float64))
    rising = np.diff(theta_d) > 0
    end = int(np.argmin(rising)) if not rising.all() else len(theta) - 1  # monotone prefix
    return float(np.interp(theta_d_corner, theta_d[: end + 1], theta[: end + 1]))


def fit_fisheye_to_ovfisheye62(radial: np.ndarray, theta_max: float, samples: int = 2000) -> np.ndarray:
    """Least-squares k1..k4 of ``cv2.fisheye`` approximating OVFishEye62's radial curve.

    Minimises ``sum (theta_d_fisheye(theta) - theta_d_ovr(theta))^2`` over ``samples`` angles uniform in
    ``[0, theta_max]``; the pixel error is ``f`` times that difference, so uniform angles weigh the whole
    field of view equally. The problem is linear in k1..k4 (plain ``numpy.linalg.lstsq``).

    Args:
        radial: (6,) k1..k6 of OVFishEye62.
        theta_max: largest angle to fit, radians (see :func:`ovfisheye62_theta_max`).
        samples: number of angles.
    Returns:
        (4,) k1..k4 for ``Camera(model="fisheye")``.
    """
    theta = np.linspace(0.0, theta_max, samples)
    target = _radial(theta, np.asarray(radial, dtype=np.float64)) - theta
    # theta_d - theta = k1 theta^3 + k2 theta^5 + k3 theta^7 + k4 theta^9
    A = np.stack([theta ** (2 * j + 3) for j in range(4)], axis=1)
    k, *_ = np.linalg.lstsq(A, target, rcond=None)
    return k


def _radial(theta: np.ndarray, k: np.ndarray) -> np.ndarray:
    """theta (1 + k1 theta^2 + ... + kn theta^2n) for n = len(k), by Horner's rule."""
    t2 = theta * theta
    poly = np.zeros_like(theta)
    for coeff in k[::-1]:
        poly = (poly + coeff) * t2
    return theta * (1 + poly)
