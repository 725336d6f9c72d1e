"""Sockets over real transports (tcp on 127.0.0.1 and ipc in a temporary folder).

Every wait in these tests is bounded by a deadline; nothing binds a non-loopback address.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zmq

from handstream.errors import HandstreamError
from handstream.transport import (
    DEFAULT_FRAME_ENDPOINT,
    DEFAULT_POSE_ENDPOINT,
    CurveConfig,
    Endpoints,
    FrameMessage,
    FrameReceiver,
    FrameSender,
    Limits,
    PosePublisher,
    PoseSubscriber,
    StatusMessage,
    check_bind_endpoint,
    encode_frame,
    encode_pose,
    generate_keys,
)
from tests.test_transport_wire import make_pose, malformed_cases, to_bytes

IMAGE = np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)


@pytest.fixture(params=["tcp", "ipc"])
def bind_endpoint(request, tmp_path):
    """A factory of bind endpoints on the transport under test: ``bind_endpoint("frames")``."""
    if request.param == "tcp":
        yield lambda name: "tcp://127.0.0.1:*"
        return
    folder = tmp_path
    short = None
    if len(str(tmp_path)) > 80:  # unix socket paths are limited to 107 bytes
        short = tempfile.TemporaryDirectory(prefix="hs-", dir="/tmp")
        folder = Path(short.name)
    yield lambda name: f"ipc://{folder / name}.sock"
    if short is not None:
        short.cleanup()


def wait_until(predicate, timeout_s: float = 5.0, step=None) -> bool:
    """Call ``step`` (if any; it should block briefly itself, e.g. in a receive with a timeout) and
    check ``predicate`` until it is true or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if predicate():
            return True
        if step is None:
            time.sleep(0.005)
    return predicate()


def subscribe(pub: PosePublisher, sub: PoseSubscriber, timeout_s: float = 5.0) -> None:
    """Handshake instead of sleep: publish until the subscriber has seen a pose, then drain it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pub.publish(make_pose(seq=0))
        if sub.recv(timeout_ms=20) is not None:
            while sub.recv(timeout_ms=50) is not None:
                pass
            return
    raise AssertionError("subscriber never received the handshake poses")


# ----------------------------------------------------------------------------------------------------
# frames


def test_frames_round_trip_and_status(bind_endpoint):
    with (
        FrameReceiver(bind_endpoint("frames")) as rx,
        FrameSender("cam0", rx.endpoint, sndhwm=10) as a,
        FrameSender("cam1", rx.endpoint, sndhwm=10) as b,
    ):
        got: dict[str, FrameMessage] = {}

        def step():
            if len(got) < 2:
                a.send(IMAGE, time.time_ns(), meta={"exposure_us": 100})
                b.send(np.dstack([IMAGE] * 3), time.time_ns())
            got.update(rx.drain_latest(timeout_ms=10))

        assert wait_until(lambda: len(got) == 2, step=step)
        np.testing.assert_array_equal(got["cam0"].image, IMAGE)
        assert got["cam0"].meta == {"exposure_us": 100}
        assert got["cam1"].image.shape == (48, 64, 3)
        assert a.send_status()
        assert wait_until(lambda: "capture-cam0" in rx.statuses, step=lambda: rx.drain_latest(timeout_ms=10))
        assert rx.statuses["capture-cam0"].data["sent"] >= 1


def test_latest_frame_policy(bind_endpoint):
    """100 frames from one camera: each drain returns only the newest, older ones count as superseded."""
    with FrameReceiver(bind_endpoint("frames")) as rx, FrameSender("cam0", rx.endpoint, sndhwm=200) as tx:
        assert wait_until(lambda: tx.send(IMAGE, time.time_ns()))  # first frame once connected (IMMEDIATE)
        assert wait_until(lambda: rx.recv(timeout_ms=10) is not None)
        rx.counters.received = 0
        first = tx.seq
        assert all(tx.send(IMAGE, time.time_ns()) for _ in range(100))
        time.sleep(0.2)  # let them queue up on the receiving side
        drains = []

        def step():
            d = rx.drain_latest(timeout_ms=10)
            if d:
                drains.append(d)

        assert wait_until(lambda: rx.counters.received == 100, step=step)
        assert all(list(d) == ["cam0"] for d in drains)
        assert drains[-1]["cam0"].seq == first + 99
        assert rx.counters.superseded == 100 - len(drains) > 0
        assert rx.counters.missed == 0 and rx.counters.total_dropped == 0


def test_sender_never_blocks(bind_endpoint):
    """A receiver that does not read: the capture keeps going, dropping (and counting) frames."""
    image = np.zeros((480, 640), np.uint8)
    with FrameReceiver(bind_endpoint("frames")) as rx, FrameSender("cam0", rx.endpoint) as tx:
        assert wait_until(lambda: tx.send(image, time.time_ns()))
        start, sent0, dropped0 = tx.seq, tx.counters.sent, tx.counters.send_dropped
        t0 = time.perf_counter()
        results = [tx.send(image, time.time_ns()) for _ in range(2000)]
        elapsed = time.perf_counter() - t0
        assert elapsed < 5.0, elapsed
        assert tx.counters.sent - sent0 == sum(results) < 2000
        assert tx.counters.send_dropped - dropped0 == 2000 - sum(results)
        last_accepted = start + max(i for i, ok in enumerate(results) if ok)  # seq of the newest queued frame
        newest = {}
        assert wait_until(
            lambda: rx.counters.received == tx.counters.sent,
            step=lambda: newest.update(rx.drain_latest(timeout_ms=10)),
        )
        # tail drop: what arrives last is the newest frame that found room in the queue
        assert newest["cam0"].seq == last_accepted
        assert rx.counters.missed == last_accepted - (start - 1) - sum(results)
        print(f"2000 sends in {elapsed * 1e3:.1f} ms, {sum(results)} queued, the rest dropped")


def test_sender_without_engine_drops_immediately():
    with tempfile.TemporaryDirectory(dir="/tmp") as d, FrameSender("cam0", f"ipc://{d}/nobody.sock") as tx:
        t0 = time.perf_counter()
        assert not any(tx.send(IMAGE, time.time_ns()) for _ in range(100))
        assert time.perf_counter() - t0 < 1.0
        assert tx.counters.send_dropped == 100 and tx.seq == 100


def test_receiver_camera_filter(bind_endpoint):
    with (
        FrameReceiver(bind_endpoint("frames"), cameras=["cam0"]) as rx,
        FrameSender("cam9", rx.endpoint) as stranger,
        FrameSender("cam0", rx.endpoint) as tx,
    ):
        got = {}

        def step():
            stranger.send(IMAGE, time.time_ns())
            tx.send(IMAGE, time.time_ns())
            got.update(rx.drain_latest(timeout_ms=10))

        assert wait_until(lambda: "cam0" in got and rx.counters.dropped.get("camera", 0) > 0, step=step)
        assert set(got) == {"cam0"}


def test_10000_malformed_messages_dropped_and_counted(bind_endpoint):
    """Malformed messages of every kind, interleaved with valid frames from 3 cameras, over a socket."""
    rng = np.random.default_rng(1234)
    n_bad, every = 10_000, 10
    cams = ["cam0", "cam1", "cam2"]
    catalogue = [malformed_cases(np.random.default_rng(s)) for s in range(8)]  # 8 random draws per case
    messages, expected = [], Counter()
    last_seq = {}
    valid_seq = 0
    for i in range(n_bad):
        name, reason, parts = catalogue[i % 8][int(rng.integers(0, len(catalogue[0])))]
        messages.append(parts)
        expected[reason] += 1
        if i % every == 0:
            cam = cams[valid_seq % 3]
            msg = FrameMessage(cam, valid_seq, time.time_ns(), IMAGE)
            messages.append(to_bytes(encode_frame(msg)))
            last_seq[cam] = valid_seq
            valid_seq += 1
    # a pose on the frame socket is valid on the wire but the wrong kind here
    messages.append(to_bytes(encode_pose(make_pose())))
    expected["kind"] += 1
    n_valid = valid_seq

    with FrameReceiver(bind_endpoint("frames")) as rx:
        ctx = zmq.Context.instance()
        push = ctx.socket(zmq.PUSH)  # a raw, blocking sender: every message reaches the receiver
        push.linger = 50  # not 0 on a multipart sender: see SEND_LINGER_MS
        push.sndhwm = 100
        push.connect(rx.endpoint)
        stop = threading.Event()

        push.sndtimeo = 100  # blocking sends (GIL released), with a way out if the test fails

        def sender():
            for parts in messages:
                while not stop.is_set():
                    try:
                        push.send_multipart(parts)
                        break
                    except zmq.Again:
                        pass

        thread = threading.Thread(target=sender, daemon=True)
        t0 = time.perf_counter()
        thread.start()
        newest: dict[str, FrameMessage] = {}
        returned = 0

        def step():
            nonlocal returned
            d = rx.drain_latest(timeout_ms=20)
            returned += len(d)
            newest.update(d)

        try:
            done = wait_until(
                lambda: rx.counters.received + rx.counters.total_dropped == len(messages), timeout_s=60, step=step
            )
        finally:
            stop.set()
            thread.join(5)
            push.close()
        elapsed = time.perf_counter() - t0
        assert done, (rx.counters, elapsed)
        assert rx.counters.dropped == dict(expected)
        assert rx.counters.total_dropped == n_bad + 1
        assert rx.counters.received == n_valid
        assert rx.counters.superseded == n_valid - returned
        assert {cam: m.seq for cam, m in newest.items()} == last_seq
        np.testing.assert_array_equal(newest["cam0"].image, IMAGE)
        print(f"{len(messages)} messages ({n_bad + 1} malformed) in {elapsed:.2f} s")


def test_oversized_part_disconnects_peer_and_traffic_continues(bind_endpoint):
    """A part above ZMQ_MAXMSGSIZE never reaches Python (libzmq drops the connection); the sender
    reconnects and valid frames keep arriving."""
    with FrameReceiver(bind_endpoint("frames"), limits=Limits(max_message_bytes=1 << 20)) as rx:
        push = zmq.Context.instance().socket(zmq.PUSH)
        push.linger = 50  # not 0 on a multipart sender: see SEND_LINGER_MS
        try:
            push.connect(rx.endpoint)
            push.send_multipart([b"frame.cam0", b"\x80", b"\0" * (2 << 20)])
            ok = FrameMessage("cam0", 1, 1, IMAGE)
            got = {}

            def step():
                try:
                    push.send_multipart(encode_frame(ok), flags=zmq.NOBLOCK)
                except zmq.Again:
                    pass
                got.update(rx.drain_latest(timeout_ms=20))

            assert wait_until(lambda: "cam0" in got, timeout_s=10, step=step)
            assert rx.counters.total_dropped == 0  # the oversized message was never delivered
        finally:
            push.close()


# ----------------------------------------------------------------------------------------------------
# poses


def test_pose_round_trip_and_status(bind_endpoint):
    with PosePublisher(bind_endpoint("poses")) as pub, PoseSubscriber(pub.endpoint, status=True) as sub:
        subscribe(pub, sub)
        msg = make_pose(seq=1)
        assert pub.publish(msg)
        got = sub.recv(timeout_ms=2000)
        assert got is not None and got.seq == 1
        np.testing.assert_array_equal(got.hands[0].joints, msg.hands[0].joints)
        assert got.t_publish_ns >= got.t_capture_ns
        assert pub.publish_status({"fps": 30.0})
        status = sub.recv(timeout_ms=2000)
        assert isinstance(status, StatusMessage) and sub.statuses["engine"].data == {"fps": 30.0}
        for seq in range(2, 10):
            pub.publish(make_pose(seq=seq))
        latest = []

        def step():
            pose = sub.latest(timeout_ms=10)
            if pose is not None:
                latest.append(pose)

        assert wait_until(lambda: latest and latest[-1].seq == 9, step=step)
        pub.publish(make_pose(seq=10))
        pub.publish(make_pose(seq=11))
        assert [p.seq for p in sub.poses(timeout_ms=300)] == [10, 11]
        assert sub.counters.missed == 0


def test_slow_subscriber_does_not_slow_publisher(bind_endpoint):
    """A subscriber that never reads: 10,000 poses publish quickly; PUB drops for it (seen as gaps)."""
    msg = make_pose(n_views=8)  # ~4 KB per message, 40 MB in all: more than all the buffers on the way
    with PosePublisher(bind_endpoint("poses")) as pub, PoseSubscriber(pub.endpoint) as slow:
        subscribe(pub, slow)
        t0 = time.perf_counter()
        for seq in range(1, 10_001):
            msg.seq = seq
            pub.publish(msg)
        elapsed = time.perf_counter() - t0
        assert pub.counters.sent >= 10_000
        assert elapsed < 10.0, elapsed
        seqs = [p.seq for p in slow.poses(timeout_ms=300)]
        kept = len(seqs)
        assert 0 < kept < 10_000
        # the subscriber reads again: the next pose reaches it, and the gap shows as `missed`
        msg.seq = 10_001
        pub.publish(msg)
        seqs += [p.seq for p in slow.poses(timeout_ms=300)]
        assert seqs[-1] == 10_001 and seqs == sorted(seqs)
        assert slow.counters.missed == (seqs[-1] - seqs[0] + 1) - len(seqs) > 0
        seqs = seqs[:kept]
        print(f"published 10,000 poses in {elapsed:.2f} s; the idle subscriber kept {len(seqs)}")


def test_close_never_hangs(bind_endpoint):
    pub = PosePublisher(bind_endpoint("poses"))
    sub = PoseSubscriber(pub.endpoint)
    subscribe(pub, sub)
    for seq in range(200):
        pub.publish(make_pose(seq=seq))
    tx = FrameSender("cam0", "tcp://127.0.0.1:9")  # nobody there
    tx.send(IMAGE, 0)
    t0 = time.perf_counter()
    for s in (sub, pub, tx):
        s.close()
        s.close()
    assert time.perf_counter() - t0 < 1.0
    assert sub.closed and sub.recv(timeout_ms=None) is None and sub.latest() is None


# ----------------------------------------------------------------------------------------------------
# security


@pytest.mark.parametrize(
    "endpoint",
    ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.1.10:5555", "tcp://eth0:5555", "tcp://[::]:5555"],
)
def test_remote_bind_refused_without_allow_remote(endpoint):
    with pytest.raises(HandstreamError, match="allow_remote"):
        FrameReceiver(endpoint)
    with pytest.raises(HandstreamError, match="allow_remote"):
        PosePublisher(endpoint)
    with pytest.raises(HandstreamError, match="allow_remote"):
        Endpoints(poses=endpoint)
    assert check_bind_endpoint(endpoint, allow_remote=True) == endpoint  # explicit opt-in


def test_endpoint_validation():
    assert Endpoints().frames == DEFAULT_FRAME_ENDPOINT == "tcp://127.0.0.1:5555"
    assert Endpoints().poses == DEFAULT_POSE_ENDPOINT == "tcp://127.0.0.1:5556"
    for ok in ("tcp://localhost:1", "tcp://127.0.0.2:*", "tcp://[::1]:5", "ipc:///tmp/x.sock", "inproc://x"):
        check_bind_endpoint(ok)
    for bad in ("udp://127.0.0.1:5", "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "ipc://" + "x" * 200, "", 5):
        with pytest.raises(HandstreamError):
            check_bind_endpoint(bad)
    assert Endpoints.ipc("/tmp/hs").frames == "ipc:///tmp/hs/frames.sock"


def test_bind_conflict_is_a_user_error():
    with PosePublisher("tcp://127.0.0.1:*") as pub, pytest.raises(HandstreamError, match="cannot bind"):
        PosePublisher(pub.endpoint)


curve_missing = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")


@curve_missing
def test_curve_round_trip(tmp_path):
    keys = generate_keys(tmp_path / "keys")
    assert (tmp_path / "keys" / "authorized_clients" / "client.key").is_file()
    assert (Path(keys.server_secret_key_file).stat().st_mode & 0o077) == 0
    stranger = generate_keys(tmp_path / "other", client="stranger")
    foreign = CurveConfig(keys.server_public_key_file, client_secret_key_file=stranger.client_secret_key_file)
    with (
        PosePublisher("tcp://127.0.0.1:*", curve=keys) as pub,
        FrameReceiver("tcp://127.0.0.1:*", curve=keys) as rx,  # a second server socket in the same context
        PoseSubscriber(pub.endpoint, curve=keys) as sub,
        PoseSubscriber(pub.endpoint) as plain,  # no CURVE: the handshake fails
        PoseSubscriber(pub.endpoint, curve=foreign) as unauthorized,  # key not in authorized_clients
        FrameSender("cam0", rx.endpoint, curve=keys) as tx,
    ):
        subscribe(pub, sub)
        pub.publish(make_pose(seq=3))
        got = sub.recv(timeout_ms=2000)
        assert got is not None and got.seq == 3
        assert plain.recv(timeout_ms=200) is None
        assert unauthorized.recv(timeout_ms=200) is None
        frames = {}
        assert wait_until(
            lambda: "cam0" in frames, step=lambda: (tx.send(IMAGE, 1), frames.update(rx.drain_latest(10)))
        )


@curve_missing
def test_curve_config_errors(tmp_path):
    keys = generate_keys(tmp_path)
    with pytest.raises(HandstreamError, match="secret"):
        PosePublisher("tcp://127.0.0.1:*", curve=CurveConfig(keys.server_public_key_file))
    with pytest.raises(HandstreamError, match="client_secret_key_file"):
        PoseSubscriber("tcp://127.0.0.1:5", curve=CurveConfig(keys.server_public_key_file))
    with pytest.raises(HandstreamError, match="cannot read"):
        PoseSubscriber(
            "tcp://127.0.0.1:5",
            curve=CurveConfig(tmp_path / "missing.key", client_secret_key_file=keys.client_secret_key_file),
        )
