"""HeatmapCodec: encode then decode returns the keypoints."""

from __future__ import annotations

import numpy as np

from handstream.models.codec import HeatmapCodec


def test_codec_round_trip_within_a_tenth_of_a_pixel():
    codec = HeatmapCodec((256, 192), 4, 2.0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        kp = np.stack(
            [rng.uniform(24, 232, (2, 21)), rng.uniform(24, 168, (2, 21))], axis=-1
        )  # >= 6 cells from the borders
        maps, weights = codec.encode(kp)
        got, conf = codec.decode(maps)
        assert got.shape == (2, 21, 2) and conf.shape == (2, 21)
        assert np.abs(got - kp).max() < 0.1
        assert (conf > 0.9).all() and (weights == 1).all()


def test_codec_unknown_and_absent_joints():
    codec = HeatmapCodec((256, 192), 4, 2.0)
    kp = np.full((2, 21, 2), 100.0)
    kp[0, 0] = np.nan  # unknown -> weight 0
    kp[1] = np.inf  # absent hand -> zero maps, weight kept
    kp[0, 1] = (-50.0, 20.0)  # outside the input -> zero map, weight kept
    maps, weights = codec.encode(kp, np.full((2, 21), 0.5))
    assert weights[0] == 0 and weights[1] == 0.5 and (weights[21:] == 0.5).all()
    assert maps[21:].max() == 0 and maps[1].max() == 0 and maps[2].max() > 0.9
    _, conf = codec.decode(maps)
    assert np.isnan(conf[1]).all() or (np.nan_to_num(conf[1]) < 1e-6).all()
