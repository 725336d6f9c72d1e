"""Wire format: round trips, zero copy, strict validation with reason codes, fuzzing (no sockets here).

``malformed_cases`` is also used by tests/test_transport_sockets.py to send the same bad messages over a
real socket.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handstream.errors import HandstreamError
from handstream.poses import HandPose, PoseMessage
from handstream.transport import (
    PROTOCOL_VERSION,
    REASONS,
    FrameMessage,
    Limits,
    StatusMessage,
    WireError,
    check_name,
    decode,
    decode_frame,
    decode_pose,
    decode_status,
    encode_frame,
    encode_pose,
    encode_status,
    frame_topic,
    parse_topic,
    status_topic,
)

K = 21


def make_hand(side: str, n_views: int, rng: np.random.Generator, with_2d: bool = True) -> HandPose:
    joints = rng.normal(0, 0.1, (K, 3)).astype(np.float32)
    joints[3] = np.nan  # a joint that was not triangulated
    joints_2d = rng.uniform(0, 640, (n_views, K, 2)).astype(np.float32) if with_2d else None
    if joints_2d is not None:
        joints_2d[0, 5] = np.nan  # not seen in view 0
    return HandPose(
        side=side,
        presence=0.75,
        joints=joints,
        conf=rng.uniform(0, 1, K).astype(np.float32),
        reproj_error=rng.uniform(0, 3, K).astype(np.float32),
        n_views=rng.integers(0, n_views + 1, K).astype(np.uint8),
        joints_2d=joints_2d,
    )


def make_pose(seq: int = 7, n_views: int = 4, with_2d: bool = True, seed: int = 0) -> PoseMessage:
    rng = np.random.default_rng(seed)
    return PoseMessage(
        seq=seq,
        t_capture_ns=1_700_000_000_000_000_000,
        timings={"sync": 0.05, "infer": 6.5, "decode": 0.02, "triangulate": 0.04},
        views=[f"cam{i}" for i in range(n_views)],
        hands=[make_hand("left", n_views, rng, with_2d), make_hand("right", n_views, rng, with_2d)],
    )


def make_frame(camera: str = "cam0", seq: int = 0, shape=(8, 12), seed: int = 0) -> FrameMessage:
    rng = np.random.default_rng(seed)
    return FrameMessage(camera, seq, 1_700_000_000_000_000_000 + seq, rng.integers(0, 256, shape, dtype=np.uint8))


def to_bytes(parts: list) -> list[bytes]:
    return [bytes(memoryview(p).cast("B")) if isinstance(p, np.ndarray) else bytes(p) for p in parts]


def assert_pose_equal(a: PoseMessage, b: PoseMessage) -> None:
    assert (a.seq, a.t_capture_ns, a.views) == (b.seq, b.t_capture_ns, b.views)
    assert a.timings == pytest.approx(b.timings)
    assert len(a.hands) == len(b.hands)
    for ha, hb in zip(a.hands, b.hands, strict=True):
        assert ha.side == hb.side and ha.presence == pytest.approx(hb.presence)
        for name in ("joints", "conf", "reproj_error", "n_views", "joints_2d"):
            xa, xb = getattr(ha, name), getattr(hb, name)
            if xa is None or xb is None:
                assert xa is None and xb is None, name
            else:
                np.testing.assert_array_equal(xa, xb, err_msg=name)  # NaN == NaN here


# ----------------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("shape", [(480, 640), (480, 640, 3), (1, 1)])
def test_frame_round_trip(shape):
    msg = make_frame("cam-A_1", 42, shape)
    msg.meta = {"exposure_us": 8000, "gain": 1.5, "source": "synthetic", "ok": True, "none": None}
    parts = encode_frame(msg)
    assert parts[0] == b"frame.cam-A_1"
    assert parts[2] is msg.image  # contiguous uint8: passed on as it is (zero-copy send)
    out = decode_frame(to_bytes(parts))
    assert (out.camera, out.seq, out.t_capture_ns, out.meta) == (msg.camera, 42, msg.t_capture_ns, msg.meta)
    assert out.t_send_ns > 0  # stamped at encode time
    assert out.image.dtype == np.uint8 and out.image.shape == shape
    np.testing.assert_array_equal(out.image, msg.image)


def test_frame_non_contiguous_image_is_made_contiguous():
    big = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    msg = FrameMessage("cam0", 0, 1, big[:, ::2])
    out = decode_frame(encode_frame(msg))
    np.testing.assert_array_equal(out.image, big[:, ::2])


@pytest.mark.parametrize("with_2d", [True, False])
def test_pose_round_trip_keeps_nan(with_2d):
    msg = make_pose(with_2d=with_2d)
    out = decode_pose(to_bytes(encode_pose(msg)))
    assert_pose_equal(msg, out)
    assert np.isnan(out.hands[0].joints[3]).all()
    if with_2d:
        assert out.hands[1].joints_2d.shape == (4, K, 2)
        assert np.isnan(out.hands[0].joints_2d[0, 5]).all()
    assert out.t_publish_ns > 0
    assert out.hand("right") is out.hands[1]
    assert out.joints_array().shape == (2, K, 3)


def test_pose_with_one_hand_and_no_hands():
    msg = make_pose()
    msg.hands = msg.hands[1:]
    out = decode_pose(encode_pose(msg))
    assert [h.side for h in out.hands] == ["right"]
    assert out.hand("left") is None
    assert np.isnan(out.joints_array()[0]).all()
    empty = decode_pose(encode_pose(PoseMessage(seq=0, t_capture_ns=5, views=[], hands=[])))
    assert empty.hands == [] and empty.views == []


def test_pose_hand_without_2d_gets_nan_when_the_other_has_2d():
    msg = make_pose()
    msg.hands[0].joints_2d = None
    out = decode_pose(encode_pose(msg))
    assert np.isnan(out.hands[0].joints_2d).all() and out.hands[0].joints_2d.shape == (4, K, 2)
    np.testing.assert_array_equal(out.hands[1].joints_2d, msg.hands[1].joints_2d)


def test_pose_converts_dtypes_on_encode():
    msg = make_pose(with_2d=False)
    h = msg.hands[0]
    h.joints = h.joints.astype(np.float64)
    h.n_views = h.n_views.astype(np.int64)
    out = decode_pose(encode_pose(msg))
    assert out.hands[0].joints.dtype == np.float32 and out.hands[0].n_views.dtype == np.uint8


def test_status_round_trip():
    data = {"received": 10, "dropped": {"header": 2, "shape": 1}, "fps": 29.97, "cams": ["a", "b"], "ok": None}
    s = decode_status(encode_status(StatusMessage("capture-cam0", 3, data)))
    assert (s.process, s.seq, s.data) == ("capture-cam0", 3, data)


def test_decoded_arrays_are_views_on_the_zmq_frames():
    """Zero copy: decode on frames from recv_multipart(copy=False) returns arrays inside those frames."""
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        a.linger = b.linger = 0
        a.bind("inproc://zero-copy-test")
        b.connect("inproc://zero-copy-test")
        a.send_multipart(encode_frame(make_frame(shape=(480, 640))), copy=False)
        assert b.poll(2000)
        frames = b.recv_multipart(copy=False)
        image = decode_frame(frames).image
        assert np.shares_memory(image, np.frombuffer(frames[2].buffer, np.uint8))
        a.send_multipart(encode_pose(make_pose()), copy=False)
        assert b.poll(2000)
        frames = b.recv_multipart(copy=False)
        pose = decode_pose(frames)
        assert np.shares_memory(pose.hands[0].joints, np.frombuffer(frames[2].buffer, np.uint8))
        assert np.shares_memory(pose.hands[1].joints_2d, np.frombuffer(frames[6].buffer, np.uint8))
        assert len(frames) == 7  # topic, header, joints, conf, reproj_error, n_views, joints_2d
    finally:
        a.close(0)
        b.close(0)


def test_topics():
    assert frame_topic("cam0") == b"frame.cam0"
    assert status_topic("engine") == b"status.engine"
    assert parse_topic(b"frame.cam0") == ("frame", "cam0")
    assert parse_topic(b"pose") == ("pose", None)
    for bad in ("", "cam 0", "cam.0", "câm", "x" * 65, "a/b"):
        with pytest.raises(HandstreamError, match="name"):
            frame_topic(bad)
    with pytest.raises(HandstreamError):
        check_name(3)
    for bad in (b"poses", b"frame.", b"frame", b"pose.x", b"frame.\xff", b"status.a b", b"video.cam0", b"x" * 100):
        with pytest.raises(WireError) as e:
            parse_topic(bad)
        assert e.value.reason == "topic"


def test_there_is_no_control_topic():
    """``ctl.*`` was specified but never sent: a message on it is an unknown topic, dropped as any other."""
    header = {"v": PROTOCOL_VERSION, "kind": "ctl", "seq": 0, "t_send_ns": 1, "buffers": [], "verb": "stop", "args": {}}
    with pytest.raises(WireError) as e:
        decode([b"ctl.stop", msgpack.packb(header)])
    assert e.value.reason == "topic"


# ----------------------------------------------------------------------------------------------------
# the catalogue of malformed messages (also sent over sockets by test_transport_sockets.py)


def _header(parts: list) -> dict:
    return msgpack.unpackb(parts[1], raw=False)


def _with(parts: list, mutate: Callable[[dict], None] | None = None, buffers: list | None = None) -> list:
    """A copy of ``parts`` with the header mutated and/or the buffers replaced."""
    h = _header(parts)
    if mutate is not None:
        mutate(h)
    return [parts[0], msgpack.packb(h, use_bin_type=True), *(to_bytes(parts[2:]) if buffers is None else buffers)]


def _set(**kv):
    return lambda h: h.update(kv)


def _set_desc(i: int, **kv):
    return lambda h: h["buffers"][i].update(kv)


def _set_hand(i: int, **kv):
    return lambda h: h["hands"][i].update(kv)


def malformed_cases(rng: np.random.Generator) -> list[tuple[str, str, list]]:
    """``(name, expected reason, parts)`` of one malformed message per kind of defect (random where
    it says so). Frames are 8x12 mono from camera ``cam0``."""
    frame = to_bytes(encode_frame(make_frame(seq=int(rng.integers(0, 1000)))))
    pose = to_bytes(encode_pose(make_pose(seed=int(rng.integers(0, 1000)))))
    junk = lambda n: rng.bytes(int(n))  # noqa: E731
    cases = [
        ("random single part", "parts", [junk(rng.integers(0, 300))]),
        ("random parts, bad topic", "topic", [b"\xff" + junk(5), junk(40), junk(96)]),
        ("random header bytes", "header", [b"frame.cam0", b"\xc1" + junk(rng.integers(0, 60)), frame[2]]),
        ("random header, valid topic", "header", [b"pose", bytes([0x80 + 1, 0xC1]) + junk(10)]),
        ("non-utf8 topic", "topic", [b"frame.\xc3\x28", frame[1], frame[2]]),
        ("unknown topic", "topic", [b"video.cam0", frame[1], frame[2]]),
        ("wrong version 2", "version", _with(frame, _set(v=2))),
        ("wrong version 0", "version", _with(frame, _set(v=0))),
        ("version not int", "header", _with(frame, _set(v="1"))),
        ("lying shape", "shape", _with(frame, _set_desc(0, shape=[480, 640]))),
        ("lying shape, short buffer", "shape", _with(frame, buffers=[frame[2][:-1]])),
        ("lying pose shape", "shape", _with(pose, _set_desc(0, shape=[2, 21, 2]))),
        ("pose layout shape", "shape", _with(pose, _set_desc(0, shape=[1, 21, 6]))),
        ("huge declared size", "size", _with(frame, _set_desc(0, shape=[1 << 20, 1 << 20]))),
        ("huge declared size 2", "size", _with(frame, _set_desc(0, shape=[2**62, 2**62, 3]))),
        ("negative dim", "shape", _with(frame, _set_desc(0, shape=[-8, -12]))),
        ("too many dims", "shape", _with(frame, _set_desc(0, shape=[1, 1, 1, 8, 12]))),
        ("wrong dtype", "dtype", _with(frame, _set_desc(0, dtype="<f4", shape=[2, 12]))),
        ("big-endian dtype", "dtype", _with(pose, _set_desc(0, dtype=">f4"))),
        ("object dtype", "dtype", _with(frame, _set_desc(0, dtype="|O"))),
        ("pose dtype", "dtype", _with(pose, _set_desc(3, dtype="<i1"))),
        ("too many parts", "parts", [b"frame.cam0", frame[1], *[b"x"] * 40]),
        ("missing buffer", "parts", frame[:2]),
        ("extra buffer", "parts", [*frame, b"extra"]),
        ("header not a map", "header", [b"frame.cam0", msgpack.packb([1, 2, 3]), frame[2]]),
        ("header too big", "size", [b"frame.cam0", b"\x00" * (65 << 10), frame[2]]),
        ("bool seq", "fields", _with(frame, _set(seq=True))),
        ("negative seq", "fields", _with(frame, _set(seq=-1))),
        ("float timestamp", "fields", _with(frame, _set(t_capture_ns=1.5))),
        ("camera mismatch", "topic", _with(frame, _set(camera="cam1"))),
        ("bad camera name", "fields", _with(frame, _set(camera="cam 0"))),
        ("kind mismatch", "kind", _with(frame, _set(kind="pose"))),
        ("missing key", "header", _with(frame, lambda h: h.pop("t_capture_ns"))),
        ("unknown key", "header", _with(frame, _set(extra=1))),
        ("bin in header", "header", _with(frame, _set(camera=b"cam0"))),
        ("meta nested", "fields", _with(frame, _set(meta={"a": {"b": 1}}))),
        ("bad side", "fields", _with(pose, _set_hand(0, side="middle"))),
        ("two left hands", "fields", _with(pose, _set_hand(1, side="left"))),
        ("presence nan", "fields", _with(pose, _set_hand(0, presence=math.nan))),
        ("presence > 1", "fields", _with(pose, _set_hand(0, presence=1.5))),
        ("has_2d lies", "parts", _with(pose, _set(has_2d=False))),
        ("has_2d not bool", "fields", _with(pose, _set(has_2d=1))),
        ("extra hand key", "fields", _with(pose, _set_hand(0, extra=1))),
        ("three hands", "fields", _with(pose, lambda h: h["hands"].append({"side": "left", "presence": 1.0}))),
        ("timing inf", "fields", _with(pose, lambda h: h["timings"].update(infer=math.inf))),
        ("duplicate views", "fields", _with(pose, _set(views=["cam0", "cam0", "cam1", "cam2"]))),
        ("fewer views than joints_2d", "shape", _with(pose, _set(views=["cam0", "cam1", "cam2", "cam3", "cam4"]))),
    ]
    # n_views larger than the number of views
    bad_n = np.full((2, K), 9, np.uint8).tobytes()
    cases.append(("n_views > views", "fields", [*pose[:5], bad_n, *pose[6:]]))
    return cases


def test_catalogue_covers_every_reason():
    reasons = {reason for _, reason, _ in malformed_cases(np.random.default_rng(0))}
    assert reasons == set(REASONS)


@pytest.mark.parametrize("case", range(len(malformed_cases(np.random.default_rng(0)))))
def test_malformed_message_raises_wire_error_with_reason(case):
    name, reason, parts = malformed_cases(np.random.default_rng(case))[case]
    with pytest.raises(WireError) as e:
        decode(parts)
    assert e.value.reason == reason, f"{name}: {e.value}"
    assert isinstance(e.value, HandstreamError)


def test_expected_kind_and_limits():
    with pytest.raises(WireError) as e:
        decode_pose(encode_frame(make_frame()))
    assert e.value.reason == "kind"
    small = Limits(max_message_bytes=1000)
    with pytest.raises(WireError) as e:
        decode(encode_frame(make_frame(shape=(40, 40))), small)
    assert e.value.reason == "size"
    with pytest.raises(WireError) as e:
        encode_frame(make_frame(shape=(40, 40)), small)
    assert e.value.reason == "size"
    with pytest.raises(WireError) as e:
        decode(["not", "bytes"])
    assert e.value.reason == "parts"
    with pytest.raises(WireError) as e:
        decode(12)
    assert e.value.reason == "parts"
    assert PROTOCOL_VERSION == 1


@pytest.mark.parametrize(
    "bad",
    [
        lambda m: setattr(m, "camera", "no spaces"),
        lambda m: setattr(m, "seq", -1),
        lambda m: setattr(m, "seq", 1.0),
        lambda m: setattr(m, "image", np.zeros((4, 4), np.float32)),
        lambda m: setattr(m, "image", np.zeros((4, 4, 4), np.uint8)),
        lambda m: setattr(m, "image", np.zeros((0, 4), np.uint8)),
        lambda m: setattr(m, "meta", {"x": object()}),
    ],
)
def test_encode_frame_rejects_invalid(bad):
    msg = make_frame()
    bad(msg)
    with pytest.raises(WireError):
        encode_frame(msg)


@pytest.mark.parametrize(
    "bad",
    [
        lambda m: setattr(m.hands[0], "side", "both"),
        lambda m: setattr(m.hands[1], "side", "left"),
        lambda m: setattr(m.hands[0], "presence", 2.0),
        lambda m: setattr(m.hands[0], "joints", np.zeros((20, 3))),
        lambda m: setattr(m.hands[0], "joints_2d", np.zeros((3, K, 2))),
        lambda m: setattr(m.hands[0], "n_views", np.full(K, 5)),
        lambda m: setattr(m.hands[0], "n_views", np.full(K, 1.0)),
        lambda m: setattr(m, "views", ["a", "a", "b", "c"]),
        lambda m: setattr(m, "timings", {"infer": -1.0}),
        lambda m: setattr(m, "hands", m.hands * 2),
    ],
)
def test_encode_pose_rejects_invalid(bad):
    msg = make_pose()
    bad(msg)
    with pytest.raises(WireError):
        encode_pose(msg)


# ----------------------------------------------------------------------------------------------------
# fuzzing: whatever arrives, decode returns a message or raises WireError, never anything else


def _decode_or_wire_error(parts):
    try:
        decode(parts)
    except WireError as e:
        assert e.reason in REASONS


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_fuzz_random_bytes(parts):
    _decode_or_wire_error(parts)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=8)
    | st.sampled_from(["frame", "pose", "left", "right", "|u1", "<f4", ">f4", "cam0", "<f8"])
)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_topics = st.sampled_from([b"frame.cam0", b"pose", b"status.engine", b"ctl.stop", b"frame.\xff", b"x"]) | st.binary(
    max_size=12
)


@settings(max_examples=200, deadline=None)
@given(
    topic=_topics,
    header=st.dictionaries(
        st.sampled_from(["v", "kind", "seq", "t_send_ns", "t_capture_ns", "buffers", "camera", "meta", "hands"])
        | st.text(max_size=6),
        _values,
        max_size=9,
    ),
    buffers=st.lists(st.binary(max_size=64), max_size=4),
)
def test_fuzz_random_headers(topic, header, buffers):
    _decode_or_wire_error([topic, msgpack.packb(header, use_bin_type=True), *buffers])


def _paths(obj, prefix=()):
    """Every (container, key) path inside a decoded header."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


_VALID = {
    "pose": to_bytes(encode_pose(make_pose())),
    "frame": to_bytes(encode_frame(make_frame())),
    "status": to_bytes(encode_status(StatusMessage("engine", 1, {"a": {"b": [1, 2.5, "x"]}}))),
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(_VALID)), data=st.data(), value=_values, delete=st.booleans())
def test_fuzz_mutated_valid_headers(kind, data, value, delete):
    parts = _VALID[kind]
    header = msgpack.unpackb(parts[1], raw=False)
    path = data.draw(st.sampled_from(list(_paths(header))))
    target = header
    for k in path[:-1]:
        target = target[k]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    _decode_or_wire_error([parts[0], msgpack.packb(header, use_bin_type=True), *parts[2:]])


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(sorted(_VALID)), data=st.data())
def test_fuzz_truncated_and_flipped_buffers(kind, data):
    parts = list(_VALID[kind])
    i = data.draw(st.integers(0, len(parts) - 1))
    blob = bytearray(parts[i])
    if blob and data.draw(st.booleans()):
        j = data.draw(st.integers(0, len(blob) - 1))
        blob[j] ^= data.draw(st.integers(1, 255))
    else:
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    parts[i] = bytes(blob)
    _decode_or_wire_error(parts)
