"""Receiving poses in your own program, printing them, and recording them to a file.

Python::

    import handstream
    for pose in handstream.subscribe("tcp://127.0.0.1:5556"):
        right = pose.hand("right")
        if right is not None and np.isfinite(right.joints).all():
            print(right.joints[8])          # index fingertip, metres, rig frame

Each ``pose`` is a :class:`handstream.poses.PoseMessage`: ``seq``, ``t_capture_ns``,
``t_publish_ns``, ``timings`` (ms per stage), ``views`` and ``hands`` (``HandPose``: ``side``, ``presence``,
``joints`` (21, 3) float32 metres, ``conf`` (21,), ``reproj_error`` (21,) px, ``n_views`` (21,),
optional ``joints_2d`` (V, 21, 2) px). NaN = not tracked.

Recordings (``handstream subscribe --record poses.jsonl``) hold one JSON object per line, as
:func:`pose_to_dict` makes them (NaN as ``null``); :func:`read_recording` reads them back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.poses import HandPose, PoseMessage
from handstream.records import read_json_lines
from handstream.transport.endpoints import DEFAULT_POSE_ENDPOINT
from handstream.transport.pubsub import PoseSubscriber
from handstream.transport.security import curve_config


def subscribe(
    endpoint: str = DEFAULT_POSE_ENDPOINT, *, timeout_s: float | None = None, curve_dir: str | None = None
) -> Iterator[PoseMessage]:
    """Yield poses from a running engine as they arrive.

    Args:
        endpoint: the engine's pose endpoint.
        timeout_s: stop when no pose arrives for this long (None: run until the loop is left).
        curve_dir: CURVE key folder when the engine uses CURVE.
    Yields:
        :class:`PoseMessage` objects with NumPy arrays. The socket closes when the loop ends.
    """
    sub = PoseSubscriber(endpoint, curve=curve_config(curve_dir))
    try:
        yield from sub.poses(None if timeout_s is None else timeout_s * 1e3)
    finally:
        sub.close()


def _floats(a: np.ndarray | None) -> Any:
    if a is None:
        return None
    return [_floats(x) for x in a] if a.ndim > 1 else [None if not math.isfinite(v) else round(float(v), 6) for v in a]


def pose_to_dict(msg: PoseMessage, t_receive_ns: int | None = None) -> dict[str, Any]:
    """A pose as plain JSON-ready data (NaN -> None; metres, pixels, ms)."""
    out = {
        "seq": msg.seq,
        "t_capture_ns": msg.t_capture_ns,
        "t_publish_ns": msg.t_publish_ns,
        "views": list(msg.views),
        "timings_ms": {k: round(v, 4) for k, v in msg.timings.items()},
        "hands": [
            {
                "side": h.side,
                "presence": round(h.presence, 4),
                "tracked": bool(np.isfinite(h.joints).all(axis=-1).any()),
                "joints": _floats(h.joints),
                "conf": _floats(h.conf),
                "reproj_error_px": _floats(h.reproj_error),
                "n_views": [int(v) for v in h.n_views],
                **({"joints_2d": _floats(h.joints_2d)} if h.joints_2d is not None else {}),
            }
            for h in msg.hands
        ],
    }
    if t_receive_ns is not None:
        out["t_receive_ns"] = t_receive_ns
    return out


def _array(value: Any) -> np.ndarray:
    a = np.array(value, dtype=object)
    a[np.equal(a, None)] = np.nan
    return a.astype(np.float32)


def pose_from_dict(data: dict[str, Any]) -> PoseMessage:
    """Inverse of :func:`pose_to_dict`."""
    hands = []
    for h in data["hands"]:
        j2d = h.get("joints_2d")
        hands.append(
            HandPose(
                side=h["side"],
                presence=float(h["presence"]),
                joints=_array(h["joints"]),
                conf=_array(h["conf"]),
                reproj_error=_array(h["reproj_error_px"]),
                n_views=np.asarray(h["n_views"], np.uint8),
                joints_2d=None if j2d is None else _array(j2d),
            )
        )
    return PoseMessage(
        data["seq"],
        data["t_capture_ns"],
        data.get("t_publish_ns", 0),
        data.get("timings_ms", {}),
        data.get("views", []),
        hands,
    )


def read_recording(path: str | Path) -> Iterator[PoseMessage]:
    """Poses from a ``--record`` file, in order."""
    for i, record in read_json_lines(path, "recording not found"):
        try:
            yield pose_from_dict(record)
        except (ValueError, KeyError, TypeError) as exc:
            raise HandstreamError(f"{path}:{i}: not a pose record ({exc})") from None


def describe(msg: PoseMessage, t_receive_ns: int) -> str:
    """One human-readable line: sequence, latency, per hand the wrist position (mm) and tracked joints."""
    parts = [f"#{msg.seq:<6d} {(t_receive_ns - msg.t_capture_ns) * 1e-6:6.1f} ms  views {len(msg.views)}"]
    for h in msg.hands:
        ok = np.isfinite(h.joints).all(axis=-1)
        if ok.any():
            w = h.joints[0] * 1000 if ok[0] else np.nanmean(h.joints[ok], axis=0) * 1000
            err = np.nanmean(h.reproj_error[ok])
            parts.append(
                f"{h.side:>5}: {ok.sum():2d}/21 wrist [{w[0]:7.1f} {w[1]:7.1f} {w[2]:7.1f}] mm  reproj {err:4.1f} px"
            )
        else:
            parts.append(f"{h.side:>5}: not tracked (presence {h.presence:.2f})")
    return "  ".join(parts)
