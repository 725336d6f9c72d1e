"""The wire protocol and sockets of the live path (specification: docs/wire-protocol.md).

Every message is a ZeroMQ multipart ``[topic, msgpack header, *raw little-endian buffers]``:

* :mod:`handstream.transport.topics`: ``frame.<camera>``, ``pose``, ``status.<process>`` (there is no
  control topic: processes are stopped by their supervisor with signals).
* :mod:`handstream.transport.messages`: the message dataclasses, :class:`Limits`, the one exception type
  :class:`WireError` with a reason code for counting drops (:data:`REASONS`).
* :mod:`handstream.transport.encoding` / :mod:`handstream.transport.decoding`: messages <-> parts,
  zero-copy arrays; strict validation on decode. :mod:`handstream.transport.fields`: the header field
  rules both share.
* :mod:`handstream.transport.endpoints`: default endpoints (loopback), what may be bound or connected to,
  :class:`Endpoints`.
* :mod:`handstream.transport.security`: CURVE keys (:class:`CurveConfig`, :func:`generate_keys`) and the
  ZAP handler that admits authorized clients.
* :mod:`handstream.transport.pubsub`: the sockets. The engine binds :class:`FrameReceiver` (PULL,
  newest frame per camera) and :class:`PosePublisher` (PUB); captures connect :class:`FrameSender`
  (PUSH, never blocks), clients connect :class:`PoseSubscriber` (SUB). Loopback by default, CURVE
  optional, linger bounded, small high-water marks.
"""

from handstream.transport.decoding import decode, decode_frame, decode_pose, decode_status, parse_topic
from handstream.transport.encoding import encode, encode_frame, encode_pose, encode_status
from handstream.transport.endpoints import (
    DEFAULT_FRAME_ENDPOINT,
    DEFAULT_POSE_ENDPOINT,
    Endpoints,
    check_bind_endpoint,
    check_connect_endpoint,
    is_loopback_host,
)
from handstream.transport.messages import (
    DEFAULT_LIMITS,
    DTYPES,
    PROTOCOL_VERSION,
    REASONS,
    FrameMessage,
    Limits,
    Message,
    StatusMessage,
    WireError,
)
from handstream.transport.pubsub import Counters, FrameReceiver, FrameSender, PosePublisher, PoseSubscriber
from handstream.transport.security import CurveConfig, curve_config, generate_keys
from handstream.transport.topics import (
    POSE,
    check_name,
    frame_topic,
    is_valid_name,
    status_topic,
)

__all__ = [
    "DEFAULT_FRAME_ENDPOINT",
    "DEFAULT_LIMITS",
    "DEFAULT_POSE_ENDPOINT",
    "DTYPES",
    "POSE",
    "PROTOCOL_VERSION",
    "REASONS",
    "Counters",
    "CurveConfig",
    "Endpoints",
    "FrameMessage",
    "FrameReceiver",
    "FrameSender",
    "Limits",
    "Message",
    "PosePublisher",
    "PoseSubscriber",
    "StatusMessage",
    "WireError",
    "check_bind_endpoint",
    "check_connect_endpoint",
    "check_name",
    "curve_config",
    "decode",
    "decode_frame",
    "decode_pose",
    "decode_status",
    "encode",
    "encode_frame",
    "encode_pose",
    "encode_status",
    "frame_topic",
    "generate_keys",
    "is_loopback_host",
    "is_valid_name",
    "parse_topic",
    "status_topic",
]
