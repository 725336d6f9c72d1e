"""Encoding: a message -> ZeroMQ multipart parts ``[topic, msgpack header, *raw buffers]``.

Shape legend: ``K`` joints per hand (21), ``V`` views (cameras) used for a pose, ``H`` hands (0-2).

``encode_*`` validates the message (the same rules :mod:`handstream.transport.decoding` applies, so
what is sent is what a receiver accepts) and returns the parts, ready for
``socket.send_multipart(parts, copy=False)``: the arrays are passed as they are (C-contiguous,
little-endian; converted only when they are not), so large images are sent without a copy. An invalid
message raises :class:`~handstream.transport.messages.WireError`.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
import numpy as np

from handstream.poses import PoseMessage
from handstream.skeleton import HANDS, NUM_JOINTS
from handstream.transport import fields
from handstream.transport.messages import (
    DEFAULT_LIMITS,
    DTYPES,
    PROTOCOL_VERSION,
    FrameMessage,
    Limits,
    Message,
    StatusMessage,
    WireError,
)
from handstream.transport.topics import FRAME_PREFIX, POSE, STATUS_PREFIX


def _array_in(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``value`` as an array of exactly ``shape`` (any numeric dtype; the caller converts)."""
    arr = np.asarray(value)
    if arr.shape != shape:
        raise WireError("shape", f"{what} must have shape {shape}, got {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise WireError("dtype", f"{what} must be numeric, got {arr.dtype}")
    return arr


_DTYPE_STR = {np.dtype(s): s for s in DTYPES}


def _desc(arr: np.ndarray) -> dict[str, Any]:
    return {"dtype": _DTYPE_STR[arr.dtype], "shape": list(arr.shape)}


def _pack(topic: bytes, header: dict[str, Any], buffers: list[np.ndarray], limits: Limits) -> list:
    header["buffers"] = [_desc(b) for b in buffers]
    packed = msgpack.packb(header, use_bin_type=True)
    if len(packed) > limits.max_header_bytes:
        raise WireError("size", f"header is {len(packed)} bytes, limit {limits.max_header_bytes}")
    if len(buffers) > limits.max_buffers:
        raise WireError("parts", f"{len(buffers)} buffers, limit {limits.max_buffers}")
    total = sum(b.nbytes for b in buffers)
    if total > limits.max_message_bytes:
        raise WireError("size", f"buffers total {total} bytes, limit {limits.max_message_bytes}")
    return [topic, packed, *buffers]


def _now(t: Any, name: str) -> int:
    t = fields.uint(t, name, fields.I64, strict=False)
    return t if t else time.time_ns()


def _common_header(kind: str, seq: int, t_send_ns: int, send_field: str) -> dict:
    """The header keys every message has: version, kind, sequence number, send time (ns; 0 = now)."""
    return {
        "v": PROTOCOL_VERSION,
        "kind": kind,
        "seq": fields.uint(seq, "seq", fields.U64, strict=False),
        "t_send_ns": _now(t_send_ns, send_field),
    }


def encode_frame(msg: FrameMessage, limits: Limits = DEFAULT_LIMITS) -> list:
    """Encode a frame: ``[b"frame.<camera>", header, image]``.

    ``image`` ``(h, w)`` or ``(h, w, 3)`` uint8 is passed on as it is when C-contiguous (zero copy:
    do not modify it until the send has completed); ``t_send_ns == 0`` is replaced by now.
    Raises :class:`WireError` when the message would not pass
    :func:`~handstream.transport.decoding.decode_frame`.
    """
    camera = fields.name(msg.camera, "camera")
    image = np.asarray(msg.image)
    if image.dtype != np.uint8:
        raise WireError("dtype", f"image must be uint8, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or 0 in image.shape:
        raise WireError("shape", f"image must be (h, w) or (h, w, 3) with h, w >= 1, got {image.shape}")
    image = np.ascontiguousarray(image)
    header = {
        **_common_header("frame", msg.seq, msg.t_send_ns, "t_send_ns"),
        "camera": camera,
        "t_capture_ns": fields.uint(msg.t_capture_ns, "t_capture_ns", fields.I64, strict=False),
    }
    if msg.meta:
        header["meta"] = fields.plain_map(msg.meta, "meta", 1, limits)
    return _pack(FRAME_PREFIX + camera.encode("ascii"), header, [image], limits)


def encode_pose(msg: PoseMessage, limits: Limits = DEFAULT_LIMITS) -> list:
    """Encode a pose: ``[b"pose", header, joints, conf, reproj_error, n_views(, joints_2d)]``.

    The hands are stacked along a leading hand axis ``H = len(msg.hands)`` (0-2), in ``msg.hands`` order:
    ``joints (H, K, 3) <f4``, ``conf (H, K) <f4``, ``reproj_error (H, K) <f4``, ``n_views (H, K) |u1`` and,
    when any hand has ``joints_2d``, ``joints_2d (H, V, K, 2) <f4`` with ``V == len(msg.views)`` (a hand
    without 2D joints gets NaN there). ``t_publish_ns == 0`` is replaced by now.
    Raises :class:`WireError` for an invalid message.
    """
    views = fields.views(list(msg.views), limits)
    n_hands = len(msg.hands)
    if n_hands > len(HANDS):
        raise WireError("fields", f"at most {len(HANDS)} hands, got {n_hands}")
    has_2d = any(h.joints_2d is not None for h in msg.hands)
    joints = np.empty((n_hands, NUM_JOINTS, 3), DTYPES["<f4"])
    conf = np.empty((n_hands, NUM_JOINTS), DTYPES["<f4"])
    reproj = np.empty((n_hands, NUM_JOINTS), DTYPES["<f4"])
    n_views = np.empty((n_hands, NUM_JOINTS), DTYPES["|u1"])
    joints_2d = np.full((n_hands, len(views), NUM_JOINTS, 2), np.nan, DTYPES["<f4"]) if has_2d else None
    hands = []
    for i, h in enumerate(msg.hands):
        if h.side not in HANDS or any(o.side == h.side for o in msg.hands[:i]):
            raise WireError("fields", f"hands[{i}].side must be a distinct 'left' or 'right', got {h.side!r}")
        hands.append({"side": h.side, "presence": fields.number(h.presence, f"hands[{i}].presence", lo=0.0, hi=1.0)})
        joints[i] = _array_in(h.joints, (NUM_JOINTS, 3), f"hands[{i}].joints")
        conf[i] = _array_in(h.conf, (NUM_JOINTS,), f"hands[{i}].conf")
        reproj[i] = _array_in(h.reproj_error, (NUM_JOINTS,), f"hands[{i}].reproj_error")
        nv = _array_in(h.n_views, (NUM_JOINTS,), f"hands[{i}].n_views")
        if nv.dtype != np.uint8:  # uint8 (the usual case) cannot wrap; others are range-checked first
            if nv.dtype.kind not in "iu":
                raise WireError("dtype", f"hands[{i}].n_views must hold integers, got {nv.dtype}")
            if nv.min() < 0 or nv.max() > 255:
                raise WireError("fields", f"hands[{i}].n_views must be within [0, 255]")
        n_views[i] = nv
        if h.joints_2d is not None:
            joints_2d[i] = _array_in(h.joints_2d, (len(views), NUM_JOINTS, 2), f"hands[{i}].joints_2d")  # type: ignore[index]
    if n_hands and int(n_views.max()) > len(views):
        raise WireError("fields", f"n_views must be within [0, {len(views)}] (the number of views)")
    header = {
        **_common_header("pose", msg.seq, msg.t_publish_ns, "t_publish_ns"),
        "t_capture_ns": fields.uint(msg.t_capture_ns, "t_capture_ns", fields.I64, strict=False),
        "timings": fields.timings(dict(msg.timings), limits),
        "views": views,
        "hands": hands,
        "has_2d": has_2d,
    }
    buffers = [joints, conf, reproj, n_views] + ([joints_2d] if joints_2d is not None else [])
    return _pack(POSE, header, buffers, limits)


def encode_status(msg: StatusMessage, limits: Limits = DEFAULT_LIMITS) -> list:
    """Encode a status message: ``[b"status.<process>", header]`` (``data`` goes in the header)."""
    process = fields.name(msg.process, "process")
    header = {
        **_common_header("status", msg.seq, msg.t_send_ns, "t_send_ns"),
        "process": process,
        "data": fields.plain_map(msg.data, "data", 3, limits),
    }
    return _pack(STATUS_PREFIX + process.encode("ascii"), header, [], limits)


def encode(msg: Message, limits: Limits = DEFAULT_LIMITS) -> list:
    """Encode any message kind (dispatches to ``encode_frame`` / ``_pose`` / ``_status``)."""
    if isinstance(msg, FrameMessage):
        return encode_frame(msg, limits)
    if isinstance(msg, PoseMessage):
        return encode_pose(msg, limits)
    if isinstance(msg, StatusMessage):
        return encode_status(msg, limits)
    raise TypeError(f"not a handstream message: {type(msg).__name__}")


__all__ = ["encode", "encode_frame", "encode_pose", "encode_status"]
