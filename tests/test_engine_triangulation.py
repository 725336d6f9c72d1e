"""The hand-extent outlier rule: real hands pass untouched, a joint triangulated far from its hand is dropped."""

import numpy as np

from handstream.config import EngineConfig, FilterConfig
from handstream.engine.pipeline import Pipeline
from handstream.engine.triangulation import drop_far_joints
from handstream.models.manifest import ModelManifest
from handstream.models.preprocess import Letterbox
from handstream.synth.source import SyntheticSource
from tests.test_engine_pipeline import HeatmapOracle


def test_true_hands_keep_every_joint_and_an_injected_far_joint_is_dropped():
    rng = np.random.default_rng()
    src = SyntheticSource("random", seed=int(rng.integers(1000)), realtime=False)
    hands = np.stack([src.read().labels.joints_3d for _ in range(20)])  # (20, H, K, 3) metres
    assert np.array_equal(np.isfinite(drop_far_joints(hands, 0.2)), np.isfinite(hands))
    bad = hands.copy()
    t, h, k = rng.integers(20), rng.integers(2), rng.integers(21)
    bad[t, h, k] += [0.0, 0.0, 0.35]
    out = drop_far_joints(bad, 0.2)
    assert np.isnan(out[t, h, k]).all()
    assert np.isfinite(out).all(axis=-1).sum() == np.isfinite(hands).all(axis=-1).sum() - 1
    np.testing.assert_array_equal(drop_far_joints(bad, 0.0), bad)  # 0 = off
    assert np.isnan(drop_far_joints(np.full((2, 21, 3), np.nan), 0.2)).all()  # nothing triangulated: no warning, NaN


def _pipeline_with_outlier(max_extent: float):
    """headset4, perfect heatmaps, except one joint that two views agree on 0.3 m away from the hand
    (towards those cameras) and the other views do not see: RANSAC has only that pair and triangulates it."""
    manifest = ModelManifest(name="oracle", artifact="-", kpe=False, input_names=["image"])
    for seed in range(11, 31):  # the first frame where a hand's joint 8 and the far point are in 2 views
        src = SyntheticSource("headset4", seed=seed, realtime=False)
        b = src.read()
        lab = b.labels

        def inside(v, p, rig=src.rig):
            return 0 <= p[0] < rig[v].width and 0 <= p[1] < rig[v].height

        for h in range(2):
            views = [v for v in range(4) if inside(v, lab.keypoints_2d[v, h, 8])]
            if len(views) < 2 or not np.isfinite(lab.joints_3d[h]).all():
                continue
            pair = views[:2]
            toward = src.rig.centers[pair].mean(axis=0) - lab.joints_3d[h, 8]
            far = lab.joints_3d[h, 8] + 0.3 * toward / np.linalg.norm(toward)
            far_px = src.rig.project(far[None])[:, 0]
            if all(inside(v, far_px[v]) for v in pair):
                break
        else:
            continue
        break
    kp = []
    for v in range(4):
        cam = src.rig[v]
        box = Letterbox.fit(cam.size, manifest.input_size)
        pts = lab.keypoints_2d[v].astype(np.float64).copy()
        pts[h, 8] = far_px[v] if v in pair else np.inf
        ok = (pts[..., 0] >= 0) & (pts[..., 0] < cam.width) & (pts[..., 1] >= 0) & (pts[..., 1] < cam.height)
        kp.append(np.where(ok[..., None], box.to_input(pts), np.inf))
    pipe = Pipeline(
        src.rig, HeatmapOracle(manifest, np.array(kp), np.ones((4, 2), np.float32)),
        EngineConfig(min_joints=1, max_hand_extent_m=max_extent), FilterConfig(enabled=False),
    )  # fmt: skip
    return pipe.process(dict(zip(b.cameras, b.images, strict=True)), b.t_capture_ns), h, far


def test_pipeline_drops_a_joint_two_views_agree_on_far_from_the_hand():
    msg, h, far = _pipeline_with_outlier(0.0)
    np.testing.assert_allclose(msg.hands[h].joints[8], far, atol=0.01)  # off: the outlier is reported
    msg, h, far = _pipeline_with_outlier(0.2)
    hand = msg.hands[h]
    assert np.isnan(hand.joints[8]).all() and hand.n_views[8] == 0 and np.isnan(hand.reproj_error[8])
    assert np.isfinite(hand.joints).all(axis=-1).sum() >= 15  # the rest of the hand stays
