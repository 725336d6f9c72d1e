"""The bridges end to end with real client libraries: a websockets client (JSON, binary, OpenXR; a stalled client
does not delay another), a python-osc server (one bundle per pose), a pylsl inlet (samples, channel labels, capture
timestamps on LSL's clock); bad options -> one line, exit 2; ``serve --demo --bridge`` delivers the engine's poses
and survives its bridge being killed.

Most tests publish real ``PoseMessage``s through a real ``PosePublisher`` socket and run the bridge in a thread of
the test (the same ``run_bridge`` the ``python -m handstream.bridges`` child runs); one test runs the whole system.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from handstream.bridges import run_bridge
from handstream.bridges.formats import HAND_BYTES, HEADER, OPENXR_BYTES, decode_binary
from handstream.poses import HandPose, PoseMessage
from handstream.runtime import StopFlag
from handstream.skeleton import JOINT_NAMES
from handstream.transport.pubsub import PoseSubscriber
from tests.cli_run import assert_one_line_error, stop_cli
from tests.conftest import free_tcp_port
from tests.publishing import Publishing

websockets = pytest.importorskip("websockets", reason="websockets not installed (pip install 'handstream[bridges]')")


def _pose(seq: int) -> PoseMessage:
    """A left hand with 20 tracked joints (joint 20, the little fingertip, NaN) that depend on seq, and an
    untracked right hand."""
    rng = np.random.default_rng(seq)
    joints = (np.array([0.1, 0.0, 0.4]) + rng.normal(0, 0.03, (21, 3))).astype(np.float32)
    joints[20] = np.nan
    conf = np.linspace(0.5, 1.0, 21, dtype=np.float32)
    nan21 = np.full(21, np.nan, np.float32)
    hands = [
        HandPose("left", 0.9, joints, conf, np.full(21, 1.5, np.float32), np.full(21, 2, np.uint8)),
        HandPose("right", 0.1, np.full((21, 3), np.nan, np.float32), nan21, nan21, np.zeros(21, np.uint8)),
    ]
    return PoseMessage(seq, time.time_ns(), 0, {"infer": 5.0}, ["a", "b"], hands)


class Bridge:
    """``run_bridge`` in a thread until closed."""

    def __init__(self, kind: str, endpoint: str, **options):
        self.stop = StopFlag()
        self.ready = threading.Event()
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(kind, endpoint, options), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), f"the {kind} bridge did not start: {self.error!r}"

    def _run(self, kind, endpoint, options):
        try:
            self.code = run_bridge(kind, options, self.stop, endpoint=endpoint, on_ready=lambda _: self.ready.set())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.ready.set()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive() and self.error is None and self.code == 0, self.error


@pytest.fixture
def publishing():
    p = Publishing(_pose, 0.01)
    yield p
    p.close()


# --- websocket -------------------------------------------------------------------------------------------------


async def _receive(url: str, n: int) -> list:
    async with websockets.connect(url, open_timeout=10) as ws:
        return [await asyncio.wait_for(ws.recv(), 10) for _ in range(n)]


def test_websocket_json_openxr_and_binary(publishing):
    port = free_tcp_port()
    bridge = Bridge("websocket", publishing.endpoint, port=port)
    try:

        async def both():
            base = f"ws://127.0.0.1:{port}/"
            return await asyncio.gather(
                _receive(base + "?format=json&openxr=1", 5),
                _receive(base + "?format=binary", 5),
                _receive(base + "?format=binary&openxr=1", 1),
            )

        texts, blobs, (xr_blob,) = asyncio.run(both())
        with pytest.raises(websockets.exceptions.InvalidStatus, match="400"):
            asyncio.run(_receive(f"ws://127.0.0.1:{port}/?format=xml", 1))
    finally:
        bridge.close()
    for text in texts:
        d = json.loads(text)
        want = _pose(d["seq"])
        assert d["t_capture_ns"] > 0 and d["t_publish_ns"] == publishing.published[d["seq"]]
        left, right = d["hands"]
        assert left["side"] == "left" and left["tracked"] and right["side"] == "right" and not right["tracked"]
        assert left["joints"][20] == [None] * 3 and right["joints"][0] == [None] * 3
        got = np.array([j for i, j in enumerate(left["joints"]) if i != 20], np.float32)
        np.testing.assert_allclose(got, np.delete(want.hands[0].joints, 20, 0), atol=1e-6)
        np.testing.assert_allclose(left["conf"], want.hands[0].conf, atol=1e-6)
        ox = left["openxr"]
        assert len(ox["positions"]) == len(ox["orientations"]) == len(ox["radii"]) == 26
        np.testing.assert_allclose(ox["positions"][1], want.hands[0].joints[0], atol=1e-6)  # XR wrist = wrist
    seqs = []
    for blob in blobs:
        assert isinstance(blob, bytes) and len(blob) == HEADER.size + 2 * HAND_BYTES == 720
        d = decode_binary(blob)
        seqs.append(d["seq"])
        want = _pose(d["seq"])
        left, right = d["hands"]
        assert (left["side"], left["tracked"], right["side"], right["tracked"]) == ("left", True, "right", False)
        np.testing.assert_array_equal(left["joints"], want.hands[0].joints)  # float32 exactly, NaN included
        assert abs(left["presence"] - 0.9) < 1e-6 and np.isnan(right["joints"]).all()
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    xr = decode_binary(xr_blob)
    assert len(xr_blob) == HEADER.size + 2 * (HAND_BYTES + OPENXR_BYTES) == 2384
    left = xr["hands"][0]
    np.testing.assert_array_equal(left["openxr_positions"], _pose(xr["seq"]).hands[0].openxr().positions.astype("<f4"))
    assert left["openxr_orientations"].shape == (26, 4) and left["openxr_radii"].shape == (26,)


def test_a_missing_library_names_the_extra(monkeypatch):
    from handstream.bridges import check_options
    from handstream.errors import HandstreamError

    for kind, module in (("websocket", "websockets"), ("osc", "pythonosc"), ("lsl", "pylsl")):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
        with pytest.raises(HandstreamError, match=r"handstream\[bridges\]"):
            check_options(kind, {"port": free_tcp_port()} if kind == "websocket" else {})


def _stalled_client(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads (a tiny receive buffer)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(
        b"GET /?format=json&openxr=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return s


def test_a_stalled_websocket_client_does_not_delay_another(publishing):
    port = free_tcp_port()
    bridge = Bridge("websocket", publishing.endpoint, port=port)
    stalled = _stalled_client(port)
    try:

        async def healthy():
            lat, seqs = [], []
            async with websockets.connect(f"ws://127.0.0.1:{port}/?format=json&openxr=1") as ws:
                t_end = time.monotonic() + 4.0
                while time.monotonic() < t_end:
                    d = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    lat.append((time.time_ns() - d["t_publish_ns"]) * 1e-6)
                    seqs.append(d["seq"])
            return np.array(lat), seqs

        lat, seqs = asyncio.run(healthy())
        status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5).read())
    finally:
        stalled.close()
        bridge.close()
    stalls = [c for c in status["clients"] if c["sent"] < 0.5 * status["received"]]
    healthy_c = [c for c in status["finished"] if c["sent"] >= 0.9 * len(seqs)]
    span = seqs[-1] - seqs[0] + 1
    print(
        f"\nhealthy client: {len(seqs)} of {span} poses ({100 * (1 - len(seqs) / span):.1f}% dropped), latency p50 "
        f"{np.percentile(lat, 50):.2f} p99 {np.percentile(lat, 99):.2f} max {lat.max():.2f} ms; stalled client: "
        f"{stalls[0]['sent'] if stalls else '?'} sent, {stalls[0]['dropped'] if stalls else '?'} dropped of "
        f"{status['received']}"
    )
    assert stalls and stalls[0]["dropped"] > 0.5 * status["received"], status  # the stalled one drops, not queues
    assert healthy_c, status
    assert len(seqs) >= 0.8 * span, f"healthy client got {len(seqs)} of {span}"
    assert np.percentile(lat, 50) < 50 and np.percentile(lat, 90) < 200, lat


# --- osc -------------------------------------------------------------------------------------------------------


def test_osc_bundles_reach_a_python_osc_server(publishing):
    pytest.importorskip("pythonosc", reason="python-osc not installed (pip install 'handstream[bridges]')")
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_bundle import OscBundle
    from pythonosc.osc_server import BlockingOSCUDPServer

    bundles: list[list[tuple[str, list]]] = []

    class Server(BlockingOSCUDPServer):  # also keeps each datagram's messages together: one bundle per pose
        def verify_request(self, request, client_address):
            data = request[0]
            assert OscBundle.dgram_is_bundle(data)
            bundles.append([(m.address, list(m.params)) for m in OscBundle(data)])
            return True

    messages: list[tuple[str, list]] = []
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: messages.append((address, list(args))))
    server = Server(("127.0.0.1", 0), dispatcher)
    server.timeout = 0.2
    port = server.server_address[1]
    bridge = Bridge("osc", publishing.endpoint, port=port)
    try:
        t_end = time.monotonic() + 10
        while len(bundles) < 5 and time.monotonic() < t_end:
            server.handle_request()
    finally:
        bridge.close()
        server.server_close()
    assert len(bundles) >= 5
    bundle = dict(bundles[-1])
    seq, t_capture, t_publish = bundle["/handstream/frame"]
    assert t_publish == publishing.published[seq] and 0 < t_capture <= t_publish
    want = _pose(seq).hands[0]
    assert bundle["/handstream/left/tracked"] == [1] and bundle["/handstream/right/tracked"] == [0]
    assert abs(bundle["/handstream/left/presence"][0] - 0.9) < 1e-6
    for k, name in enumerate(JOINT_NAMES[:20]):
        np.testing.assert_allclose(bundle[f"/handstream/left/joint/{name}"], [*want.joints[k], want.conf[k]], atol=1e-6)
    assert "/handstream/left/joint/pinky_tip" not in bundle  # not tracked: not sent
    assert not any(a.startswith("/handstream/right/joint/") for a in bundle)
    flat = np.array(bundle["/handstream/left/joints"], np.float32)
    np.testing.assert_array_equal(flat, want.joints.reshape(-1))
    assert len(messages) >= sum(len(b) for b in bundles[:5])  # the dispatcher saw every message of the bundles


def _tpose(side: str) -> np.ndarray:
    """(21, 3) a flat hand held out sideways, palm down, in the rig frame (x right, y down, z forward): the left
    hand's fingers along -x, the right's along +x, the thumb forward: VMC's rest pose."""
    s = -1.0 if side == "left" else 1.0
    j = np.zeros((21, 3))
    for k in range(4):
        j[1 + k] = [s * (0.03 + 0.03 * k), 0.0, 0.05]
        for mcp, lateral in ((5, 0.03), (9, 0.0), (13, -0.015), (17, -0.03)):
            j[mcp + k] = [s * (0.09 + 0.03 * k), 0.0, lateral]
    return j


@pytest.mark.parametrize("side", ["left", "right"])
def test_vmc_bones_rest_pose_and_local_chain(side):
    """A flat hand palm down is VMC's rest (identity rotations); the local poses chained from the hand give back
    every joint in Unity's frame (the rig's y negated); 16 bones, Unity's names, unit quaternions."""
    from handstream.bridges.vmc import BONES, MIRROR, hand_bones
    from handstream.openxr import JOINTS, quaternion_to_matrix

    j = _tpose(side)
    ones = np.ones(21, np.float32)
    bones = hand_bones(HandPose(side, 1.0, j.astype(np.float32), ones, ones, np.ones(21, np.uint8)))
    assert [n for n, _, _ in bones] == [n for n in BONES if n.startswith(side.capitalize())]
    assert len(bones) == 16
    for name, p, q in bones:
        assert abs(np.linalg.norm(q) - 1) < 1e-9
        if name.endswith("Hand"):
            np.testing.assert_allclose(p, j[0] * MIRROR, atol=1e-9)
        else:
            np.testing.assert_allclose(q, [0, 0, 0, 1], atol=1e-9, err_msg=name)  # straight: no bend
    # bend the whole hand: the chain of local poses still lands on the joints (Unity's frame)
    rng = np.random.default_rng(3)
    bent = j + rng.normal(0, 0.004, j.shape)
    xr = HandPose(side, 1.0, bent.astype(np.float32), ones, ones, np.ones(21, np.uint8)).openxr()
    cap = side.capitalize()

    def parent_of(name: str) -> str | None:
        for child, parent in (("Distal", "Intermediate"), ("Intermediate", "Proximal"), ("Proximal", None)):
            if name.endswith(child):
                return name[: -len(child)] + parent if parent else f"{cap}Hand"
        return None

    got: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> global (position, rotation)
    for name, p, q in hand_bones(HandPose(side, 1.0, bent.astype(np.float32), ones, ones, np.ones(21, np.uint8))):
        r, parent = quaternion_to_matrix(q), parent_of(name)
        if parent is None:
            got[name] = (p, r)
        else:
            pp, pr = got[parent]
            got[name] = (pp + pr @ p, pr @ r)
    finger = {"Thumb": "thumb_metacarpal", "Index": "index_proximal", "Little": "little_proximal"}
    for f, first in finger.items():
        for k, phalanx in enumerate(("Proximal", "Intermediate", "Distal")):
            i = JOINTS.index(first) + k
            position, rotation = got[f"{cap}{f}{phalanx}"]
            np.testing.assert_allclose(position, xr.positions[i] * MIRROR, atol=1e-6)
            # the rest frame's finger axis (-x left, +x right) turned onto the bone: OpenXR's -Z, mirrored
            axis = rotation[:, 0] * (-1 if side == "left" else 1)
            np.testing.assert_allclose(axis, -xr.matrices()[i][:, 2] * MIRROR, atol=1e-6)


def test_vmc_bundles_from_serve_demo(tmp_path):
    """``serve --demo --bridge osc:vmc=1`` to a python-osc server: VMC bundles with OK, T and, per tracked hand,
    its 15 finger bones and the hand, Unity's names, unit quaternions."""
    pytest.importorskip("pythonosc", reason="python-osc not installed (pip install 'handstream[bridges]')")
    from pythonosc.osc_bundle import OscBundle
    from pythonosc.osc_server import BlockingOSCUDPServer

    from handstream.bridges.vmc import BONES

    bundles: list[list[tuple[str, list]]] = []

    class Server(BlockingOSCUDPServer):
        def verify_request(self, request, client_address):
            if OscBundle.dgram_is_bundle(request[0]):
                bundles.append([(m.address, list(m.params)) for m in OscBundle(request[0])])
            return False  # kept above; the dispatcher is not needed

    server = Server(("127.0.0.1", 0), None)
    server.timeout = 0.2
    frames, poses = free_tcp_port(), free_tcp_port()
    log = (tmp_path / "serve.log").open("w")
    cmd = [sys.executable, "-m", "handstream.cli", "serve", "--demo", "--frames-endpoint", f"tcp://127.0.0.1:{frames}",
           "--poses-endpoint", f"tcp://127.0.0.1:{poses}", "--bridge",
           f"osc:port={server.server_address[1]},vmc=1", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=log)

    def full_hands(bundle) -> list[str]:
        names = [args[0] for address, args in bundle if address == "/VMC/Ext/Bone/Pos"]
        return [side for side in ("Left", "Right") if sum(n.startswith(side) for n in names) == 16]

    try:
        t_end = time.monotonic() + 90  # the first start renders the demo's loop
        while time.monotonic() < t_end and proc.poll() is None and sum(bool(full_hands(b)) for b in bundles) < 5:
            server.handle_request()
    finally:
        stop_cli(proc)
        log.close()
        server.server_close()
    assert sum(bool(full_hands(b)) for b in bundles) >= 5, (len(bundles), (tmp_path / "serve.log").read_text())
    times = []
    for bundle in bundles:
        assert bundle[0] == ("/VMC/Ext/OK", [1]) and bundle[1][0] == "/VMC/Ext/T"
        times.append(bundle[1][1][0])
        for address, args in bundle[2:]:
            assert address == "/VMC/Ext/Bone/Pos" and len(args) == 8 and args[0] in BONES, (address, args)
            assert all(isinstance(v, float) and np.isfinite(v) for v in args[1:])
            assert abs(np.linalg.norm(args[4:]) - 1) < 1e-5, args
            assert np.linalg.norm(args[1:4]) < 2.0  # metres
    assert times == sorted(times)


# --- lsl -------------------------------------------------------------------------------------------------------


def test_lsl_inlet_receives_samples_stamped_with_the_capture_time(publishing):
    pylsl = pytest.importorskip("pylsl", reason="pylsl not installed (pip install 'handstream[bridges]')")
    name = f"hstest{os.getpid()}x{free_tcp_port()}"
    bridge = Bridge("lsl", publishing.endpoint, name=name, rate=100.0)
    try:
        streams = pylsl.resolve_byprop("name", f"{name}-left", timeout=10)
        assert streams, "no LSL stream found"
        inlet = pylsl.StreamInlet(streams[0])
        info = inlet.info(timeout=5)
        assert (info.type(), info.channel_count(), info.nominal_srate()) == ("Mocap", 84, 100.0)
        ch = info.desc().child("channels").child("channel")
        labels = []
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        assert labels[:5] == ["wrist_x", "wrist_y", "wrist_z", "wrist_conf", "thumb_cmc_x"] and len(labels) == 84
        inlet.open_stream(timeout=5)
        samples = []
        t_end = time.monotonic() + 10
        while len(samples) < 10 and time.monotonic() < t_end:
            sample, ts = inlet.pull_sample(timeout=1.0)
            if sample is not None:
                samples.append((np.array(sample, np.float32), ts, pylsl.local_clock()))
    finally:
        bridge.close()
    assert len(samples) >= 10
    # the capture time on LSL's clock: before the sample arrived, and not long before (publisher -> bridge -> LSL)
    ages = np.array([now - ts for _, ts, now in samples])
    print(f"\nLSL: capture-to-inlet age p50 {np.median(ages) * 1e3:.2f} ms, max {ages.max() * 1e3:.2f} ms")
    assert (ages > 0).all() and (ages < 0.5).all(), ages
    # which pose a sample is: match its values to a published pose
    values, _, _ = samples[-1]
    seq = max(publishing.published)
    for s in range(seq, max(0, seq - 200), -1):
        want = _pose(s).hands[0]
        if np.allclose(values.reshape(21, 4)[:20, :3], want.joints[:20]):
            break
    else:
        raise AssertionError("the sample matches no published pose")
    np.testing.assert_allclose(values.reshape(21, 4)[:, 3], want.conf)
    assert np.isnan(values.reshape(21, 4)[20, :3]).all()


# --- the command line ------------------------------------------------------------------------------------------


def test_bad_options_give_one_line_and_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = str(busy.getsockname()[1])
        cases = [
            (["bridge", "nope"], "bridge KIND", "websocket, osc, lsl"),
            (["bridge", "websocket", "--port", taken], f"--port {taken}", "cannot listen"),
            (["bridge", "websocket", "--port", "70000"], "--port", "1..65535"),
            (["bridge", "websocket", "--host", "0.0.0.0"], "--host 0.0.0.0", "--allow-remote"),
            (["bridge", "osc", "--rate", "5"], "--rate", "osc bridge"),
            (["bridge", "lsl", "--vmc"], "--vmc", "lsl bridge"),
            (["serve", "--demo", "--bridge", "osc:vmc=maybe"], "--vmc", "true or false"),
            (["bridge", "lsl", "--endpoint", "nope://x"], "nope://x"),
            (["serve", "--demo", "--bridge", f"websocket:port={taken}"], f"--port {taken}", "cannot listen"),
            (["serve", "--demo", "--bridge", "websocket:speed=3"], "no option 'speed'"),
        ]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "handstream.cli", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for args, *_ in cases
        ]
        for p, (args, *needles) in zip(procs, cases, strict=True):
            out, err = p.communicate(timeout=60)
            assert_one_line_error(subprocess.CompletedProcess(args, p.returncode, out, err), *needles)


def _children(pid: int) -> dict[int, str]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for c in (task / "children").read_text().split():
            try:
                out[int(c)] = Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                pass
    return out


def test_serve_demo_bridge_delivers_poses_and_survives_its_bridge_dying(tmp_path):
    ws_port, frames, poses = free_tcp_port(), free_tcp_port(), free_tcp_port()
    log = (tmp_path / "serve.log").open("w")
    cmd = [sys.executable, "-m", "handstream.cli", "serve", "--demo", "--frames-endpoint", f"tcp://127.0.0.1:{frames}",
           "--poses-endpoint", f"tcp://127.0.0.1:{poses}", "--bridge", f"websocket:port={ws_port}", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=log)
    url = f"ws://127.0.0.1:{ws_port}/?format=binary"

    async def first_poses(n: int, timeout: float) -> list[dict]:
        t_end = time.monotonic() + timeout
        while True:
            try:
                return [decode_binary(b) for b in await _receive(url, n)]
            except (OSError, TimeoutError, websockets.exceptions.InvalidHandshake):
                if time.monotonic() > t_end or proc.poll() is not None:
                    raise
                await asyncio.sleep(0.3)

    try:
        got = asyncio.run(first_poses(5, 90))  # the first start renders the demo's loop
        assert [d["seq"] for d in got] == sorted(d["seq"] for d in got)
        for d in got:
            assert [h["side"] for h in d["hands"]] == ["left", "right"]
            assert d["t_publish_ns"] >= d["t_capture_ns"] > 0
        tracked = [h for d in got for h in d["hands"] if h["tracked"]]
        assert tracked, "the demo's hands were not tracked in 5 poses"
        j = tracked[-1]["joints"]
        assert np.isfinite(j).all(axis=1).sum() >= 8 and np.nanmax(np.abs(j)) < 2.0  # metres
        bridges = [pid for pid, cmdline in _children(proc.pid).items() if "handstream.bridges" in cmdline]
        assert len(bridges) == 1
        os.kill(bridges[0], signal.SIGKILL)
        sub = PoseSubscriber(f"tcp://127.0.0.1:{poses}")
        try:  # the engine goes on while the bridge is away
            t_end = time.monotonic() + 10
            n = 0
            while n < 5 and time.monotonic() < t_end:
                n += sub.recv(500) is not None
            assert n == 5, "the engine stopped publishing when its bridge died"
        finally:
            sub.close()
        again = asyncio.run(first_poses(2, 20))  # restarted by the supervisor
        assert again[-1]["seq"] > got[-1]["seq"]
        assert proc.poll() is None
    finally:
        stop_cli(proc)
        log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()
    assert "bridge-websocket exited" in (tmp_path / "serve.log").read_text()


def test_the_docs_browser_receiver_reads_the_binary_poses(publishing):
    """docs/use-the-poses.md's JavaScript, run by Node (its WebSocket is the browser's API)."""
    import re
    import shutil

    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed: the browser receiver of docs/use-the-poses.md is not run")
    js = re.search(r"<script>\n(.*?)</script>", (Path(__file__).parents[1] / "docs/use-the-poses.md").read_text(), re.S)
    port = free_tcp_port()
    code = js.group(1).replace("8765", str(port))
    code = code.replace("if (tracked) console.log(", "if (tracked) { globalThis.seen = (globalThis.seen || 0) + 1; "
                        "if (globalThis.seen >= 3) process.exit(0); } console.log(")  # fmt: skip
    bridge = Bridge("websocket", publishing.endpoint, port=port)
    try:
        r = subprocess.run([node, "--experimental-websocket", "-e", code], capture_output=True, text=True, timeout=20)
    finally:
        bridge.close()
    if "WebSocket is not defined" in r.stderr:
        pytest.skip(f"this node ({subprocess.run([node, '--version'], capture_output=True, text=True).stdout.strip()}) "
                    "has no WebSocket")  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "index tip" in ln]
    assert lines and all(ln.split()[1] in ("left", "right") for ln in lines), r.stdout


@pytest.mark.parametrize("vmc", [False, True], ids=["osc", "vmc"])
def test_the_bridge_command_runs_in_the_foreground_and_stops(publishing, vmc):
    """``handstream bridge osc [--vmc]`` as a user runs it: says where the poses go, delivers them, stops on
    SIGTERM."""
    pytest.importorskip("pythonosc", reason="python-osc not installed (pip install 'handstream[bridges]')")
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import BlockingOSCUDPServer

    frames: list[float] = []
    dispatcher = Dispatcher()
    dispatcher.map("/VMC/Ext/T" if vmc else "/handstream/frame", lambda _, t, *__: frames.append(t))
    server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    server.timeout = 0.2
    cmd = [sys.executable, "-m", "handstream.cli", "bridge", "osc", "--endpoint", publishing.endpoint, "--port",
           str(server.server_address[1]), *(["--vmc"] if vmc else [])]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        t_end = time.monotonic() + 30
        while len(frames) < 5 and time.monotonic() < t_end and proc.poll() is None:
            server.handle_request()
        assert len(frames) >= 5 and frames == sorted(frames)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
        assert time.monotonic() - t0 < 2.0 and proc.returncode == 0, err
        assert f"{'VMC' if vmc else 'OSC'} bundles to udp://127.0.0.1:{server.server_address[1]}" in err
    finally:
        server.server_close()
        if proc.poll() is None:
            proc.kill()
