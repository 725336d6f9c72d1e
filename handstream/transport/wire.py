"""Messages <-> ZeroMQ multipart frames: ``[topic, msgpack header, *raw buffers]``.

Shape legend: ``K`` joints per hand (21), ``V`` views (cameras) used for a pose, ``(h, w)`` image size.

Four kinds of message share one framing (the full specification is docs/wire-protocol.md):

* :class:`FrameMessage` on ``frame.<camera>``: one image ``(h, w)`` or ``(h, w, 3)`` uint8.
* :class:`PoseMessage` on ``pose``: per hand ``joints (K, 3)`` float32 metres in the rig frame,
  ``conf (K,)``, ``reproj_error (K,)`` pixels, ``n_views (K,)`` uint8 and optionally
  ``joints_2d (V, K, 2)`` pixels; on the wire the hands are stacked (``joints (H, K, 3)`` etc., ``H``
  hands), so a pose is 4 or 5 buffers whatever the number of hands. NaN means "not seen / not known".
* :class:`StatusMessage` on ``status.<process>`` and :class:`ControlMessage` on ``ctl.<verb>``:
  header only, a small msgpack map of plain values (counters, arguments).

Encoding (``encode_*``) validates the message and returns the parts, ready for
``socket.send_multipart(parts, copy=False)``: the arrays are passed as they are (C-contiguous,
little-endian; converted only when they are not), so large images are sent without a copy.

Decoding (``decode*``) validates *everything* (parts count, topic, header size and schema, version,
strict field types and ranges, dtype allow-list, declared shape x dtype == buffer length, size limits)
and raises a single exception type, :class:`WireError`, whose ``reason`` (one of :data:`REASONS`) lets a
receiver count drops by cause. Decoded arrays are views on the received buffers (``np.frombuffer`` on
``zmq.Frame.buffer``): zero copy. They may be read-only (e.g. when decoding ``bytes``); copy before
modifying, and note that keeping an array alive keeps its whole ZeroMQ message alive.

msgpack is read with ``raw=False, strict_map_key=True``, no ``bin``/``ext`` types and small container
limits. Nothing here uses pickle, eval or exec.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from handstream.errors import HandstreamError
from handstream.poses import HandPose, PoseMessage
from handstream.skeleton import HANDS, NUM_JOINTS
from handstream.transport.topics import (
    CTL_PREFIX,
    FRAME_PREFIX,
    MAX_NAME_LEN,
    MAX_TOPIC_BYTES,
    POSE,
    STATUS_PREFIX,
    is_valid_name,
)

PROTOCOL_VERSION = 1
"""Version number carried in every header as ``"v"``; receivers drop any other value (reason ``"version"``)."""

REASONS: tuple[str, ...] = ("parts", "topic", "size", "header", "version", "kind", "fields", "dtype", "shape")
"""Reason codes of :class:`WireError`, in the order the checks run:

* ``parts``   wrong number of parts (fewer than 2, more than the limit, or not matching the header),
  or a part that is not a buffer
* ``topic``   topic not ASCII, not one of the known forms, or not matching the header's name
* ``size``    header or buffers above the size limits (declared or actual)
* ``header``  header is not a msgpack map with exactly the expected keys
* ``version`` ``"v"`` is not :data:`PROTOCOL_VERSION`
* ``kind``    ``"kind"`` does not match the topic (or the message kind is not the one expected)
* ``fields``  a header field has the wrong type or an out-of-range value
* ``dtype``   a buffer dtype is outside the allow-list or not the one the layout requires
* ``shape``   a declared shape is malformed, not the one the layout requires, or shape x dtype does
  not equal the buffer's length
"""

DTYPES: dict[str, np.dtype] = {
    s: np.dtype(s) for s in ("|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "<f8")
}
"""Allow-list of buffer dtypes (NumPy ``dtype.str`` spelling, always little-endian)."""

KINDS: tuple[str, ...] = ("frame", "pose", "status", "ctl")
"""Message kinds; the header's ``"kind"`` and the topic's first word agree."""

_U64 = 1 << 64
_I64 = 1 << 63


@dataclass(frozen=True)
class Limits:
    """Size limits applied when decoding (and encoding) messages.

    Attributes:
        max_message_bytes: most bytes in all buffers of one message together (default 64 MiB); it is
            also set as ``ZMQ_MAXMSGSIZE`` on receiving sockets, so a peer sending a larger single part
            is disconnected by libzmq before any of it reaches Python.
        max_header_bytes: largest msgpack header (default 64 KiB).
        max_buffers: most raw buffers after the header (default 32).
        max_ndim: most dimensions of one buffer (default 4).
        max_views: most camera names in a pose's ``views`` (default 16).
        max_items: most entries in any header map or list (default 64).
        max_str_len: longest string anywhere in a header (default 1024).
    """

    max_message_bytes: int = 64 << 20
    max_header_bytes: int = 64 << 10
    max_buffers: int = 32
    max_ndim: int = 4
    max_views: int = 16
    max_items: int = 64
    max_str_len: int = 1024


DEFAULT_LIMITS = Limits()
"""The limits used when none are given."""


class WireError(HandstreamError):
    """An invalid message. ``reason`` is one of :data:`REASONS`; receivers count drops by it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"invalid message ({reason}): {message}")
        self.reason = reason


# ---------------------------------------------------------------------------------------------------
# messages


@dataclass
class FrameMessage:
    """One camera image. Topic ``frame.<camera>``.

    Attributes:
        camera: camera name, 1-64 characters of ``[A-Za-z0-9_-]``.
        seq: per-camera sequence number, ``0 <= seq < 2**64``, +1 per captured frame (gaps = drops).
        t_capture_ns: ``CLOCK_REALTIME`` (``time.time_ns()``) of the exposure, ns, ``>= 0``.
        image: ``(h, w)`` mono or ``(h, w, 3)`` BGR, uint8, ``h, w >= 1``.
        t_send_ns: wall clock when the message was encoded, ns; 0 = fill in at encode time.
        meta: optional small map of plain values (<= 64 keys, str/int/float/bool/None values),
            e.g. ``{"exposure_us": 8000}``.
    """

    camera: str
    seq: int
    t_capture_ns: int
    image: np.ndarray
    t_send_ns: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class StatusMessage:
    """Counters / health of one process. Topic ``status.<process>``; header only.

    Attributes:
        process: process name (``[A-Za-z0-9_-]``, e.g. ``"engine"``, ``"capture-cam0"``).
        seq: sequence number of this process's status messages.
        data: small map of plain values (str/int/float/bool/None, lists, maps up to 3 levels),
            e.g. :meth:`handstream.transport.Counters.as_dict`.
        t_send_ns: wall clock at encode time, ns (0 = fill in at encode time).
    """

    process: str
    seq: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    t_send_ns: int = 0


@dataclass
class ControlMessage:
    """A command to a process (e.g. ``shutdown``). Topic ``ctl.<verb>``; header only.

    Attributes:
        verb: command name (``[A-Za-z0-9_-]``).
        seq: sequence number of the sender's control messages.
        args: small map of plain values (as :attr:`StatusMessage.data`).
        t_send_ns: wall clock at encode time, ns (0 = fill in at encode time).
    """

    verb: str
    seq: int = 0
    args: dict[str, Any] = field(default_factory=dict)
    t_send_ns: int = 0


Message = FrameMessage | PoseMessage | StatusMessage | ControlMessage

# ---------------------------------------------------------------------------------------------------
# shared checks


def _uint(value: Any, name: str, hi: int, *, strict: bool) -> int:
    """An integer in ``[0, hi)``; ``strict`` (decoding) accepts only ``int``, never bool or numpy ints."""
    if strict:
        ok = type(value) is int
    else:
        ok = not isinstance(value, bool | float)
        if ok:
            try:
                value = operator.index(value)
            except TypeError:
                ok = False
    if not ok or not 0 <= value < hi:
        raise WireError("fields", f"{name} must be an integer in [0, {hi}), got {value!r}")
    return value


def _float(value: Any, name: str, *, lo: float | None = None, hi: float | None = None) -> float:
    """A finite number (int or float, never bool), optionally within ``[lo, hi]``."""
    t = type(value)
    if t is not float:
        if t is bool or not isinstance(value, int | np.floating | np.integer):
            raise WireError("fields", f"{name} must be a number, got {t.__name__}")
        value = float(value)
    if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise WireError("fields", f"{name} must be finite and within [{lo}, {hi}], got {value!r}")
    return value


def _name(value: Any, what: str) -> str:
    if not is_valid_name(value):
        raise WireError("fields", f"{what} must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_-], got {value!r}")
    return value


def _plain(value: Any, what: str, depth: int, limits: Limits) -> Any:
    """Check a small JSON-like value: str/int/float/bool/None, lists and str-keyed maps ``depth`` deep.

    Returns it with numpy scalars turned into Python numbers (used when encoding).
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | np.integer):
        value = int(value)
        if not -_I64 <= value < _U64:
            raise WireError("fields", f"{what}: integer {value} out of the 64-bit range")
        return value
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str):
        if len(value) > limits.max_str_len:
            raise WireError("fields", f"{what}: string longer than {limits.max_str_len}")
        return value
    if depth <= 0:
        raise WireError("fields", f"{what}: nested too deep or not a plain value ({type(value).__name__})")
    if isinstance(value, list | tuple):
        if len(value) > limits.max_items:
            raise WireError("fields", f"{what}: more than {limits.max_items} items")
        return [_plain(v, f"{what}[{i}]", depth - 1, limits) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return _plain_map(value, what, depth, limits)
    raise WireError("fields", f"{what}: {type(value).__name__} is not a plain value")


def _plain_map(value: Any, what: str, depth: int, limits: Limits) -> dict[str, Any]:
    if type(value) is not dict:
        raise WireError("fields", f"{what} must be a map, got {type(value).__name__}")
    if len(value) > limits.max_items:
        raise WireError("fields", f"{what}: more than {limits.max_items} entries")
    out = {}
    for k, v in value.items():
        if type(k) is not str or not 1 <= len(k) <= MAX_NAME_LEN or not k.isascii():
            raise WireError("fields", f"{what}: key {k!r} must be 1-{MAX_NAME_LEN} ASCII characters")
        out[k] = _plain(v, f"{what}.{k}", depth - 1, limits)
    return out


def _timings(value: Any, limits: Limits) -> dict[str, float]:
    if type(value) is not dict or len(value) > limits.max_items:
        raise WireError("fields", f"timings must be a map of at most {limits.max_items} entries")
    return {_name(k, "timings key"): _float(v, f"timings.{k}", lo=0.0) for k, v in value.items()}


def _views(value: Any, limits: Limits) -> list[str]:
    if type(value) is not list or len(value) > limits.max_views:
        raise WireError("fields", f"views must be a list of at most {limits.max_views} camera names")
    views = [_name(v, "views[]") for v in value]
    if len(set(views)) != len(views):
        raise WireError("fields", f"views must be distinct, got {views}")
    return views


def _topic_for(kind: str, name: str | None) -> bytes:
    prefix = {"frame": FRAME_PREFIX, "status": STATUS_PREFIX, "ctl": CTL_PREFIX}.get(kind)
    return POSE if prefix is None else prefix + name.encode("ascii")  # type: ignore[union-attr]


def parse_topic(topic: bytes) -> tuple[str, str | None]:
    """Split a topic into ``(kind, name)``: ``b"frame.cam0" -> ("frame", "cam0")``, ``b"pose" -> ("pose", None)``.

    Raises :class:`WireError` (reason ``"topic"``) for anything else (non-ASCII, unknown kind, bad name).
    """
    if len(topic) > MAX_TOPIC_BYTES:
        raise WireError("topic", f"topic longer than {MAX_TOPIC_BYTES} bytes")
    if topic == POSE:
        return "pose", None
    head, dot, tail = topic.partition(b".")
    kind = {b"frame": "frame", b"status": "status", b"ctl": "ctl"}.get(head)
    if kind is None or not dot:
        raise WireError("topic", f"unknown topic {topic[:MAX_TOPIC_BYTES]!r}")
    try:
        name = tail.decode("ascii")
    except UnicodeDecodeError:
        raise WireError("topic", f"topic {topic!r} is not ASCII") from None
    if not is_valid_name(name):
        raise WireError("topic", f"topic {topic!r}: name must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_-]")
    return kind, name


# ---------------------------------------------------------------------------------------------------
# encoding


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
    t = _uint(t, name, _I64, strict=False)
    return t if t else time.time_ns()


def encode_frame(msg: FrameMessage, limits: Limits = DEFAULT_LIMITS) -> list:
    """Encode a frame: ``[b"frame.<camera>", header, image]``.

    ``image`` ``(h, w)`` or ``(h, w, 3)`` uint8 is passed on as it is when C-contiguous (zero copy:
    do not modify it until the send has completed); ``t_send_ns == 0`` is replaced by now.
    Raises :class:`WireError` when the message would not pass :func:`decode_frame`.
    """
    camera = _name(msg.camera, "camera")
    image = np.asarray(msg.image)
    if image.dtype != np.uint8:
        raise WireError("dtype", f"image must be uint8, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or 0 in image.shape:
        raise WireError("shape", f"image must be (h, w) or (h, w, 3) with h, w >= 1, got {image.shape}")
    image = np.ascontiguousarray(image)
    header = {
        "v": PROTOCOL_VERSION,
        "kind": "frame",
        "seq": _uint(msg.seq, "seq", _U64, strict=False),
        "t_send_ns": _now(msg.t_send_ns, "t_send_ns"),
        "camera": camera,
        "t_capture_ns": _uint(msg.t_capture_ns, "t_capture_ns", _I64, strict=False),
    }
    if msg.meta:
        header["meta"] = _plain_map(msg.meta, "meta", 1, limits)
    return _pack(FRAME_PREFIX + camera.encode("ascii"), header, [image], limits)


def encode_pose(msg: PoseMessage, limits: Limits = DEFAULT_LIMITS) -> list:
    """Encode a pose: ``[b"pose", header, joints, conf, reproj_error, n_views(, joints_2d)]``.

    The hands are stacked along a leading hand axis ``H = len(msg.hands)`` (0-2), in ``msg.hands`` order:
    ``joints (H, K, 3) <f4``, ``conf (H, K) <f4``, ``reproj_error (H, K) <f4``, ``n_views (H, K) |u1`` and,
    when any hand has ``joints_2d``, ``joints_2d (H, V, K, 2) <f4`` with ``V == len(msg.views)`` (a hand
    without 2D joints gets NaN there). ``t_publish_ns == 0`` is replaced by now.
    Raises :class:`WireError` for an invalid message.
    """
    views = _views(list(msg.views), limits)
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
        hands.append({"side": h.side, "presence": _float(h.presence, f"hands[{i}].presence", lo=0.0, hi=1.0)})
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
        "v": PROTOCOL_VERSION,
        "kind": "pose",
        "seq": _uint(msg.seq, "seq", _U64, strict=False),
        "t_send_ns": _now(msg.t_publish_ns, "t_publish_ns"),
        "t_capture_ns": _uint(msg.t_capture_ns, "t_capture_ns", _I64, strict=False),
        "timings": _timings(dict(msg.timings), limits),
        "views": views,
        "hands": hands,
        "has_2d": has_2d,
    }
    buffers = [joints, conf, reproj, n_views] + ([joints_2d] if joints_2d is not None else [])
    return _pack(POSE, header, buffers, limits)


def encode_status(msg: StatusMessage, limits: Limits = DEFAULT_LIMITS) -> list:
    """Encode a status message: ``[b"status.<process>", header]`` (``data`` goes in the header)."""
    process = _name(msg.process, "process")
    header = {
        "v": PROTOCOL_VERSION,
        "kind": "status",
        "seq": _uint(msg.seq, "seq", _U64, strict=False),
        "t_send_ns": _now(msg.t_send_ns, "t_send_ns"),
        "process": process,
        "data": _plain_map(msg.data, "data", 3, limits),
    }
    return _pack(STATUS_PREFIX + process.encode("ascii"), header, [], limits)


def encode_control(msg: ControlMessage, limits: Limits = DEFAULT_LIMITS) -> list:
    """Encode a control message: ``[b"ctl.<verb>", header]`` (``args`` goes in the header)."""
    verb = _name(msg.verb, "verb")
    header = {
        "v": PROTOCOL_VERSION,
        "kind": "ctl",
        "seq": _uint(msg.seq, "seq", _U64, strict=False),
        "t_send_ns": _now(msg.t_send_ns, "t_send_ns"),
        "verb": verb,
        "args": _plain_map(msg.args, "args", 3, limits),
    }
    return _pack(CTL_PREFIX + verb.encode("ascii"), header, [], limits)


def encode(msg: Message, limits: Limits = DEFAULT_LIMITS) -> list:
    """Encode any message kind (dispatches to ``encode_frame`` / ``_pose`` / ``_status`` / ``_control``)."""
    if isinstance(msg, FrameMessage):
        return encode_frame(msg, limits)
    if isinstance(msg, PoseMessage):
        return encode_pose(msg, limits)
    if isinstance(msg, StatusMessage):
        return encode_status(msg, limits)
    if isinstance(msg, ControlMessage):
        return encode_control(msg, limits)
    raise TypeError(f"not a handstream message: {type(msg).__name__}")


# ---------------------------------------------------------------------------------------------------
# decoding

_COMMON_KEYS = frozenset({"v", "kind", "seq", "t_send_ns", "buffers"})
_KIND_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # kind: (required keys besides the common ones, optional keys)
    "frame": (frozenset({"camera", "t_capture_ns"}), frozenset({"meta"})),
    "pose": (frozenset({"t_capture_ns", "timings", "views", "hands", "has_2d"}), frozenset()),
    "status": (frozenset({"process", "data"}), frozenset()),
    "ctl": (frozenset({"verb", "args"}), frozenset()),
}
_HAND_KEYS = frozenset({"side", "presence"})
_DESC_KEYS = frozenset({"dtype", "shape"})
_ITEMSIZE = {k: v.itemsize for k, v in DTYPES.items()}


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


def _decode_frame(name, header, descs, views, limits) -> FrameMessage:
    camera = _name(header["camera"], "camera")
    if camera != name:
        raise WireError("topic", f"topic camera {name!r} != header camera {camera!r}")
    t_capture = _uint(header["t_capture_ns"], "t_capture_ns", _I64, strict=True)
    meta = _plain_map(header["meta"], "meta", 1, limits) if "meta" in header else {}
    if len(descs) != 1:
        raise WireError("parts", f"a frame has exactly 1 buffer, got {len(descs)}")
    dtype, shape = descs[0]
    if dtype != "|u1":
        raise WireError("dtype", f"image must be |u1, got {dtype}")
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 3)) or 0 in shape:
        raise WireError("shape", f"image must be [h, w] or [h, w, 3] with h, w >= 1, got {shape}")
    return FrameMessage(
        camera=camera,
        seq=header["seq"],
        t_capture_ns=t_capture,
        image=_array(views[0], dtype, shape),
        t_send_ns=header["t_send_ns"],
        meta=meta,
    )


def _decode_pose(name, header, descs, views, limits) -> PoseMessage:
    t_capture = _uint(header["t_capture_ns"], "t_capture_ns", _I64, strict=True)
    timings = _timings(header["timings"], limits)
    view_names = _views(header["views"], limits)
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
        presence.append(_float(h["presence"], f"hands[{i}].presence", lo=0.0, hi=1.0))
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


def _decode_status(name, header, descs, views, limits) -> StatusMessage:
    process = _name(header["process"], "process")
    if process != name:
        raise WireError("topic", f"topic process {name!r} != header process {process!r}")
    if descs:
        raise WireError("parts", "a status message has no buffers")
    data = _plain_map(header["data"], "data", 3, limits)
    return StatusMessage(process=process, seq=header["seq"], data=data, t_send_ns=header["t_send_ns"])


def _decode_control(name, header, descs, views, limits) -> ControlMessage:
    verb = _name(header["verb"], "verb")
    if verb != name:
        raise WireError("topic", f"topic verb {name!r} != header verb {verb!r}")
    if descs:
        raise WireError("parts", "a control message has no buffers")
    args = _plain_map(header["args"], "args", 3, limits)
    return ControlMessage(verb=verb, seq=header["seq"], args=args, t_send_ns=header["t_send_ns"])


_DECODERS = {"frame": _decode_frame, "pose": _decode_pose, "status": _decode_status, "ctl": _decode_control}


def decode(parts: Sequence[Any], limits: Limits = DEFAULT_LIMITS, *, expect: str | None = None) -> Message:
    """Validate and decode one received multipart message.

    Args:
        parts: the parts as received, e.g. ``socket.recv_multipart(copy=False)`` (``zmq.Frame``) or bytes.
        limits: size limits (:class:`Limits`).
        expect: when given (``"frame"``, ``"pose"``, ``"status"``, ``"ctl"``), any other kind raises
            :class:`WireError` with reason ``"kind"``.

    Returns:
        A :class:`FrameMessage`, :class:`PoseMessage`, :class:`StatusMessage` or :class:`ControlMessage`;
        its arrays are views on ``parts`` (zero copy).

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
    _uint(header["seq"], "seq", _U64, strict=True)
    _uint(header["t_send_ns"], "t_send_ns", _I64, strict=True)
    descs = _check_buffers(header, views[2:], limits)
    return _DECODERS[kind](name, header, descs, views[2:], limits)


def decode_frame(parts: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> FrameMessage:
    """Decode a frame message (see :func:`decode`); any other kind raises ``WireError("kind")``."""
    return decode(parts, limits, expect="frame")  # type: ignore[return-value]


def decode_pose(parts: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> PoseMessage:
    """Decode a pose message (see :func:`decode`); any other kind raises ``WireError("kind")``."""
    return decode(parts, limits, expect="pose")  # type: ignore[return-value]


def decode_status(parts: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> StatusMessage:
    """Decode a status message (see :func:`decode`); any other kind raises ``WireError("kind")``."""
    return decode(parts, limits, expect="status")  # type: ignore[return-value]


def decode_control(parts: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> ControlMessage:
    """Decode a control message (see :func:`decode`); any other kind raises ``WireError("kind")``."""
    return decode(parts, limits, expect="ctl")  # type: ignore[return-value]


__all__ = [
    "DEFAULT_LIMITS",
    "DTYPES",
    "KINDS",
    "PROTOCOL_VERSION",
    "REASONS",
    "ControlMessage",
    "FrameMessage",
    "HandPose",
    "Limits",
    "Message",
    "PoseMessage",
    "StatusMessage",
    "WireError",
    "decode",
    "decode_control",
    "decode_frame",
    "decode_pose",
    "decode_status",
    "encode",
    "encode_control",
    "encode_frame",
    "encode_pose",
    "encode_status",
    "parse_topic",
]
