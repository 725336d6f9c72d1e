"""The 21-joint hand skeleton, in MediaPipe / OpenPose order.

Joint indices (``K = 21``)::

    0 wrist
    1-4   thumb   CMC, MCP, IP,  TIP
    5-8   index   MCP, PIP, DIP, TIP
    9-12  middle  MCP, PIP, DIP, TIP
    13-16 ring    MCP, PIP, DIP, TIP
    17-20 pinky   MCP, PIP, DIP, TIP

Every array with a joint axis in handstream (heatmaps ``(V, H*K, h, w)``, keypoints ``(V, H, K, 2)``,
3D joints ``(H, K, 3)``) uses this order; the hand axis ``H`` follows :data:`HANDS`.

Two edge lists exist on purpose:

* :data:`BONES` is the kinematic tree (each joint to its parent, 20 bones): use it for bone lengths
  and anything that walks the hierarchy.
* :data:`HAND_CONNECTIONS` is MediaPipe's drawing set (21 edges): the finger chains plus the palm
  outline 0-1, 0-5, 5-9, 9-13, 13-17, 0-17. Use it for drawing.

Colours are BGR tuples (OpenCV drawing order), one colour per finger.
"""

from __future__ import annotations

from enum import IntEnum

NUM_JOINTS = 21
"""Joints per hand (``K``)."""

HANDS = ("left", "right")
"""Order of the hand axis ``H`` everywhere: index 0 is the left hand, 1 the right."""


class HandJoint(IntEnum):
    """Joint index by name; the names are MediaPipe's ``HandLandmark`` names."""

    WRIST = 0
    THUMB_CMC = 1
    THUMB_MCP = 2
    THUMB_IP = 3
    THUMB_TIP = 4
    INDEX_FINGER_MCP = 5
    INDEX_FINGER_PIP = 6
    INDEX_FINGER_DIP = 7
    INDEX_FINGER_TIP = 8
    MIDDLE_FINGER_MCP = 9
    MIDDLE_FINGER_PIP = 10
    MIDDLE_FINGER_DIP = 11
    MIDDLE_FINGER_TIP = 12
    RING_FINGER_MCP = 13
    RING_FINGER_PIP = 14
    RING_FINGER_DIP = 15
    RING_FINGER_TIP = 16
    PINKY_MCP = 17
    PINKY_PIP = 18
    PINKY_DIP = 19
    PINKY_TIP = 20


JOINT_NAMES: tuple[str, ...] = tuple(joint.name.lower() for joint in HandJoint)
"""Lower-case joint names in index order, e.g. ``JOINT_NAMES[8] == "index_finger_tip"``."""

FINGERS: dict[str, tuple[int, ...]] = {
    "thumb": (1, 2, 3, 4),
    "index": (5, 6, 7, 8),
    "middle": (9, 10, 11, 12),
    "ring": (13, 14, 15, 16),
    "pinky": (17, 18, 19, 20),
}
"""Finger name -> its 4 joint indices, from the base to the tip (the wrist belongs to no finger)."""

# Each finger's base hangs off the wrist; every other joint hangs off the previous joint of its finger.
PARENTS: tuple[int, ...] = tuple(-1 if k == 0 else (0 if (k - 1) % 4 == 0 else k - 1) for k in range(NUM_JOINTS))
"""Parent joint index of each joint; ``-1`` for the wrist (the root)."""

BONES: tuple[tuple[int, int], ...] = tuple((PARENTS[k], k) for k in range(1, NUM_JOINTS))
"""The 20 bones of the kinematic tree as ``(parent, child)`` pairs, ordered by child index."""

HAND_PALM_CONNECTIONS: tuple[tuple[int, int], ...] = ((0, 1), (0, 5), (9, 13), (13, 17), (5, 9), (0, 17))
HAND_THUMB_CONNECTIONS: tuple[tuple[int, int], ...] = ((1, 2), (2, 3), (3, 4))
HAND_INDEX_FINGER_CONNECTIONS: tuple[tuple[int, int], ...] = ((5, 6), (6, 7), (7, 8))
HAND_MIDDLE_FINGER_CONNECTIONS: tuple[tuple[int, int], ...] = ((9, 10), (10, 11), (11, 12))
HAND_RING_FINGER_CONNECTIONS: tuple[tuple[int, int], ...] = ((13, 14), (14, 15), (15, 16))
HAND_PINKY_FINGER_CONNECTIONS: tuple[tuple[int, int], ...] = ((17, 18), (18, 19), (19, 20))

HAND_CONNECTIONS: tuple[tuple[int, int], ...] = (
    HAND_PALM_CONNECTIONS
    + HAND_THUMB_CONNECTIONS
    + HAND_INDEX_FINGER_CONNECTIONS
    + HAND_MIDDLE_FINGER_CONNECTIONS
    + HAND_RING_FINGER_CONNECTIONS
    + HAND_PINKY_FINGER_CONNECTIONS
)
"""MediaPipe's 21 drawing connections (the same pairs as ``mediapipe``'s ``HAND_CONNECTIONS`` set),
as a tuple so that drawing order is deterministic."""

FINGER_COLORS: dict[str, tuple[int, int, int]] = {
    "thumb": (60, 60, 230),  # red
    "index": (0, 200, 255),  # yellow-orange
    "middle": (70, 200, 70),  # green
    "ring": (230, 160, 30),  # blue
    "pinky": (200, 60, 200),  # magenta
}
"""BGR colour of each finger, for drawing its joints and bones."""

PALM_COLOR: tuple[int, int, int] = (200, 200, 200)
"""BGR colour of the wrist and the palm outline."""

JOINT_FINGER: tuple[str, ...] = tuple(
    next((finger for finger, joints in FINGERS.items() if k in joints), "palm") for k in range(NUM_JOINTS)
)
"""Finger name of each joint; ``"palm"`` for the wrist."""

JOINT_COLORS: tuple[tuple[int, int, int], ...] = tuple(FINGER_COLORS.get(finger, PALM_COLOR) for finger in JOINT_FINGER)
"""BGR colour of each joint (its finger's colour; :data:`PALM_COLOR` for the wrist)."""


def connection_color(connection: tuple[int, int]) -> tuple[int, int, int]:
    """BGR colour for drawing an edge ``(a, b)`` of :data:`HAND_CONNECTIONS` or :data:`BONES`.

    An edge inside one finger takes that finger's colour; palm edges (touching the wrist or joining two
    fingers' bases) take :data:`PALM_COLOR`.
    """
    a, b = connection
    if JOINT_FINGER[a] == JOINT_FINGER[b] and JOINT_FINGER[a] != "palm":
        return FINGER_COLORS[JOINT_FINGER[a]]
    return PALM_COLOR


__all__ = [
    "BONES",
    "FINGERS",
    "FINGER_COLORS",
    "HANDS",
    "HAND_CONNECTIONS",
    "HandJoint",
    "JOINT_COLORS",
    "JOINT_FINGER",
    "JOINT_NAMES",
    "NUM_JOINTS",
    "PALM_COLOR",
    "PARENTS",
    "connection_color",
]
