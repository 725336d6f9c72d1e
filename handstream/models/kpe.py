"""Intrinsics-aware positional encoding (KPE, after WildHands, ECCV 2024): each heatmap cell's viewing ray.

The network sees, next to the image, the direction in which every heatmap cell looks, computed from the
camera's own model (intrinsics and lens distortion) through the letterbox mapping. The same weights then
serve a narrow pinhole camera and a wide fisheye, and a hand near the edge of a fisheye image is not
mistaken for one straight ahead. The network turns these two angles into sinusoidal features itself
(:class:`handstream.models.network.HandNet`), so the engine only provides the angles, once per camera.
"""

from __future__ import annotations

import numpy as np

from handstream.geometry.camera import Camera
from handstream.models.preprocess import InputMapping, Letterbox

_CACHE: dict[tuple, np.ndarray] = {}


def _key(camera: Camera, box: Letterbox, stride: int) -> tuple:
    return (camera.model, camera.size, camera.K.tobytes(), camera.dist.tobytes(), box, stride)


def ray_angles(camera: Camera, box: Letterbox | InputMapping, stride: int, cache: bool = True) -> np.ndarray:
    """Viewing angles of each heatmap cell centre.

    Args:
        camera: the camera that took the frame (its size must be the frame size).
        box: the frame -> input mapping (the letterbox, or any affine map such as a hand window).
        stride: input pixels per heatmap cell.
        cache: keep the result for the next call with the same camera and mapping (False for mappings
            that change every frame, such as the refiner's hand windows).
    Returns:
        (2, h, w) float32 with ``h, w = ceil(H_in / stride), ceil(W_in / stride)``: ``atan(x/z)`` and
        ``atan(y/z)`` in radians of the undistorted ray, in the camera frame. Cells the lens model
        cannot undistort (beyond its valid range, or in the padding far outside the frame) are 0.
        Cached per (intrinsics, mapping, stride); the returned array is read-only.
    """
    key = _key(camera, box, stride) if cache else None
    cached = _CACHE.get(key) if cache else None
    if cached is not None:
        return cached
    iw, ih = box.input_size
    h, w = -(-ih // stride), -(-iw // stride)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cells = np.stack([xs, ys], axis=-1)
    input_px = (cells + 0.5) * stride - 0.5
    frame_px = box.to_frame(input_px)
    xy = camera.normalize(frame_px)
    angles = np.arctan(xy).transpose(2, 0, 1)
    angles = np.where(np.isfinite(angles), angles, 0.0).astype(np.float32)
    angles.flags.writeable = False
    if not cache:
        return angles
    if len(_CACHE) > 64:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = angles
    return angles
