"""Sockets of the live path: frames from captures to the engine, poses from the engine to subscribers.

::

    FrameSender (PUSH, connect) --frame.<cam>--> FrameReceiver (PULL, bind)    [engine]
    [engine] PosePublisher (PUB, bind) --pose, status.*, frame.* thumbnails--> PoseSubscriber (SUB, connect)

* The engine binds both sockets; captures and subscribers connect. Default endpoints are on
  127.0.0.1; binding any other address needs ``allow_remote=True`` (and should use CURVE, see
  :class:`~handstream.transport.security.CurveConfig`). ``ipc://`` and ``inproc://`` endpoints work
  too (the rules: :mod:`handstream.transport.endpoints`).
* Latest-frame policy: small high-water marks everywhere. :meth:`FrameSender.send` never blocks: when
  the queue to the engine is full (or no engine is connected) the frame is dropped and counted.
  :meth:`FrameReceiver.drain_latest` reads everything queued and keeps only the newest frame per
  camera (the older ones are counted as ``superseded``). PUB drops poses for a subscriber whose
  queue is full, so a subscriber that never reads cannot slow the engine. The engine's small thumbnails
  (``frame.<camera>``, ``engine.thumbnail_fps``) travel on the pose socket too: only a subscriber that asks
  for them (``PoseSubscriber(frames=True)``, a ``frame.`` or ``""`` subscription) receives them, and the
  engine makes them only while one is subscribed (:meth:`PosePublisher.subscribed`, an XPUB socket).
* Every receiver validates each message (:func:`handstream.transport.decoding.decode`) and counts invalid
  ones by reason in :class:`Counters`; ``ZMQ_MAXMSGSIZE`` bounds every incoming part.
* Every wait is a poll with a timeout, ``close()`` returns at once, and linger is bounded: 0 on the
  receiving sockets, :data:`SEND_LINGER_MS` (50 ms) on the sending ones (PUSH, PUB). Not 0 there:
  libzmq 4.3 aborts the process (``Resource temporarily unavailable (src/session_base.cpp:233)``) when
  a socket closed with linger 0 is in the middle of writing a multipart message and its peer disconnects
  at that moment (zeromq/libzmq#3442), which is what happens when all processes stop together.

None of these classes is thread-safe: use each from one thread (ZeroMQ sockets are not thread-safe).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import zmq

from handstream.errors import HandstreamError
from handstream.poses import PoseMessage
from handstream.transport.counters import Counters
from handstream.transport.decoding import decode
from handstream.transport.encoding import encode, encode_frame
from handstream.transport.endpoints import (
    DEFAULT_FRAME_ENDPOINT,
    DEFAULT_POSE_ENDPOINT,
    check_bind_endpoint,
    check_connect_endpoint,
    is_ipv6_tcp,
    is_remote_tcp,
)
from handstream.transport.messages import DEFAULT_LIMITS, FrameMessage, Limits, Message, StatusMessage, WireError
from handstream.transport.security import CurveConfig, make_curve_client, make_curve_server, release_zap
from handstream.transport.topics import FRAME_PREFIX, POSE, STATUS_PREFIX, check_name

log = logging.getLogger("handstream.transport")

_POLL_SLICE_MS = 100  # longest single poll, so close() from a signal handler and Ctrl-C are seen
_CONTROL_MAXMSGSIZE = 64 << 10  # sockets that only receive ZMTP commands / subscriptions

SEND_LINGER_MS = 50
"""Linger of the sending sockets (PUSH, PUB), ms: how long queued messages may still leave after
``close()`` (in libzmq's I/O thread; ``close()`` itself returns at once). Bounded so that shutdown never
hangs; not 0 because of zeromq/libzmq#3442 (see the module docstring)."""


# ---------------------------------------------------------------------------------------------------
# socket wrappers


class _Socket:
    """A ZeroMQ socket with a bounded linger, optional CURVE, counters, ``close()`` and ``with`` support."""

    def __init__(self, socket_type: int, context: zmq.Context | None, limits: Limits) -> None:
        self._context = context if context is not None else zmq.Context.instance()
        self.socket: zmq.Socket = self._context.socket(socket_type)
        self._linger = SEND_LINGER_MS if socket_type in (zmq.PUB, zmq.XPUB, zmq.PUSH) else 0
        self.socket.linger = self._linger
        self.limits = limits
        self.counters = Counters()
        self.endpoint = ""
        self._zap = False
        self._closed = False

    def _setup(self, *, sndhwm=None, rcvhwm=None, sndbuf=None, rcvbuf=None, maxmsgsize=None) -> None:
        options = {"sndhwm": sndhwm, "rcvhwm": rcvhwm, "sndbuf": sndbuf, "rcvbuf": rcvbuf, "maxmsgsize": maxmsgsize}
        for name, value in options.items():
            if value is None:
                continue
            try:
                self.socket.setsockopt(getattr(zmq, name.upper()), int(value))
            except (zmq.ZMQError, TypeError, ValueError) as e:
                self.close()
                raise HandstreamError(f"socket option {name}={value!r} is invalid: {e}") from None

    def _bind(self, endpoint: str, allow_remote: bool, curve: CurveConfig | None) -> None:
        try:
            check_bind_endpoint(endpoint, allow_remote)
            if is_ipv6_tcp(endpoint):
                self.socket.ipv6 = True
            if curve is not None:
                self._zap = make_curve_server(self.socket, self._context, curve)
            elif is_remote_tcp(endpoint):
                log.warning("binding %s without CURVE: anyone who can reach this host can connect", endpoint)
            try:
                self.socket.bind(endpoint)
            except zmq.ZMQError as e:
                raise HandstreamError(f"cannot bind {endpoint}: {e}") from None
            self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            self.close()
            raise

    def _connect(self, endpoint: str, curve: CurveConfig | None) -> None:
        try:
            check_connect_endpoint(endpoint)
            if is_ipv6_tcp(endpoint):
                self.socket.ipv6 = True
            if curve is not None:
                make_curve_client(self.socket, curve)
            try:
                self.socket.connect(endpoint)
            except zmq.ZMQError as e:
                raise HandstreamError(f"cannot connect to {endpoint}: {e}") from None
            self.endpoint = endpoint
        except BaseException:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def close(self) -> None:
        """Close the socket; returns at once. Queued messages are discarded (receivers) or given at most
        :data:`SEND_LINGER_MS` to leave (senders, in the background). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.socket.close(linger=self._linger)
        if self._zap:
            self._zap = False
            release_zap(self._context)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ------------------------------------------------------------------------------------

    def _send_parts(self, parts: list) -> bool:
        """Send an already-encoded message without blocking; count it as sent or as send_dropped."""
        try:
            self.socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.counters.send_dropped += 1
            return False
        self.counters.sent += 1
        return True

    # -- receiving ----------------------------------------------------------------------------------

    def _recv_parts(self) -> list | None:
        """One multipart message without blocking (None when nothing is queued).

        Parts beyond the limit are read and discarded (a message is delivered whole), keeping one extra so
        that :func:`decode` reports ``"parts"``.
        """
        try:
            frame = self.socket.recv(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        parts = [frame]
        keep = 3 + self.limits.max_buffers
        while frame.more:
            frame = self.socket.recv(copy=False)  # the rest of a multipart message is already here
            if len(parts) < keep:
                parts.append(frame)
        return parts

    def _decode(self, parts: list) -> Message | None:
        try:
            msg = decode(parts, self.limits)
        except WireError as e:
            self.counters.drop(e.reason)
            return None
        self.counters.received += 1
        return msg

    def _wait(self, deadline: float | None) -> bool:
        """Poll until a message is readable (True) or the monotonic ``deadline`` passes (False)."""
        while not self._closed:
            if deadline is None:
                slice_ms = _POLL_SLICE_MS
            else:
                remaining = deadline - time.monotonic()
                slice_ms = max(0, min(_POLL_SLICE_MS, int(remaining * 1000 + 0.999)))
            if self.socket.poll(slice_ms, zmq.POLLIN):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return False


def _deadline(timeout_ms: float | None) -> float | None:
    return None if timeout_ms is None else time.monotonic() + max(0.0, timeout_ms) / 1000.0


class _SeqTracker:
    """Counts gaps in sequence numbers per key (a restart, i.e. a smaller number, is not a gap)."""

    def __init__(self, counters: Counters) -> None:
        self._last: dict[str, int] = {}
        self._counters = counters

    def see(self, key: str, seq: int) -> None:
        last = self._last.get(key)
        if last is not None and seq > last + 1:
            self._counters.missed += seq - last - 1
        self._last[key] = seq


class FrameReceiver(_Socket):
    """Engine side of the frame path: binds a PULL socket and keeps the newest frame per camera.

    Args:
        endpoint: where to bind (default ``tcp://127.0.0.1:5555``; ``tcp://127.0.0.1:*`` picks a free port,
            read it back from :attr:`endpoint`).
        cameras: camera names to accept; frames of other cameras are dropped (reason ``"camera"``).
            None accepts any valid name.
        allow_remote: permit binding a non-loopback address.
        curve: CURVE keys (server side); None for none.
        limits: message limits; ``limits.max_message_bytes`` is also ``ZMQ_MAXMSGSIZE``.
        rcvhwm: ZeroMQ receive high-water mark per connected capture, in messages (small on purpose).
        rcvbuf: kernel receive buffer in bytes (None: the OS default).
        context: ZeroMQ context (default: the process-wide ``zmq.Context.instance()``).

    Status messages that captures send on the same socket are kept, newest per process, in
    :attr:`statuses` (the engine can republish them on the pose socket).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_FRAME_ENDPOINT,
        *,
        cameras: Iterable[str] | None = None,
        allow_remote: bool = False,
        curve: CurveConfig | None = None,
        limits: Limits = DEFAULT_LIMITS,
        rcvhwm: int = 2,
        rcvbuf: int | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.cameras = None if cameras is None else frozenset(check_name(c, "camera") for c in cameras)
        super().__init__(zmq.PULL, context, limits)
        self.statuses: dict[str, StatusMessage] = {}
        self._seq = _SeqTracker(self.counters)
        self._setup(rcvhwm=rcvhwm, rcvbuf=rcvbuf, maxmsgsize=max(limits.max_message_bytes, limits.max_header_bytes))
        self._bind(endpoint, allow_remote, curve)

    def _frame(self, parts: list) -> FrameMessage | None:
        msg = self._decode(parts)
        if msg is None:
            return None
        if isinstance(msg, StatusMessage):
            self.statuses[msg.process] = msg
            return None
        if not isinstance(msg, FrameMessage):
            self.counters.received -= 1
            self.counters.drop("kind")
            return None
        if self.cameras is not None and msg.camera not in self.cameras:
            self.counters.received -= 1
            self.counters.drop("camera")
            return None
        self._seq.see(msg.camera, msg.seq)
        return msg

    def drain_latest(self, timeout_ms: float | None = 0, max_messages: int = 4096) -> dict[str, FrameMessage]:
        """Read everything queued and return the newest frame of each camera that sent one.

        Waits up to ``timeout_ms`` (None: indefinitely, in 100 ms polls) for the first valid frame, then
        reads without blocking until the queue is empty or ``max_messages`` were read. Older frames of a
        camera in the same drain are counted in ``counters.superseded``; invalid messages are dropped and
        counted by reason. Returns ``{camera: FrameMessage}`` (empty on timeout); images are zero-copy
        views on the received ZeroMQ frames.
        """
        latest: dict[str, FrameMessage] = {}
        deadline = _deadline(timeout_ms)
        n = 0
        while n < max_messages and not self._closed:
            parts = self._recv_parts()
            if parts is None:
                if latest or not self._wait(deadline):
                    break
                continue
            n += 1
            msg = self._frame(parts)
            if msg is not None:
                if msg.camera in latest:
                    self.counters.superseded += 1
                latest[msg.camera] = msg
        return latest

    def recv(self, timeout_ms: float | None = 1000) -> FrameMessage | None:
        """The next valid frame in arrival order (no latest-only policy; for recorders and tests), or
        None after ``timeout_ms`` (None: wait indefinitely)."""
        deadline = _deadline(timeout_ms)
        while not self._closed:
            parts = self._recv_parts()
            if parts is None:
                if not self._wait(deadline):
                    return None
                continue
            msg = self._frame(parts)
            if msg is not None:
                return msg
        return None


class FrameSender(_Socket):
    """Capture side of the frame path: connects a PUSH socket to the engine; sending never blocks.

    Args:
        camera: this capture's camera name (``[A-Za-z0-9_-]``, <= 64 characters).
        endpoint: the engine's frame endpoint (default ``tcp://127.0.0.1:5555``).
        curve: CURVE keys (client side); None for none.
        limits: message limits (checked when encoding).
        sndhwm: ZeroMQ send high-water mark, in messages: at most this many frames wait for the engine;
            further frames are dropped (counted in ``counters.send_dropped``).
        sndbuf: kernel send buffer in bytes (None: the OS default).
        context: ZeroMQ context (default: ``zmq.Context.instance()``).

    ``ZMQ_IMMEDIATE`` is set, so while no engine is connected frames are dropped rather than queued:
    an engine that starts late receives live frames, not a backlog.
    """

    def __init__(
        self,
        camera: str,
        endpoint: str = DEFAULT_FRAME_ENDPOINT,
        *,
        curve: CurveConfig | None = None,
        limits: Limits = DEFAULT_LIMITS,
        sndhwm: int = 2,
        sndbuf: int | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.camera = check_name(camera, "camera")
        super().__init__(zmq.PUSH, context, limits)
        self.seq = 0
        self._status_seq = 0
        self._setup(sndhwm=sndhwm, sndbuf=sndbuf, maxmsgsize=_CONTROL_MAXMSGSIZE)
        self.socket.setsockopt(zmq.IMMEDIATE, 1)
        self._connect(endpoint, curve)

    def send(self, image: np.ndarray, t_capture_ns: int, *, meta: dict[str, Any] | None = None) -> bool:
        """Send one image ``(h, w)`` or ``(h, w, 3)`` uint8 captured at ``t_capture_ns`` (``time.time_ns()``).

        The sequence number is :attr:`seq`, incremented on every call (also when the frame is dropped,
        so the engine sees the gap). The image is sent without a copy: do not write into it afterwards
        (sources that reuse a buffer must pass a copy). Returns True when queued, False when dropped
        because the queue is full or no engine is connected. Never blocks.
        """
        msg = FrameMessage(self.camera, self.seq, t_capture_ns, image, meta=meta or {})
        self.seq += 1
        return self._send_parts(encode_frame(msg, self.limits))

    def send_message(self, msg: FrameMessage | StatusMessage) -> bool:
        """Send a prepared message (its own ``seq``); same non-blocking semantics as :meth:`send`."""
        return self._send_parts(encode(msg, self.limits))

    def send_status(self, data: dict[str, Any] | None = None, process: str | None = None) -> bool:
        """Send ``status.<process>`` (default ``capture-<camera>``) with ``data`` (default: the counters)."""
        data = self.counters.as_dict() if data is None else data
        msg = StatusMessage(process or f"capture-{self.camera}", self._status_seq, data)
        self._status_seq += 1
        return self._send_parts(encode(msg, self.limits))


class PosePublisher(_Socket):
    """Engine side of the pose path: binds a PUB socket; publishing never blocks.

    Args:
        endpoint: where to bind (default ``tcp://127.0.0.1:5556``).
        allow_remote: permit binding a non-loopback address.
        curve: CURVE keys (server side); None for none.
        limits: message limits (checked when encoding).
        sndhwm: per-subscriber send high-water mark, in messages. When a subscriber's queue is full,
            PUB drops messages *for that subscriber only*; the publisher is never slowed. Those drops are
            invisible here (PUB does not report them); subscribers see them as ``counters.missed``.
        sndbuf: kernel send buffer per connection, bytes (default 256 KiB, so a stalled subscriber
            holds a bounded backlog; None: the OS default).
        context: ZeroMQ context (default: ``zmq.Context.instance()``).
        track_subscriptions: an XPUB socket instead of PUB (the same on the wire), so that
            :meth:`subscribed` knows which topic prefixes the connected subscribers asked for (the engine
            makes thumbnails only while someone wants them).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_POSE_ENDPOINT,
        *,
        allow_remote: bool = False,
        curve: CurveConfig | None = None,
        limits: Limits = DEFAULT_LIMITS,
        sndhwm: int = 16,
        sndbuf: int | None = 256 << 10,
        context: zmq.Context | None = None,
        track_subscriptions: bool = False,
    ) -> None:
        super().__init__(zmq.XPUB if track_subscriptions else zmq.PUB, context, limits)
        self._status_seq = 0
        self._tracking = track_subscriptions
        self._subscriptions: set[bytes] = set()
        self._setup(sndhwm=sndhwm, sndbuf=sndbuf, maxmsgsize=_CONTROL_MAXMSGSIZE)
        self._bind(endpoint, allow_remote, curve)

    def publish(self, msg: PoseMessage) -> bool:
        """Publish one pose (``t_publish_ns == 0`` is stamped now). Returns True when handed to ZeroMQ."""
        return self.send(msg)

    def send(self, msg: Message) -> bool:
        """Publish any message kind (pose, status); the whole message is encoded before sending."""
        return self._send_parts(encode(msg, self.limits))

    def publish_status(self, data: dict[str, Any] | None = None, process: str = "engine") -> bool:
        """Publish ``status.<process>`` with ``data`` (default: this publisher's counters)."""
        data = self.counters.as_dict() if data is None else data
        msg = StatusMessage(process, self._status_seq, data)
        self._status_seq += 1
        return self.send(msg)

    def subscribed(self, topic: bytes) -> bool:
        """True when a connected subscriber's subscription (a prefix, ``b""`` for everything) matches ``topic``.
        Reads the subscription changes queued since the last call, without blocking. Needs
        ``track_subscriptions=True`` (else raises HandstreamError). ZeroMQ reports a prefix once however many
        subscribers hold it, and its removal when the last one unsubscribes or disconnects."""
        if not self._tracking:
            raise HandstreamError("PosePublisher.subscribed: create the publisher with track_subscriptions=True")
        for _ in range(1024):  # bounded: a flood of (un)subscriptions cannot hold the engine here
            try:
                change = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if change[:1] == b"\x01":
                self._subscriptions.add(change[1:])
            elif change[:1] == b"\x00":
                self._subscriptions.discard(change[1:])
        return any(topic.startswith(p) for p in self._subscriptions)


class PoseSubscriber(_Socket):
    """Client side of the pose path: connects a SUB socket to the engine's pose endpoint.

    Args:
        endpoint: the engine's pose endpoint (default ``tcp://127.0.0.1:5556``).
        status: also subscribe to ``status.*`` messages (kept newest per process in :attr:`statuses`
            and returned by :meth:`recv`).
        frames: also subscribe to the engine's thumbnails, ``frame.*`` (:class:`FrameMessage`, kept newest per
            camera in :attr:`frames` and returned by :meth:`recv`; their sequence numbers are not counted as
            missed poses). Without it no frame reaches this subscriber.
        curve: CURVE keys (client side); None for none.
        limits: message limits; ``limits.max_message_bytes`` is also ``ZMQ_MAXMSGSIZE``.
        rcvhwm: receive high-water mark, in messages (small: a slow reader gets fresh poses, not a backlog).
        rcvbuf: kernel receive buffer, bytes (default 256 KiB; None: the OS default).
        context: ZeroMQ context (default: ``zmq.Context.instance()``).

    ZeroMQ's ``CONFLATE`` option does not support multipart messages, so the newest pose is obtained by
    draining instead (:meth:`latest`). Lost poses show as ``counters.missed`` (sequence gaps).
    Iterating yields poses until :meth:`close` is called (or Ctrl-C).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_POSE_ENDPOINT,
        *,
        status: bool = False,
        curve: CurveConfig | None = None,
        limits: Limits = DEFAULT_LIMITS,
        rcvhwm: int = 16,
        rcvbuf: int | None = 256 << 10,
        context: zmq.Context | None = None,
        frames: bool = False,
    ) -> None:
        super().__init__(zmq.SUB, context, limits)
        self.statuses: dict[str, StatusMessage] = {}
        self.frames: dict[str, FrameMessage] = {}
        self._want_frames = frames
        self._seq = _SeqTracker(self.counters)
        self._setup(rcvhwm=rcvhwm, rcvbuf=rcvbuf, maxmsgsize=max(limits.max_message_bytes, limits.max_header_bytes))
        self.socket.setsockopt(zmq.SUBSCRIBE, POSE)
        if status:
            self.socket.setsockopt(zmq.SUBSCRIBE, STATUS_PREFIX)
        if frames:
            self.socket.setsockopt(zmq.SUBSCRIBE, FRAME_PREFIX)
        self._connect(endpoint, curve)

    def _message(self, parts: list) -> PoseMessage | StatusMessage | FrameMessage | None:
        msg = self._decode(parts)
        if msg is None:
            return None
        if isinstance(msg, StatusMessage):
            self.statuses[msg.process] = msg
            return msg
        if isinstance(msg, FrameMessage) and self._want_frames:
            self.frames[msg.camera] = msg
            return msg
        if not isinstance(msg, PoseMessage):
            self.counters.received -= 1
            self.counters.drop("kind")
            return None
        self._seq.see("pose", msg.seq)
        return msg

    def recv(self, timeout_ms: float | None = 1000) -> PoseMessage | StatusMessage | FrameMessage | None:
        """The next valid message (a pose, or a status / thumbnail when subscribed), or None after ``timeout_ms``
        (None: wait indefinitely, in 100 ms polls, until a message arrives or :meth:`close`)."""
        deadline = _deadline(timeout_ms)
        while not self._closed:
            parts = self._recv_parts()
            if parts is None:
                if not self._wait(deadline):
                    return None
                continue
            msg = self._message(parts)
            if msg is not None:
                return msg
        return None

    def latest(self, timeout_ms: float | None = 0, max_messages: int = 4096) -> PoseMessage | None:
        """Drain the queue and return the newest pose (older ones count as ``superseded``), waiting up to
        ``timeout_ms`` for the first one; None when none arrived."""
        newest: PoseMessage | None = None
        deadline = _deadline(timeout_ms)
        n = 0
        while n < max_messages and not self._closed:
            parts = self._recv_parts()
            if parts is None:
                if newest is not None or not self._wait(deadline):
                    break
                continue
            n += 1
            msg = self._message(parts)
            if isinstance(msg, PoseMessage):
                if newest is not None:
                    self.counters.superseded += 1
                newest = msg
        return newest

    def poses(self, timeout_ms: float | None = None) -> Iterator[PoseMessage]:
        """Yield poses as they arrive; stop after ``timeout_ms`` without one (None: only at :meth:`close`)."""
        while not self._closed:
            msg = self.recv(timeout_ms)
            if msg is None:
                return
            if isinstance(msg, PoseMessage):
                yield msg

    def __iter__(self) -> Iterator[PoseMessage]:
        return self.poses()


__all__ = [
    "SEND_LINGER_MS",
    "Counters",
    "FrameReceiver",
    "FrameSender",
    "PosePublisher",
    "PoseSubscriber",
]
