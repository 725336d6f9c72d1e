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
    if color == "grey":
        planes = [[to_grey(np.asarray(img))] for img in images]
    else:  # BGR -> R, G, B: the kernel samples one channel; a crop's three channels are three crops of it
        planes = [_rgb_planes(np.asarray(img)) for img in images]
    k = len(planes[0])
    sources: list[np.ndarray] = []
    index: dict[tuple[int, int, int], int] = {}
    pyramids: dict[tuple[int, int], list[np.ndarray]] = {}
    source = np.empty(n * k, np.int64)
    lens = np.empty((n * k, 14), np.float64)
    rotation = np.empty((n * k, 3, 3), np.float64)
    crop = np.empty((n * k, 3), np.float64)
    for i, (v, c) in enumerate(zip(view_of, crops, strict=True)):
        level = pyramid_level(c)
        # level px = (frame px + 0.5) * s - 0.5 with s = level size / frame size (pyrDown rounds up odd sizes)
        lens_i = crop_i = None
        for ch in range(k):
            levels = pyramids.setdefault((v, ch), [np.ascontiguousarray(planes[v][ch])])
            while len(levels) <= level:
                levels.append(cv2.pyrDown(levels[-1]))
            key = (v, ch, level)
            if key not in index:
                index[key] = len(sources)
                sources.append(levels[level])
            if lens_i is None:
                lens_i, crop_i = c.lens_and_crop(levels[level].shape[1] / planes[v][ch].shape[1])
            j = i * k + ch
            source[j] = index[key]
            lens[j], crop[j] = lens_i, crop_i
            rotation[j] = c.rotation
    w, h = crops[0].size
    flat = None if out is None else out[:n].reshape(n * k, h, w)
    res = ops.resample_crops(sources, source, lens, rotation, crop, crops[0].size, out=flat)
    return res if color == "grey" else res.reshape(n, 3, h, w)


def _rgb_planes(image: np.ndarray) -> list[np.ndarray]:
    """(h, w, 3) BGR or (h, w) grey uint8 -> [R, G, B] (h, w) uint8 contiguous planes."""
    if image.ndim == 2:
        return [image, image, image]
    if image.ndim == 3 and image.shape[2] == 1:
        return [image[:, :, 0]] * 3
    if image.ndim == 3 and image.shape[2] == 3:
        b, g, r = cv2.split(image)
        return [r, g, b]
    raise HandstreamError(f"image: expected (h, w) grey or (h, w, 3) BGR, got shape {image.shape}")
