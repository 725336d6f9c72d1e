"""Decoding: received ZeroMQ multipart parts -> a validated message (docs/wire-protocol.md, section 4).

Shape legend: ``K`` joints per hand (21), ``V`` views (cameras) used for a pose, ``H`` hands (0-2).

:func:`decode` validates *everything* (parts count, topic, header size and schema, version, strict
field types and ranges, dtype allow-list, declared shape x dtype == buffer length, size limits) and
raises a single exception type, :class:`~handstream.transport.messages.WireError`, whose ``reason``
(one of :data:`~handstream.transport.messages.REASONS`) lets a receiver count drops by cause; a topic
of no known kind is reason ``"topic"``. Decoded arrays are views on the received buffers
(``np.frombuffer`` on ``zmq.Frame.buffer``): zero copy. They may be read-only (e.g. when decoding
``bytes``); copy before modifying, and note that keeping an array alive keeps its whole ZeroMQ message
alive.

msgpack is read with ``raw=False, strict_map_key=True``, no ``bin``/``ext`` types and small container
limits. Nothing here uses pickle, eval or exec.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from handstream.poses import HandPose, PoseMessage
from handstream.skeleton import HANDS, NUM_JOINTS
from handstream.transport import fields, messages
from handstream.transport.messages import DEFAULT_LIMITS, DTYPES, PROTOCOL_VERSION, Limits, WireError
from handstream.transport.topics import MAX_NAME_LEN, MAX_TOPIC_BYTES, POSE, is_valid_name

_COMMON_KEYS = frozenset({"v", "kind", "seq", "t_send_ns", "buffers"})
_KIND_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # kind: (required keys besides the common ones, optional keys)
    "frame": (frozenset({"camera", "t_capture_ns"}), frozenset({"meta"})),
    "pose": (frozenset({"t_capture_ns", "timings", "views", "hands", "has_2d"}), frozenset()),
    "status": (frozenset({"process", "data"}), frozenset()),
}
_HAND_KEYS = frozenset({"side", "presence"})
_DESC_KEYS = frozenset({"dtype", "shape"})
_ITEMSIZE = {k: v.itemsize for k, v in DTYPES.items()}


def parse_topic(topic: bytes) -> tuple[str, str | None]:
    """Split a topic into ``(kind, name)``: ``b"frame.cam0" -> ("frame", "cam0")``, ``b"pose" -> ("pose", None)``.

    Raises :class:`WireError` (reason ``"topic"``) for anything else (non-ASCII, unknown kind, bad name).
    """
    if len(topic) > MAX_TOPIC_BYTES:
        raise WireError("topic", f"topic longer than {MAX_TOPIC_BYTES} bytes")
    if topic == POSE:
        return "pose", None
    head, dot, tail = topic.partition(b".")
    kind = {b"frame": "frame", b"status": "status"}.get(head)
    if kind is None or not dot:
        raise WireError("topic", f"unknown topic {topic[:MAX_TOPIC_BYTES]!r}")
    try:
        name = tail.decode("ascii")
    except UnicodeDecodeError:
        raise WireError("topic", f"topic {topic!r} is not ASCII") from None
    if not is_valid_name(name):
        raise WireError("topic", f"topic {topic!r}: name must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_-]")
    return kind, name


def _as_view(part: Any) -> memoryview:
    """A flat byte view of one received part (``zmq.Frame``, bytes, bytearray, memoryview, ndarray)."""
    buf = getattr(part, "buffer", None)  # zmq.Frame (and Message): its memoryview, no copy
    try:
        view = buf if isinstance(buf, memoryview) else memoryview(part)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B") if view.nbytes else memoryview(b"")
    except (TypeError, ValueError) as e:
        raise WireError("parts", f"a part is not a contiguous buffer ({type(part).__name__}): {e}") from None
    return view


def _unpack_header(view: memoryview, limits: Limits) -> dict[str, Any]:
    n = max(limits.max_items, limits.max_buffers, limits.max_views)
    try:
        header = msgpack.unpackb(
            view,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=limits.max_str_len,
            max_bin_len=0,
            max_ext_len=0,
            max_array_len=n,
            max_map_len=n,
        )
    except Exception as e:  # msgpack raises ValueError, its own Unpack/ExtraData errors, UnicodeDecodeError...
        raise WireError("header", f"header is not valid msgpack: {type(e).__name__}: {e}") from None
    if type(header) is not dict:
        raise WireError("header", f"header must be a msgpack map, got {type(header).__name__}")
    return header


def _check_buffers(header: dict[str, Any], views: list[memoryview], limits: Limits) -> list[tuple[str, list[int]]]:
    descs = header["buffers"]
    if type(descs) is not list:
        raise WireError("fields", f"buffers must be a list, got {type(descs).__name__}")
    if len(descs) != len(views):
        raise WireError("parts", f"header declares {len(descs)} buffers, message has {len(views)}")
    out, sizes, declared = [], [], 0
    for i, d in enumerate(descs):
        if type(d) is not dict or d.keys() != _DESC_KEYS:
            raise WireError("fields", f"buffers[{i}] must be a map with exactly 'dtype' and 'shape'")
        dtype, shape = d["dtype"], d["shape"]
        if type(dtype) is not str or dtype not in DTYPES:
            raise WireError("dtype", f"buffers[{i}].dtype {dtype!r} is not one of {sorted(DTYPES)}")
        if type(shape) is not list or len(shape) > limits.max_ndim:
            raise WireError("shape", f"buffers[{i}].shape must be a list of <= {limits.max_ndim} integers >= 0")
        nbytes = _ITEMSIZE[dtype]
        for dim in shape:
            if type(dim) is not int or dim < 0:
                raise WireError("shape", f"buffers[{i}].shape must be a list of <= {limits.max_ndim} integers >= 0")
            nbytes *= dim
        declared += nbytes
        if declared > limits.max_message_bytes:
            raise WireError("size", f"declared buffers exceed {limits.max_message_bytes} bytes")
        out.append((dtype, shape))
        sizes.append(nbytes)
    for i, (nbytes, view) in enumerate(zip(sizes, views, strict=True)):
        if nbytes != view.nbytes:
            raise WireError("shape", f"buffers[{i}]: {out[i][1]} x {out[i][0]} is {nbytes} bytes, got {view.nbytes}")
    return out


def _array(view: memoryview, dtype: str, shape: list[int]) -> np.ndarray:
    """Zero-copy array on a validated buffer."""
    if not view.nbytes:
        return np.empty(shape, DTYPES[dtype])
    return np.ndarray(shape, DTYPES[dtype], view)  # 2-3x faster than np.frombuffer(...).reshape(...)


def _expect(descs: list[tuple[str, list[int]]], i: int, dtype: str, shape: list[int], what: str) -> None:
    if descs[i][0] != dtype:
        raise WireError("dtype", f"{what} must be {dtype}, got {descs[i][0]}")
    if descs[i][1] != shape:
        raise WireError("shape", f"{what} must have shape {shape}, got {descs[i][1]}")


def _decode_frame(name, header, descs, views, limits) -> messages.FrameMessage:
    camera = fields.name(header["camera"], "camera")
    if camera != name:
        raise WireError("topic", f"topic camera {name!r} != header camera {camera!r}")
    t_capture = fields.uint(header["t_capture_ns"], "t_capture_ns", fields.I64, strict=True)
    meta = fields.plain_map(header["meta"], "meta", 1, limits) if "meta" in header else {}
    if len(descs) != 1:
        raise WireError("parts", f"a frame has exactly 1 buffer, got {len(descs)}")
    dtype, shape = descs[0]
    if dtype != "|u1":
        raise WireError("dtype", f"image must be |u1, got {dtype}")
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 3)) or 0 in shape:
        raise WireError("shape", f"image must be [h, w] or [h, w, 3] with h, w >= 1, got {shape}")
    return messages.FrameMessage(
        camera=camera,
        seq=header["seq"],
        t_capture_ns=t_capture,
        image=_array(views[0], dtype, shape),
        t_send_ns=header["t_send_ns"],
        meta=meta,
    )


def _decode_pose(name, header, descs, views, limits) -> PoseMessage:
    t_capture = fields.uint(header["t_capture_ns"], "t_capture_ns", fields.I64, strict=True)
    timings = fields.timings(header["timings"], limits)
    view_names = fields.views(header["views"], limits)
    hands_in, has_2d = header["hands"], header["has_2d"]
    if type(has_2d) is not bool:
        raise WireError("fields", "has_2d must be a bool")
    if type(hands_in) is not list or len(hands_in) > len(HANDS):
        raise WireError("fields", f"hands must be a list of at most {len(HANDS)} entries")
    sides, presence = [], []
    for i, h in enumerate(hands_in):
        if type(h) is not dict or h.keys() != _HAND_KEYS:
            raise WireError("fields", f"hands[{i}] must be a map with exactly {sorted(_HAND_KEYS)}")
        side = h["side"]
        if type(side) is not str or side not in HANDS or side in sides:
            raise WireError("fields", f"hands[{i}].side must be a distinct 'left' or 'right', got {side!r}")
        sides.append(side)
        presence.append(fields.number(h["presence"], f"hands[{i}].presence", lo=0.0, hi=1.0))
    if len(descs) != (5 if has_2d else 4):
        raise WireError("parts", f"a pose has {5 if has_2d else 4} buffers when has_2d is {has_2d}, got {len(descs)}")
    n = len(sides)
    _expect(descs, 0, "<f4", [n, NUM_JOINTS, 3], "joints")
    _expect(descs, 1, "<f4", [n, NUM_JOINTS], "conf")
    _expect(descs, 2, "<f4", [n, NUM_JOINTS], "reproj_error")
    _expect(descs, 3, "|u1", [n, NUM_JOINTS], "n_views")
    if has_2d:
        _expect(descs, 4, "<f4", [n, len(view_names), NUM_JOINTS, 2], "joints_2d")
    arrays = [_array(v, *d) for v, d in zip(views, descs, strict=True)]
    if n and int(arrays[3].max()) > len(view_names):
        raise WireError("fields", f"n_views exceeds the {len(view_names)} views")
    joints_2d = arrays[4] if has_2d else None
    hands = [
        HandPose(
            side=sides[i],
            presence=presence[i],
            joints=arrays[0][i],
            conf=arrays[1][i],
            reproj_error=arrays[2][i],
            n_views=arrays[3][i],
            joints_2d=None if joints_2d is None else joints_2d[i],
        )
        for i in range(n)
    ]
    return PoseMessage(
        seq=header["seq"],
        t_capture_ns=t_capture,
        t_publish_ns=header["t_send_ns"],
        timings=timings,
        views=view_names,
        hands=hands,
    )


def _decode_status(name, header, descs, views, limits) -> messages.StatusMessage:
    process = fields.name(header["process"], "process")
    if process != name:
        raise WireError("topic", f"topic process {name!r} != header process {process!r}")
    if descs:
        raise WireError("parts", "a status message has no buffers")
    data = fields.plain_map(header["data"], "data", 3, limits)
    return messages.StatusMessage(process=process, seq=header["seq"], data=data, t_send_ns=header["t_send_ns"])


_DECODERS = {"frame": _decode_frame, "pose": _decode_pose, "status": _decode_status}


def decode(parts: Sequence[Any], limits: Limits = DEFAULT_LIMITS, *, expect: str | None = None) -> messages.Message:
    """Validate and decode one received multipart message.

    Args:
        parts: the parts as received, e.g. ``socket.recv_multipart(copy=False)`` (``zmq.Frame``) or bytes.
        limits: size limits (:class:`Limits`).
        expect: when given (``"frame"``, ``"pose"``, ``"status"``), any other kind raises
            :class:`WireError` with reason ``"kind"``.

    Returns:
        A :class:`~messages.FrameMessage`, :class:`PoseMessage` or :class:`~messages.StatusMessage`; its arrays are
        views on ``parts`` (zero copy).

    Raises:
        WireError: for any invalid input, never another exception type; ``.reason`` in :data:`REASONS`.
    """
    try:
        n = len(parts)
    except TypeError:
        raise WireError("parts", f"expected a sequence of parts, got {type(parts).__name__}") from None
    if n < 2:
        raise WireError("parts", f"a message has at least 2 parts (topic, header), got {n}")
    if n > 2 + limits.max_buffers:
        raise WireError("parts", f"{n} parts, limit {2 + limits.max_buffers}")
    views = [_as_view(p) for p in parts]
    total = sum(v.nbytes for v in views[2:])
    if total > limits.max_message_bytes:
        raise WireError("size", f"buffers total {total} bytes, limit {limits.max_message_bytes}")
    kind, name = parse_topic(bytes(views[0][: MAX_TOPIC_BYTES + 1]))
    if views[1].nbytes > limits.max_header_bytes:
        raise WireError("size", f"header is {views[1].nbytes} bytes, limit {limits.max_header_bytes}")
    header = _unpack_header(views[1], limits)
    version = header.get("v")
    if type(version) is not int:
        raise WireError("header", "header has no integer 'v' (protocol version)")
    if version != PROTOCOL_VERSION:
        raise WireError("version", f"protocol version {version}, expected {PROTOCOL_VERSION}")
    if header.get("kind") != kind:
        raise WireError("kind", f"header kind {header.get('kind')!r} does not match topic kind {kind!r}")
    if expect is not None and kind != expect:
        raise WireError("kind", f"expected a {expect} message, got {kind}")
    required, optional = _KIND_KEYS[kind]
    keys = header.keys()
    missing = (_COMMON_KEYS | required) - keys
    unknown = keys - _COMMON_KEYS - required - optional
    if missing or unknown:
        raise WireError("header", f"{kind} header: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    fields.uint(header["seq"], "seq", fields.U64, strict=True)
    fields.uint(header["t_send_ns"], "t_send_ns", fields.I64, strict=True)
    descs = _check_buffers(header, views[2:], limits)
    return _DECODERS[kind](name, header, descs, views[2:], limits)


def decode_frame(parts: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> messages.FrameMessage:
    """Decode a frame message (see :func:`decode`); any other kind raises ``WireError("kind")``."""
    return decode(parts, limits, expect="frame")  # type: ignore[return-value]


def decode_pose(parts: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> PoseMessage:
    """Decode a pose message (see :func:`decode`); any other kind raises ``WireError("kind")``."""
    return decode(parts, limits, expect="pose")  # type: ignore[return-value]


def decode_status(parts: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> messages.StatusMessage:
    """Decode a status message (see :func:`decode`); any other kind raises ``WireError("kind")``."""
    return decode(parts, limits, expect="status")  # type: ignore[return-value]


__all__ = ["decode", "decode_frame", "decode_pose", "decode_status", "parse_topic"]
