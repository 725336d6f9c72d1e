"""OpenXR's 26 hand joints from handstream's 21 (handstream.openxr): the measured joints are copied, the
synthesised ones sit where the spec says, orientations follow OpenXR's axes for both hands, NaN stays invalid."""

from __future__ import annotations

import numpy as np
import pytest

from handstream.openxr import (
    COUNT,
    JOINTS,
    METACARPAL_FRACTION,
    matrix_to_quaternion,
    openxr_hand,
    quaternion_to_matrix,
    webxr,
)
from handstream.poses import HandPose
from handstream.synth.hand import ANGLE_NAMES, HandShape, pose_hand, sample_pose


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _hand(side: str, seed: int, flat: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(21, 3) metres of a synthetic hand of that side (a random plausible pose, or flat), turned and placed at
    random; and its palm normal ((3,), out of the palm, the forearm frame's y)."""
    rng = np.random.default_rng(seed)
    angles = np.zeros(len(ANGLE_NAMES)) if flat else sample_pose(rng)
    R = _rotation(rng)
    joints = pose_hand(angles, HandShape.from_scale(1.0), side, R, rng.normal(0, 0.3, 3))[0]
    return joints, R[:, 1]


@pytest.mark.parametrize("side", ["left", "right"])
def test_measured_joints_are_copied_and_synthesised_ones_sit_on_their_bones(side):
    seed = int(np.random.default_rng().integers(2**31))
    j, _ = _hand(side, seed)
    xr = openxr_hand(j, side)
    assert xr.positions.shape == (COUNT, 3) and xr.valid.all(), seed
    pairs = {
        "wrist": 0, "thumb_metacarpal": 1, "thumb_proximal": 2, "thumb_distal": 3, "thumb_tip": 4,
        "index_proximal": 5, "index_intermediate": 6, "index_distal": 7, "index_tip": 8,
        "middle_proximal": 9, "middle_tip": 12, "ring_distal": 15, "little_proximal": 17, "little_tip": 20,
    }  # fmt: skip
    for name, k in pairs.items():
        np.testing.assert_array_equal(xr.joint(name)[0], j[k])
    for finger, knuckle in (("index", 5), ("middle", 9), ("ring", 13), ("little", 17)):
        expected = j[0] + METACARPAL_FRACTION * (j[knuckle] - j[0])
        np.testing.assert_allclose(xr.joint(f"{finger}_metacarpal")[0], expected, atol=1e-12)
    palm = xr.joint("palm")[0]  # the centre of the middle metacarpal bone
    np.testing.assert_allclose(palm, 0.5 * (xr.joint("middle_metacarpal")[0] + j[9]), atol=1e-12)
    assert (xr.radii > 0).all() and xr.radii[JOINTS.index("thumb_tip")] < xr.radii[JOINTS.index("palm")]


@pytest.mark.parametrize("side", ["left", "right"])
def test_orientations_follow_openxr_axes(side):
    seed = int(np.random.default_rng().integers(2**31))
    j, _ = _hand(side, seed)
    xr = openxr_hand(j, side)
    R = xr.matrices()  # columns X, Y, Z
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)  # right-handed
    np.testing.assert_allclose(np.linalg.norm(xr.orientations, axis=-1), 1.0, atol=1e-12)
    # -Z along each bone towards the fingertip
    for a, b in (("index_proximal", "index_intermediate"), ("thumb_distal", "thumb_tip"), ("wrist", "middle_proximal")):
        bone = xr.joint(b)[0] - xr.joint(a)[0]
        np.testing.assert_allclose(-R[JOINTS.index(a)][:, 2], bone / np.linalg.norm(bone), atol=1e-9)


@pytest.mark.parametrize("side", ["left", "right"])
def test_plus_y_points_out_of_the_back_of_the_hand(side):
    """A flat hand, turned at random: every finger joint's +Y is the back of the hand (minus the palm normal),
    for the left hand as for the right."""
    seed = int(np.random.default_rng().integers(2**31))
    j, palm_normal = _hand(side, seed, flat=True)
    R = openxr_hand(j, side).matrices()
    for name in ("palm", "middle_metacarpal", "index_proximal", "ring_intermediate", "little_distal"):
        y = R[JOINTS.index(name)][:, 1]
        assert np.dot(y, -palm_normal) > 0.9, (seed, name, np.dot(y, -palm_normal))


def test_quaternions_round_trip_through_matrices():
    rng = np.random.default_rng()
    q = rng.normal(size=(200, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q[q[:, 3] < 0] *= -1
    np.testing.assert_allclose(matrix_to_quaternion(quaternion_to_matrix(q)), q, atol=1e-9)
    assert np.isnan(matrix_to_quaternion(np.full((3, 3), np.nan))).all()


def test_missing_joints_make_their_openxr_joints_invalid_and_webxr_drops_the_palm():
    j, _ = _hand("right", 3)
    j[8] = np.nan  # index tip not triangulated
    j[9] = np.nan  # middle knuckle: the palm, the middle metacarpal's orientation, the wrist's direction
    xr = openxr_hand(j, "right")
    bad = {"index_tip", "middle_proximal", "palm", "wrist", "middle_metacarpal", "index_distal"}
    for name in bad:
        assert not xr.valid[JOINTS.index(name)], name
        assert np.isnan(xr.joint(name)[0]).all() and np.isnan(xr.joint(name)[1]).all()
    assert xr.valid[JOINTS.index("ring_tip")] and xr.valid[JOINTS.index("thumb_tip")]
    w = webxr(xr)
    assert w.positions.shape == (25, 3) and np.array_equal(w.valid, xr.valid[1:])
    with pytest.raises(ValueError, match="side"):
        openxr_hand(j, "both")


def test_a_pose_messages_hand_gives_its_openxr_joints():
    j = _hand("left", 5)[0].astype(np.float32)
    pose = HandPose("left", 0.9, j, np.ones(21, np.float32), np.zeros(21, np.float32), np.full(21, 2, np.uint8))
    xr = pose.openxr()
    assert xr.side == "left" and xr.valid.all()
    np.testing.assert_allclose(xr.joint("index_tip")[0], j[8])
