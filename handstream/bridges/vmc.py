"""VMC protocol bone messages (Virtual Motion Capture, https://protocol.vmc.info) from the OpenXR joints, for the
osc bridge's ``vmc`` option: VSeeFace, Virtual Motion Capture, EVMC4U (Unity), VMC4B (Blender) and others.

One OSC bundle per pose::

    /VMC/Ext/OK        int32 1 (loaded: bones follow)
    /VMC/Ext/T         float32 seconds since the bridge started (the sender's relative time)
    /VMC/Ext/Bone/Pos  string name, float32 p.x, p.y, p.z, q.x, q.y, q.z, q.w     per bone of each tracked hand

The bones (:data:`BONES`) are Unity's ``HumanBodyBones``: ``<Side>Hand`` and ``<Side><Finger><Phalanx>`` for the
fingers ``Thumb``, ``Index``, ``Middle``, ``Ring``, ``Little`` and the phalanges ``Proximal``, ``Intermediate``,
``Distal`` (16 a hand). Unity's thumb proximal is the thumb's metacarpal (OpenXR ``thumb_metacarpal``); a finger's
proximal starts at its knuckle (OpenXR ``<finger>_proximal``). A bone whose joints are not valid is not sent, nor
are its children.

Frames:

* **Unity's frame** (left-handed, ``+y`` up, ``+x`` right, ``+z`` forward, metres) is the rig frame with ``y``
  negated: ``(x, -y, z)``. The rig frame of the headset presets and of an OpenCV camera is ``x`` right, ``y``
  down, ``z`` forward (right-handed), so up becomes ``+y`` and nothing else changes; a rig whose "up" is another
  axis (the viewer shows it) comes out tilted the same way. Positions and rotations are both mirrored by that
  one negation (a rotation ``R`` becomes ``M R M``, ``M = diag(1, -1, 1)``).
* **Rest pose** (identity rotation): the T-pose hand of a VRM normalized humanoid: fingers straight, pointing
  away from the body (``-x`` for the left hand, ``+x`` for the right), palm down (the back of the hand ``+y``).
  A bone's global rotation takes that rest frame to the bone's OpenXR frame (the direction to the next joint,
  the back of the hand). The thumb's rest is taken along the fingers too (a model's splayed rest thumb is not
  known here).
* **Local, as the spec says** (``Bone/Pos`` is the bone's local pose): a finger bone's position and rotation are
  relative to its parent (``Proximal`` -> ``Hand``, ``Intermediate`` -> ``Proximal``, ``Distal`` ->
  ``Intermediate``): ``q = R_parent^T R_bone``, ``p = R_parent^T (x_bone - x_parent)``. The hand's parent, the
  lower arm, is not tracked, so ``<Side>Hand`` carries its **global** pose (the wrist in Unity's frame): what its
  local pose would be with the arm at rest.
"""

from __future__ import annotations

import numpy as np

from handstream.bridges.deps import require
from handstream.openxr import JOINTS, matrix_to_quaternion
from handstream.poses import HandPose, PoseMessage

FINGERS = ("Thumb", "Index", "Middle", "Ring", "Little")
PHALANGES = ("Proximal", "Intermediate", "Distal")

# (bone name without side, its OpenXR joint, its parent's OpenXR joint; -1: none, the hand)
_WRIST = JOINTS.index("wrist")
_BONES: list[tuple[str, int, int]] = [("Hand", _WRIST, -1)]
for _f, _finger in enumerate(FINGERS):
    _first = JOINTS.index("thumb_metacarpal") if _f == 0 else JOINTS.index(f"{_finger.lower()}_proximal")
    for _k, _phalanx in enumerate(PHALANGES):
        _BONES.append((f"{_finger}{_phalanx}", _first + _k, _WRIST if _k == 0 else _first + _k - 1))

BONES: tuple[str, ...] = tuple(f"{side}{name}" for side in ("Left", "Right") for name, _, _ in _BONES)
"""The 32 bone names sent (16 a hand), Unity ``HumanBodyBones`` spelling."""

MIRROR = np.array([1.0, -1.0, 1.0])
"""Rig frame -> Unity's frame: ``y`` negated (module docstring)."""


def hand_bones(hand: HandPose) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """One hand's VMC bones: ``(name, position (3,) metres, quaternion (4,) x, y, z, w)``, Unity's frame, local to
    the parent bone (the hand: global); only valid bones whose parent is valid, in :data:`BONES` order."""
    xr = hand.openxr()
    pos = xr.positions * MIRROR
    axes = xr.matrices() * MIRROR[:, None]  # (26, 3, 3): each joint's X, Y, Z columns, mirrored as vectors
    toward = -axes[:, :, 2]  # OpenXR: -Z towards the fingertip
    back = axes[:, :, 1]  # OpenXR: +Y out of the back of the hand
    x = -toward if hand.side == "left" else toward  # rest: the left hand's fingers along -x, the right's +x
    rot = np.stack([x, back, np.cross(x, back)], axis=-1)  # (26, 3, 3) rest frame -> bone, proper rotations
    side = "Left" if hand.side == "left" else "Right"
    out, sent = [], set()
    for name, j, parent in _BONES:
        if not xr.valid[j] or (parent >= 0 and parent not in sent):
            continue
        if parent < 0:
            r, p = rot[j], pos[j]
        else:
            r, p = rot[parent].T @ rot[j], rot[parent].T @ (pos[j] - pos[parent])
        out.append((f"{side}{name}", p, matrix_to_quaternion(r)))
        sent.add(j)
    return out


def vmc_bundle(msg: PoseMessage, t_s: float):
    """One pose as a ``pythonosc`` bundle of VMC messages (module docstring); ``t_s``: the ``/VMC/Ext/T`` time,
    seconds."""
    require("pythonosc")
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscBundleBuilder(IMMEDIATELY)
    ok = OscMessageBuilder("/VMC/Ext/OK")
    ok.add_arg(1, "i")
    t = OscMessageBuilder("/VMC/Ext/T")
    t.add_arg(float(t_s), "f")
    b.add_content(ok.build())
    b.add_content(t.build())
    for hand in msg.hands:
        if not np.isfinite(hand.joints).any():
            continue
        for name, p, q in hand_bones(hand):
            m = OscMessageBuilder("/VMC/Ext/Bone/Pos")
            m.add_arg(name, "s")
            for v in (*p, *q):
                m.add_arg(float(v), "f")
            b.add_content(m.build())
    return b.build()
