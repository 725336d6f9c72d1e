"""Pose metrics (NumPy only).

Legend: ``...`` any leading dims (views, frames, hands), ``K`` joints (21). 2D points are pixels, 3D
points metres; errors are returned in the units of the inputs unless stated. ``mask`` arguments say which
entries have ground truth and count; a NaN *prediction* where the mask is set is a miss: it is excluded from
the error means and reported through the coverage (fraction of masked entries with a prediction).
"""

from __future__ import annotations

import numpy as np


def _mask(gt: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    m = np.isfinite(gt).all(axis=-1)
    return m if mask is None else m & np.asarray(mask, dtype=bool)


def point_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean errors of the masked, predicted points.

    Args:
        pred, gt: (..., D) points (D = 2 or 3); NaN in ``pred`` = no prediction.
        mask: (...) bool, entries to score (default: all with a finite ``gt``).
    Returns:
        errors (M,) of the masked entries that have a prediction, and coverage (M / masked count; NaN if none).
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    m = _mask(gt, mask)
    have = m & np.isfinite(pred).all(axis=-1)
    err = np.linalg.norm(pred[have] - gt[have], axis=-1)
    total = int(m.sum())
    return err, np.array(len(err) / total if total else np.nan)


def epe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean end-point error (same units as the points) over masked, predicted entries; NaN if none."""
    err, _ = point_errors(pred, gt, mask)
    return float(err.mean()) if len(err) else float("nan")


def pck_2d(
    pred: np.ndarray, gt: np.ndarray, box_size: np.ndarray, mask: np.ndarray | None = None, alpha: float = 0.2
) -> float:
    """Fraction of masked joints within ``alpha * box_size`` of the truth (a missing prediction counts as wrong).

    Args:
        pred, gt: (..., K, 2) pixels. box_size: (...) the hand's bounding-box size (pixels) per hand.
        mask: (..., K) bool.
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    box = np.asarray(box_size, dtype=np.float64)[..., None]
    m = _mask(gt, mask) & np.isfinite(box)
    d = np.linalg.norm(pred - gt, axis=-1)
    ok = np.where(np.isfinite(d), d <= alpha * box, False)
    total = int(m.sum())
    return float((ok & m).sum() / total) if total else float("nan")


def mpjpe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean per-joint position error over masked, predicted joints (units of the inputs)."""
    return epe(pred, gt, mask)


def procrustes(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align ``pred`` (K, 3) to ``gt`` (K, 3) (rotation, translation, scale; Umeyama). Rows with a
    NaN are ignored in the fit and stay NaN. Returns the aligned (K, 3)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    ok = np.isfinite(pred).all(axis=1) & np.isfinite(gt).all(axis=1)
    out = np.full_like(pred, np.nan)
    if ok.sum() < 3:
        return out
    p, g = pred[ok], gt[ok]
    mp, mg = p.mean(axis=0), g.mean(axis=0)
    p0, g0 = p - mp, g - mg
    u, s, vt = np.linalg.svd(g0.T @ p0)
    d = np.sign(np.linalg.det(u @ vt))
    e = np.diag([1.0, 1.0, d])
    r = u @ e @ vt
    var = (p0**2).sum()
    scale = float((s * np.diag(e)).sum() / var) if var > 0 else 1.0
    out[ok] = scale * (p0 @ r.T) + mg
    return out


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """MPJPE after aligning each hand with :func:`procrustes`.

    Args:
        pred, gt: (..., K, 3). mask: (..., K) bool (joints to fit and score).
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    m = _mask(gt, mask)
    p = np.where(m[..., None], pred, np.nan).reshape(-1, *pred.shape[-2:])
    g = np.where(m[..., None], gt, np.nan).reshape(-1, *gt.shape[-2:])
    aligned = np.stack([procrustes(a, b) for a, b in zip(p, g, strict=True)]) if len(p) else p
    return epe(aligned, g, np.isfinite(g).all(axis=-1))


def pck_curve(errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(T,) fraction of ``errors`` at or below each threshold (``errors`` may include inf for misses)."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    if e.size == 0:
        return np.full(len(thresholds), np.nan)
    return np.array([(e <= t).mean() for t in thresholds])


def auc(errors: np.ndarray, lo: float = 0.020, hi: float = 0.050, steps: int = 31) -> float:
    """Area under the PCK curve between ``lo`` and ``hi`` (same units as ``errors``; default 20-50 mm in
    metres), normalised to [0, 1] (trapezoids over ``steps`` evenly spaced thresholds)."""
    t = np.linspace(lo, hi, steps)
    curve = pck_curve(errors, t)
    return float(np.trapezoid(curve, t) / (hi - lo))
