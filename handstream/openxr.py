"""The 26 hand joints of OpenXR's ``XR_EXT_hand_tracking`` (and WebXR's 25), made from handstream's 21.

What a consumer of hand tracking expects (Unity, Unreal, Godot, SteamVR drivers, WebXR pages): per joint a
position, an orientation and a radius, in OpenXR's joint set (:data:`JOINTS`, ``XrHandJointEXT`` order). From
the 21 triangulated joints (MediaPipe's set, :mod:`handstream.skeleton`):

* **measured** (copied): the wrist; the thumb's metacarpal (MediaPipe's CMC), proximal (MCP), distal (IP) and
  tip; each finger's proximal (MCP), intermediate (PIP), distal (DIP) and tip. OpenXR names a joint after the
  bone that starts at it, so its ``INDEX_PROXIMAL`` is the index knuckle.
* **synthesised**: the four finger metacarpal joints (the carpometacarpal joints, which no camera sees) at
  :data:`METACARPAL_FRACTION` of the way from the wrist to the finger's knuckle; the palm, the centre of the
  middle finger's metacarpal bone (the spec's definition): halfway between that synthesised joint and the
  middle knuckle.
* **orientation** (synthesised): OpenXR's convention: ``-Z`` along the bone towards the fingertip (a joint's
  bone runs to the next joint of its finger; a tip keeps its distal bone's direction; the wrist and the palm
  point towards the middle knuckle), ``+Y`` out of the back of the hand (the palm's normal from the wrist and
  the index and little knuckles, made orthogonal to the bone), ``+X = Y x Z``. As quaternions ``(x, y, z, w)``,
  OpenXR's ``XrQuaternionf`` order. The thumb uses the palm's back too (it has no measured roll).
* **radius** (synthesised): a typical adult hand's (:data:`ADULT_RADII_M`) scaled by this hand's size (its
  wrist-to-middle-knuckle length over :data:`ADULT_PALM_M`).

A joint is ``valid`` when every measured joint it was made from is finite; an invalid joint is NaN. Units are
the pose's: metres in the rig frame. WebXR's ``XRHand`` is the same joints without the palm (:func:`webxr`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handstream.skeleton import HANDS, NUM_JOINTS, HandJoint

JOINTS: tuple[str, ...] = (
    "palm", "wrist",
    "thumb_metacarpal", "thumb_proximal", "thumb_distal", "thumb_tip",
    "index_metacarpal", "index_proximal", "index_intermediate", "index_distal", "index_tip",
    "middle_metacarpal", "middle_proximal", "middle_intermediate", "middle_distal", "middle_tip",
    "ring_metacarpal", "ring_proximal", "ring_intermediate", "ring_distal", "ring_tip",
    "little_metacarpal", "little_proximal", "little_intermediate", "little_distal", "little_tip",
)  # fmt: skip
"""OpenXR's joints, in ``XrHandJointEXT`` order (``XR_HAND_JOINT_PALM_EXT`` = 0 ... ``LITTLE_TIP`` = 25)."""

COUNT = len(JOINTS)
"""26 (``XR_HAND_JOINT_COUNT_EXT``)."""

METACARPAL_FRACTION = 0.2
"""A finger's synthesised metacarpal joint: this fraction of the way from the wrist to its knuckle (the carpal
bones take about the first fifth of that span)."""

ADULT_PALM_M = 0.095
"""Wrist to middle knuckle of a typical adult hand, metres (the scale of :data:`ADULT_RADII_M`)."""

_FINGER_RADII = (0.0105, 0.0100, 0.0085, 0.0075, 0.0065)  # metacarpal, proximal, intermediate, distal, tip
ADULT_RADII_M: tuple[float, ...] = (
    0.0200, 0.0180,  # palm, wrist
    0.0130, 0.0115, 0.0095, 0.0080,  # thumb: metacarpal, proximal, distal, tip
    *_FINGER_RADII,  # index
    *(1.02 * r for r in _FINGER_RADII),  # middle
    *(0.95 * r for r in _FINGER_RADII),  # ring
    *(0.85 * r for r in _FINGER_RADII),  # little
)  # fmt: skip
"""Joint radii of a typical adult hand, metres, in :data:`JOINTS` order."""

# Each OpenXR joint measured from one of handstream's: (openxr index, handstream index)
_MEASURED = [(1, HandJoint.WRIST), (2, 1), (3, 2), (4, 3), (5, 4)] + [
    (7 + 5 * f + k, 5 + 4 * f + k) for f in range(4) for k in range(4)
]
_KNUCKLE = {6: 5, 11: 9, 16: 13, 21: 17}  # a finger's metacarpal joint (openxr) -> its knuckle (handstream)


@dataclass
class OpenXRHand:
    """One hand in OpenXR's joints.

    Attributes:
        side: ``"left"`` or ``"right"``.
        positions: (26, 3) float64, the pose's units (metres, rig frame); NaN where not valid.
        orientations: (26, 4) float64 unit quaternions ``(x, y, z, w)``; NaN where not valid.
        radii: (26,) float64 metres; NaN where not valid.
        valid: (26,) bool.
    """

    side: str
    positions: np.ndarray
    orientations: np.ndarray
    radii: np.ndarray
    valid: np.ndarray

    def joint(self, name: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(position (3,), orientation (4,), radius) of the joint named as in :data:`JOINTS`."""
        i = JOINTS.index(name)
        return self.positions[i], self.orientations[i], float(self.radii[i])

    def matrices(self) -> np.ndarray:
        """(26, 3, 3) rotation matrices (columns: the joint's X, Y, Z axes in the rig frame)."""
        return quaternion_to_matrix(self.orientations)


def openxr_hand(joints: np.ndarray, side: str) -> OpenXRHand:
    """OpenXR's 26 joints of one hand from handstream's 21 (the module docstring says how).

    Args:
        joints: (21, 3) the hand's joints (metres), NaN where not triangulated.
        side: ``"left"`` or ``"right"`` (decides which way the back of the hand faces).
    Returns:
        :class:`OpenXRHand`.
    """
    if side not in HANDS:
        raise ValueError(f"side must be one of {HANDS}, got {side!r}")
    j = np.asarray(joints, np.float64)
    if j.shape != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (21, 3), got {j.shape}")
    pos = np.full((COUNT, 3), np.nan)
    for xr, hs in _MEASURED:
        pos[xr] = j[hs]
    for xr, knuckle in _KNUCKLE.items():
        pos[xr] = j[0] + METACARPAL_FRACTION * (j[knuckle] - j[0])
    pos[0] = 0.5 * (pos[11] + j[9])  # the palm: the middle metacarpal bone's centre
    valid = np.isfinite(pos).all(axis=-1)

    back = _back_of_hand(j, side)
    toward = _bone_directions(pos)
    rot = np.full((COUNT, 3, 3), np.nan)
    for i in range(COUNT):
        z = -toward[i]  # OpenXR: -Z towards the fingertip
        y = back - np.dot(back, z) * z
        ny = np.linalg.norm(y)
        if not (np.isfinite(z).all() and np.isfinite(y).all() and ny > 1e-9):
            continue
        y /= ny
        rot[i] = np.stack([np.cross(y, z), y, z], axis=-1)
    quat = matrix_to_quaternion(rot)
    valid &= np.isfinite(quat).all(axis=-1)
    scale = np.linalg.norm(j[9] - j[0]) / ADULT_PALM_M
    radii = np.asarray(ADULT_RADII_M) * scale
    pos[~valid], quat[~valid], radii[~valid] = np.nan, np.nan, np.nan
    return OpenXRHand(side, pos, quat, radii, valid)


def webxr(hand: OpenXRHand) -> OpenXRHand:
    """The same hand in WebXR's ``XRHand`` joints: OpenXR's without the palm (25, wrist first)."""
    return OpenXRHand(hand.side, hand.positions[1:], hand.orientations[1:], hand.radii[1:], hand.valid[1:])


def _back_of_hand(j: np.ndarray, side: str) -> np.ndarray:
    """(3,) unit normal of the palm pointing out of the back of the hand (NaN when the knuckles are missing).

    ``(index knuckle - wrist) x (little knuckle - wrist)`` points out of the palm of a right hand (hold it up,
    palm to your face: the index is on the thumb's side, to the right) and out of the back of a left one.
    """
    n = np.cross(j[5] - j[0], j[17] - j[0])
    n = -n if side == "right" else n
    norm = np.linalg.norm(n)
    return n / norm if norm > 1e-9 else np.full(3, np.nan)


def _bone_directions(pos: np.ndarray) -> np.ndarray:
    """(26, 3) unit directions towards the fingertip at each joint (module docstring)."""
    out = np.full((COUNT, 3), np.nan)
    chains = [(2, 3, 4, 5)] + [tuple(range(6 + 5 * f, 11 + 5 * f)) for f in range(4)]
    for chain in chains:
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            out[a] = pos[b] - pos[a]
        out[chain[-1]] = out[chain[-2]]
    out[0] = out[1] = pos[12] - pos[1]  # palm and wrist: towards the middle knuckle
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / np.linalg.norm(out, axis=-1, keepdims=True)


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions ``(x, y, z, w)`` with ``w >= 0`` (NaN in, NaN
    out)."""
    R = np.asarray(R, np.float64)
    flat = R.reshape(-1, 3, 3)
    out = np.full((len(flat), 4), np.nan)
    for i, m in enumerate(flat):
        if not np.isfinite(m).all():
            continue
        t = np.trace(m)
        if t > 0:  # the numerically stable branch for each case (Shepperd's method)
            s = 2.0 * np.sqrt(1.0 + t)
            q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
        elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
            s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
            q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
        elif m[1, 1] > m[2, 2]:
            s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
            q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
        else:
            s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
            q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
        q = np.asarray(q) / np.linalg.norm(q)
        out[i] = -q if q[3] < 0 else q
    return out.reshape(*R.shape[:-2], 4)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions ``(x, y, z, w)`` -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, np.float64)
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)  # fmt: skip
