"""Drop triangulated joints that cannot belong to their hand.

A two-view RANSAC solution from a short-baseline pair can agree on a wrong point: a 2D error along the
epipolar line is invisible to reprojection and becomes a depth error of decimetres. No joint of an adult
hand lies more than ~0.16 m from the hand's median joint, so a joint farther than ``max_extent_m`` from
the median of its hand's other triangulated joints is an outlier whatever the views say.
"""

from __future__ import annotations

import numpy as np


def drop_far_joints(joints: np.ndarray, max_extent_m: float) -> np.ndarray:
    """Return a copy of ``joints`` with joints far from their hand's median set to NaN.

    Args:
        joints: (..., K, 3) metres, one hand per leading index, NaN = not triangulated.
        max_extent_m: the largest plausible distance (metres) of a joint from the hand's median joint
            (the per-axis median of its triangulated joints, robust to the outliers it removes);
            <= 0 returns an unchanged copy.
    Returns:
        (..., K, 3) metres, the same array with the far joints NaN.
    """
    out = np.array(joints, dtype=np.float64, copy=True)
    if max_extent_m <= 0:
        return out
    hands = out.reshape(-1, *out.shape[-2:])  # (N, K, 3) view of out
    for hand in hands:  # a few hands per frame: a loop is cheaper than nanmedian over all of them
        finite = np.isfinite(hand).all(axis=-1)
        if finite.any():
            centre = np.median(hand[finite], axis=0)
            far = finite & (np.linalg.norm(hand - centre, axis=-1) > max_extent_m)
            hand[far] = np.nan
    return out
