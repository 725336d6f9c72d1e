"""Extrinsics from hand keypoints (handstream.adapt.extrinsics) on synthetic hands, without rendering.

Legend: ``F`` frames, ``V`` views, ``H`` hands (2), ``K`` joints (21).

The 3D joints come from the synthetic motion (:class:`handstream.synth.motion.Motion`) with a subject drawn
the way :class:`handstream.synth.generator.SynthGenerator` draws one: an overall scale in 0.8-1.2 and every
finger bone varied by ~3% (``HandShape.from_scale(scale, rng)``). The estimator is told the overall scale
(``hand_scale``, what a user would measure: hand length) but not the per-bone variation, which it has to
average out. The joints are projected with each preset's own cameras (lens distortion included), those
outside the image dropped, 1 px of Gaussian noise added and 5% of the detections replaced by random pixels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from handstream.adapt.bones import bone_lengths, hand_scale_from_length, reference_bone_lengths, reference_hand_length
from handstream.adapt.extrinsics import ExtrinsicsEstimate, estimate_extrinsics, extrinsics_error
from handstream.errors import HandstreamError
from handstream.geometry import Rig
from handstream.synth.hand import NUM_ANGLES, HandShape, forward_kinematics, sample_pose
from handstream.synth.motion import Motion
from handstream.synth.rigs import get_preset

MAX_ROTATION_DEG = 2.0
MAX_SCALE_ERROR = 0.05


def make_keypoints(
    rig: Rig, preset_name: str, frames: int = 300, seed: int = 0, noise_px: float = 1.0, outliers: float = 0.05
) -> tuple[np.ndarray, float]:
    """Detections of two synthetic hands in every camera of ``rig``.

    Returns:
        keypoints (F, V, H, K, 2) distorted pixels (NaN outside the image) and the subject's overall scale.
    """
    preset = get_preset(preset_name)
    rng = np.random.default_rng(seed)
    scale = float(rng.uniform(0.8, 1.2))  # as SynthGenerator draws a subject
    motion = Motion(preset.workspace, seed + 1, HandShape.from_scale(scale, rng))
    step = 2.0 / preset.fps  # every other frame: more poses in fewer frames
    joints = np.stack([np.stack([hand.joints for hand in motion.hands(i * step)]) for i in range(frames)])
    uv = np.moveaxis(rig.project(joints), 0, 1)  # (F, V, H, K, 2)
    sizes = np.array([cam.size for cam in rig], dtype=np.float64)  # (V, 2) width, height
    inside = np.all((uv >= 0) & (uv <= sizes[None, :, None, None] - 1), axis=-1)
    uv = uv + rng.normal(0.0, noise_px, uv.shape)
    wrong = inside & (rng.random(inside.shape) < outliers)
    views = np.nonzero(wrong)[1]
    uv[wrong] = rng.random((views.size, 2)) * (sizes[views] - 1)
    uv[~inside] = np.nan
    return uv, scale


@pytest.fixture(scope="module")
def estimates() -> dict[str, tuple[Rig, ExtrinsicsEstimate, np.ndarray, float]]:
    """Per preset: the true rig, the estimate, the keypoints and the subject's scale (computed once)."""
    out = {}
    for name in ("stereo", "headset4"):
        rig = get_preset(name).rig
        keypoints, scale = make_keypoints(rig, name)
        out[name] = (rig, estimate_extrinsics(rig, keypoints, hand_scale=scale), keypoints, scale)
    return out


@pytest.mark.parametrize("name", ["stereo", "headset4"])
def test_presets_recovered(estimates, name):
    truth, est, _, _ = estimates[name]
    errors = extrinsics_error(est.rig, truth)
    for err in errors[1:]:
        assert err["rotation_deg"] < MAX_ROTATION_DEG, err
        assert abs(err["scale_ratio"] - 1) < MAX_SCALE_ERROR, err
    # what the tests see (pytest -s): typically < 0.15 degrees and within 1%
    print(name, [{k: round(v, 4) if isinstance(v, float) else v for k, v in e.items()} for e in errors[1:]])

    assert est.rig.names == truth.names
    np.testing.assert_array_equal(est.rig[0].R, np.eye(3))
    np.testing.assert_array_equal(est.rig[0].t, np.zeros(3))
    for cam, true_cam in zip(est.rig, truth, strict=True):  # the intrinsics are passed through
        np.testing.assert_array_equal(cam.K, true_cam.K)
        np.testing.assert_array_equal(cam.dist, true_cam.dist)
    assert est.placed_by[0] == "origin"
    assert "essential" in est.placed_by
    assert all(0 < i <= c for i, c in zip(est.inliers, est.correspondences, strict=True))
    assert all(r < 1.5 for r in est.reprojection_px)  # 1 px noise per coordinate
    assert 0.8 < est.noise_px < 1.3
    record = json.loads(json.dumps(est.to_dict()))
    assert [v["name"] for v in record["views"]] == truth.names
    assert est.describe().count("\n") == len(truth)


def test_headset_side_cameras_placed_by_pnp(estimates):
    # the side cameras of the headset share ~20% of their detections with camera 0: they are placed against
    # the joints triangulated by the first pair
    est = estimates["headset4"][1]
    assert sorted(est.placed_by) == ["essential", "origin", "pnp", "pnp"]


def test_wrong_hand_scale_scales_translations(estimates):
    truth, est, keypoints, scale = estimates["stereo"]
    bigger = estimate_extrinsics(truth, keypoints, hand_scale=1.15 * scale)
    assert bigger.scale == pytest.approx(1.15 * est.scale, rel=1e-9)
    for a, b in zip(est.rig, bigger.rig, strict=True):
        np.testing.assert_allclose(b.R, a.R, atol=1e-12)
        np.testing.assert_allclose(b.t, 1.15 * a.t, atol=1e-12)
    right = extrinsics_error(est.rig, truth)[1]
    wrong = extrinsics_error(bigger.rig, truth)[1]
    assert wrong["scale_ratio"] == pytest.approx(1.15 * right["scale_ratio"], rel=1e-9)
    assert wrong["rotation_deg"] == pytest.approx(right["rotation_deg"], abs=1e-6)


def test_too_few_correspondences_is_one_line():
    rig = get_preset("stereo").rig
    keypoints, _ = make_keypoints(rig, "stereo", frames=1)
    with pytest.raises(HandstreamError) as info:
        estimate_extrinsics(rig, keypoints)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("camera right shares ")
    assert message.endswith(
        " hand-joint observations with left; need >= 50 (record more frames with the hand seen by both)"
    )


def test_camera_without_joints_seen_by_two_placed_cameras_is_chained():
    # cameras 0 and 2 never see the hands at the same instant (camera 0: odd frames, camera 2: even frames),
    # so camera 2 sees no joint triangulated by the first pair (0, 1): it is chained to camera 1
    truth = get_preset("headset4").rig.subset([0, 3, 2])
    keypoints, scale = make_keypoints(truth, "headset4", seed=3)
    keypoints[0::2, 0] = np.nan
    keypoints[1::2, 2] = np.nan
    est = estimate_extrinsics(truth, keypoints, hand_scale=scale)
    assert est.placed_by == ("origin", "essential", "chain")
    assert est.reference[2] == truth[1].name
    for err in extrinsics_error(est.rig, truth)[1:]:
        assert err["rotation_deg"] < MAX_ROTATION_DEG, err
        assert abs(err["scale_ratio"] - 1) < MAX_SCALE_ERROR, err


def test_bad_input_messages():
    rig = get_preset("stereo").rig
    with pytest.raises(HandstreamError, match=r"keypoints: expected shape \(F, 2, H, 21, 2\)"):
        estimate_extrinsics(rig, np.zeros((10, 3, 2, 21, 2)))
    with pytest.raises(HandstreamError, match="conf: expected shape"):
        estimate_extrinsics(rig, np.zeros((10, 2, 2, 21, 2)), np.ones((10, 2, 2)))
    with pytest.raises(HandstreamError, match="hand_scale"):
        estimate_extrinsics(rig, np.zeros((10, 2, 2, 21, 2)), hand_scale=0.0)


def test_reference_bones_follow_the_hand_model():
    ref = reference_bone_lengths()
    assert ref.shape == (20,) and np.all(ref > 0.015) and np.all(ref < 0.1)
    # bone lengths do not depend on the pose, and scale with the subject
    rng = np.random.default_rng(0)
    joints, _ = forward_kinematics(sample_pose(rng), HandShape.from_scale(1.1))
    np.testing.assert_allclose(bone_lengths(joints), reference_bone_lengths(1.1), rtol=1e-12)
    joints0, _ = forward_kinematics(np.zeros(NUM_ANGLES), HandShape.from_scale(1.0))
    np.testing.assert_allclose(bone_lengths(joints0), ref, rtol=1e-12)
    assert reference_hand_length() == pytest.approx(0.19, abs=0.01)  # the model's documented adult hand
    assert hand_scale_from_length(1.1 * reference_hand_length()) == pytest.approx(1.1)
    with pytest.raises(HandstreamError, match="hand length"):
        hand_scale_from_length(19.0)  # centimetres, not metres


def test_extrinsics_error_of_known_changes():
    truth = get_preset("headset4").rig
    for err in extrinsics_error(truth, truth):
        assert err["rotation_deg"] < 1e-6 and err["position_error_mm"] < 1e-9
    # a rig in another world frame, twice as large: only the scale differs
    R = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    moved = Rig(cam.with_pose(cam.R @ R.T, 2 * (cam.t - cam.R @ R.T @ [0.1, 0.2, 0.3])) for cam in truth)
    for err in extrinsics_error(moved, truth)[1:]:
        assert err["rotation_deg"] < 1e-6
        assert err["translation_direction_deg"] < 1e-6
        assert err["scale_ratio"] == pytest.approx(2.0)
    with pytest.raises(HandstreamError):
        extrinsics_error(truth.subset([0, 1]), truth)
