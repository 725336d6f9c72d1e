"""The engine's camera thumbnails on the pose socket (``engine.thumbnail_fps``, handstream/engine/thumbnails.py):
their size and schedule, and an in-process :class:`~handstream.engine.process.Engine` fed by real frame senders:
``frame.<camera>`` thumbnails at about the configured rate, each the image of a published pose, only while a
subscriber asks for them, never seen by pose/status subscribers; none with ``thumbnail_fps = 0``; a bad value is
the config's one-line error.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from handstream.config import ServeConfig
from handstream.engine.thumbnails import Thumbnails, thumbnail
from handstream.errors import HandstreamError
from handstream.poses import PoseMessage
from handstream.synth.rigs import get_preset
from handstream.transport.decoding import decode
from handstream.transport.messages import FrameMessage, StatusMessage
from handstream.transport.pubsub import FrameSender, PoseSubscriber
from tests.cli_run import assert_one_line_error, run_cli
from tests.conftest import free_tcp_port


def test_thumbnail_sizes():
    grey = np.zeros((480, 640), np.uint8)
    assert thumbnail(grey).shape == (120, 160)  # a whole factor 4
    assert thumbnail(np.zeros((720, 720, 3), np.uint8)).shape == (144, 144, 3)  # 5: the smallest whole one
    assert thumbnail(np.zeros((1080, 1920, 3), np.uint8)).shape == (90, 160, 3)
    small = np.zeros((100, 50), np.uint8)
    assert thumbnail(small).shape == (100, 50)
    blocks = np.kron(np.arange(12, dtype=np.uint8).reshape(3, 4), np.ones((4, 4), np.uint8)) * 10  # (12, 16)
    np.testing.assert_array_equal(thumbnail(blocks, 4), np.arange(12).reshape(3, 4) * 10)  # block means


def test_the_schedule_keeps_the_rate_without_bursts():
    th = Thumbnails(5.0)
    sent = [t for t in np.arange(0, 10, 1 / 30) if th.due(["a"], float(t))]  # 30 frame sets/s for 10 s
    assert 49 <= len(sent) <= 51 and min(np.diff(sent)) > 0.15
    after_pause = [t for t in np.arange(20, 21, 1 / 30) if th.due(["a"], float(t))]
    assert len(after_pause) <= 6 and min(np.diff(after_pause)) > 0.15  # no catching up after a pause


def _engine(model, fps: float):
    from handstream.engine.process import Engine

    rig = get_preset("headset4").rig
    data = {"rig": {"preset": "headset4"}, "model": {"path": str(model), "threads": 1, "refiner": ""},
            "engine": {"thumbnail_fps": fps, "tracking": False, "max_age_ms": 0},
            "endpoints": {"frames": f"tcp://127.0.0.1:{free_tcp_port()}",
                          "poses": f"tcp://127.0.0.1:{free_tcp_port()}"}}  # fmt: skip
    return Engine(rig, ServeConfig.from_dict(data, "test"), 30.0), rig


def _feed(engine, rig, seconds: float, subs: list[PoseSubscriber]) -> dict[PoseSubscriber, list]:
    """Frame sets of the rig's cameras at up to 30/s through real FrameSenders for ``seconds``, the engine stepping
    in this thread; everything each subscriber received."""
    senders = [FrameSender(c.name, engine.receiver.endpoint) for c in rig.cameras]
    images = {c.name: np.full((c.height, c.width), 40 + 20 * i, np.uint8) for i, c in enumerate(rig.cameras)}
    got: dict[PoseSubscriber, list] = {s: [] for s in subs}
    try:
        time.sleep(0.3)  # connections and subscriptions settle
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            t = time.time_ns()
            for s in senders:
                s.send(images[s.camera], t)
            t_next = time.monotonic() + 1 / 30
            while time.monotonic() < t_next:
                engine.step(0.005)
            for sub in subs:
                while (m := sub.recv(timeout_ms=0)) is not None:
                    got[sub].append(m)
        time.sleep(0.1)
        for sub in subs:
            while (m := sub.recv(timeout_ms=50)) is not None:
                got[sub].append(m)
    finally:
        for s in senders:
            s.close()
    return got


def test_the_engine_publishes_thumbnails_of_its_poses_to_who_asks(random_model):
    engine, rig = _engine(random_model, 5.0)
    viewer = PoseSubscriber(engine.publisher.endpoint, frames=True)
    plain = PoseSubscriber(engine.publisher.endpoint, status=True)  # what subscribe, bridges and recorders use
    everything = zmq.Context.instance().socket(zmq.SUB)  # a raw subscriber to all topics decodes them all
    everything.setsockopt(zmq.SUBSCRIBE, b"")
    everything.connect(engine.publisher.endpoint)
    seconds = 3.0
    try:
        got = _feed(engine, rig, seconds, [viewer, plain])
        engine.publisher.publish_status(engine.status(1.0, 0, {}), "engine")
        time.sleep(0.1)
        while (m := plain.recv(timeout_ms=50)) is not None:
            got[plain].append(m)
        raw = []
        while everything.poll(0):
            raw.append(decode(everything.recv_multipart(copy=False)))
    finally:
        for s in (viewer, plain):
            s.close()
        everything.close(linger=0)
        engine.close()
    poses = {m.seq: m for m in got[viewer] if isinstance(m, PoseMessage)}
    thumbs = [m for m in got[viewer] if isinstance(m, FrameMessage)]
    assert len(poses) > 20, f"only {len(poses)} poses"
    per_camera = {c: [m for m in thumbs if m.camera == c] for c in rig.names}
    for cam, ms in per_camera.items():  # 5/s for ~3 s (the first subscription takes a moment)
        assert 10 <= len(ms) <= 5 * seconds + 2, (cam, len(ms))
        for m in ms:
            assert m.image.shape == (120, 159) and m.image.dtype == np.uint8  # 636x480 grey / 4
            assert m.meta["thumbnail"] and (m.meta["width"], m.meta["height"]) == rig[cam].size == (636, 480)
            assert m.image.mean() == pytest.approx(40 + 20 * rig.names.index(cam), abs=1)
            pose = poses.get(m.meta["pose_seq"])
            if pose is not None:  # the image of that very frame set: its capture time
                assert m.t_capture_ns == pose.t_capture_ns
        assert [m.seq for m in ms] == list(range(ms[0].seq, ms[0].seq + len(ms)))
    assert viewer.counters.total_dropped == 0 and plain.counters.total_dropped == 0
    assert not any(isinstance(m, FrameMessage) for m in got[plain]) and not plain.frames
    status = [m for m in got[plain] if isinstance(m, StatusMessage)][-1].data["thumbnails"]
    assert status["fps"] == 5.0 and status["sent"] == len(thumbs) and status["dropped"] == 0
    kinds = {type(m).__name__ for m in raw}
    assert kinds == {"PoseMessage", "FrameMessage", "StatusMessage"}, kinds


def test_no_thumbnails_without_a_subscriber_or_with_fps_0(random_model):
    for fps in (5.0, 0.0):
        engine, rig = _engine(random_model, fps)
        sub = PoseSubscriber(engine.publisher.endpoint, frames=fps == 0.0)  # fps 0: asks, gets none
        try:
            got = _feed(engine, rig, 1.0, [sub])[sub]
            stats = engine.status(1.0, 0, {})["thumbnails"]
        finally:
            sub.close()
            engine.close()
        assert any(isinstance(m, PoseMessage) for m in got)
        assert not any(isinstance(m, FrameMessage) for m in got)
        assert stats == ({"fps": 0} if fps == 0 else {"fps": 5.0, "sent": 0, "dropped": 0, "ms_total": 0.0})


def test_a_bad_thumbnail_fps_is_one_line(tmp_path):
    for bad in (-1, 31):
        with pytest.raises(HandstreamError, match=r"^test: engine\.thumbnail_fps: expected a number in \[0, 30\]"):
            ServeConfig.from_dict({"rig": {"preset": "stereo"}, "engine": {"thumbnail_fps": bad}}, "test")
    path = tmp_path / "serve.toml"
    path.write_text('[rig]\npreset = "stereo"\n\n[engine]\nthumbnail_fps = "fast"\n')
    assert_one_line_error(run_cli("serve", "--config", str(path)), "serve.toml", "engine.thumbnail_fps", "a number")
