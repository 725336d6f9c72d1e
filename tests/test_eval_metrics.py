"""Pose metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from handstream import metrics


def test_epe_and_coverage_by_hand():
    gt = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [5.0, 5.0]])
    pred = np.array([[3.0, 4.0], [10.0, 0.0], [np.nan, np.nan], [5.0, 6.0]])  # errors 5, 0, miss, 1
    err, cov = metrics.point_errors(pred, gt)
    assert sorted(err.tolist()) == [0.0, 1.0, 5.0]
    assert cov == pytest.approx(0.75)
    assert metrics.epe(pred, gt) == pytest.approx(2.0)
    # the mask drops the first joint: errors 0 and 1 (the miss still counts in coverage only)
    assert metrics.epe(pred, gt, np.array([False, True, True, True])) == pytest.approx(0.5)
    assert metrics.epe(pred[:0], gt[:0]) != metrics.epe(pred[:0], gt[:0])  # NaN when nothing to score


def test_pck_2d_counts_misses_as_wrong():
    gt = np.zeros((1, 4, 2))
    pred = np.array([[[1.0, 0], [2.0, 0], [3.0, 0], [np.nan, np.nan]]])
    box = np.array([10.0])  # threshold 0.2 * 10 = 2 px
    assert metrics.pck_2d(pred, gt, box) == pytest.approx(2 / 4)
    assert metrics.pck_2d(pred, gt, box, alpha=0.3) == pytest.approx(3 / 4)


def test_mpjpe_in_units_of_input():
    gt = np.zeros((2, 3))
    pred = np.array([[0.003, 0.004, 0.0], [0.0, 0.0, 0.01]])  # 5 mm and 10 mm
    assert metrics.mpjpe(pred, gt) == pytest.approx(0.0075)


def test_procrustes_removes_similarity_exactly():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(21, 3))
    a = 0.7
    r = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    pred = 1.7 * gt @ r.T + [1.0, -2.0, 3.0]
    assert metrics.mpjpe(pred, gt) > 1
    assert metrics.pa_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    # a reflection is not a rotation: PA cannot undo it
    assert metrics.pa_mpjpe(gt * [1, 1, -1], gt) > 0.1


def test_pa_mpjpe_of_a_known_residual():
    # gt: square in the plane; pred: the same with one corner pushed out of the plane by d.
    gt = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
    pred = gt.copy()
    pred[0, 2] = 0.4
    aligned = metrics.procrustes(pred, gt)
    # the optimal alignment spreads the residual; it is never worse than no alignment
    assert metrics.epe(aligned, gt) <= metrics.epe(pred, gt) + 1e-12
    assert metrics.pa_mpjpe(pred, gt) == pytest.approx(metrics.epe(aligned, gt))


def test_pck_curve_and_auc():
    errors = np.array([0.010, 0.025, 0.035, 0.060, np.inf])
    curve = metrics.pck_curve(errors, np.array([0.020, 0.030, 0.050]))
    np.testing.assert_allclose(curve, [0.2, 0.4, 0.6])
    # all errors below 20 mm -> AUC 1; all above 50 mm -> 0
    assert metrics.auc(np.full(5, 0.001)) == pytest.approx(1.0)
    assert metrics.auc(np.full(5, 0.1)) == pytest.approx(0.0)
    # uniform errors on [20, 50] mm: the PCK curve is the diagonal, AUC 1/2
    assert metrics.auc(np.linspace(0.020, 0.050, 3001)) == pytest.approx(0.5, abs=2e-3)
