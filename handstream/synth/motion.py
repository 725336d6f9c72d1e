"""Two hands moving in front of the headset: smooth, continuous, deterministic functions of time.

Legend: ``H`` hands (2: left, right), ``K`` joints (21), ``A`` angles (22), ``C`` capsules per hand.

A :class:`Motion` is defined by a seed and a :class:`~handstream.synth.rigs.Workspace`. Key poses are
drawn every ``key_interval`` seconds (0.5-1.1 s, per seed), each from its own random stream
(``SeedSequence([seed, index])``), so any time can be evaluated without the ones before it; a
Catmull-Rom spline through the key poses gives positions, angles and forearm rotation that are
continuous with continuous velocity. With ``period`` set, the motion repeats every ``period`` seconds:
the key interval is adjusted so that a whole number of key poses fills the period and key poses are taken
modulo that number, so the spline wraps around and a loop of the period has no jump at the seam (positions
and velocities continuous there too). Each key pose puts each hand in one of a few situations:

* ``active``: the wrist anywhere in the workspace box, on its own side mostly, sometimes across the
  midline (hands cross);
* ``interact``: near the other hand, in front of or behind it (hands touch and occlude each other);
* ``away``: down by the body, outside every camera (hands leave and re-enter the view);
* ``hold``: the previous key pose again (pauses).

The forearm points from the elbow (near ``workspace.elbow``) to the wrist; it rolls between palm down,
thumb up and palm up; the upper arm goes from the elbow to ``workspace.shoulder``; the hand's pose
comes from :func:`handstream.synth.hand.sample_pose`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from handstream.errors import HandstreamError
from handstream.skeleton import HANDS
from handstream.synth.hand import NUM_ANGLES, HandShape, clip_angles, pose_hand, sample_pose
from handstream.synth.rigs import Workspace

_MODES = ("active", "interact", "away", "hold")


@dataclass(frozen=True)
class PosedHand:
    """One hand at one instant, in the rig frame (metres).

    Attributes:
        side: ``"left"`` or ``"right"``.
        angles: (A,) joint angles, radians, inside :data:`handstream.synth.hand.ANGLE_LIMITS`.
        wrist: (3,) wrist joint.
        rotation: (3, 3) forearm frame (see :func:`handstream.synth.hand.pose_hand`).
        joints: (K, 3) the 21 joints, MediaPipe order.
        a, b: (C, 3) capsule axis end points; r: (C,) radii (the body the renderer draws).
    """

    side: str
    angles: np.ndarray
    wrist: np.ndarray
    rotation: np.ndarray
    joints: np.ndarray
    a: np.ndarray
    b: np.ndarray
    r: np.ndarray


@dataclass(frozen=True)
class _Key:
    """One key pose of both hands (arrays have a leading hand axis of 2)."""

    wrist: np.ndarray  # (2, 3)
    elbow: np.ndarray  # (2, 3) elbow anchor (the direction the forearm comes from)
    roll: np.ndarray  # (2,) forearm roll, radians: 0 palm down, pi/2 thumb up, pi palm up
    angles: np.ndarray  # (2, A)
    modes: tuple[str, str]


def _catmull_rom(p0, p1, p2, p3, s: float):
    """Uniform Catmull-Rom spline between p1 and p2 at s in [0, 1] (C1-continuous across segments)."""
    s2, s3 = s * s, s * s * s
    return 0.5 * (2 * p1 + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s2 + (-p0 + 3 * p1 - 3 * p2 + p3) * s3)


class Motion:
    """Deterministic two-hand motion: ``hands(t)`` gives both :class:`PosedHand` at time ``t`` (seconds).

    Args:
        workspace: where the hands move (rig frame).
        seed: the motion's seed; equal seeds give equal motions.
        shape: the subject's hand (both hands; the left one is mirrored); default: adult, scale 1.
        key_interval: seconds between key poses; None: drawn from the seed (0.5-1.1 s).
        p_away: probability that a hand is out of view at a key pose.
        p_interact: probability that the hands are near each other at a key pose.
        period: repeat every this many seconds (None: never); see the module docstring.
    """

    def __init__(
        self,
        workspace: Workspace,
        seed: int,
        shape: HandShape | None = None,
        *,
        key_interval: float | None = None,
        p_away: float = 0.07,
        p_interact: float = 0.15,
        period: float | None = None,
    ):
        self.workspace = workspace
        self.seed = int(seed)
        self.shape = shape if shape is not None else HandShape.from_scale(1.0)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x40710]))
        self.key_interval = float(rng.uniform(0.5, 1.1)) if key_interval is None else float(key_interval)
        self.p_away = p_away
        self.p_interact = p_interact
        self.period = None if period is None else float(period)
        self.period_keys: int | None = None  # key poses per period (None: not periodic)
        if self.period is not None:
            if not self.period > 0:
                raise HandstreamError(f"motion period: expected a positive number of seconds, got {period!r}")
            self.period_keys = max(1, round(self.period / self.key_interval))
            self.key_interval = self.period / self.period_keys
        self._key = lru_cache(maxsize=16)(self._make_key)

    # --- key poses ---------------------------------------------------------------------------------

    def _key_rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, 0x6B, index + (1 << 32)]))

    def _make_key(self, index: int) -> _Key:
        m = self.period_keys
        if m is not None:
            index %= m
        rng = self._key_rng(index)
        if rng.random() < 0.12:  # hold: both hands pause on the previous key pose
            if m is None:
                prev = self._key(index - 1)
                return _Key(prev.wrist, prev.elbow, prev.roll, prev.angles, ("hold", "hold"))
            # periodic: the nearest earlier key of the cycle that moves (if every key holds, this one moves)
            for back in range(1, m):
                j = (index - back) % m
                if self._key_rng(j).random() >= 0.12:
                    prev = self._key(j)
                    return _Key(prev.wrist, prev.elbow, prev.roll, prev.angles, ("hold", "hold"))
        ws = self.workspace
        low, high = np.array(ws.low), np.array(ws.high)
        wrist = np.empty((2, 3))
        modes = ["active", "active"]
        for h, sign in ((0, -1.0), (1, 1.0)):
            p = rng.uniform(low, high)
            # each hand mostly on its own side; sometimes across the midline
            half = (high[0] - low[0]) / 2
            centre = (high[0] + low[0]) / 2
            if rng.random() < 0.85:
                p[0] = centre + sign * rng.uniform(0.1, 1.0) * half
            wrist[h] = p
        interact = rng.random() < self.p_interact
        if interact:
            lead = int(rng.integers(2))
            other = 1 - lead
            offset = rng.uniform([-0.10, -0.06, -0.12], [0.10, 0.06, 0.12])
            offset[0] = (1 if other == 1 else -1) * abs(offset[0])
            wrist[other] = np.clip(wrist[lead] + offset, low - 0.05, high + 0.05)
            modes[other] = "interact"
        for h in range(2):
            if rng.random() < self.p_away:
                wrist[h] = np.array(ws.away[h]) + rng.normal(0, 0.03, 3)
                modes[h] = "away"
        elbow = np.array(ws.elbow) + rng.normal(0, [0.05, 0.04, 0.05], (2, 3))
        roll = np.empty(2)
        angles = np.empty((2, NUM_ANGLES))
        for h in range(2):
            kind = rng.choice(3, p=[0.45, 0.35, 0.20])
            roll[h] = np.deg2rad(rng.normal([10.0, 85.0, 160.0][kind], [25.0, 25.0, 20.0][kind]))
            angles[h] = sample_pose(rng)
            if modes[h] == "away":
                roll[h] = np.deg2rad(90.0)
                angles[h] = sample_pose(rng, 1.0) * 0.5  # relaxed-ish
        return _Key(wrist, elbow, roll, angles, (modes[0], modes[1]))

    def key_modes(self, t: float) -> tuple[str, str]:
        """The situation of each hand (``active``, ``interact``, ``away``, ``hold``) at the key pose before ``t``."""
        return self._key(int(np.floor(t / self.key_interval))).modes

    # --- evaluation --------------------------------------------------------------------------------

    def state(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Interpolated wrist (2, 3), elbow anchor (2, 3), roll (2,), angles (2, A) at time ``t``."""
        u = float(t) / self.key_interval
        k = int(np.floor(u))
        s = u - k
        keys = [self._key(k + i) for i in (-1, 0, 1, 2)]
        wrist = _catmull_rom(*[key.wrist for key in keys], s)
        elbow = _catmull_rom(*[key.elbow for key in keys], s)
        roll = _catmull_rom(*[key.roll for key in keys], s)
        angles = clip_angles(_catmull_rom(*[key.angles for key in keys], s))
        return wrist, elbow, roll, angles

    def hands(self, t: float) -> tuple[PosedHand, PosedHand]:
        """Both hands (left, right) at time ``t`` seconds."""
        wrist, elbow, roll, angles = self.state(t)
        ws = self.workspace
        return tuple(
            place_hand(side, angles[h], wrist[h], elbow[h], roll[h], self.shape, ws.shoulder[h])
            for h, side in enumerate(HANDS)
        )  # type: ignore[return-value]


def forearm_rotation(side: str, wrist: np.ndarray, elbow_anchor: np.ndarray, roll: float) -> np.ndarray:
    """Forearm frame (3, 3) of a hand: z from the elbow to the wrist, rolled by ``roll`` about z.

    ``roll`` 0: palm down (the palm normal towards rig +y), pi/2: thumb up (palm towards the body's
    midline), pi: palm up; the same meaning for both hands.
    """
    z = np.asarray(wrist, dtype=np.float64) - np.asarray(elbow_anchor, dtype=np.float64)
    z /= max(np.linalg.norm(z), 1e-9)
    ref = np.array([0.0, 1.0, 0.25])  # down, a little forward: never along a plausible forearm
    y0 = ref - (ref @ z) * z
    if np.linalg.norm(y0) < 1e-6:
        y0 = np.array([1.0, 0.0, 0.0]) - z[0] * z
    y0 /= np.linalg.norm(y0)
    psi = roll if side == "right" else -roll
    y = np.cos(psi) * y0 + np.sin(psi) * np.cross(z, y0)
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=1)


def place_hand(
    side: str,
    angles: np.ndarray,
    wrist: np.ndarray,
    elbow_anchor: np.ndarray,
    roll: float,
    shape: HandShape,
    shoulder: np.ndarray | None = None,
) -> PosedHand:
    """A :class:`PosedHand` from its placement: the forearm comes from ``elbow_anchor`` to ``wrist``, the
    upper arm goes from the elbow to ``shoulder`` (None: straight on)."""
    R = forearm_rotation(side, wrist, elbow_anchor, roll)
    joints, a, b, r = pose_hand(angles, shape, side, R, wrist, shoulder)
    return PosedHand(
        side, np.asarray(angles, dtype=np.float64), np.asarray(wrist, dtype=np.float64), R, joints, a, b, r
    )
