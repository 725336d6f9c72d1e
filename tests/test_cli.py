"""The handstream command as a user runs it: a real process, exit codes, one-line errors."""

import subprocess
import sys

import numpy as np
import pytest

from handstream.geometry import Camera, Rig, load_calibration, save_calibration


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "handstream.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("handstream: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_version_and_info():
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("handstream ")
    info = run("info")
    assert info.returncode == 0 and "handstream._C" in info.stdout and "built" in info.stdout


def test_unknown_command_is_a_usage_error():
    assert run("no-such-command").returncode == 2


@pytest.fixture
def rig_file(tmp_path):
    rng = np.random.default_rng(0)
    cams = []
    for i in range(3):
        R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        R *= np.sign(np.linalg.det(R))
        K = np.array([[400.0, 0, 320], [0, 400, 240], [0, 0, 1]])
        cams.append(Camera(f"cam_{i}", (640, 480), K, (0.1, -0.05, 0.001, 0.0, 0.01), "opencv", R, rng.normal(size=3)))
    path = tmp_path / "rig.toml"
    save_calibration(Rig(cams), path)
    return path


def test_calib_show_and_convert_round_trip(rig_file, tmp_path):
    shown = run("calib", "show", str(rig_file))
    assert shown.returncode == 0 and "cam_2" in shown.stdout and "opencv" in shown.stdout
    target = tmp_path / "rig.yaml"
    converted = run("calib", "convert", str(rig_file), str(target), "--unit-scale", "0.5")
    assert converted.returncode == 0, converted.stderr
    original, back = load_calibration(rig_file), load_calibration(target)
    assert back.names == original.names
    np.testing.assert_allclose(back.projection_matrices[:, :, 3] * 2, original.projection_matrices[:, :, 3])


def test_missing_and_broken_calibrations_give_one_line_and_exit_2(tmp_path):
    assert_one_line_error(run("calib", "show", str(tmp_path / "missing.toml")), "missing.toml", "not found")
    broken = tmp_path / "broken.toml"
    broken.write_text("[cam_0]\nname = 'a'\nsize = [640, 480]\nmatrix = [[1, 0], [0, 1]]\n")
    assert_one_line_error(run("calib", "show", str(broken)), "broken.toml", "cam_0")
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\xff not json")
    assert_one_line_error(run("calib", "show", str(garbage)), "garbage.json")


@pytest.mark.needs_shared_data
def test_calib_show_real_files(shared_data):
    stereo = run("calib", "show", str(shared_data / "real/stereo_clip/calibration.toml"), "--unit-scale", "0.04")
    assert stereo.returncode == 0 and "cam1" in stereo.stdout
    headset = sorted((shared_data / "rigs/assemblyhands/nimble_json_calib").glob("*.json"))[0]
    shown = run("calib", "show", str(headset))
    assert shown.returncode == 0 and shown.stdout.count("fisheye") == 4
