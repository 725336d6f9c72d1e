"""Rig presets: what each one is, the shipped headset4 numbers against their source, random layouts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from handstream.errors import HandstreamError
from handstream.geometry import load_calibration
from handstream.synth.motion import Motion
from handstream.synth.rigs import (
    HEADSET4_SOURCE,
    PRESET_NAMES,
    get_preset,
    headset4_from_assemblyhands,
    headset4_path,
    headset_frame,
)


def views_seeing(rig, point: np.ndarray) -> int:
    n = 0
    for cam in rig:
        uv = cam.project(point)
        n += bool(np.all(np.isfinite(uv)) and 0 <= uv[0] < cam.width and 0 <= uv[1] < cam.height)
    return n


def test_presets_have_size_fps_and_color():
    assert PRESET_NAMES == ("stereo", "headset4", "random")
    for name in PRESET_NAMES:
        preset = get_preset(name)
        assert preset.color in ("mono", "rgb") and preset.fps > 0 and preset.description
        assert all(cam.width > 0 and cam.height > 0 for cam in preset.rig)
    assert get_preset("headset4", color="rgb", fps=60).color == "rgb"
    with pytest.raises(HandstreamError, match="unknown preset 'quad'"):
        get_preset("quad")
    with pytest.raises(HandstreamError, match="color"):
        get_preset("stereo", color="infrared")


def test_stereo_is_two_forward_cameras_a_few_cm_apart():
    rig = get_preset("stereo").rig
    assert len(rig) == 2 and rig.names == ["left", "right"]
    baseline = np.linalg.norm(rig.centers[1] - rig.centers[0])
    assert 0.06 <= baseline <= 0.10
    for cam in rig:
        assert cam.R[2, 2] > 0.9 and cam.R[2, 1] > 0  # forward, tilted down (rig y is down)


def test_headset4_is_the_assemblyhands_headset_in_the_headset_frame():
    preset = get_preset("headset4")
    rig = preset.rig
    assert len(rig) == 4 and preset.color == "mono" and preset.fps == 30
    assert all(cam.model == "fisheye" and cam.size == (636, 480) for cam in rig)
    np.testing.assert_allclose(rig.centers.mean(axis=0), 0.0, atol=1e-12)  # origin: mean camera centre
    axis = np.sum([cam.R[2] for cam in rig], axis=0)
    np.testing.assert_allclose(axis / np.linalg.norm(axis), [0, 0, 1], atol=1e-12)  # z: mean optical axis
    assert np.all(np.linalg.norm(rig.centers, axis=1) < 0.1)  # a headset: cameras within 10 cm
    text = headset4_path().read_text()
    assert HEADSET4_SOURCE in text and "CC BY-NC 4.0" in text


@pytest.mark.needs_shared_data
def test_shipped_headset4_equals_load_calibration_of_its_source(shared_data):
    source = shared_data / "rigs" / "assemblyhands" / "nimble_json_calib" / HEADSET4_SOURCE
    made = headset4_from_assemblyhands(source)
    shipped = get_preset("headset4").rig
    assert made.names == shipped.names == load_calibration(source).names
    for a, b in zip(made, shipped, strict=True):
        assert a.model == b.model and a.size == b.size
        np.testing.assert_allclose(b.K, a.K, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.dist, a.dist, rtol=0, atol=1e-15)
        np.testing.assert_allclose(b.R, a.R, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.t, a.t, rtol=0, atol=1e-12)
    # the re-expression changes the frame, not the cameras: relative poses are the source's
    original = load_calibration(source)
    R, origin = headset_frame(original)
    X = np.random.default_rng(0).normal(0, 0.3, (20, 3)) + [0.3, 0, 0]
    np.testing.assert_allclose(shipped.project((X - origin) @ R.T), original.project(X), atol=1e-9)


def test_headset4_sees_both_hands_from_two_cameras_most_of_the_time():
    preset = get_preset("headset4")
    assert views_seeing(preset.rig, preset.workspace.center) >= 2
    counts = []
    for seed in range(4):
        motion = Motion(preset.workspace, seed=seed)
        for t in np.arange(0, 20, 0.5):
            for hand in motion.hands(t):
                counts.append(views_seeing(preset.rig, hand.joints[9]))  # middle knuckle
    assert np.mean(np.array(counts) >= 2) > 0.75


def test_random_layouts_are_seeded_and_plausible():
    seen_sizes, seen_models, kinds = set(), set(), set()
    for seed in range(20):
        preset = get_preset("random", seed)
        again = get_preset(f"random-{seed}")
        assert preset.name == again.name == f"random-{seed}"
        assert 2 <= len(preset.rig) <= 6
        for a, b in zip(preset.rig, again.rig, strict=True):
            np.testing.assert_array_equal(a.K, b.K)
            np.testing.assert_array_equal(a.R, b.R)
        for cam in preset.rig:
            seen_sizes.add(cam.size)
            seen_models.add(cam.model)
            uv = cam.project(preset.workspace.center)
            assert 0 <= uv[0] < cam.width and 0 <= uv[1] < cam.height, (seed, cam.name)
        kinds.add("head-mounted" in preset.description)
    assert len(seen_sizes) >= 3 and seen_models == {"pinhole", "opencv", "fisheye"} and kinds == {True, False}
    with pytest.raises(HandstreamError, match="seed"):
        get_preset("random", -1)


# --- your own rig: a calibration file as the preset -------------------------------------------------------


def _relative_poses(rig):
    """Pairwise camera-to-camera rotations and distances: what a change of world frame must keep."""
    rots = [a.R @ b.R.T for a in rig for b in rig]
    dists = np.linalg.norm(rig.centers[:, None] - rig.centers[None], axis=-1)
    return np.stack(rots), dists


def _moved(rig, R, origin, scale=1.0):
    """The same cameras in another world frame (and length unit): X_new = R (X - origin) / scale."""
    from handstream.geometry import Rig

    return Rig([cam.with_pose(cam.R @ R.T, (cam.R @ origin + cam.t) / scale) for cam in rig])


def test_a_calibration_file_becomes_a_preset_that_keeps_its_cameras(tmp_path):
    from handstream.geometry import save_calibration
    from handstream.geometry.camera import rodrigues_to_matrix

    rng = np.random.default_rng()
    R = rodrigues_to_matrix(rng.normal(size=3))  # any world frame, any length unit: the preset must not care
    save_calibration(_moved(get_preset("headset4").rig, R, rng.normal(size=3), scale=0.01), tmp_path / "cm.toml")
    preset = get_preset(str(tmp_path / "cm.toml"), unit_scale=0.01, color="rgb")
    assert preset.name == "file:cm.toml" and preset.color == "rgb" and preset.fps == 30.0
    rots, dists = _relative_poses(preset.rig)
    rots0, dists0 = _relative_poses(get_preset("headset4").rig)
    np.testing.assert_allclose(rots, rots0, atol=1e-9)
    np.testing.assert_allclose(dists, dists0, atol=1e-9)
    assert [c.name for c in preset.rig] == [c.name for c in get_preset("headset4").rig]
    # the hands move where at least two cameras see them, and the frame is a headset frame (z forward)
    lo, hi = np.array(preset.workspace.low), np.array(preset.workspace.high)
    seen = [views_seeing(preset.rig, p) >= 2 for p in rng.uniform(lo, hi, (200, 3))]
    assert np.mean(seen) > 0.8
    assert np.linalg.norm(preset.rig.centers.mean(axis=0)) < 1e-9
    assert np.mean([cam.R[2] @ [0.0, 0.0, 1.0] for cam in preset.rig]) > 0.5


def test_a_calibration_file_that_cannot_serve_gives_one_line(tmp_path):
    from handstream.geometry import Rig, save_calibration
    from handstream.synth.rigs import preset_from_calibration

    h4 = get_preset("headset4").rig
    save_calibration(h4, tmp_path / "h4.toml")
    for wrong in (0.001, 1000.0):  # a metre file read as millimetres, or as kilometres
        with pytest.raises(HandstreamError, match=r"h4\.toml: the cameras are .* m apart .*--unit-scale"):
            preset_from_calibration(tmp_path / "h4.toml", unit_scale=wrong)
    cam = h4[0]
    R_back = np.diag([-1.0, 1.0, -1.0]) @ cam.R  # turned around: it looks back at camera 0 from 1 m in front
    back = dataclasses.replace(cam.with_pose(R_back, -R_back @ (cam.center + cam.R[2])), name="back")
    save_calibration(Rig([cam, back]), tmp_path / "facing.toml")
    with pytest.raises(HandstreamError, match=r"facing\.toml: the cameras do not face a common direction"):
        preset_from_calibration(tmp_path / "facing.toml")
    with pytest.raises(HandstreamError, match="unit_scale: only for a calibration file"):
        get_preset("headset4", unit_scale=0.01)
    with pytest.raises(HandstreamError, match="calibration file not found"):
        get_preset(str(tmp_path / "missing.toml"))
