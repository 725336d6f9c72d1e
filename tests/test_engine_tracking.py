"""The tracking stage: predicted perspective crops, acquisition only for hands not tracked, recovery.

The two backends below are TEST-ONLY oracles: they draw the codec's target heatmaps at the true joints of a
synthetic scene (the detector oracle through each view's letterbox, the crop oracle through each crop camera
the tracker made). They let these tests check the tracker's logic (prediction, view choice, crop cameras,
triangulation from crop rays, validation, acquisition) against ground truth, deterministically and fast. They are
never available to the engine; the real networks run in tests/test_live_accuracy.py and in ``handstream eval``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from handstream.config import EngineConfig, FilterConfig
from handstream.engine.pipeline import Pipeline
from handstream.models.manifest import ModelManifest
from handstream.models.preprocess import Letterbox
from handstream.synth.generator import SynthGenerator
from handstream.synth.rigs import get_preset

FAR = np.array([0.0, 0.0, -50.0])  # a hand moved here is behind every camera: it has left the scene


class Scene:
    """The truth of the current frame set: joints (H, K, 3) and which hands the networks can see."""

    def __init__(self, rig):
        self.rig = rig
        self.joints = np.full((2, 21, 3), np.nan)
        self.views: list[str] = []
        self.hidden = [False, False]  # occluded: in view, but no network sees it
        self.detector_calls = 0


class DetectorOracle:
    name = "detector-oracle"

    def __init__(self, scene: Scene):
        self.scene = scene
        self.manifest = ModelManifest(name="detector-oracle", artifact="-", kpe=False, input_names=["image"])

    def infer(self, image, rays):
        s = self.scene
        s.detector_calls += 1
        codec = self.manifest.codec
        maps, presence = [], []
        for n in s.views:
            cam = s.rig[n]
            uv = cam.project(s.joints)
            inside = (uv[..., 0] >= 0) & (uv[..., 0] < cam.width) & (uv[..., 1] >= 0) & (uv[..., 1] < cam.height)
            inside &= ~np.array(s.hidden)[:, None]
            box = Letterbox.fit(cam.size, self.manifest.input_size)
            maps.append(codec.encode(np.where(inside[..., None], box.to_input(uv), np.inf))[0])
            presence.append(inside.sum(axis=1) >= 3)
        return np.stack(maps), np.array(presence, np.float32)


class CropOracle:
    name = "crop-oracle"

    def __init__(self, scene: Scene):
        self.scene = scene
        self.tracker = None  # set once the pipeline exists: the oracle reads the crops the tracker just made
        self.manifest = ModelManifest(
            name="crop-oracle", artifact="-", kpe=False, input_names=["image"], input_size=(128, 128),
            crop={"margin": 1.6, "min_side": 24.0},
        )  # fmt: skip

    def infer(self, image, rays):
        s = self.scene
        codec = self.manifest.codec
        maps, presence = [], []
        for _, n, crop in self.tracker.crops:
            cam = s.rig[n]
            frame_uv = cam.project(s.joints)
            seen = (frame_uv[..., 0] >= 0) & (frame_uv[..., 0] < cam.width)
            seen &= (frame_uv[..., 1] >= 0) & (frame_uv[..., 1] < cam.height)
            seen &= ~np.array(s.hidden)[:, None]
            uv = crop.project(s.joints)
            seen &= (uv[..., 0] >= 0) & (uv[..., 0] <= 127) & (uv[..., 1] >= 0) & (uv[..., 1] <= 127)
            maps.append(codec.encode(np.where(seen[..., None], uv, np.inf))[0])
            presence.append(seen.sum(axis=1) >= 3)
        return np.stack(maps), np.array(presence, np.float32)


def make_pipeline(seed=3, **engine):
    preset = get_preset("headset4")
    rig = preset.rig
    scene = Scene(rig)
    crop = CropOracle(scene)
    cfg = EngineConfig(min_joints=8, **engine)
    pipe = Pipeline(rig, DetectorOracle(scene), cfg, FilterConfig(enabled=False), refiner=crop)
    crop.tracker = pipe.tracker
    return pipe, scene, SynthGenerator(preset, seed, sequence_length=None, motion_blur=False)


def run(pipe, scene, gen, frames, edit=None, drop=()):
    """Process ``frames`` (indices) at 30 fps; ``edit(i, joints)`` may change the truth; cameras in ``drop``
    are missing from the frame sets. Returns per frame: (tracked per hand (2,) bool, error per hand (2,) m,
    detector ran)."""
    out = []
    rig = scene.rig
    blank = {cam.name: np.zeros((cam.height, cam.width), np.uint8) for cam in rig}
    for i in frames:
        joints = np.stack([h.joints for h in gen.hands(i)])
        if edit is not None:
            joints = edit(i, joints)
        scene.joints = joints
        scene.views = [n for n in rig.names if n not in drop]
        calls = scene.detector_calls
        msg = pipe.process({n: blank[n] for n in scene.views}, int(i * 1e9 / 30))
        tracked = np.array([np.isfinite(h.joints).all(axis=-1).sum() >= 8 for h in msg.hands])
        err = np.array([
            np.nanmedian(np.linalg.norm(h.joints - joints[k], axis=-1)) if tracked[k] else np.nan
            for k, h in enumerate(msg.hands)
        ])  # fmt: skip
        out.append((tracked, err, scene.detector_calls > calls))
    return out


def test_tracks_both_hands_from_crops_without_running_the_detector():
    pipe, scene, gen = make_pipeline()
    res = run(pipe, scene, gen, range(60))
    tracked = np.array([r[0] for r in res])
    assert tracked[5:].all(), f"both hands tracked in {tracked[5:].all(axis=1).sum()} of 55 frame sets"
    errors = np.concatenate([r[1] for r in res[5:]])
    assert np.nanmax(errors) < 0.004, f"median joint error up to {np.nanmax(errors) * 1000:.1f} mm with oracle crops"
    detector_frames = [i for i, r in enumerate(res) if r[2]]
    assert detector_frames and detector_frames[0] == 0  # acquisition at the start ...
    assert len(detector_frames) <= 2, f"the detector ran on frame sets {detector_frames}"  # ... then never
    stats = pipe.tracker.stats.as_dict()
    assert len(pipe.tracker.crops) == 4  # 2 hands x max_views_per_hand 2 (acquisition adds a crop per detection)
    assert stats["tracks_started"] == 2


@pytest.mark.parametrize("views", [2, 3])
def test_cost_grows_with_hands_not_cameras(views):
    pipe, scene, gen = make_pipeline(max_views_per_hand=views)
    for i in range(30):
        (_, _, acquired), = run(pipe, scene, gen, [i])
        per_hand = [sum(1 for h, _, _ in pipe.tracker.crops if h == k) for k in (0, 1)]
        if not acquired:  # (an acquisition adds a crop per view where the detector sees a hand not tracked)
            assert max(per_hand) <= views  # at most max_views_per_hand crops per hand, whatever the rig's size
    assert max(per_hand) == views


def test_a_hand_that_leaves_the_scene_is_lost_and_picked_up_again():
    pipe, scene, gen = make_pipeline()

    def edit(i, joints):
        if 20 <= i < 40:
            joints = joints.copy()
            joints[1] = FAR  # the right hand leaves every view
        return joints

    res = run(pipe, scene, gen, range(60), edit)
    right = np.array([r[0][1] for r in res])
    left = np.array([r[0][0] for r in res])
    assert not right[20:40].any()  # no pose for a hand that is not there
    assert left[5:].all()  # the other hand is tracked throughout
    back = np.flatnonzero(right[40:])
    assert len(back) and back[0] <= 3, f"right hand picked up again {back[:1]} frame sets after it came back"
    assert right[44:].all()
    assert np.nanmax([r[1][1] for r in res[44:]]) < 0.004
    # while a hand is missing the detector runs at most every acquire_interval frame sets, not every one
    runs = sum(r[2] for r in res[21:40])
    assert 0 < runs <= 19 // pipe.cfg.acquire_interval + 1


def test_acquisitions_back_off_while_a_missing_hand_stays_missing():
    """With ``max_acquire_interval`` (acquisition by search sets it) a hand that stays away is looked for less
    and less often, the tracked hand is kept, and the hand is still picked up when it comes back."""
    pipe, scene, gen = make_pipeline()
    pipe.tracker.cfg = dataclasses.replace(pipe.tracker.cfg, max_acquire_interval=16)
    pipe.tracker._max_interval = 16

    def edit(i, joints):
        if 10 <= i < 90:
            joints = joints.copy()
            joints[1] = FAR
        return joints

    res = run(pipe, scene, gen, range(110), edit)
    runs = [i for i, r in enumerate(res) if r[2] and 10 <= i < 90]
    gaps = np.diff(runs)
    # the wait doubles (6, 12, ...) up to 16 frame sets; without the backoff it would be every 3rd (27 runs)
    assert len(runs) <= 10 and gaps.max() == 16 and (np.diff(gaps) >= 0).all() and gaps[0] < gaps[1] < gaps[2], runs
    assert all(r[0][0] for r in res[5:])  # the other hand throughout
    back = np.flatnonzero([r[0][1] for r in res[90:]])
    assert len(back) and back[0] <= 17, back[:1]  # within one interval of its return


def test_an_occluded_hand_is_recovered():
    pipe, scene, gen = make_pipeline()
    orig = run(pipe, scene, gen, range(20))
    assert orig[-1][0].all()
    scene.hidden = [True, False]
    res = run(pipe, scene, gen, range(20, 30))
    assert not any(r[0][0] for r in res[1:])
    assert pipe.tracker.stats.lost["joints"] + pipe.tracker.stats.lost["views"] >= 1
    scene.hidden = [False, False]
    res = run(pipe, scene, gen, range(30, 45))
    first = next(i for i, r in enumerate(res) if r[0][0])
    assert first <= 3
    assert all(r[0].all() for r in res[first:])


def test_a_camera_that_drops_out_is_replaced_and_used_again():
    from handstream.engine.tracking import view_scores

    pipe, scene, gen = make_pipeline(seed=6)  # in frames 44-81 of seed 6 each hand is seen by 3 or 4 views
    rig = scene.rig
    for i in range(44, 82):
        assert min(sum(view_scores(cam, h.joints) > 0 for cam in rig) for h in gen.hands(i)) >= 3
    run(pipe, scene, gen, range(30, 44))
    gone = pipe.tracker.crops[0][1]  # a camera the tracker looks through
    res = run(pipe, scene, gen, range(44, 82), drop=(gone,))
    assert all(r[0].all() for r in res), "a hand was lost when one of its cameras dropped out"
    assert gone not in {n for _, n, _ in pipe.tracker.crops}
    assert not any(r[2] for r in res), "the detector ran although both hands stayed tracked"
    assert np.nanmax([r[1] for r in res]) < 0.004
    res = run(pipe, scene, gen, range(82, 120))  # the camera is back
    assert all(r[0].all() for r in res)
    assert not any(r[2] for r in res)


def test_handedness_belongs_to_the_track():
    """Once tracked, a hand keeps its side even if the detector would now call it the other one."""
    pipe, scene, gen = make_pipeline()
    res = run(pipe, scene, gen, range(30))
    assert res[-1][0].all()
    sides = {h: tr.side for h, tr in pipe.tracker.tracks.items()}
    assert sides == {0: 0, 1: 1}
    truth = np.stack([h.joints for h in gen.hands(29)])
    centres = [pipe.tracker.tracks[h].joints.mean(axis=0) for h in (0, 1)]
    for h in (0, 1):
        assert np.linalg.norm(centres[h] - truth[h].mean(axis=0)) < 0.01


def test_engine_config_refuses_fewer_views_per_hand_than_min_views(tmp_path):
    from handstream.config import load_config
    from handstream.errors import HandstreamError

    p = tmp_path / "serve.toml"
    p.write_text('[rig]\npreset = "headset4"\n[engine]\nmax_views_per_hand = 1\n')
    with pytest.raises(HandstreamError, match="engine.max_views_per_hand"):
        load_config(p)


def test_a_perspective_crop_model_is_refused_by_the_detect_every_frame_path():
    from handstream.errors import HandstreamError

    preset = get_preset("headset4")
    scene = Scene(preset.rig)
    crop = CropOracle(scene)
    crop.manifest.crop["camera"] = "perspective"
    with pytest.raises(HandstreamError, match="crop model of perspective crops"):
        Pipeline(preset.rig, DetectorOracle(scene), EngineConfig(tracking=False), refiner=crop)
    Pipeline(preset.rig, DetectorOracle(scene), EngineConfig(), refiner=crop)  # the tracker takes it


def test_a_rig_with_one_camera_still_builds_a_pipeline():
    """A one-view rig cannot triangulate; the tracker is built anyway and reports the hands as not tracked."""
    preset = get_preset("headset4")
    rig = preset.rig.subset([0])
    scene = Scene(rig)
    crop = CropOracle(scene)
    pipe = Pipeline(rig, DetectorOracle(scene), EngineConfig(), refiner=crop)
    crop.tracker = pipe.tracker
    cam = rig[0]
    msg = pipe.process({cam.name: np.zeros((cam.height, cam.width), np.uint8)}, 0)
    assert all(not np.isfinite(h.joints).any() for h in msg.hands)


def test_a_new_hand_takes_the_side_its_crops_say_when_that_side_is_free():
    """check_sides: a hand found this frame set as the left one whose crops say "right" moves to the right slot;
    not when the right hand is tracked already, and never for a tracked hand."""
    from handstream.engine.tracking import HandResult, check_sides

    def result(found: bool) -> HandResult:
        joints = np.full((21, 3), np.nan)
        if found:
            joints[:] = 0.1
        return HandResult(joints=joints, reproj_error=np.full(21, np.nan), conf=np.full(21, np.nan),
                          n_views=np.zeros(21, np.uint8), presence=0.9 if found else 0.0,
                          joints_2d=np.full((2, 21, 2), np.nan))  # fmt: skip

    right_crops = np.array([0.9, 0.8], np.float32)
    results = [result(True), result(False)]
    check_sides(results, [0, 0], right_crops, targets={})
    assert not np.isfinite(results[0].joints).any() and np.isfinite(results[1].joints).all()
    results = [result(True), result(False)]
    check_sides(results, [0, 0], np.array([0.2, 0.3], np.float32), targets={})  # its crops agree: stays left
    assert np.isfinite(results[0].joints).all()
    results = [result(True), result(False)]
    check_sides(results, [0, 0], right_crops, targets={1: np.zeros((21, 3))})  # the right hand is tracked
    assert np.isfinite(results[0].joints).all()
    results = [result(True), result(False)]
    check_sides(results, [0, 0], right_crops, targets={0: np.zeros((21, 3))})  # a tracked hand keeps its side
    assert np.isfinite(results[0].joints).all()
