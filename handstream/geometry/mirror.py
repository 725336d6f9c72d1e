"""Mirror images of cameras: the camera whose image of the world reflected through a plane is this camera's image
flipped left to right.

Flipping a frame left to right (``u' = W - 1 - u``) is exactly what another camera sees of a mirrored world, so a
recording and its mirror image are two geometrically exact recordings; the mirror image's hands are of the other
side (a right hand becomes a left hand). ``benchmarks/mirrored_rig.py`` uses this to make a real two-hand scene
from a one-hand clip.

For ``X_cam = R X + t`` and the reflection ``X' = A X + b`` through the plane ``n . X = d`` (``A = I - 2 n n^T``,
``b = 2 d n``), the mirrored camera is ``R' = S R A``, ``t' = S (R b + t)`` with ``S = diag(-1, 1, 1)`` (a proper
rotation: det = (-1)(-1) = 1), with ``cx' = W - 1 - cx`` and ``skew' = -skew``. Of the distortion terms only
OpenCV's ``p2`` is odd in x (it multiplies ``r^2 + 2x^2`` in x and ``2xy`` in y), so it changes sign; radial,
``p1`` and the fisheye model are even and stay.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from handstream.errors import HandstreamError
from handstream.geometry.camera import Camera

_S = np.diag([-1.0, 1.0, 1.0])


def _plane(normal, offset: float) -> tuple[np.ndarray, float]:
    n = np.asarray(normal, np.float64).reshape(3)
    length = float(np.linalg.norm(n))
    if not np.isfinite(length) or length == 0.0 or not np.isfinite(offset):
        raise HandstreamError(f"mirror plane: expected a finite non-zero normal and offset, got {normal}, {offset}")
    return n / length, float(offset) / length


def reflect_points(points, normal, offset: float) -> np.ndarray:
    """Points (..., 3) reflected through the plane ``normal . X = offset`` (world units; ``normal`` (3,), any
    length: the plane is the same once both are divided by it)."""
    n, d = _plane(normal, offset)
    p = np.asarray(points, np.float64)
    return p - 2.0 * ((p @ n) - d)[..., None] * n


def mirror_camera(cam: Camera, normal, offset: float, name: str | None = None) -> Camera:
    """The camera that sees the world reflected through ``normal . X = offset`` as ``cam``'s image flipped left to
    right (module docstring). ``name`` defaults to ``cam.name + "m"``."""
    n, d = _plane(normal, offset)
    A = np.eye(3) - 2.0 * np.outer(n, n)
    R, t = np.asarray(cam.R), np.asarray(cam.t)
    K = np.array(cam.K, np.float64)
    K[0, 2] = cam.size[0] - 1 - K[0, 2]
    K[0, 1] = -K[0, 1]
    dist = np.array(cam.dist, np.float64)
    if cam.model == "opencv":
        dist[3] = -dist[3]
    t_mirrored = _S @ (R @ (2.0 * d * n) + t)
    return dataclasses.replace(cam, name=name or f"{cam.name}m", K=K, dist=dist, R=_S @ R @ A, t=t_mirrored)
