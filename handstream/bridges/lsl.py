"""The lsl bridge: one Lab Streaming Layer outlet per hand (``pylsl``; its wheel bundles liblsl).

Streams: name ``<name>-left`` / ``<name>-right`` (``--name``, default ``handstream``), type ``Mocap``, 84 float32
channels = 21 joints x (x, y, z, conf) in :data:`handstream.skeleton.JOINT_NAMES` order, labelled
``<joint>_x`` ... ``<joint>_conf`` in the stream's ``desc/channels`` (unit ``meters`` for positions,
``normalized`` for confidence; type ``PositionX``/``PositionY``/``PositionZ``/``Confidence``); source id
``handstream-<side>-<endpoint>``; nominal rate ``--rate`` (``serve --bridge lsl`` passes the camera rate; 0 =
irregular). Every pose pushes one sample to both streams (NaN when the hand is absent or a joint not tracked).

Timestamps: a pose's capture time is ``CLOCK_REALTIME`` ns; LSL's clock (``pylsl.local_clock()``) is monotonic
seconds. At start the bridge measures ``offset = local_clock() - time.time()`` (the closest of 20 bracketed reads)
and stamps each sample ``t_capture_ns * 1e-9 + offset``: the sample's LSL time is when its frames were captured,
not when the pose arrived, so it lines up with other LSL streams (EEG, markers) to within the wall clock's drift
since start (NTP slews stay well under a millisecond per minute).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from handstream.bridges.deps import require
from handstream.bridges.stream import latest_poses
from handstream.poses import PoseMessage
from handstream.runtime import StopFlag
from handstream.skeleton import HANDS, JOINT_NAMES, NUM_JOINTS
from handstream.transport.pubsub import PoseSubscriber
from handstream.transport.security import curve_config

CHANNELS = NUM_JOINTS * 4


def clock_offset(pylsl: Any, reads: int = 20) -> float:
    """``local_clock() - time.time()`` seconds, from the tightest of ``reads`` bracketed reads."""
    best = (float("inf"), 0.0)
    for _ in range(reads):
        a = pylsl.local_clock()
        wall = time.time_ns() * 1e-9
        b = pylsl.local_clock()
        best = min(best, (b - a, (a + b) / 2 - wall))
    return best[1]


def stream_info(pylsl: Any, name: str, side: str, rate: float, endpoint: str):
    """The ``StreamInfo`` of one hand (module docstring)."""
    info = pylsl.StreamInfo(f"{name}-{side}", "Mocap", CHANNELS, rate if rate > 0 else pylsl.IRREGULAR_RATE,
                            pylsl.cf_float32, f"handstream-{side}-{endpoint}")  # fmt: skip
    desc = info.desc()
    desc.append_child_value("manufacturer", "handstream")
    channels = desc.append_child("channels")
    for joint in JOINT_NAMES:
        for axis, kind, unit in (("x", "PositionX", "meters"), ("y", "PositionY", "meters"),
                                 ("z", "PositionZ", "meters"), ("conf", "Confidence", "normalized")):  # fmt: skip
            ch = channels.append_child("channel")
            ch.append_child_value("label", f"{joint}_{axis}")
            ch.append_child_value("type", kind)
            ch.append_child_value("unit", unit)
    desc.append_child_value("hand", side)
    return info


def hand_sample(msg: PoseMessage, side: str) -> np.ndarray:
    """(84,) float32: the hand's joints and confidences interleaved, NaN when absent."""
    h = msg.hand(side)
    out = np.full((NUM_JOINTS, 4), np.nan, np.float32)
    if h is not None:
        out[:, :3] = h.joints
        out[:, 3] = h.conf
    return out.reshape(-1)


def run_lsl(opts: dict[str, Any], stop: StopFlag, *, endpoint: str, curve_dir: str | None, on_ready=None) -> int:
    """Push every pose to the two outlets until ``stop`` is set (``opts``: ``name``, ``rate``). Returns 0."""
    pylsl = require("pylsl")
    offset = clock_offset(pylsl)
    outlets = {s: pylsl.StreamOutlet(stream_info(pylsl, opts["name"], s, opts["rate"], endpoint)) for s in HANDS}
    sub = PoseSubscriber(endpoint, curve=curve_config(curve_dir))
    if on_ready is not None:
        names = ", ".join(f"{opts['name']}-{s}" for s in HANDS)
        on_ready(f"LSL streams {names} (type Mocap, 84 channels; poses from {endpoint})")
    try:
        for msg in latest_poses(sub, stop):
            ts = msg.t_capture_ns * 1e-9 + offset
            for side, outlet in outlets.items():
                outlet.push_sample(hand_sample(msg, side).tolist(), ts)
    finally:
        sub.close()
        outlets.clear()
    return 0
