"""Hand crops: a second, closer look at each detected hand (the refiner's input).

Legend: ``N`` crops, ``K`` joints (21), ``(H_in, W_in)`` the refiner's input size.

The detector sees whole frames letterboxed into 256x192, where a hand at arm's length is ~25 px wide:
its heatmaps place joints to a few input pixels, which is 10+ frame pixels. The refiner is the same kind
of network (:class:`~handstream.models.network.HandNet`, same codec, same ray input) trained on square
windows around one hand, warped from the *full-resolution* frame, so the hand fills most of its input.
A crop is an :class:`~handstream.models.preprocess.InputMapping` (an affine frame -> input map), so the
rays of each heatmap cell stay the true viewing directions and decoded keypoints map back exactly.

The window is centred on the box of the hand's keypoints and its side is ``margin`` times the box's
longer side (at least ``min_side`` frame pixels). Training draws margin and centre around the same rule
(:class:`handstream.train.augment.HandCropConfig`), so the engine's crops, made from the detector's keypoints,
are crops the refiner has seen.
"""

from __future__ import annotations

import cv2
import numpy as np

from handstream.models.preprocess import InputMapping, to_grey


def hand_box(keypoints: np.ndarray, min_points: int = 3) -> tuple[np.ndarray, float] | None:
    """Centre (2,) and longer side (frame px) of the box around one hand's finite keypoints ((K, 2) frame px).

    Returns None when fewer than ``min_points`` keypoints are finite.
    """
    p = np.asarray(keypoints, dtype=np.float64)
    p = p[np.isfinite(p).all(axis=-1)]
    if len(p) < max(1, min_points):
        return None
    lo, hi = p.min(axis=0), p.max(axis=0)
    return (lo + hi) / 2, float((hi - lo).max())


def window_side(box_side: float, margin: float, min_side: float = 0.0) -> float:
    """The window rule: side (frame px) of the window around a hand whose box has ``box_side`` frame px."""
    return margin * max(float(box_side), min_side)


def crop_mapping(center: np.ndarray, side: float, input_size: tuple[int, int], angle_deg: float = 0.0) -> InputMapping:
    """The frame -> input map of a window of ``side`` frame pixels (along the input's longer axis) centred
    on ``center`` (frame px), rotated by ``angle_deg`` (counter-clockwise in the image), filling ``input_size``.
    """
    w, h = input_size
    s = max(w, h) / max(float(side), 1e-6)
    a = np.deg2rad(angle_deg)
    rot = s * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    # input = rot @ (frame - center) + input centre   (pixel centres at integers on both sides)
    t = np.array([(w - 1) / 2, (h - 1) / 2]) - rot @ np.asarray(center, dtype=np.float64)
    m = np.hstack([rot, t[:, None]])
    return InputMapping((int(w), int(h)), tuple(float(v) for v in m.ravel()))


def crop_image(image: np.ndarray, mapping: InputMapping, out: np.ndarray | None = None) -> np.ndarray:
    """Warp one frame ((h, w) uint8 grey or (h, w, 3) BGR uint8) into the crop: (H_in, W_in) float32 in [0, 1],
    zero outside the frame (as the detector's letterbox padding). Bilinear; a window larger than the input
    is first shrunk with area averaging so that distant hands are not aliased."""
    grey = to_grey(np.asarray(image))
    w, h = mapping.input_size
    m = mapping.matrix
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.75:  # downsampling: pre-shrink with INTER_AREA, then warp at a scale near 1
        f = min(1.0, scale * 1.5)
        small = cv2.resize(
            grey, (max(1, round(grey.shape[1] * f)), max(1, round(grey.shape[0] * f))), interpolation=cv2.INTER_AREA
        )
        fx, fy = small.shape[1] / grey.shape[1], small.shape[0] / grey.shape[0]
        # small px = (frame px + 0.5) * f - 0.5  ->  frame px = (small + 0.5) / f - 0.5
        pre = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
        m = m @ pre
        grey = small
    dst = cv2.warpAffine(grey, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if out is None:
        out = np.empty((h, w), np.float32)
    np.multiply(dst, np.float32(1.0 / 255.0), out=out, dtype=np.float32)
    return out
