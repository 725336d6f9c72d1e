"""The articulated hand and its motion: limits, bone lengths, mirroring, smoothness, the situations it covers."""

from __future__ import annotations

import numpy as np
import pytest

from handstream.errors import HandstreamError
from handstream.skeleton import BONES, FINGERS
from handstream.synth.hand import (
    ANGLE_LIMITS,
    ANGLE_NAMES,
    MIRROR,
    NAMED_POSES,
    NUM_ANGLES,
    NUM_CAPSULES,
    HandShape,
    clip_angles,
    forward_kinematics,
    hand_capsules,
    pose_hand,
    random_pose,
    sample_pose,
)
from handstream.synth.motion import Motion, forearm_rotation
from handstream.synth.render import containment
from handstream.synth.rigs import get_preset


def inside_limits(angles: np.ndarray) -> bool:
    return bool(np.all(angles >= ANGLE_LIMITS[:, 0] - 1e-12) and np.all(angles <= ANGLE_LIMITS[:, 1] + 1e-12))


def test_angle_layout_and_limits_are_anatomical():
    assert len(ANGLE_NAMES) == NUM_ANGLES == 22 and ANGLE_LIMITS.shape == (22, 2)
    assert np.all(ANGLE_LIMITS[:, 0] < 0) and np.all(ANGLE_LIMITS[:, 1] > 0)  # 0 = rest, inside
    deg = dict(zip(ANGLE_NAMES, np.rad2deg(ANGLE_LIMITS), strict=True))
    for finger in ("index", "middle", "ring", "pinky"):
        assert 80 <= deg[f"{finger}_flex1"][1] <= 95  # MCP flexion
        assert 100 <= deg[f"{finger}_flex2"][1] <= 120  # PIP
        assert deg[f"{finger}_flex3"][1] <= 90  # DIP
        assert deg[f"{finger}_flex2"][0] >= -10  # PIPs barely hyperextend


def test_every_pose_source_stays_inside_the_limits():
    for name, pose in NAMED_POSES.items():
        assert inside_limits(pose), name
    rng = np.random.default_rng(0)
    for _ in range(300):
        assert inside_limits(random_pose(rng))
        assert inside_limits(sample_pose(rng))
    assert inside_limits(clip_angles(np.full(NUM_ANGLES, 10.0))) and inside_limits(
        clip_angles(np.full(NUM_ANGLES, -10.0))
    )
    motion = Motion(get_preset("headset4").workspace, seed=4)
    for t in np.linspace(0, 30, 200):
        _, _, _, angles = motion.state(t)
        assert inside_limits(angles[0]) and inside_limits(angles[1])
    with pytest.raises(HandstreamError, match="random_weight"):
        sample_pose(rng, 1.5)


@pytest.mark.parametrize("scale", [0.8, 1.0, 1.2])
def test_bone_lengths_follow_the_scale_whatever_the_pose(scale):
    shape = HandShape.from_scale(scale)
    rng = np.random.default_rng(1)
    angles = np.stack([sample_pose(rng) for _ in range(50)])
    joints, _ = forward_kinematics(angles, shape)  # batched
    lengths = np.linalg.norm(joints[:, [c for _, c in BONES]] - joints[:, [p for p, _ in BONES]], axis=-1)
    assert np.ptp(lengths, axis=0).max() < 1e-12  # rigid bones
    digit = lengths[0, [i for i, (p, _) in enumerate(BONES) if p != 0]].reshape(5, 3)
    np.testing.assert_allclose(digit, shape.lengths, rtol=1e-12)
    middle_tip = np.linalg.norm(forward_kinematics(np.zeros(NUM_ANGLES), shape)[0][12])
    assert middle_tip == pytest.approx(0.19 * scale, rel=0.05)  # an adult hand x scale
    with pytest.raises(HandstreamError, match="hand scale"):
        HandShape.from_scale(3.0)


def test_flexion_curls_towards_the_palm_and_the_fist_is_closed():
    shape = HandShape.from_scale(1.0)
    open_hand, _ = forward_kinematics(NAMED_POSES["open"], shape)
    fist, _ = forward_kinematics(NAMED_POSES["fist"], shape)
    for finger in ("index", "middle", "ring", "pinky"):
        tip = FINGERS[finger][-1]
        assert fist[tip, 1] > 0.01  # curled into the palm side (+y)
        assert np.linalg.norm(fist[tip]) < 0.75 * np.linalg.norm(open_hand[tip])
    pinch, _ = forward_kinematics(NAMED_POSES["pinch"], shape)
    assert np.linalg.norm(pinch[4] - pinch[8]) < 0.02  # thumb and index tips meet


def test_left_hand_is_the_mirrored_right_hand():
    shape = HandShape.from_scale(1.1)
    pose = sample_pose(np.random.default_rng(3))
    R = forearm_rotation("right", np.array([0.1, 0.2, 0.4]), np.array([0.2, 0.4, 0.0]), 0.3)
    right, ra, rb, rr = pose_hand(pose, shape, "right", R, np.zeros(3))
    left, la, lb, lr = pose_hand(pose, shape, "left", R, np.zeros(3))
    W = R @ MIRROR @ R.T  # the mirror, seen in the rig frame
    np.testing.assert_allclose(left, right @ W.T, atol=1e-12)
    np.testing.assert_allclose(la, ra @ W.T, atol=1e-12)
    np.testing.assert_array_equal(lr, rr)
    assert np.linalg.det(W) < 0
    with pytest.raises(HandstreamError, match="side"):
        pose_hand(pose, shape, "middle", R, np.zeros(3))


def test_every_joint_lies_inside_the_body():
    shape = HandShape.from_scale(1.0)
    rng = np.random.default_rng(5)
    motion = Motion(get_preset("stereo").workspace, seed=1, shape=shape)
    for t in np.linspace(0, 10, 25):
        for hand in motion.hands(t):
            contains, radius = containment(hand)
            assert contains.shape == (NUM_CAPSULES, 21) and np.all(contains.any(axis=0))
            assert np.all(radius > 0.005)
    joints, a, b, r = hand_capsules(sample_pose(rng), shape)
    assert a.shape == b.shape == (NUM_CAPSULES, 3) and r.shape == (NUM_CAPSULES,)


def test_motion_is_continuous_and_smooth():
    motion = Motion(get_preset("headset4").workspace, seed=7)
    dt = 1 / 240
    times = np.arange(0, 12, dt)
    wrists = np.stack([motion.state(t)[0] for t in times])  # (T, 2, 3)
    speed = np.linalg.norm(np.diff(wrists, axis=0), axis=-1) / dt
    assert speed.max() < 3.0  # m/s: hands move fast, never jump
    accel = np.linalg.norm(np.diff(wrists, 2, axis=0), axis=-1) / dt**2
    assert accel.max() < 60.0  # C1 spline: bounded acceleration, no velocity jumps
    # deterministic in the seed, whatever the order of evaluation
    again = Motion(get_preset("headset4").workspace, seed=7)
    np.testing.assert_array_equal(again.state(9.5)[3], motion.state(9.5)[3])


def test_motion_covers_leaving_crossing_and_touching():
    workspace = get_preset("headset4").workspace
    modes = set()
    crossed = near = away = 0
    for seed in range(12):
        motion = Motion(workspace, seed=seed)
        for t in np.arange(0, 20, 0.25):
            wrist = motion.state(t)[0]
            modes.update(motion.key_modes(t))
            crossed += wrist[0, 0] > wrist[1, 0]
            near += np.linalg.norm(wrist[0] - wrist[1]) < 0.12
            away += np.any(wrist[:, 2] < 0)
    assert {"active", "interact", "away", "hold"} <= modes
    assert crossed > 0 and near > 0 and away > 0
