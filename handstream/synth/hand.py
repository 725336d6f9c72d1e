"""An articulated hand: 22 joint angles -> the 21 joints of :mod:`handstream.skeleton` and a capsule body.

Legend: ``K`` joints (21), ``A`` angles (22), ``C`` capsules of one hand (:data:`NUM_CAPSULES`).

Hand frame (right hand; metres): origin at the wrist joint, ``+z`` from the wrist towards the middle
finger's knuckle, ``+y`` out of the palm (the palm normal), ``+x = y x z`` towards the little finger.
A left hand is the mirror image ``diag(-1, 1, 1)`` of the right hand in this frame, so the same angles
give the same pose on either hand. :func:`pose_hand` places a hand in the rig frame.

Angles (radians, :data:`ANGLE_NAMES`), four per digit from thumb to little finger, then the wrist:

=================  ==========================================================================
``<digit>_abd``    spread at the base joint (fingers: away from the middle finger; thumb: palmar
                   abduction at the CMC joint, away from the palm)
``<digit>_flex1``  flexion at the base joint (fingers: MCP; thumb: CMC)
``<digit>_flex2``  flexion at the middle joint (fingers: PIP; thumb: MCP)
``<digit>_flex3``  flexion at the last joint (fingers: DIP; thumb: IP)
``wrist_flex``     palmar flexion of the hand relative to the forearm (negative: extension)
``wrist_dev``      radial deviation (towards the thumb; negative: ulnar)
=================  ==========================================================================

Positive flexion curls towards the palm. :data:`ANGLE_LIMITS` holds the anatomical range of each
angle; :func:`clip_angles` enforces it, and every pose this module produces lies inside it.

Bone lengths are an adult hand's (middle finger tip 19 cm from the wrist) times a per-subject
``scale`` (0.8-1.2 in the generator). Forearm rotation (pronation / supination) is part of the hand's
placement (:func:`pose_hand`'s ``rotation``), not an angle here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handstream.errors import HandstreamError

DIGITS = ("thumb", "index", "middle", "ring", "pinky")
"""The five digits, in the order of their angle blocks and of :data:`handstream.skeleton.FINGERS`."""

ANGLE_NAMES: tuple[str, ...] = tuple(f"{d}_{a}" for d in DIGITS for a in ("abd", "flex1", "flex2", "flex3")) + (
    "wrist_flex",
    "wrist_dev",
)
"""Names of the 22 angles of a pose vector, in order."""

NUM_ANGLES = len(ANGLE_NAMES)

_LIMITS_DEG = {
    # thumb: CMC palmar abduction / flexion (across the palm), MCP, IP
    "thumb": ((-15.0, 50.0), (-25.0, 55.0), (-10.0, 60.0), (-15.0, 80.0)),
    # fingers: MCP spread, MCP flexion (negative: hyperextension), PIP, DIP
    "index": ((-15.0, 20.0), (-25.0, 90.0), (-5.0, 110.0), (-5.0, 80.0)),
    "middle": ((-15.0, 15.0), (-25.0, 90.0), (-5.0, 110.0), (-5.0, 80.0)),
    "ring": ((-15.0, 20.0), (-25.0, 90.0), (-5.0, 110.0), (-5.0, 80.0)),
    "pinky": ((-15.0, 30.0), (-30.0, 90.0), (-5.0, 110.0), (-5.0, 80.0)),
}
ANGLE_LIMITS: np.ndarray = np.deg2rad(
    np.array([lim for d in DIGITS for lim in _LIMITS_DEG[d]] + [(-65.0, 70.0), (-30.0, 20.0)])
)
"""(A, 2) lower and upper limit of each angle, radians."""
ANGLE_LIMITS.flags.writeable = False

# --- the adult right hand at scale 1 (metres, hand frame) --------------------------------------------
# Base joint of each digit (thumb CMC, finger MCPs) and the rest direction of its first bone.
_BASE_POS = np.array(
    [
        [-0.021, 0.011, 0.024],  # thumb CMC
        [-0.024, 0.001, 0.088],  # index MCP
        [-0.004, 0.000, 0.092],  # middle MCP
        [0.014, 0.002, 0.086],  # ring MCP
        [0.030, 0.006, 0.076],  # pinky MCP
    ]
)
_FINGER_SPLAY = np.deg2rad([0.0, -6.0, 0.0, 6.0, 14.0])  # rest direction of each finger, about +y
_SPREAD_SIGN = np.array([-1.0, -1.0, -1.0, 1.0, 1.0])  # 'abd' > 0 moves a finger away from the middle
_LENGTHS = np.array(
    [
        [0.044, 0.033, 0.027],  # thumb metacarpal, proximal, distal (to the tip)
        [0.043, 0.025, 0.022],
        [0.047, 0.029, 0.024],
        [0.044, 0.028, 0.023],
        [0.034, 0.020, 0.021],
    ]
)
_RADII = np.array(
    [
        [0.0125, 0.0102, 0.0093],
        [0.0094, 0.0084, 0.0075],
        [0.0097, 0.0087, 0.0077],
        [0.0091, 0.0082, 0.0073],
        [0.0080, 0.0072, 0.0065],
    ]
)
# Thumb base frame: metacarpal points radially, distally and out of the palm; its pad faces the fingers.
_THUMB_Z = np.array([-0.60, 0.18, 0.78])
_THUMB_Y_HINT = np.array([0.70, 0.70, 0.10])
_TIP_INSET = 0.75  # the last capsule ends this many radii before the tip label: the label sits near the skin

NUM_CAPSULES = 30
"""Capsules of one hand's body (fingers, palm, wrist, forearm, upper arm); see :func:`hand_capsules`."""

CAPSULE_PARTS: tuple[str, ...] = (
    tuple(f"{d}_{s}" for d in DIGITS for s in ("proximal", "middle", "distal"))
    + ("thenar", "palm_index", "palm_middle", "palm_ring", "palm_pinky", "palm_center", "wrist")
    + tuple(f"forearm_{side}_{i}" for side in ("radial", "ulnar") for i in range(3))
    + ("upper_arm_0", "upper_arm_1")
)
"""Name of each capsule of a hand, in the order of :func:`hand_capsules`."""
assert len(CAPSULE_PARTS) == NUM_CAPSULES

FOREARM_CAPSULES = tuple(range(22, 28))
"""Indices of the forearm capsules (two side by side, for its oval section, in three pieces each)."""
UPPER_ARM_CAPSULES = (28, 29)
"""Indices of the upper arm capsules (elbow to shoulder, in two pieces)."""
FAR_ARM_CAPSULES = (23, 24, 26, 27, 28, 29)
"""The arm beyond the first forearm piece (~8 cm from the wrist): covered by a sleeve when the look has one,
and cast at half resolution (big, near the cameras, no labels on it)."""


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def rot_x(a: np.ndarray) -> np.ndarray:
    """(...,) angles -> (..., 3, 3) rotations about +x."""
    a = np.asarray(a, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray) -> np.ndarray:
    """(...,) angles -> (..., 3, 3) rotations about +y."""
    a = np.asarray(a, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _base_frames() -> np.ndarray:
    """(5, 3, 3) rest frame of each digit's first bone: columns = flexion axis x, palmar y, bone z."""
    frames = np.empty((5, 3, 3))
    z = _unit(_THUMB_Z)
    y = _unit(_THUMB_Y_HINT - (_THUMB_Y_HINT @ z) * z)
    frames[0] = np.stack([np.cross(y, z), y, z], axis=1)
    frames[1:] = rot_y(_FINGER_SPLAY[1:])
    return frames


_BASE_FRAMES = _base_frames()


@dataclass(frozen=True)
class HandShape:
    """Bone lengths and radii of one subject (both hands share them; the left one is mirrored).

    Attributes:
        scale: overall size relative to the adult hand (1.0: middle fingertip 19 cm from the wrist).
        base_pos: (5, 3) base joint of each digit in the hand frame (thumb CMC, finger MCPs), metres.
        lengths: (5, 3) bone lengths per digit, base to tip, metres.
        radii: (5, 3) capsule radius of each bone, metres.
    """

    scale: float
    base_pos: np.ndarray
    lengths: np.ndarray
    radii: np.ndarray

    @classmethod
    def from_scale(cls, scale: float = 1.0, rng: np.random.Generator | None = None, jitter: float = 0.03) -> HandShape:
        """The adult hand times ``scale``; with ``rng``, each bone length also varies by ~``jitter`` (relative).

        Raises:
            HandstreamError: when ``scale`` is not in (0.5, 2).
        """
        if not (0.5 < float(scale) < 2.0):
            raise HandstreamError(f"hand scale: expected a number between 0.5 and 2 (1 = adult hand), got {scale!r}")
        lengths = _LENGTHS.copy()
        radii = _RADII.copy()
        if rng is not None and jitter > 0:
            lengths *= 1.0 + np.clip(rng.normal(0.0, jitter, lengths.shape), -2 * jitter, 2 * jitter)
            radii *= 1.0 + np.clip(rng.normal(0.0, jitter, 1), -2 * jitter, 2 * jitter)
        s = float(scale)
        return cls(scale=s, base_pos=_BASE_POS * s, lengths=lengths * s, radii=radii * s)


def clip_angles(angles: np.ndarray) -> np.ndarray:
    """(..., A) angles clipped to :data:`ANGLE_LIMITS`."""
    return np.clip(angles, ANGLE_LIMITS[:, 0], ANGLE_LIMITS[:, 1])


def _check_angles(angles: np.ndarray) -> np.ndarray:
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] != NUM_ANGLES:
        raise HandstreamError(f"hand angles: expected an array of shape (..., {NUM_ANGLES}), got shape {a.shape}")
    return a


def forward_kinematics(angles: np.ndarray, shape: HandShape) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions of a right hand in the hand frame, and each bone's frame.

    Args:
        angles: (..., A) radians (see :data:`ANGLE_NAMES`); not clipped here.
        shape: bone lengths.
    Returns:
        joints (..., K, 3) metres in the hand frame *after* the wrist rotation (the forearm frame: the
        wrist at the origin, the forearm along -z), and bone frames (..., 5, 3, 3, 3): the rotation of
        each digit's bone ``s`` (columns x, y, z; z along the bone).
    """
    a = _check_angles(angles)
    batch = a.shape[:-1]
    digit = a[..., :20].reshape(batch + (5, 4))
    spread = digit[..., 0] * _SPREAD_SIGN
    R = _BASE_FRAMES @ rot_y(spread) @ rot_x(-digit[..., 1])  # (..., 5, 3, 3)
    frames = [R]
    for s in (2, 3):
        R = R @ rot_x(-digit[..., s])
        frames.append(R)
    frames_arr = np.stack(frames, axis=-3)  # (..., 5, 3, 3, 3)
    steps = frames_arr[..., :, 2] * shape.lengths[..., None]  # bone vectors (..., 5, 3, 3)
    chain = shape.base_pos[:, None, :] + np.concatenate(
        [np.zeros(batch + (5, 1, 3)), np.cumsum(steps, axis=-2)], axis=-2
    )  # (..., 5, 4, 3): base, joint 2, joint 3, tip
    joints = np.concatenate([np.zeros(batch + (1, 3)), chain.reshape(batch + (20, 3))], axis=-2)
    Rw = wrist_rotation(a[..., 20], a[..., 21])
    joints = joints @ np.swapaxes(Rw, -1, -2)
    frames_arr = Rw[..., None, None, :, :] @ frames_arr
    return joints, frames_arr


def wrist_rotation(flex: np.ndarray, dev: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation of the hand relative to the forearm: palmar flexion, then radial deviation."""
    return rot_x(-np.asarray(flex)) @ rot_y(-np.asarray(dev))


_PALM_ANCHORS = np.array(
    [
        [-0.010, 0.007, 0.016],  # thenar start
        [-0.013, 0.003, 0.030],  # index metacarpal start
        [-0.003, 0.002, 0.030],
        [0.008, 0.004, 0.028],
        [0.018, 0.007, 0.026],
        [-0.014, 0.009, 0.052],  # palm centre fill: from
        [0.020, 0.011, 0.050],  # to
        [-0.013, 0.004, 0.006],  # wrist: from
        [0.015, 0.006, 0.004],  # to
    ]
)
_PALM_RADII = np.array([0.0145, 0.0122, 0.0125, 0.012, 0.0115, 0.0135, 0.0175])
_FOREARM = np.array([-0.004, 0.08, 0.17, 0.26])  # distances along the forearm from the wrist (piece ends)
_FOREARM_OFFSET = 0.011  # half the distance between the two forearm capsules (oval section)
_FOREARM_RADIUS = 0.0172
ELBOW = 0.26
"""Wrist to elbow, metres at scale 1 (the elbow is at ``(0, 0, -ELBOW * scale)`` in the forearm frame)."""
_UPPER_ARM = 0.29  # elbow to shoulder, metres at scale 1
_UPPER_ARM_RADIUS = 0.034


def hand_capsules(angles: np.ndarray, shape: HandShape) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The body of a right hand as capsules, in the forearm frame (the frame of :func:`forward_kinematics`).

    Args:
        angles: (A,) radians.
        shape: the subject.
    Returns:
        joints (K, 3), capsule start points (C, 3), end points (C, 3) and radii (C,), metres. Capsule
        ``c`` is named ``CAPSULE_PARTS[c]``: 15 finger bones, the thenar, four metacarpals, a palm
        fill, the wrist, the forearm (two capsules side by side for its oval section, each in three
        pieces so that their screen-space spans stay tight) up to the elbow, and the upper arm in two
        pieces (straight on from the forearm here; :func:`pose_hand` aims it at a shoulder).
    """
    joints, frames = forward_kinematics(angles, shape)
    Rw = wrist_rotation(angles[20], angles[21])
    s = shape.scale
    a = np.empty((NUM_CAPSULES, 3))
    b = np.empty((NUM_CAPSULES, 3))
    r = np.empty(NUM_CAPSULES)
    for d in range(5):
        base = 1 + 4 * d
        for k in range(3):
            c = 3 * d + k
            a[c] = joints[base + k]
            b[c] = joints[base + k + 1]
            r[c] = shape.radii[d, k]
        # pull the tip capsule's end back inside the finger, so that the tip label is near the skin
        direction = frames[d, 2, :, 2]
        b[3 * d + 2] = joints[base + 3] - _TIP_INSET * shape.radii[d, 2] * direction
    anchors = (_PALM_ANCHORS * s) @ Rw.T
    a[15], b[15], r[15] = anchors[0], joints[2], _PALM_RADII[0] * s  # thenar: to the thumb MCP
    for i in range(4):
        a[16 + i], b[16 + i], r[16 + i] = anchors[1 + i], joints[5 + 4 * i], _PALM_RADII[1 + i] * s
    a[20], b[20], r[20] = anchors[5], anchors[6], _PALM_RADII[5] * s
    a[21], b[21], r[21] = anchors[7], anchors[8], _PALM_RADII[6] * s
    along = _FOREARM * s
    for side, x in enumerate((-_FOREARM_OFFSET * s, _FOREARM_OFFSET * s)):
        for i in range(3):
            c = 22 + 3 * side + i
            a[c] = (x, 0.002 * s, -along[i])
            b[c] = (x, 0.002 * s, -along[i + 1])
            r[c] = _FOREARM_RADIUS * s
    # upper arm: straight on from the forearm unless pose_hand is given a shoulder
    elbow = np.array([0.0, 0.0, -ELBOW * s])
    shoulder = elbow + (0.0, 0.0, -_UPPER_ARM * s)
    a[28], b[28] = elbow, 0.5 * (elbow + shoulder)
    a[29], b[29] = b[28], shoulder
    r[28:] = _UPPER_ARM_RADIUS * s
    return joints, a, b, r


MIRROR = np.diag([-1.0, 1.0, 1.0])
"""The left hand is the right hand mirrored by this matrix in the hand frame."""


def pose_hand(
    angles: np.ndarray,
    shape: HandShape,
    side: str,
    rotation: np.ndarray,
    wrist: np.ndarray,
    shoulder: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A hand placed in the rig frame: ``X_rig = wrist + rotation @ M @ X_forearm_frame``.

    Args:
        angles: (A,) radians.
        shape: the subject.
        side: ``"left"`` or ``"right"`` (``M`` is :data:`MIRROR` for the left hand, identity for the right).
        rotation: (3, 3) forearm frame in the rig frame (columns: x, y = palm normal with the wrist
            straight, z = from the elbow towards the wrist).
        wrist: (3,) wrist joint in the rig frame, metres.
        shoulder: (3,) where the upper arm goes from the elbow (rig frame); None: straight on.
    Returns:
        joints (K, 3), capsule start points (C, 3), end points (C, 3), radii (C,), rig frame.
    """
    if side not in ("left", "right"):
        raise HandstreamError(f"hand side: expected 'left' or 'right', got {side!r}")
    joints, a, b, r = hand_capsules(angles, shape)
    T = np.asarray(rotation, dtype=np.float64) @ (MIRROR if side == "left" else np.eye(3))
    wrist = np.asarray(wrist, dtype=np.float64)
    a, b = a @ T.T + wrist, b @ T.T + wrist
    if shoulder is not None:
        elbow = a[UPPER_ARM_CAPSULES[0]]
        end = np.asarray(shoulder, dtype=np.float64)
        a[28], b[28] = elbow, 0.5 * (elbow + end)
        a[29], b[29] = b[28], end
    return joints @ T.T + wrist, a, b, r


# --- poses ------------------------------------------------------------------------------------------


def _pose(thumb=(0, 0, 0, 0), index=(0, 0, 0, 0), middle=(0, 0, 0, 0), ring=(0, 0, 0, 0), pinky=(0, 0, 0, 0)):
    deg = list(thumb) + list(index) + list(middle) + list(ring) + list(pinky) + [0.0, 0.0]
    return np.deg2rad(np.array(deg, dtype=np.float64))


NAMED_POSES: dict[str, np.ndarray] = {
    "open": _pose((5, -5, 5, 5), (8, 0, 5, 5), (0, 0, 5, 5), (6, 0, 5, 5), (12, 0, 5, 5)),
    "spread": _pose((25, -20, 0, 0), (18, -5, 0, 0), (0, -5, 0, 0), (15, -5, 0, 0), (28, -8, 0, 0)),
    "relaxed": _pose((10, 10, 15, 15), (2, 18, 30, 20), (0, 22, 38, 25), (3, 26, 42, 28), (6, 30, 45, 30)),
    "fist": _pose((-2, 15, 55, 64), (0, 85, 100, 55), (0, 88, 100, 55), (0, 88, 100, 55), (0, 88, 95, 50)),
    "point": _pose((0, 18, 50, 55), (5, 0, 5, 5), (0, 85, 100, 55), (0, 88, 100, 55), (0, 88, 95, 50)),
    "pinch": _pose((-5, 29, 10, 11), (0, 38, 40, 28), (0, 25, 30, 20), (3, 25, 35, 22), (8, 28, 40, 25)),
    "ok": _pose((-5, 29, 10, 11), (0, 38, 40, 28), (0, 5, 8, 5), (5, 5, 8, 5), (12, 5, 8, 5)),
    "grasp": _pose((20, 5, 10, 10), (0, 45, 55, 30), (0, 48, 58, 32), (0, 50, 60, 34), (4, 52, 60, 34)),
    "thumbs_up": _pose((6, -23, -10, -15), (0, 85, 100, 55), (0, 88, 100, 55), (0, 88, 100, 55), (0, 88, 95, 50)),
    "peace": _pose((0, 18, 50, 55), (15, 0, 5, 5), (12, 0, 5, 5), (0, 88, 100, 55), (0, 88, 95, 50)),
    "three": _pose((20, -10, 0, 0), (12, 0, 5, 5), (8, 0, 5, 5), (0, 88, 100, 55), (0, 88, 95, 50)),
    "claw": _pose((15, 15, 25, 35), (10, -10, 80, 60), (0, -10, 85, 60), (8, -10, 85, 60), (15, -10, 80, 55)),
    "flat_together": _pose((-5, -10, 0, 0), (-8, 0, 0, 0), (0, 0, 0, 0), (-5, 0, 0, 0), (-8, 0, 0, 0)),
    "tripod": _pose((-2, 36, 8, 8), (0, 40, 38, 25), (0, 38, 45, 30), (0, 60, 70, 40), (2, 65, 72, 40)),
    "rock": _pose((0, 18, 50, 55), (10, 0, 5, 5), (0, 85, 100, 55), (0, 88, 100, 55), (20, 0, 5, 5)),
}
"""A library of named poses (wrist straight); see :func:`sample_pose`. All lie inside the limits."""
for _name, _angles in NAMED_POSES.items():
    _angles.flags.writeable = False


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """A random pose inside the limits, with the correlations of real hands.

    Each finger's curl mixes a hand-wide curl with its own, so neighbours tend to move together; the
    last joint follows the middle one (DIP ~ 2/3 PIP); fingers spread more when straight.
    """
    out = np.zeros(NUM_ANGLES)
    hand_curl = rng.beta(0.9, 0.9)
    mix = rng.uniform(0.2, 0.9)
    spread = rng.uniform(-0.3, 1.0)
    for d in range(1, 5):
        curl = np.clip(mix * hand_curl + (1 - mix) * rng.beta(0.8, 0.8), 0.0, 1.0)
        mcp = np.deg2rad(-15 + 100 * np.clip(curl + rng.normal(0, 0.15), 0, 1))
        pip = np.deg2rad(105 * np.clip(curl + rng.normal(0, 0.15), 0, 1))
        dip = 0.6 * pip + np.deg2rad(rng.normal(0, 8))
        abd = np.deg2rad(spread * (1.0 - 0.8 * curl) * [18, 8, 14, 24][d - 1] + rng.normal(0, 3))
        out[4 * d : 4 * d + 4] = (abd, mcp, pip, dip)
    t_curl = rng.beta(1.0, 1.0)
    out[0] = np.deg2rad(rng.uniform(-10, 45))
    out[1] = np.deg2rad(-20 + 70 * t_curl + rng.normal(0, 5))
    out[2] = np.deg2rad(55 * np.clip(t_curl + rng.normal(0, 0.2), 0, 1))
    out[3] = np.deg2rad(-10 + 80 * np.clip(t_curl + rng.normal(0, 0.2), 0, 1))
    out[20] = np.deg2rad(rng.normal(0, 25))
    out[21] = np.deg2rad(rng.normal(-5, 10))
    return clip_angles(out)


def sample_pose(rng: np.random.Generator, random_weight: float | None = None) -> np.ndarray:
    """A named pose from :data:`NAMED_POSES` blended with a random one, plus a little noise; inside the limits.

    Args:
        rng: the random generator.
        random_weight: weight of the random pose in [0, 1]; None draws one (often small, so that the
            named poses stay recognisable, sometimes large).
    Returns:
        (A,) angles in radians.
    """
    names = list(NAMED_POSES)
    named = NAMED_POSES[names[rng.integers(len(names))]]
    w = (
        float(rng.choice([0.0, 0.15, 0.3, 0.6, 1.0], p=[0.25, 0.25, 0.2, 0.15, 0.15]))
        if random_weight is None
        else _blend_weight(random_weight)
    )
    pose = (1 - w) * named + w * random_pose(rng)
    pose[:20] += np.deg2rad(rng.normal(0, 3, 20))
    pose[20] = np.deg2rad(rng.normal(0, 22))
    pose[21] = np.deg2rad(rng.normal(-5, 9))
    return clip_angles(pose)


def _blend_weight(w: float) -> float:
    """Validate a blend weight in [0, 1]."""
    if not 0.0 <= float(w) <= 1.0:
        raise HandstreamError(f"random_weight: expected a number in [0, 1], got {w!r}")
    return float(w)
