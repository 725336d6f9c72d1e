"""The messages of the wire protocol, their limits and the one error type (docs/wire-protocol.md).

Shape legend: ``K`` joints per hand (21), ``V`` views (cameras) used for a pose, ``(h, w)`` image size.

Three kinds of message share one framing, ``[topic, msgpack header, *raw buffers]``:

* :class:`FrameMessage` on ``frame.<camera>``: one image ``(h, w)`` or ``(h, w, 3)`` uint8.
* :class:`~handstream.poses.PoseMessage` on ``pose``: per hand ``joints (K, 3)`` float32 metres in the rig
  frame, ``conf (K,)``, ``reproj_error (K,)`` pixels, ``n_views (K,)`` uint8 and optionally
  ``joints_2d (V, K, 2)`` pixels; on the wire the hands are stacked (``joints (H, K, 3)`` etc., ``H``
  hands), so a pose is 4 or 5 buffers whatever the number of hands. NaN means "not seen / not known".
* :class:`StatusMessage` on ``status.<process>``: header only, a small msgpack map of plain values
  (counters).

There is no control topic: processes are stopped by their supervisor with signals.

:mod:`handstream.transport.encoding` turns a message into parts, :mod:`handstream.transport.decoding`
validates received parts and turns them back into a message; both raise :class:`WireError` (a
:data:`REASONS` code) and apply :class:`Limits`; :mod:`handstream.transport.fields` holds the header
field rules they share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.poses import PoseMessage

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

KINDS: tuple[str, ...] = ("frame", "pose", "status")
"""Message kinds; the header's ``"kind"`` and the topic's first word agree."""


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


Message = FrameMessage | PoseMessage | StatusMessage
"""Any message that travels on the wire."""


__all__ = [
    "DEFAULT_LIMITS",
    "DTYPES",
    "KINDS",
    "PROTOCOL_VERSION",
    "REASONS",
    "FrameMessage",
    "Limits",
    "Message",
    "StatusMessage",
    "WireError",
]
