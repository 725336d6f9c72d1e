"""The 21-joint hand layout: indices, names, tree, edges, colours."""

from __future__ import annotations

from handstream import skeleton as sk


def test_joint_count_and_names():
    assert sk.NUM_JOINTS == 21
    assert len(sk.HandJoint) == 21
    assert len(sk.JOINT_NAMES) == 21
    assert len(set(sk.JOINT_NAMES)) == 21
    assert sk.HANDS == ("left", "right")


def test_hand_joint_values_match_names():
    for joint in sk.HandJoint:
        assert sk.JOINT_NAMES[joint] == joint.name.lower()
    # the MediaPipe HandLandmark names at the documented indices
    assert sk.HandJoint.WRIST == 0
    assert sk.HandJoint.THUMB_CMC == 1
    assert sk.HandJoint.THUMB_TIP == 4
    assert sk.HandJoint.INDEX_FINGER_MCP == 5
    assert sk.HandJoint.INDEX_FINGER_TIP == 8
    assert sk.HandJoint.MIDDLE_FINGER_MCP == 9
    assert sk.HandJoint.RING_FINGER_PIP == 14
    assert sk.HandJoint.PINKY_MCP == 17
    assert sk.HandJoint.PINKY_TIP == 20


def test_parents_form_a_tree_rooted_at_the_wrist():
    assert len(sk.PARENTS) == 21
    assert sk.PARENTS[sk.HandJoint.WRIST] == -1
    assert [k for k, p in enumerate(sk.PARENTS) if p == -1] == [0]
    for k in range(1, 21):
        # walking up the parents reaches the wrist without cycles; parents come before children
        seen, j = set(), k
        while j != 0:
            assert j not in seen
            seen.add(j)
            assert 0 <= sk.PARENTS[j] < j
            j = sk.PARENTS[j]
    # each finger base hangs off the wrist
    for joints in sk.FINGERS.values():
        assert sk.PARENTS[joints[0]] == 0
        for parent, child in zip(joints[:-1], joints[1:], strict=True):
            assert sk.PARENTS[child] == parent


def test_bones_consistent_with_parents():
    assert len(sk.BONES) == 20
    assert set(sk.BONES) == {(sk.PARENTS[k], k) for k in range(1, 21)}
    children = [child for _, child in sk.BONES]
    assert sorted(children) == list(range(1, 21))


def test_fingers_partition_the_non_wrist_joints():
    assert list(sk.FINGERS) == ["thumb", "index", "middle", "ring", "pinky"]
    joints = [j for js in sk.FINGERS.values() for j in js]
    assert sorted(joints) == list(range(1, 21))
    assert sk.FINGERS["index"] == (5, 6, 7, 8)
    assert sk.JOINT_FINGER[0] == "palm"
    assert sk.JOINT_FINGER[12] == "middle"


def test_hand_connections_match_mediapipe():
    # mediapipe.solutions.hands_connections.HAND_CONNECTIONS, copied as data
    mediapipe = {
        (0, 1), (0, 5), (9, 13), (13, 17), (5, 9), (0, 17),
        (1, 2), (2, 3), (3, 4), (5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12),
        (13, 14), (14, 15), (15, 16), (17, 18), (18, 19), (19, 20),
    }  # fmt: skip
    assert len(sk.HAND_CONNECTIONS) == 21
    assert set(sk.HAND_CONNECTIONS) == mediapipe


def test_colors_are_bgr_tuples_one_per_finger():
    assert len(sk.JOINT_COLORS) == 21
    assert set(sk.FINGER_COLORS) == set(sk.FINGERS)
    assert len(set(sk.FINGER_COLORS.values())) == 5
    for color in [*sk.JOINT_COLORS, *sk.FINGER_COLORS.values(), sk.PALM_COLOR]:
        assert len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in color)
    for finger, joints in sk.FINGERS.items():
        assert all(sk.JOINT_COLORS[j] == sk.FINGER_COLORS[finger] for j in joints)
    assert sk.connection_color((6, 7)) == sk.FINGER_COLORS["index"]
    assert sk.connection_color((5, 9)) == sk.PALM_COLOR
