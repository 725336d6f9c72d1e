"""Resample frames into perspective crop cameras, all crops of a frame set in one call.

Legend: ``V`` views, ``N`` crops, ``(W, H)`` crop size.

A crop that shrinks the frame (a hand close to the camera: several frame pixels per crop pixel) would alias
with bilinear sampling alone, so such a crop samples a level of an image pyramid (``cv2.pyrDown``: Gaussian
filtered, half size per level) chosen so that at most ~1.5 level pixels fall on one crop pixel; the level's
camera is the frame's with ``K`` scaled (:func:`handstream.geometry.crop_camera.lens_row`). Levels are built
once per frame and only when a crop needs them. Training (:mod:`handstream.train.perspective`) makes its crops with
this same function, so the crop model sees exactly the engine's pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from handstream.errors import HandstreamError
from handstream.geometry.crop_camera import CropCamera
from handstream.models.preprocess import to_grey

MAX_LEVEL = 4
SHRINK_LIMIT = 1.5  # level pixels per crop pixel above which the next pyramid level is used


def pyramid_level(crop: CropCamera) -> int:
    """The pyramid level (0 = the frame) a crop samples: the smallest with <= 1.5 level px per crop px."""
    s = crop.frame_scale()
    if not (s > SHRINK_LIMIT):
        return 0
    return int(min(MAX_LEVEL, math.ceil(math.log2(s / SHRINK_LIMIT))))


def resample(
    images: list[np.ndarray],
    view_of: list[int],
    crops: list[CropCamera],
    out: np.ndarray | None = None,
    color: str = "grey",
) -> np.ndarray:
    """Resample each crop from its view's frame.

    Args:
        images: V frames, (h, w) uint8 grey or (h, w, 3) uint8 BGR, each at its camera's calibrated size.
        view_of: (N,) the view index each crop looks into.
        crops: N crop cameras (all the same size (W, H)).
        out: optional buffer (reused by the engine every frame): (>= N, H, W) float32 for ``grey``,
            (>= N, 3, H, W) for ``rgb``.
        color: ``grey`` (BGR -> grey, the heatmap models') or ``rgb`` (R, G, B planes; a grey frame gives three
            equal planes), the crop model's input.
    Returns:
        (N, H, W) float32 in [0, 1] for ``grey``, (N, 3, H, W) for ``rgb``; 0 where the crop sees outside the
        frame.
    """
    from handstream import ops  # lazy: the compiled kernels

    n = len(crops)
    if color not in ("grey", "rgb"):
        raise ValueError(f"color must be 'grey' or 'rgb', got {color!r}")
    if n == 0:
        w, h = (1, 1) if out is None else (out.shape[-1], out.shape[-2])
        shape = (0, h, w) if color == "grey" else (0, 3, h, w)
        return np.zeros(shape, np.float32) if out is None else out[:0]
    # grey: BGR -> grey; rgb: the BGR frames as they are (the kernel samples the three channels at once and
    # writes R, G, B planes; a grey frame becomes three equal channels)
    frames = [to_grey(np.asarray(img)) if color == "grey" else _bgr(np.asarray(img)) for img in images]
    sources: list[np.ndarray] = []
    index: dict[tuple[int, int], int] = {}
    pyramids: dict[int, list[np.ndarray]] = {}
    source = np.empty(n, np.int64)
    lens = np.empty((n, 14), np.float64)
    rotation = np.empty((n, 3, 3), np.float64)
    crop = np.empty((n, 3), np.float64)
    for i, (v, c) in enumerate(zip(view_of, crops, strict=True)):
        level = pyramid_level(c)
        levels = pyramids.setdefault(v, [np.ascontiguousarray(frames[v])])
        while len(levels) <= level:
            levels.append(cv2.pyrDown(levels[-1]))
        key = (v, level)
        if key not in index:
            index[key] = len(sources)
            sources.append(levels[level])
        img = levels[level]
        # level px = (frame px + 0.5) * s - 0.5 with s = level size / frame size (pyrDown rounds up odd sizes)
        scale = img.shape[1] / frames[v].shape[1]
        source[i] = index[key]
        lens[i], crop[i] = c.lens_and_crop(scale)
        rotation[i] = c.rotation
    return ops.resample_crops(sources, source, lens, rotation, crop, crops[0].size, out=out)


def _bgr(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) BGR or (h, w) grey uint8 -> (h, w, 3) BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise HandstreamError(f"image: expected (h, w) grey or (h, w, 3) BGR, got shape {image.shape}")
