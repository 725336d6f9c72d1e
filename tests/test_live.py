"""The live system with real processes and sockets: captures -> engine -> subscribers, and its faults.

Uses a randomly initialised model exported to ONNX (the plumbing must not depend on a trained model;
accuracy against ground truth with the shipped model is in test_live_accuracy.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from handstream.config import ServeConfig
from handstream.poses import PoseMessage
from handstream.serve import Supervisor, plan
from handstream.transport.messages import StatusMessage
from handstream.transport.pubsub import PoseSubscriber
from tests.conftest import free_tcp_port


def config(model: Path, preset: str = "stereo", endpoints: tuple[str, str] | None = None, **engine) -> ServeConfig:
    if endpoints is None:
        endpoints = (f"tcp://127.0.0.1:{free_tcp_port()}", f"tcp://127.0.0.1:{free_tcp_port()}")
    data = {
        "rig": {"preset": preset},
        "model": {"path": str(model), "threads": 1},
        "engine": {"status_interval_s": 0.5, **engine},
        "endpoints": {"frames": endpoints[0], "poses": endpoints[1]},
        "supervisor": {"backoff_s": 0.2, "backoff_max_s": 1.0},
    }
    return ServeConfig.from_dict(data, "test")


class Running:
    """A Supervisor in a background thread (the CLI adds only signal handling and printing)."""

    def __init__(self, cfg: ServeConfig):
        self.sup = Supervisor(plan(cfg))
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.code = self.sup.run()

    def stop(self) -> None:
        self.sup.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def wait_for(predicate, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def collect(sub: PoseSubscriber, seconds: float) -> tuple[list[PoseMessage], dict[str, StatusMessage]]:
    poses, statuses = [], {}
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        msg = sub.recv(timeout_ms=100)
        if isinstance(msg, PoseMessage):
            poses.append(msg)
        elif isinstance(msg, StatusMessage):
            statuses[msg.process] = msg
    return poses, statuses


@pytest.mark.parametrize("scheme", ["tcp", "ipc"])
def test_poses_stream_end_to_end(tmp_path, random_model, scheme):
    eps = None if scheme == "tcp" else (f"ipc://{tmp_path}/f.sock", f"ipc://{tmp_path}/p.sock")
    cfg = config(random_model, endpoints=eps, include_2d=True)
    with Running(cfg) as run:
        sub = PoseSubscriber(cfg.endpoints.poses, status=True)
        try:
            wait_for(lambda: sub.recv(timeout_ms=200), 30, "the first message")
            poses, statuses = collect(sub, 3.0)
            t0 = time.monotonic()  # captures report every second once running; allow a loaded machine time
            while not any(k.startswith("capture-") for k in statuses) and time.monotonic() - t0 < 20:
                statuses.update(collect(sub, 0.5)[1])
        finally:
            sub.close()
        assert len(poses) >= 5, f"only {len(poses)} poses in 3 s"
        names = list(run.sup.plan.rig.names)
        seqs = [p.seq for p in poses]
        assert seqs == sorted(seqs)
        for p in poses:
            assert set(p.views) <= set(names) and p.views
            assert p.t_publish_ns >= p.t_capture_ns > 0
            assert {"infer", "triangulate", "sync"} <= set(p.timings)
            assert [h.side for h in p.hands] == ["left", "right"]
            for h in p.hands:
                assert h.joints.shape == (21, 3) and h.joints_2d.shape == (len(p.views), 21, 2)
        assert "engine" in statuses and statuses["engine"].data["poses"] > 0
        assert any(k.startswith("capture-") for k in statuses)
    assert run.code == 0


def test_killed_capture_poses_continue_and_camera_rejoins(random_model):
    cfg = config(random_model, preset="headset4")
    cfg.supervisor.backoff_s = cfg.supervisor.backoff_max_s = 3.0  # the camera stays away long enough to look
    with Running(cfg) as run:
        sub = PoseSubscriber(cfg.endpoints.poses)
        try:
            names = list(run.sup.plan.rig.names)
            wait_for(lambda: (m := sub.recv(200)) is not None and len(m.views) == 4, 40, "a pose from all 4 views")
            victim = names[1]
            old_pid = run.sup.pids()[f"capture-{victim}"]
            os.kill(old_pid, signal.SIGKILL)
            time.sleep(0.7)  # the engine's camera timeout is 0.5 s
            poses, _ = collect(sub, 1.0)
            assert poses, "poses stopped when one camera died"
            assert all(victim not in p.views for p in poses[-3:]), [p.views for p in poses[-3:]]
            new_pid = wait_for(lambda: run.sup.pids().get(f"capture-{victim}"), 15, "the restart")
            assert new_pid != old_pid
            wait_for(lambda: (m := sub.recv(200)) is not None and victim in m.views, 30, "the camera to rejoin")
        finally:
            sub.close()


def test_a_subscriber_that_never_reads_does_not_slow_the_engine(random_model):
    cfg = config(random_model)
    with Running(cfg):
        ctx = zmq.Context.instance()
        stuck = ctx.socket(zmq.SUB)  # subscribes to everything and never reads
        stuck.setsockopt(zmq.RCVHWM, 1)
        stuck.setsockopt(zmq.SUBSCRIBE, b"")
        stuck.connect(cfg.endpoints.poses)
        sub = PoseSubscriber(cfg.endpoints.poses)
        try:
            wait_for(lambda: sub.recv(200), 30, "the first pose")
            first, _ = collect(sub, 2.0)
            second, _ = collect(sub, 2.0)
            assert len(first) >= 3 and len(second) >= 0.5 * len(first)
            assert second[-1].seq > first[-1].seq
        finally:
            sub.close()
            stuck.close(linger=0)


def test_garbage_on_the_frame_socket_is_dropped_and_counted_while_poses_continue(random_model):
    cfg = config(random_model)
    with Running(cfg):
        sub = PoseSubscriber(cfg.endpoints.poses, status=True)
        ctx = zmq.Context.instance()
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 100000)
        push.connect(cfg.endpoints.frames)
        rng = np.random.default_rng(7)
        try:
            wait_for(lambda: isinstance(sub.recv(200), PoseMessage), 30, "the first pose")
            import msgpack

            from handstream.transport.messages import PROTOCOL_VERSION

            header_lie = {"v": PROTOCOL_VERSION, "kind": "frame", "camera": "cam_0", "seq": 1, "t_capture_ns": 1,
                          "t_send_ns": 1, "buffers": [{"dtype": "uint8", "shape": [480, 640]}]}  # fmt: skip
            kinds = [
                lambda: [rng.bytes(int(rng.integers(1, 64)))],
                lambda: [b"frame.cam_0", msgpack.packb({"v": 99}), b""],
                lambda: [b"frame.cam_0", msgpack.packb(header_lie), b"short"],
                lambda: [
                    b"frame.cam_0",
                    msgpack.packb({**header_lie, "buffers": [{"dtype": "uint8", "shape": [10**6, 10**6]}]}),
                    b"x",
                ],
                lambda: [b"frame.cam_0", rng.bytes(40), rng.bytes(10)],
            ]
            for i in range(10_000):
                push.send_multipart(kinds[i % len(kinds)]())
            time.sleep(1.0)
            poses, statuses = collect(sub, 2.0)
            # a loaded machine drains the 10 000 messages more slowly: wait (bounded) for the counts
            deadline = time.monotonic() + 30
            while sum(statuses["engine"].data["receiver"]["dropped"].values()) < 9_900 and time.monotonic() < deadline:
                more, latest = collect(sub, 1.0)
                poses += more
                statuses.update(latest)
            assert len(poses) >= 3, "valid traffic stopped"
            dropped = statuses["engine"].data["receiver"]["dropped"]
            assert sum(dropped.values()) >= 10_000 * 0.99, dropped  # (a few may still be queued)
            assert len(dropped) >= 3, f"expected several drop reasons, got {dropped}"
        finally:
            sub.close()
            push.close(linger=0)


def test_bad_config_and_calibration_give_one_line_and_exit_2(tmp_path, random_model):
    bad = tmp_path / "serve.toml"
    bad.write_text('[rig]\npreset = "headset4"\n[engine]\nmin_views = 1\n')
    calib = tmp_path / "calib.toml"
    calib.write_text("[cam_0]\nname = 'a'\nsize = [640]\n")
    cases = [
        ["serve", "--config", str(bad)],
        ["serve", "--calibration", str(calib), "--video", "a.mp4", "--video", "b.mp4", "--model", str(random_model)],
        ["serve", "--synthetic", "nonsense", "--model", str(random_model)],
        ["serve", "--demo", "--model", str(tmp_path / "missing.onnx")],
        ["serve", "--demo", "--frames-endpoint", "tcp://0.0.0.0:5999", "--model", str(random_model)],
        ["serve", "--calibration", str(calib), "--video", "a.mp4", "--video", "b.mp4", "--live-render"],
    ]
    for args in cases:
        r = subprocess.run([sys.executable, "-m", "handstream.cli", *args], capture_output=True, text=True, timeout=60)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2, (args, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("handstream: error:"), (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_an_engine_that_fails_at_its_start_ends_serve_with_its_error_and_exit_2(tmp_path, random_model):
    # a model whose manifest reads but ONNX Runtime cannot load: only the engine process finds out; before, serve
    # restarted it (the same error again) and a short --seconds ended serve with exit 0
    (tmp_path / "random.onnx").write_bytes(random_model.read_bytes()[:4000])
    (tmp_path / "random.onnx.json").write_bytes(random_model.with_name("random.onnx.json").read_bytes())
    args = ["serve", "--demo", "--model", str(tmp_path / "random.onnx"), "--seconds", "4", "--quiet",
            "--frames-endpoint", f"tcp://127.0.0.1:{free_tcp_port()}",
            "--poses-endpoint", f"tcp://127.0.0.1:{free_tcp_port()}"]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "handstream.cli", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 2 and "random.onnx: onnxruntime cannot load it" in errors[0], r.stderr
    assert errors[1].startswith("handstream serve: error: the engine stopped at its start"), r.stderr
    assert "restarting" not in r.stderr and "Traceback" not in r.stderr


def test_plan_renders_the_synthetic_loop_once_and_live_render_skips_it(random_model):
    from handstream.cli.serve import build_config
    from handstream.config import SourceConfig

    cfg = config(random_model)  # stereo: 2 cameras
    cfg.sources = [SourceConfig(kind="synthetic", seed=5, loop_frames=8) for _ in range(2)]
    calls: list[tuple[int, int]] = []
    first = plan(cfg, progress=lambda done, total, what: calls.append((done, total)))
    assert calls[-1] == (16, 16) and all(s["render"] == "cached" for s in first.sources)
    for s in first.sources:
        assert len(list(Path(s["loop_dir"]).glob("0*.p?m"))) == 8  # stereo is RGB: .ppm
    calls.clear()
    again = plan(cfg, progress=lambda done, total, what: calls.append((done, total)))
    assert calls == [] and [s["loop_dir"] for s in again.sources] == [s["loop_dir"] for s in first.sources]

    live = build_config(synthetic="stereo", model=random_model, threads=1, live_render=True)
    p = plan(live, progress=lambda *a: calls.append(a))
    assert calls == [] and all(s["render"] == "live" and "loop_dir" not in s for s in p.sources)


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_sigint_stops_everything_within_2_s_and_leaves_no_process(random_model):
    frames, poses = free_tcp_port(), free_tcp_port()
    cmd = [sys.executable, "-m", "handstream.cli", "serve", "--synthetic", "stereo", "--model", str(random_model),
           "--frames-endpoint", f"tcp://127.0.0.1:{frames}", "--poses-endpoint", f"tcp://127.0.0.1:{poses}",
           "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    sub = PoseSubscriber(f"tcp://127.0.0.1:{poses}")
    try:
        wait_for(lambda: sub.recv(200), 40, "the first pose")
        children = _children_of(proc.pid)
        assert len(children) == 3  # engine + 2 captures
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=5)
        assert time.monotonic() - t0 < 2.0
        assert proc.returncode == 0, proc.stderr.read()
        time.sleep(0.1)
        alive = [
            c
            for c in children
            if Path(f"/proc/{c}").exists() and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2]
        ]
        assert not alive, f"left behind: {alive}"
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()


def test_supervisor_killed_hard_children_exit_by_themselves(random_model):
    frames, poses = free_tcp_port(), free_tcp_port()
    cmd = [sys.executable, "-m", "handstream.cli", "serve", "--synthetic", "stereo", "--model", str(random_model),
           "--frames-endpoint", f"tcp://127.0.0.1:{frames}", "--poses-endpoint", f"tcp://127.0.0.1:{poses}",
           "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        children = wait_for(lambda: len(c := _children_of(proc.pid)) == 3 and c, 30, "the children")
        proc.kill()
        proc.wait()
        wait_for(lambda: not any(Path(f"/proc/{c}").exists() for c in children), 5, "orphans to exit")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_curve_keys_encrypt_and_authenticate_the_whole_system(tmp_path, random_model):
    from handstream.transport.security import curve_config, generate_keys

    generate_keys(tmp_path / "keys")
    cfg = config(random_model)
    cfg.endpoints.curve_dir = str(tmp_path / "keys")
    with Running(cfg):
        good = PoseSubscriber(cfg.endpoints.poses, curve=curve_config(cfg.endpoints.curve_dir))
        plain = PoseSubscriber(cfg.endpoints.poses)  # no keys: the handshake fails, nothing arrives
        try:
            wait_for(lambda: isinstance(good.recv(200), PoseMessage), 40, "a pose over CURVE")
            assert plain.recv(timeout_ms=1000) is None
        finally:
            good.close()
            plain.close()
