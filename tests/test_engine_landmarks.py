"""The engine with a ``landmarks`` crop model (MediaPipe's network, imported on this machine): RGB crops, one hand
per crop, acquisition by search, per-joint confidence from how the views agree.

The network is MediaPipe's own file in ``../shared/models`` (never committed); the tests that run it skip with
the reason when it or the ``import`` extra is absent. The real stereo clip is ``../shared/data/real/stereo_clip``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from handstream.config import EngineConfig, FilterConfig
from handstream.engine.crops import resample
from handstream.engine.triangulation import (
    HandTriangulation,
    TriangulationRule,
    agreement_confidence,
    triangulate_hands,
)
from handstream.errors import HandstreamError
from handstream.geometry.crop_camera import hand_crop
from handstream.synth.rigs import get_preset
from tests.conftest import SHARED_DATA

CLIP = SHARED_DATA / "real" / "stereo_clip"


@pytest.fixture(scope="module")
def clip():
    """The real stereo clip's rig (metres: one board square ~4 cm) and its first 90 frame sets (BGR)."""
    if not (CLIP / "cam0.mp4").is_file():
        pytest.skip(f"{CLIP} not found (the real stereo clip lives in ../shared/data)")
    import cv2

    from handstream.geometry import load_calibration

    rig = load_calibration(CLIP / "calibration.toml", 0.04)
    caps = [cv2.VideoCapture(str(CLIP / f"cam{i}.mp4")) for i in range(2)]
    frames = [[c.read()[1] for c in caps] for _ in range(90)]
    return rig, frames


def test_rgb_crops_are_the_channels_resampled_one_by_one():
    rng = np.random.default_rng()
    cam = get_preset("headset4").rig[0]
    w, h = cam.size
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    px = np.array([w / 2, h / 2]) + rng.normal(0, 25, (21, 2))
    joints = cam.unproject(px, depth=np.full(21, rng.uniform(0.2, 0.6)))
    crops = [hand_crop(cam, joints, (64, 64), m, 24.0) for m in (1.5, 3.0)]
    rgb = resample([image], [0, 0], crops, color="rgb")
    assert rgb.shape == (2, 3, 64, 64)
    for ch, bgr in enumerate((2, 1, 0)):  # R, G, B planes of a BGR frame
        plane = resample([np.ascontiguousarray(image[:, :, bgr])], [0, 0], crops)
        np.testing.assert_array_equal(rgb[:, ch], plane)
    grey = resample([image[:, :, 0]], [0], crops[:1], color="rgb")  # a grey frame: three equal planes
    assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()
    with pytest.raises(ValueError, match="color"):
        resample([image], [0], crops[:1], color="hsv")


def _scene(rng, views: int = 3, noise_px: float = 0.5):
    """(V, 3, 4) pinhole projections around the origin, (K, 3) points, (V, K, 2) noisy pixels."""
    from tests.scenes import hand_cloud, project, random_rig

    P = random_rig(rng, views)
    X = hand_cloud(rng, 21)
    px = project(P, X) + rng.normal(0, noise_px, (views, 21, 2))
    return P, X, px


def test_agreement_confidence_falls_where_views_disagree():
    rng = np.random.default_rng()
    P, _, px = _scene(rng)
    bad = rng.choice(21, 5, replace=False)
    px[0, bad] += rng.choice([-1.0, 1.0], (5, 2)) * 7.0  # one view ~10 px off on five joints: inliers still
    rule = TriangulationRule(threshold_px=12.0, min_views=2, max_hand_extent_m=0.0, min_joints=0)
    t = triangulate_hands(P, px, np.ones(px.shape[:-1]), rule)
    conf = agreement_confidence(t, np.full(21, 0.9), sigma_px=4.0)
    good = np.setdiff1d(np.arange(21), bad)
    assert conf.shape == (21,) and conf.dtype == np.float32 and (conf >= 0).all() and (conf <= 0.9 + 1e-6).all()
    # (an offset along the epipolar lines is partly absorbed in depth, so compare the groups, not every joint)
    assert conf[bad].mean() < conf[good].mean() - 0.05 and np.median(conf[bad]) < conf[good].min(), (
        conf[bad],
        conf[good],
    )
    # a joint one view missed, or that RANSAC did not triangulate, scores lower or 0
    px[1, good[0]] = np.nan
    far = np.zeros(21, bool)
    t2 = triangulate_hands(P, px, np.ones(px.shape[:-1]), rule)
    conf2 = agreement_confidence(t2, np.full(21, 0.9), sigma_px=4.0)
    assert conf2[good[0]] < conf[good[0]]
    empty = HandTriangulation(*(np.asarray(getattr(t2, f.name)) for f in dataclasses.fields(t2)))
    empty.found = far
    assert (agreement_confidence(empty, np.full(21, 0.9), 4.0) == 0).all()


def test_engine_config_refuses_a_search_without_a_landmarks_model(tmp_path):
    from handstream.config import ServeConfig
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline
    from handstream.models.defaults import DEFAULT_CROP_MODEL, DEFAULT_MODEL

    with pytest.raises(HandstreamError, match="engine.acquire: expected one of auto, detector, search"):
        ServeConfig.from_dict({"rig": {"preset": "stereo"}, "engine": {"acquire": "palm"}}, "serve.toml")
    with pytest.raises(HandstreamError, match="engine.search_crops_per_view"):
        ServeConfig.from_dict({"rig": {"preset": "stereo"}, "engine": {"search_crops_per_view": 0}}, "serve.toml")
    rig = get_preset("stereo").rig
    det, crop = open_backend(DEFAULT_MODEL, "onnxruntime", threads=1), open_backend(DEFAULT_CROP_MODEL, "onnxruntime")
    with pytest.raises(HandstreamError, match="needs a landmarks crop model"):
        Pipeline(rig, det, EngineConfig(acquire="search"), FilterConfig(), refiner=crop)
    assert Pipeline(rig, det, EngineConfig(), FilterConfig(), refiner=crop).search is None  # auto: the detector


def test_a_landmarks_model_runs_on_onnxruntime_only(mediapipe_lite):
    from handstream.engine.backends import open_backend

    backend = open_backend(mediapipe_lite, "auto", threads=1)
    assert backend.name == "onnxruntime" and backend.manifest.kind == "landmarks"
    with pytest.raises(HandstreamError, match="runs on onnxruntime"):
        open_backend(mediapipe_lite, "torch")
    with pytest.raises(HandstreamError, match="no heatmaps"):
        backend.infer(np.zeros((1, 1, 224, 224), np.float32), None)


def test_search_finds_and_the_tracker_holds_the_real_hand(mediapipe_lite, clip):
    """On the real stereo clip (one right hand) the search acquires the hand within the first second and the
    tracker keeps it: hand found in most frame sets after that, small reprojection error, the right side,
    confidences in [0, 1] that vary by joint."""
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline
    from handstream.models.defaults import DEFAULT_MODEL

    rig, frames = clip
    det = open_backend(DEFAULT_MODEL, "onnxruntime", threads=1)
    crop = open_backend(mediapipe_lite, "onnxruntime", threads=1)
    pipe = Pipeline(rig, det, EngineConfig(), FilterConfig(enabled=False), refiner=crop)
    assert pipe.search is not None  # auto: a landmarks crop model acquires by search
    first, found, reproj, conf = None, 0, [], []
    for i, fs in enumerate(frames):
        msg = pipe.process(dict(zip(rig.names, fs, strict=True)), int(i * 1e9 / 30), {})
        right, left = msg.hand("right"), msg.hand("left")
        assert left is None or not np.isfinite(left.joints).any()  # there is no left hand in the clip
        if right is not None and np.isfinite(right.joints).any():
            first = i if first is None else first
            found += 1
            reproj.append(np.nanmedian(right.reproj_error))
            conf.append(right.conf)
    assert first is not None and first < 30, first
    assert found >= 0.8 * (len(frames) - first), (found, first)
    assert np.median(reproj) < 4.0, np.median(reproj)  # crop pixels of a 224 px crop
    c = np.concatenate(conf)
    c = c[np.isfinite(c)]  # NaN: the joints not triangulated
    assert len(c) and ((c >= 0) & (c <= 1)).all() and c.std() > 0.01
    stats = pipe.tracker.stats.as_dict()
    assert stats["acquisition_rate"] < 0.6, stats


@pytest.fixture(scope="module")
def mirrored_scene(clip):
    """Two real hands, four cameras: the stereo clip (a right hand) and its mirror image (a left hand, seen by the
    mirrored cameras of the world reflected through a plane 1.5 m beside the rig; handstream.geometry.mirror),
    as (rig, frame sets, plane normal, plane offset)."""
    import cv2

    from handstream.geometry import Rig
    from handstream.geometry.mirror import mirror_camera

    rig, frames = clip
    normal = np.array([1.0, 0.0, 0.0])
    offset = float(np.mean([c.center[0] for c in rig])) + 1.5
    both = Rig(list(rig) + [mirror_camera(c, normal, offset) for c in rig])
    return both, [fs + [cv2.flip(f, 1) for f in fs] for fs in frames], normal, offset


def _pipeline(rig, mediapipe_lite):
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline
    from handstream.models.defaults import DEFAULT_MODEL

    det = open_backend(DEFAULT_MODEL, "onnxruntime", threads=1)
    crop = open_backend(mediapipe_lite, "onnxruntime", threads=1)
    return Pipeline(rig, det, EngineConfig(), FilterConfig(enabled=False), refiner=crop)


def test_two_real_hands_are_both_acquired_and_agree_with_their_mirror_image(mediapipe_lite, mirrored_scene):
    """With one hand tracked the search still finds the other within about a second (it skips the tracked hand,
    follows up its finds in the next frame sets, and looks along a find's rays only where the other view can see
    it); and the left hand, seen in the mirrored views, reflected back through the mirror plane, is where the
    right hand is (the same pixels mirrored: what is left is the network's own asymmetry)."""
    from handstream.geometry.mirror import reflect_points

    rig, frames, normal, offset = mirrored_scene
    pipe = _pipeline(rig, mediapipe_lite)
    first, both, disagreement = {}, 0, []
    for i, fs in enumerate(frames):
        msg = pipe.process(dict(zip(rig.names, fs, strict=True)), int(i * 1e9 / 30), {})
        hands = {s: msg.hand(s) for s in ("left", "right")}
        on = {s: h is not None and np.isfinite(h.joints).any() for s, h in hands.items()}
        for s in on:
            if on[s]:
                first.setdefault(s, i)
        if all(on.values()):
            both += 1
            d = np.linalg.norm(reflect_points(hands["left"].joints, normal, offset) - hands["right"].joints, axis=1)
            disagreement.append(np.nanmedian(d))
    assert set(first) == {"left", "right"}, first
    last = max(first.values())
    assert last < 60, first  # the second hand within two seconds of the first
    assert both >= 0.8 * (len(frames) - last), (both, first)
    assert np.median(disagreement) < 0.01, np.median(disagreement)  # metres


def test_the_search_skips_a_tracked_hand_and_gives_a_second_hand_the_free_side(mediapipe_lite, clip):
    """Every window of one view of a frame with the clip's (right) hand: without a tracked hand the search finds
    it as the right hand; with that hand tracked, it reports nothing; looking only for the left hand with nothing
    tracked, the same find is the left hand's (a second hand away from the first is the other one)."""
    from handstream.engine.backends import open_backend
    from handstream.engine.search import LandmarkSearch, search_windows

    rig, frames = clip
    pipe = _pipeline(rig, mediapipe_lite)
    right = None
    for i, fs in enumerate(frames):  # the tracker's own estimate of the hand, to be "tracked" below
        msg = pipe.process(dict(zip(rig.names, fs, strict=True)), int(i * 1e9 / 30), {})
        h = msg.hand("right")
        if h is not None and np.isfinite(h.joints).sum() >= 3 * 12 and i >= 40:
            right, frame = h.joints, fs
            break
    assert right is not None
    cam = rig[0]
    backend = open_backend(mediapipe_lite, "onnxruntime", threads=1)
    n_windows = len(search_windows(cam, (224, 224)))

    def search(**kw):
        s = LandmarkSearch({cam.name: cam}, backend, crops_per_view=n_windows)
        return s([cam.name], [frame[0]], **kw)[1][0]  # presence (H,) of the one view

    assert search()[1] > 0.5
    assert search(sides=[0], tracked={1: right}).max() == 0.0
    found_left = search(sides=[0])
    assert found_left[0] > 0.5 and found_left[1] == 0.0
