"""The triangulate stage: one rule, used by the live engine, the evaluation, the consistency metrics and the
adaptation's pseudo-labels.

Per hand: RANSAC over the views (a view whose reprojection error exceeds ``threshold_px`` is dropped),
then the **hand-extent rule** (:func:`drop_far_joints`), then **min_joints** (a hand that keeps fewer joints
is not reported at all). A caller that must skip a step says so by argument: ``max_hand_extent_m=0`` (rig
units are not metres, e.g. a recording's) or ``min_joints=0``.

Why the hand-extent rule: a two-view RANSAC solution from a short-baseline pair can agree on a wrong point:
a 2D error along the epipolar line is invisible to reprojection and becomes a depth error of decimetres. No
joint of an adult hand lies more than ~0.16 m from the hand's median joint, so a joint farther than
``max_extent_m`` from the median of its hand's other triangulated joints is an outlier whatever the views say.

Legend: ``V`` views, ``...`` any leading shape (frames, hands), ``K`` joints (21).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TriangulationRule:
    """The triangulate stage's options; the engine's come from ``[engine]`` (:meth:`from_engine`).

    Attributes:
        threshold_px: RANSAC inlier threshold, pixels of the cameras given.
        min_views: views that must agree on a joint (>= 2).
        max_hand_extent_m: hand-extent rule, metres (rig units); <= 0 skips it.
        min_joints: joints a hand must keep after the rules; fewer: the whole hand is NaN. 0 skips it.
    """

    threshold_px: float
    min_views: int
    max_hand_extent_m: float
    min_joints: int

    @classmethod
    def from_engine(cls, engine: Any, **changes: Any) -> TriangulationRule:
        """The rule of an ``EngineConfig`` (``ransac_threshold_px``, ``min_views``, ``max_hand_extent_m``,
        ``min_joints``), with ``changes`` (e.g. ``max_hand_extent_m=0`` to skip the hand-extent rule)."""
        rule = cls(engine.ransac_threshold_px, engine.min_views, engine.max_hand_extent_m, engine.min_joints)
        return dataclasses.replace(rule, **changes)


@dataclass
class HandTriangulation:
    """What :func:`triangulate_hands` returns; every per-joint field is NaN / 0 / False where ``found`` is False.

    Attributes:
        joints: (..., K, 3) rig units (metres for the engine), NaN = not found.
        reproj_error: (..., K) pixels, mean over the inlier views.
        n_views: (..., K) uint8, inlier views per joint.
        conf: (..., K) mean 2D confidence over the inlier views.
        inliers: (V, ..., K) bool, the views used for each found joint.
        found: (..., K) bool, the joints kept (finite ``joints``).
        agreed: (..., K) bool, the joints RANSAC triangulated (``min_views`` agree), before the rules.
        valid: (V, ..., K) bool, the 2D observations given (finite keypoint, confidence > 0).
    """

    joints: np.ndarray
    reproj_error: np.ndarray
    n_views: np.ndarray
    conf: np.ndarray
    inliers: np.ndarray
    found: np.ndarray
    agreed: np.ndarray
    valid: np.ndarray


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


def triangulate_hands(cameras: Any, keypoints: np.ndarray, conf: np.ndarray,
                      rule: TriangulationRule) -> HandTriangulation:  # fmt: skip
    """Triangulate hands seen in several views with the engine's rule (module docstring), all at once.

    Args:
        cameras: a :class:`~handstream.geometry.Rig` (``keypoints`` in its distorted frame pixels, undistorted
            here) or (V, 3, 4) projection matrices of exact pinhole cameras (e.g. the tracker's crop cameras).
        keypoints: (V, ..., K, 2) pixels, NaN = not seen.
        conf: (V, ..., K) weights; 0 or NaN = not seen.
        rule: the options.
    Returns:
        :class:`HandTriangulation`, shapes as there.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    c = np.asarray(conf, dtype=np.float64)
    V, shape = kp.shape[0], kp.shape[1:-1]
    valid = np.isfinite(kp).all(axis=-1) & np.isfinite(c) & (c > 0)
    w = np.where(valid, c, 0.0)
    pts = np.where(valid[..., None], kp, np.nan).reshape(V, -1, 2)
    if isinstance(cameras, np.ndarray):
        from handstream import ops  # lazy: the compiled kernels

        tri = ops.triangulate(np.ascontiguousarray(pts), np.ascontiguousarray(cameras, dtype=np.float64),
                              np.ascontiguousarray(w.reshape(V, -1)), method="ransac",
                              threshold_px=rule.threshold_px, min_views=rule.min_views)  # fmt: skip
    else:
        tri = cameras.triangulate(pts, w.reshape(V, -1), method="ransac", threshold_px=rule.threshold_px,
                                  min_views=rule.min_views)  # fmt: skip
    raw = np.asarray(tri.points, dtype=np.float64).reshape(*shape, 3)
    agreed = np.isfinite(raw).all(axis=-1)
    joints = drop_far_joints(raw, rule.max_hand_extent_m)
    found = np.isfinite(joints).all(axis=-1)
    if rule.min_joints > 0 and found.ndim >= 1:
        kept = found.sum(axis=-1) >= rule.min_joints  # (...) per hand
        joints[~kept] = np.nan
        found &= kept[..., None]
    inliers = np.asarray(tri.inliers, dtype=bool).reshape(V, *shape) & found
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = (w * inliers).sum(axis=0) / inliers.sum(axis=0)
    return HandTriangulation(
        joints=joints,
        reproj_error=np.where(found, np.asarray(tri.reproj_error, np.float64).reshape(shape), np.nan),
        n_views=np.where(found, np.asarray(tri.n_views).reshape(shape), 0).astype(np.uint8),
        conf=np.where(found, mean_conf, np.nan),
        inliers=inliers,
        found=found,
        agreed=agreed,
        valid=valid,
    )


def triangulate_recording(rig: Any, keypoints: np.ndarray, conf: np.ndarray,
                          rule: TriangulationRule) -> HandTriangulation:  # fmt: skip
    """:func:`triangulate_hands` over a whole recording in one call, frames first (points are independent).

    Args:
        rig: the :class:`~handstream.geometry.Rig`; keypoints: (F, V, H, K, 2) distorted frame pixels, NaN = not
            detected; conf: (F, V, H, K) weights, 0 or NaN = not detected.
    Returns:
        :class:`HandTriangulation` with frames first: ``joints`` (F, H, K, 3), ``inliers`` and ``valid``
        (F, V, H, K), the others (F, H, K).
    """
    t = triangulate_hands(rig, np.moveaxis(np.asarray(keypoints), 1, 0), np.moveaxis(np.asarray(conf), 1, 0), rule)
    t.inliers = np.moveaxis(t.inliers, 0, 1).copy()
    t.valid = np.moveaxis(t.valid, 0, 1).copy()
    return t


AGREEMENT_SIGMA = 0.02
"""Reprojection error, as a fraction of the crop's side, at which :func:`agreement_confidence` falls to
exp(-1/2) ~ 0.61 (4.5 px of a 224 px crop: about MediaPipe's own 2D error on real hands)."""


def agreement_confidence(t: HandTriangulation, prior: np.ndarray, sigma_px: float) -> np.ndarray:
    """Per-joint confidence from how the views agree, for networks that give no per-joint score.

    ``prior`` (..., K) (e.g. the hand presence the weights came from) x the fraction of the views that agree
    with the point (inliers / views looked at: a joint one view missed or contradicts has less evidence)
    x ``exp(-(reproj / sigma_px)^2 / 2)``; 0 where not found.

    Args:
        t: a :func:`triangulate_hands` result (reprojection error in the cameras' pixels).
        prior: (..., K) in [0, 1]; sigma_px: pixels of the same cameras.
    Returns:
        (..., K) float32 in [0, 1].
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        share = t.inliers.sum(axis=0) / max(len(t.inliers), 1)
        fit = np.exp(-0.5 * (t.reproj_error / float(sigma_px)) ** 2)
    conf = np.where(t.found, np.asarray(prior, np.float64) * share * fit, 0.0)
    return np.nan_to_num(conf, nan=0.0).astype(np.float32)
