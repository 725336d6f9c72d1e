"""The websocket bridge's two message formats: JSON (one object per pose) and a compact binary layout.

JSON (text message)::

    {"seq": 12, "t_capture_ns": ..., "t_publish_ns": ...,
     "hands": [{"side": "right", "presence": 0.98, "tracked": true,
                "joints": [[x, y, z] | null, ... 21], "conf": [c | null, ... 21],
                "openxr": {"positions": [[x, y, z] | null, ... 26], "orientations": [[qx, qy, qz, qw] | null, ... 26],
                           "radii": [r | null, ... 26]}}]}     # "openxr" only when asked for (?openxr=1)

Metres in the rig frame, nanoseconds of ``CLOCK_REALTIME``; ``null`` = not tracked.

Binary (one binary message per pose, little-endian, no padding; :data:`HEADER`, :data:`HAND`)::

    header  32 bytes  char[4] magic "HSP1", uint8 version (1), uint8 n_hands, uint16 flags (bit 0: OpenXR arrays
                      follow each hand), uint64 seq, int64 t_capture_ns, int64 t_publish_ns
    hand    8 bytes   uint8 side (0 left, 1 right), uint8 tracked (0/1), uint16 reserved (0), float32 presence
            252 bytes float32 joints[21][3] (metres; NaN = not tracked)
            84 bytes  float32 conf[21]
            (flag bit 0) 312 bytes float32 openxr_positions[26][3], 416 bytes float32 openxr_orientations[26][4]
                      (x, y, z, w), 104 bytes float32 openxr_radii[26]

So a pose with two hands is 32 + 2 x 344 = 720 bytes (2 x 1176 + 32 = 2384 with OpenXR).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from handstream.poses import PoseMessage
from handstream.skeleton import HANDS, NUM_JOINTS

MAGIC = b"HSP1"
VERSION = 1
FLAG_OPENXR = 1
HEADER = struct.Struct("<4sBBHQqq")
"""magic, version, n_hands, flags, seq, t_capture_ns, t_publish_ns: 32 bytes."""
HAND = struct.Struct("<BBHf")
"""side, tracked, reserved, presence: 8 bytes."""
OPENXR_JOINTS = 26
HAND_BYTES = HAND.size + 4 * NUM_JOINTS * 4
OPENXR_BYTES = 4 * OPENXR_JOINTS * (3 + 4 + 1)


def _floats(a: np.ndarray) -> Any:
    """Nested lists of floats rounded to 6 decimals, NaN -> None."""
    if a.ndim > 1:
        return [_floats(x) for x in a]
    return [None if not math.isfinite(v) else round(float(v), 6) for v in a]


def pose_json(msg: PoseMessage, openxr: bool = False) -> dict[str, Any]:
    """A pose as the JSON format's object (NaN -> None)."""
    hands = []
    for h in msg.hands:
        d = {
            "side": h.side,
            "presence": round(float(h.presence), 4),
            "tracked": bool(np.isfinite(h.joints).all(axis=-1).any()),
            "joints": _floats(h.joints),
            "conf": _floats(h.conf),
        }
        if openxr:
            x = h.openxr()
            d["openxr"] = {
                "positions": _floats(x.positions),
                "orientations": _floats(x.orientations),
                "radii": _floats(x.radii),
            }
        hands.append(d)
    return {"seq": msg.seq, "t_capture_ns": msg.t_capture_ns, "t_publish_ns": msg.t_publish_ns, "hands": hands}


def pose_binary(msg: PoseMessage, openxr: bool = False) -> bytes:
    """A pose in the binary layout (module docstring)."""
    parts = [HEADER.pack(MAGIC, VERSION, len(msg.hands), FLAG_OPENXR if openxr else 0, msg.seq, msg.t_capture_ns,
                         msg.t_publish_ns)]  # fmt: skip
    for h in msg.hands:
        tracked = bool(np.isfinite(h.joints).all(axis=-1).any())
        parts.append(HAND.pack(HANDS.index(h.side), tracked, 0, float(h.presence)))
        parts.append(np.ascontiguousarray(h.joints, "<f4").tobytes())
        parts.append(np.ascontiguousarray(h.conf, "<f4").tobytes())
        if openxr:
            x = h.openxr()
            for a in (x.positions, x.orientations, x.radii):
                parts.append(np.ascontiguousarray(a, "<f4").tobytes())
    return b"".join(parts)


def decode_binary(data: bytes) -> dict[str, Any]:
    """Read the binary layout back (a Python receiver's reference): ``seq``, ``t_capture_ns``, ``t_publish_ns``,
    ``hands`` (each ``side``, ``tracked``, ``presence``, ``joints`` (21, 3), ``conf`` (21,) and, with the OpenXR
    flag, ``openxr_positions`` (26, 3), ``openxr_orientations`` (26, 4), ``openxr_radii`` (26,), float32)."""
    magic, version, n, flags, seq, t_cap, t_pub = HEADER.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"not a handstream binary pose (magic {magic!r}, version {version})")
    per_hand = HAND_BYTES + (OPENXR_BYTES if flags & FLAG_OPENXR else 0)
    if len(data) != HEADER.size + n * per_hand:
        raise ValueError(f"binary pose of {len(data)} bytes, expected {HEADER.size + n * per_hand}")
    hands, off = [], HEADER.size
    for _ in range(n):
        side, tracked, _, presence = HAND.unpack_from(data, off)
        a = np.frombuffer(data, "<f4", (HAND_BYTES + (OPENXR_BYTES if flags & FLAG_OPENXR else 0) - HAND.size) // 4,
                          off + HAND.size)  # fmt: skip
        hand = {"side": HANDS[side], "tracked": bool(tracked), "presence": presence,
                "joints": a[:63].reshape(21, 3), "conf": a[63:84]}  # fmt: skip
        if flags & FLAG_OPENXR:
            hand["openxr_positions"] = a[84:162].reshape(26, 3)
            hand["openxr_orientations"] = a[162:266].reshape(26, 4)
            hand["openxr_radii"] = a[266:292]
        hands.append(hand)
        off += per_hand
    return {"seq": seq, "t_capture_ns": t_cap, "t_publish_ns": t_pub, "hands": hands}
