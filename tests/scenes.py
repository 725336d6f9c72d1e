"""Synthetic scenes with known 3D points for kernel tests: random rigs looking at a hand-sized cloud."""

from __future__ import annotations

import numpy as np


def look_at(center: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation R (world -> camera) of a camera at ``center`` whose optical axis points at ``target``."""
    z = target - center
    z /= np.linalg.norm(z)
    up = rng.normal(size=3)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def random_rig(rng: np.random.Generator, n_views: int, distance=(0.3, 0.8)) -> np.ndarray:
    """Projections (V, 3, 4) of pinhole cameras 640x480 around the origin, all looking at it."""
    projections = []
    for _ in range(n_views):
        d = rng.uniform(*distance)
        center = rng.normal(size=3)
        center *= d / np.linalg.norm(center)
        R = look_at(center, rng.normal(scale=0.02, size=3), rng)
        f = rng.uniform(300, 600)
        K = np.array([[f, 0, 320 + rng.normal(scale=5)], [0, f * rng.uniform(0.98, 1.02), 240], [0, 0, 1]])
        projections.append(K @ np.hstack([R, (-R @ center)[:, None]]))
    return np.array(projections)


def project(projections: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points (P, 3) -> pixels (V, P, 2) through every projection (V, 3, 4)."""
    homogeneous = np.hstack([points, np.ones((len(points), 1))])
    uvw = np.einsum("vij,pj->vpi", projections, homogeneous)
    return uvw[..., :2] / uvw[..., 2:]


def hand_cloud(rng: np.random.Generator, n_points: int, spread=0.08) -> np.ndarray:
    """(P, 3) points in a hand-sized blob near the origin (metres)."""
    return rng.normal(scale=spread / 2, size=(n_points, 3))


def gaussian_heatmaps(centres: np.ndarray, h: int, w: int, sigma: float = 2.0, peak: float = 1.0) -> np.ndarray:
    """Heatmaps (..., h, w) float32 with a Gaussian of ``sigma`` px at each sub-pixel centre (..., 2)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx = centres[..., 0][..., None, None]
    cy = centres[..., 1][..., None, None]
    return (peak * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))).astype(np.float32)
