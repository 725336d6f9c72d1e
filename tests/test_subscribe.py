"""Receiving poses: the Python API, `handstream subscribe` (text, --json, --record), recordings;
and serving the real stereo clip from its calibration and videos."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

import handstream
from handstream.client import pose_from_dict, pose_to_dict, read_recording
from handstream.poses import HandPose, PoseMessage
from tests.conftest import free_tcp_port
from tests.publishing import Publishing


def _pose(seq: int) -> PoseMessage:
    rng = np.random.default_rng(seq)
    joints = rng.normal(0, 0.1, (21, 3)).astype(np.float32)
    joints[5] = np.nan
    hands = [
        HandPose(
            "left", 0.9, joints, np.full(21, 0.8, np.float32), np.full(21, 1.5, np.float32), np.full(21, 2, np.uint8)
        ),
        HandPose(
            "right",
            0.1,
            np.full((21, 3), np.nan, np.float32),
            np.full(21, np.nan, np.float32),
            np.full(21, np.nan, np.float32),
            np.zeros(21, np.uint8),
        ),  # fmt: skip
    ]
    return PoseMessage(seq, time.time_ns(), 0, {"infer": 5.0}, ["a", "b"], hands)


def test_python_api_yields_typed_poses():
    p = Publishing(_pose)
    try:
        got = []
        for pose in handstream.subscribe(p.endpoint, timeout_s=5):
            got.append(pose)
            if len(got) == 3:
                break
    finally:
        p.close()
    assert [isinstance(g, PoseMessage) for g in got] == [True] * 3
    left = got[0].hand("left")
    assert left.joints.shape == (21, 3) and np.isnan(left.joints[5]).all()


def test_json_round_trip_keeps_nan():
    msg = _pose(4)
    back = pose_from_dict(json.loads(json.dumps(pose_to_dict(msg))))
    np.testing.assert_allclose(back.hands[0].joints, msg.hands[0].joints, atol=1e-6, equal_nan=True)
    assert np.isnan(back.hands[1].joints).all() and back.views == ["a", "b"]


def test_cli_json_and_record(tmp_path):
    p = Publishing(_pose)
    rec = tmp_path / "poses.jsonl"
    try:
        r = subprocess.run(
            [sys.executable, "-m", "handstream.cli", "subscribe", "-e", p.endpoint, "--json", "-n", "5",
             "--record", str(rec), "--timeout", "10"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        text = subprocess.run(
            [sys.executable, "-m", "handstream.cli", "subscribe", "-e", p.endpoint, "-n", "2", "--timeout", "10"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        p.close()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 5
    first = json.loads(lines[0])
    assert first["hands"][0]["tracked"] is True and first["hands"][1]["tracked"] is False
    assert first["hands"][0]["joints"][5] == [None, None, None]
    assert len(list(read_recording(rec))) == 5
    assert text.returncode == 0 and "left: 20/21" in text.stdout and "right: not tracked" in text.stdout


def test_subscribe_timeout_and_bad_record_path(tmp_path):
    port = free_tcp_port()
    r = subprocess.run([sys.executable, "-m", "handstream.cli", "subscribe", "-e", f"tcp://127.0.0.1:{port}",
                        "--timeout", "0.5"],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 0 and "no pose for 0.5 s" in r.stderr
    r = subprocess.run([sys.executable, "-m", "handstream.cli", "subscribe",
                        "--record", str(tmp_path / "no" / "x.jsonl")],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 2 and r.stderr.startswith("handstream: error:") and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.needs_shared_data
def test_serve_the_real_stereo_clip(shared_data, random_model):
    clip = shared_data / "real" / "stereo_clip"
    poses = free_tcp_port()
    cmd = [sys.executable, "-m", "handstream.cli", "serve", "--calibration", str(clip / "calibration.toml"),
           "--unit-scale", "0.04", "--video", str(clip / "cam0.mp4"), "--video", str(clip / "cam1.mp4"),
           "--model", str(random_model), "--frames-endpoint", f"tcp://127.0.0.1:{free_tcp_port()}",
           "--poses-endpoint", f"tcp://127.0.0.1:{poses}", "-q"]  # fmt: skip
    sub = subprocess.Popen([sys.executable, "-m", "handstream.cli", "subscribe", "-e", f"tcp://127.0.0.1:{poses}",
                            "--json", "--timeout", "20"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        out, _ = sub.communicate(timeout=40)
    finally:
        sub.kill()
    assert r.returncode == 0, r.stderr  # the videos end after 250 frames: serve exits by itself
    got = [json.loads(line) for line in out.splitlines()]
    assert len(got) >= 100, f"{len(got)} poses for 250 frame pairs"
    assert sum(set(g["views"]) == {"cam0", "cam1"} for g in got) >= 0.8 * len(got)
