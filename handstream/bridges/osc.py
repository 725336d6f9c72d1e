"""The osc bridge: each pose as one OSC bundle over UDP (``python-osc``), to ``host:port`` (default 127.0.0.1:9000).

Address space (one bundle per pose, timetag "immediately"; ``<side>`` is ``left`` or ``right``)::

    /handstream/frame                 int32 seq, int64 t_capture_ns, int64 t_publish_ns
    /handstream/<side>/presence       float32 presence (0..1)           every hand the pose has
    /handstream/<side>/tracked        int32 0/1                          every hand the pose has
    /handstream/<side>/joint/<name>   float32 x, y, z (metres, rig frame), conf     tracked joints only
    /handstream/<side>/joints         float32 x0, y0, z0, ..., x20, y20, z20 (63 values, NaN = not tracked)

``<name>`` is :data:`handstream.skeleton.JOINT_NAMES` (``wrist``, ``thumb_cmc`` ... ``pinky_tip``). A joint that is
not tracked is not sent (a receiver keeps its last value or checks ``tracked``). UDP never blocks: a receiver that
is not there costs nothing.

With the ``vmc`` option the bundles are the VMC protocol's instead (``/VMC/Ext/OK``, ``/VMC/Ext/T``,
``/VMC/Ext/Bone/Pos`` per hand and finger bone, Unity's frame): :mod:`handstream.bridges.vmc`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from handstream.bridges.deps import require
from handstream.bridges.stream import latest_poses
from handstream.bridges.vmc import vmc_bundle
from handstream.poses import PoseMessage
from handstream.runtime import StopFlag
from handstream.skeleton import JOINT_NAMES
from handstream.transport.pubsub import PoseSubscriber
from handstream.transport.security import curve_config

PREFIX = "/handstream"


def pose_bundle(msg: PoseMessage):
    """One pose as a ``pythonosc`` bundle (the address space above)."""
    require("pythonosc")
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    def message(address: str, *args: tuple[Any, str]):
        m = OscMessageBuilder(address)
        for value, tag in args:
            m.add_arg(value, tag)
        return m.build()

    b = OscBundleBuilder(IMMEDIATELY)
    b.add_content(message(f"{PREFIX}/frame", (int(msg.seq) & 0x7FFFFFFF, "i"), (int(msg.t_capture_ns), "h"),
                          (int(msg.t_publish_ns), "h")))  # fmt: skip
    for h in msg.hands:
        base = f"{PREFIX}/{h.side}"
        ok = np.isfinite(h.joints).all(axis=-1)
        b.add_content(message(f"{base}/presence", (float(h.presence), "f")))
        b.add_content(message(f"{base}/tracked", (int(ok.any()), "i")))
        conf = np.nan_to_num(h.conf.astype(np.float64), nan=0.0)
        for k in np.flatnonzero(ok):
            x, y, z = (float(v) for v in h.joints[k])
            b.add_content(
                message(f"{base}/joint/{JOINT_NAMES[k]}", (x, "f"), (y, "f"), (z, "f"), (float(conf[k]), "f"))
            )
        b.add_content(message(f"{base}/joints", *((float(v), "f") for v in h.joints.reshape(-1))))
    return b.build()


def run_osc(opts: dict[str, Any], stop: StopFlag, *, endpoint: str, curve_dir: str | None, on_ready=None) -> int:
    """Send every pose as a bundle until ``stop`` is set (``opts``: ``host``, ``port``, ``vmc``: VMC's bundles in
    place of the address space above). Returns 0."""
    require("pythonosc")
    from pythonosc.udp_client import UDPClient

    client = UDPClient(opts["host"], opts["port"])
    sub = PoseSubscriber(endpoint, curve=curve_config(curve_dir))
    if on_ready is not None:
        what = "VMC" if opts.get("vmc") else "OSC"
        on_ready(f"{what} bundles to udp://{opts['host']}:{opts['port']} (poses from {endpoint})")
    t0 = time.monotonic()
    try:
        for msg in latest_poses(sub, stop):
            try:
                client.send(vmc_bundle(msg, time.monotonic() - t0) if opts.get("vmc") else pose_bundle(msg))
            except OSError:  # e.g. ICMP port unreachable reported on the next send: nobody listens, fine
                pass
    finally:
        sub.close()
    return 0
