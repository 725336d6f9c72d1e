"""The wire protocol and sockets of the live path (specification: docs/wire-protocol.md).

Every message is a ZeroMQ multipart ``[topic, msgpack header, *raw little-endian buffers]``:

* :mod:`handstream.transport.topics`: ``frame.<camera>``, ``pose``, ``status.<process>``, ``ctl.<verb>``.
* :mod:`handstream.transport.wire`: message dataclasses <-> parts; strict validation on decode
  (one exception type, :class:`WireError`, with a reason code for counting drops); zero-copy arrays.
* :mod:`handstream.transport.pubsub`: the sockets. The engine binds :class:`FrameReceiver` (PULL,
  newest frame per camera) and :class:`PosePublisher` (PUB); captures connect :class:`FrameSender`
  (PUSH, never blocks), clients connect :class:`PoseSubscriber` (SUB). Loopback by default, CURVE
  optional, linger 0, small high-water marks.
"""

from handstream.transport.pubsub import (
    DEFAULT_FRAME_ENDPOINT,
    DEFAULT_POSE_ENDPOINT,
    Counters,
    CurveConfig,
    Endpoints,
    FrameReceiver,
    FrameSender,
    PosePublisher,
    PoseSubscriber,
    check_bind_endpoint,
    check_connect_endpoint,
    generate_keys,
    is_loopback_host,
)
from handstream.transport.topics import (
    POSE,
    check_name,
    ctl_topic,
    frame_topic,
    is_valid_name,
    status_topic,
)
from handstream.transport.wire import (
    DEFAULT_LIMITS,
    DTYPES,
    PROTOCOL_VERSION,
    REASONS,
    ControlMessage,
    FrameMessage,
    Limits,
    Message,
    StatusMessage,
    WireError,
    decode,
    decode_control,
    decode_frame,
    decode_pose,
    decode_status,
    encode,
    encode_control,
    encode_frame,
    encode_pose,
    encode_status,
    parse_topic,
)

__all__ = [
    "DEFAULT_FRAME_ENDPOINT",
    "DEFAULT_LIMITS",
    "DEFAULT_POSE_ENDPOINT",
    "DTYPES",
    "POSE",
    "PROTOCOL_VERSION",
    "REASONS",
    "ControlMessage",
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
    "ctl_topic",
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
    "frame_topic",
    "generate_keys",
    "is_loopback_host",
    "is_valid_name",
    "parse_topic",
    "status_topic",
]
