"""One-Euro filter: smooths jitter at rest, follows motion, restarts lost joints."""

import numpy as np

from handstream.engine.smoothing import OneEuroFilter

DT = 33_333_333


def test_reduces_jitter_at_rest():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    truth = np.array([0.1, 0.0, 0.4])
    raw = truth + rng.normal(0, 0.002, (300, 1, 3))
    out = np.array([f(x, i * DT) for i, x in enumerate(raw)])
    assert np.std(out[50:] - truth) < 0.4 * np.std(raw[50:] - truth)


def test_follows_fast_motion_with_small_lag():
    f_fast = OneEuroFilter(min_cutoff=1.0, beta=20.0)
    f_slow = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    xs = np.zeros((60, 1, 3))
    xs[:, 0, 0] = np.arange(60) * 0.03  # 0.9 m/s
    lag_fast = xs[-1, 0, 0] - [f_fast(x, i * DT) for i, x in enumerate(xs)][-1][0, 0]
    lag_slow = xs[-1, 0, 0] - [f_slow(x, i * DT) for i, x in enumerate(xs)][-1][0, 0]
    assert 0 <= lag_fast < 0.3 * lag_slow


def test_lost_joint_is_nan_and_restarts_at_its_new_place():
    f = OneEuroFilter()
    a = np.array([[0.0, 0.0, 0.5], [0.1, 0.0, 0.5]])
    f(a, 0)
    lost = a.copy()
    lost[1] = np.nan
    out = f(lost, DT)
    assert np.isnan(out[1]).all() and np.isfinite(out[0]).all()
    moved = a.copy()
    moved[1] = [0.5, 0.5, 0.5]
    out = f(moved, 2 * DT)
    np.testing.assert_allclose(out[1], [0.5, 0.5, 0.5], atol=1e-6)


def test_disabled_passes_through():
    f = OneEuroFilter(enabled=False)
    x = np.random.default_rng(1).normal(size=(2, 21, 3))
    np.testing.assert_allclose(f(x, 0), x.astype(np.float32))
    np.testing.assert_allclose(f(x + 1, DT), (x + 1).astype(np.float32))
