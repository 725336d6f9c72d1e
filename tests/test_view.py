"""``handstream view``: the server (its files and content types, ``/state``, the scene message with the calibration's
cameras, poses with their 2D projections), its one-line errors, and the page itself in a real headless Chromium
against ``serve --demo``: hands and cameras drawn, "waiting" when the engine stops, poses again after it restarts,
and the page's own reconnect when the viewer restarts.

The server tests publish real ``PoseMessage``s through a real ``PosePublisher`` (tests/publishing.py) and run
:func:`run_view` in a thread of the test; the browser test runs the whole system as a user does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from handstream.errors import HandstreamError
from handstream.geometry import save_calibration
from handstream.poses import HandPose, PoseMessage
from handstream.runtime import StopFlag
from handstream.synth.rigs import get_preset
from handstream.transport.messages import FrameMessage
from handstream.view import load_rig, run_view, scene_message
from handstream.view.scene import BORDER_SAMPLES, preset_for_cameras, rig_up
from tests.browser import Chromium, find_chromium, page_state, wait_for
from tests.cli_run import assert_one_line_error, stop_cli
from tests.conftest import free_tcp_port
from tests.publishing import Publishing

websockets = pytest.importorskip("websockets", reason="websockets not installed (pip install 'handstream[bridges]')")


def _pose(seq: int) -> PoseMessage:
    """A left hand 0.4 m in front of the stereo rig (joint 20 NaN) and an untracked right hand."""
    rng = np.random.default_rng(seq)
    joints = (np.array([0.0, 0.05, 0.4]) + rng.normal(0, 0.03, (21, 3))).astype(np.float32)
    joints[20] = np.nan
    nan21, conf = np.full(21, np.nan, np.float32), np.linspace(0.5, 1, 21, dtype=np.float32)
    hands = [
        HandPose("left", 0.9, joints, conf, np.ones(21, np.float32), np.full(21, 2, np.uint8)),
        HandPose("right", 0.1, np.full((21, 3), np.nan, np.float32), nan21, nan21, np.zeros(21, np.uint8)),
    ]
    return PoseMessage(seq, time.time_ns(), 0, {"infer": 5.0}, ["left", "right"], hands)


class Viewer:
    """``run_view`` in a thread until closed; ``url`` once it listens."""

    def __init__(self, endpoint: str, **kwargs):
        self.stop = StopFlag()
        self.ready = threading.Event()
        self.url = ""
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(endpoint, kwargs), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the viewer did not start"
        if self.error is not None:
            raise self.error

    def _run(self, endpoint, kwargs):
        opts = {"host": "127.0.0.1", "port": 0, "include_2d": kwargs.pop("include_2d", False)}
        try:
            run_view(opts, self.stop, endpoint=endpoint, on_ready=self._ready, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.ready.set()

    def _ready(self, url):
        self.url = url
        self.ready.set()

    def get(self, path: str):
        return urllib.request.urlopen(self.url.rstrip("/") + path, timeout=5)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive() and self.error is None, self.error


@pytest.fixture
def publishing():
    p = Publishing(_pose, 0.02)
    yield p
    p.close()


@pytest.fixture
def stereo(tmp_path):
    rig = get_preset("stereo").rig
    path = tmp_path / "stereo.toml"
    save_calibration(rig, path)
    return rig, path


# --- the server ------------------------------------------------------------------------------------------------


def test_files_are_served_with_their_content_types(publishing):
    viewer = Viewer(publishing.endpoint)
    try:
        for path, kind, needle in [("/", "text/html", b"view.js"), ("/index.html", "text/html", b"<canvas"),
                                   ("/view.js", "text/javascript", b"handstreamView"),
                                   ("/view.css", "text/css", b"#scene")]:  # fmt: skip
            with viewer.get(path) as r:
                body = r.read()
                assert r.status == 200 and r.headers["Content-Type"].startswith(kind), (path, r.headers)
                assert needle in body and int(r.headers["Content-Length"]) == len(body)
        for path in ("/../server.py", "/nope.js", "/static/view.js"):
            with pytest.raises(urllib.error.HTTPError, match="404"):
                viewer.get(path)
        with viewer.get("/state") as r:
            d = json.loads(r.read())
        assert r.headers["Content-Type"] == "application/json" and d["pages"] == [] and d["received"] >= 0
    finally:
        viewer.close()


async def _messages(url: str, until, timeout: float = 10, reported: list | None = None) -> list[dict]:
    """Messages of the viewer's WebSocket until ``until(messages)``; then it reports a state as a page does, and
    what ``GET /state`` answers then goes into ``reported``."""
    out: list[dict] = []
    async with websockets.connect(url.replace("http://", "ws://") + "ws", open_timeout=10) as ws:
        t_end = time.monotonic() + timeout
        while not until(out):
            out.append(json.loads(await asyncio.wait_for(ws.recv(), max(0.1, t_end - time.monotonic()))))
        await ws.send(json.dumps({"type": "state", "posesReceived": 3}))
        await asyncio.sleep(0.3)
        if reported is not None:
            reported.append(page_state(url))
        return out


def test_scene_on_connect_then_poses_with_their_2d_views(publishing, stereo):
    rig, path = stereo
    viewer = Viewer(publishing.endpoint, rig=load_rig(path), source=str(path), include_2d=True)
    try:
        reported: list = []
        msgs = asyncio.run(_messages(viewer.url, lambda m: sum(x["type"] == "pose" for x in m) >= 3, reported=reported))
    finally:
        viewer.close()
    assert msgs[0]["type"] == "scene"  # first, before any pose
    scene = msgs[0]
    assert scene["source"] == str(path) and scene["include_2d"] and scene["endpoint"] == publishing.endpoint
    assert [c["name"] for c in scene["cameras"]] == rig.names and scene["up"] == [0.0, -1.0, 0.0]
    assert len(scene["bones"]) == 21 and scene["joint_names"][0] == "wrist"
    for got, cam in zip(scene["cameras"], rig.cameras, strict=True):
        assert got["size"] == list(cam.size) and got["model"] == cam.model
        np.testing.assert_allclose(got["K"], cam.K)
        np.testing.assert_allclose(got["R"], cam.R)
        np.testing.assert_allclose(got["center"], cam.center, atol=1e-6)
        rays = np.array(got["border"])
        assert rays.shape == (4 * BORDER_SAMPLES, 3)
        np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1, atol=1e-4)
        # the border rays go through the image corners: project them back
        corner = cam.project(cam.center + 0.5 * rays[0])
        np.testing.assert_allclose(corner, [-0.5, -0.5], atol=0.05)
    poses = [m for m in msgs if m["type"] == "pose"]
    assert any(m["type"] == "status" for m in msgs)
    for p in poses:
        want = _pose(p["seq"])
        left, right = p["hands"]
        assert left["joints"][20] == [None] * 3 and right["joints"][0] == [None] * 3 and p["views"] == ["left", "right"]
        np.testing.assert_allclose(np.array(left["joints"][:20]), want.hands[0].joints[:20], atol=1e-6)
        for cam in rig.cameras:
            uv = p["views2d"][cam.name]
            assert len(uv) == 2 and uv[0][20] is None and uv[1] == [None] * 21
            np.testing.assert_allclose(np.array(uv[0][:20]), cam.project(want.hands[0].joints[:20]), atol=0.06)
    assert reported == [{"type": "state", "posesReceived": 3}]  # what the page said about itself: GET /state


def test_thumbnails_come_as_jpeg_with_the_joints_of_their_own_pose(stereo):
    rig, path = stereo
    cam = rig["left"]
    image = np.tile(np.arange(160, dtype=np.uint8), (120, 1))  # a horizontal ramp: survives JPEG
    sent: dict[int, PoseMessage] = {}

    def thumbs(pose: PoseMessage) -> list:
        sent[pose.seq] = pose
        meta = {"thumbnail": True, "width": cam.width, "height": cam.height, "pose_seq": pose.seq}
        return [FrameMessage("left", pose.seq, pose.t_capture_ns, image, meta=meta)] if pose.seq % 3 == 0 else []

    publishing = Publishing(_pose, 0.02, after=thumbs)
    viewer = Viewer(publishing.endpoint, rig=load_rig(path), source=str(path), include_2d=True)
    try:
        msgs = asyncio.run(_messages(viewer.url, lambda m: sum(x["type"] == "thumbnail" for x in m) >= 2))
    finally:
        viewer.close()
        publishing.close()
    got = [m for m in msgs if m["type"] == "thumbnail"]
    t_arrival = [i for i, m in enumerate(msgs) if m["type"] == "thumbnail"]
    assert t_arrival[0] > 0 and msgs[0]["type"] == "scene"
    for m in got:
        pose = sent[m["pose_seq"]]
        assert m["camera"] == "left" and m["t_capture_ns"] == pose.t_capture_ns
        assert m["size"] == [160, 120] and m["frame_size"] == list(cam.size)
        decoded = cv2.imdecode(np.frombuffer(base64.b64decode(m["jpeg"]), np.uint8), cv2.IMREAD_UNCHANGED)
        assert decoded.shape == (120, 160) and np.abs(decoded.astype(int) - image).mean() < 2
        left, right = m["hands"]
        assert left["side"] == "left" and left["uv"][20] is None and right["uv"] == [None] * 21
        np.testing.assert_allclose(np.array(left["uv"][:20]), cam.project(pose.hands[0].joints[:20]), atol=0.06)


def test_the_status_message_carries_the_engines_own_status(publishing):
    viewer = Viewer(publishing.endpoint)
    try:
        for _ in range(3):
            publishing.pub.publish_status({"pose_rate": 29.5, "fps_in": {"a": 30.0}, "poses": 7}, "engine")
            time.sleep(0.05)
        msgs = asyncio.run(_messages(
            viewer.url, lambda m: any(x["type"] == "status" and "engine" in x["processes"] for x in m)))  # fmt: skip
    finally:
        viewer.close()
    status = [m for m in msgs if m["type"] == "status" and "engine" in m["processes"]][-1]
    engine = status["processes"]["engine"]
    assert engine["data"]["pose_rate"] == 29.5 and not engine["stale"] and engine["age_s"] < 5
    v = status["viewer"]
    assert v["received"] > 0 and v["subscriber"]["received"] > 0 and "poses_dropped" in v and v["pages"] == 1
    assert msgs[0]["cameras"] == [] and msgs[0]["source"].startswith("none")  # no calibration, unknown cameras


def test_the_scene_rules():
    headset = get_preset("headset4").rig
    assert preset_for_cameras(list(reversed(headset.names)))[0] == "headset4"
    assert preset_for_cameras(["left", "right"]) is None  # too common a pair of names to guess the stereo preset
    np.testing.assert_array_equal(rig_up(headset), [0, -1, 0])  # sideways cameras: OpenCV's y-down convention
    assert scene_message(None, "none", include_2d=False, endpoint="tcp://x:1")["cameras"] == []
    d = scene_message(headset, "demo", include_2d=False, endpoint="tcp://x:1")
    assert all(all(r is not None for r in c["border"]) for c in d["cameras"])  # fisheye borders inverted


def test_a_missing_websockets_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "websockets", None)  # import fails as if not installed
    with pytest.raises(HandstreamError, match=r"handstream\[bridges\]"):
        run_view({"host": "127.0.0.1", "port": 0}, StopFlag(), endpoint="tcp://127.0.0.1:1")


def test_bad_flags_give_one_line_and_exit_2(tmp_path):
    bad_calibration = tmp_path / "bad.toml"
    bad_calibration.write_text("[cam_0]\nname = 'a'\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = str(busy.getsockname()[1])
        cases = [
            (["--port", taken], f"--port {taken}", "cannot listen"),
            (["--port", "70000"], "--port", "0..65535"),
            (["--host", "0.0.0.0"], "--host 0.0.0.0", "--allow-remote"),
            (["--endpoint", "nope://x"], "nope://x"),
            (["--calibration", str(tmp_path / "missing.toml")], "missing.toml", "not found"),
            (["--calibration", str(bad_calibration)], "bad.toml"),
            (["--unit-scale", "0.04"], "--unit-scale", "--calibration"),
            (["--port", "0", "--curve-dir", str(tmp_path / "no-keys")], "no-keys", "handstream keys"),
        ]
        head = [sys.executable, "-m", "handstream.cli", "view", "--no-open", "--seconds", "5"]
        procs = [subprocess.Popen([*head, *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for a, *_ in cases]  # fmt: skip
        for p, (args, *needles) in zip(procs, cases, strict=True):
            out, err = p.communicate(timeout=60)
            assert_one_line_error(subprocess.CompletedProcess(args, p.returncode, out, err), *needles)


# --- the page in a real browser --------------------------------------------------------------------------------


def _start(cmd: list[str], log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "handstream.cli", *cmd], stdout=log, stderr=log)


@pytest.mark.slow
def test_the_page_draws_the_demo_and_survives_restarts(tmp_path):
    if find_chromium() is None:
        pytest.skip("no chromium / chromium-browser / google-chrome on PATH (Debian: apt-get install chromium)")
    frames, poses, port = free_tcp_port(), free_tcp_port(), free_tcp_port()
    serve_cmd = ["serve", "--demo", "-q", "--frames-endpoint", f"tcp://127.0.0.1:{frames}",
                 "--poses-endpoint", f"tcp://127.0.0.1:{poses}"]  # fmt: skip
    view_cmd = ["view", "--no-open", "-q", "--port", str(port), "--endpoint", f"tcp://127.0.0.1:{poses}",
                "--include-2d"]  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    log = (tmp_path / "log.txt").open("w")
    serve, view, browser = _start(serve_cmd, log), _start(view_cmd, log), None
    try:
        for _ in range(100):  # the viewer listens within a second or two
            if view.poll() is not None or page_state(url) is not None or _listening(port):
                break
            time.sleep(0.1)
        browser = Chromium(url)
        t0 = time.monotonic()
        s = wait_for(url, lambda s: s["maxJointsDrawn"] >= 21 and s["camerasDrawn"] == 4 and s["views2dDrawn"] > 0
                     and s["thumbnailsDrawn"] > 0, 60,
                     "hands, the 4 demo cameras and a 2D view with its camera image drawn")  # fmt: skip
        print(f"\nfirst hands drawn {time.monotonic() - t0:.1f} s after the browser started: {s}")
        assert s["connected"] and not s["waiting"] and s["posesReceived"] > 0 and s["lastSeq"] is not None
        assert "headset4" in s["sceneSource"]
        assert s["thumbnailsReceived"] > 0 and s["thumbnailSize"] == [159, 120]  # the engine's 636x480 / 4
        shot = browser.screenshot(tmp_path / "view.png", settle_s=0.2)
        assert shot.stat().st_size > 20_000  # a drawn picture, not a blank page

        stop_cli(serve)  # the engine goes away: the page says it waits
        s = wait_for(url, lambda s: s["waiting"] and s["connected"], 10, "waiting (engine stopped)")
        received = s["posesReceived"]
        serve = _start(serve_cmd, log)  # ... and comes back: the viewer's subscriber reconnects by itself
        s = wait_for(url, lambda s: not s["waiting"] and s["posesReceived"] > received + 10, 60, "poses again")
        assert s["reconnects"] == 0  # the page's own connection never dropped

        stop_cli(view)  # the viewer restarts: the page reconnects by itself (backoff)
        view = _start(view_cmd, log)
        s = wait_for(url, lambda s: s["reconnects"] >= 1 and not s["waiting"], 30, "reconnected to the viewer")
        print(f"after restarts: {s}")
    finally:
        if browser is not None:
            browser.close()
        stop_cli(view)
        stop_cli(serve)
        log.close()
    assert view.returncode == 0 and serve.returncode == 0, (tmp_path / "log.txt").read_text()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
