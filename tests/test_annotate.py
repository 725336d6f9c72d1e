"""``handstream annotate``: videos in, one annotated video per camera and the poses out (handstream.annotate)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tests.cli_run import assert_one_line_error, run_cli
from tests.conftest import SHARED_DATA

CLIP = SHARED_DATA / "real" / "stereo_clip"


@pytest.fixture(scope="module")
def synthetic_videos(tmp_path_factory):
    """A 12-frame synthetic stereo clip written as two mp4 files, and its calibration."""
    from handstream.geometry import save_calibration
    from handstream.synth.generator import SynthGenerator
    from handstream.synth.rigs import get_preset

    root = tmp_path_factory.mktemp("annotate-in")
    preset = get_preset("stereo")
    gen = SynthGenerator(preset, seed=4)
    writers = [cv2.VideoWriter(str(root / f"{cam.name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, cam.size)
               for cam in preset.rig]  # fmt: skip
    for i in range(12):
        for wr, img in zip(writers, gen.frame(i).images, strict=True):
            wr.write(img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    for wr in writers:
        wr.release()
    save_calibration(preset.rig, root / "rig.toml")
    return [root / f"{cam.name}.mp4" for cam in preset.rig], root / "rig.toml"


def _frames(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def test_annotates_every_frame_set_of_every_view(synthetic_videos, tmp_path):
    videos, calib = synthetic_videos
    out = tmp_path / "out"
    args = ["annotate", "--calibration", str(calib), "--out", str(out), "--threads", "1", "--no-progress"]
    r = run_cli(*args, *[a for v in videos for a in ("--video", str(v))])
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 12 and summary["cameras"] == [v.stem for v in videos]
    for v in summary["files"]["videos"]:
        assert _frames(v) == 12
    poses = [json.loads(line) for line in (out / "poses.jsonl").read_text().splitlines()]
    assert len(poses) == 12 and [p["seq"] for p in poses] == list(range(12))
    assert all(len(p["hands"]) == 2 for p in poses)
    # the joints table: one row per hand per pose, its joint columns the poses' joints
    assert summary["files"]["table"] == str(out / "poses.csv") and summary["table_rows"] == 24
    table = _read_csv(out / "poses.csv")
    _assert_table_matches(table, poses)
    assert any(v != "" for v in table["wrist_x"])  # hands were tracked, so the joints compared are numbers


def _read_csv(path) -> dict[str, list[str]]:
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return {c: [r[i] for r in rows[1:]] for i, c in enumerate(rows[0])}


def _assert_table_matches(cols: dict, poses: list[dict]) -> None:
    """``cols`` (column -> values, CSV strings or Parquet's) holds exactly ``poses``' hands, joint by joint."""
    from handstream.skeleton import JOINT_NAMES

    hands = [(p["seq"], h) for p in poses for h in p["hands"]]
    assert len(cols["seq"]) == len(hands)
    assert [int(v) for v in cols["seq"]] == [seq for seq, _ in hands]
    assert list(cols["side"]) == [h["side"] for _, h in hands]
    for k, name in enumerate(JOINT_NAMES):
        for a, axis in enumerate("xyz"):
            got = np.array([np.nan if v in ("", None) else float(v) for v in cols[f"{name}_{axis}"]])
            want = np.array([np.nan if h["joints"][k][a] is None else h["joints"][k][a] for _, h in hands], float)
            np.testing.assert_array_equal(got, want, err_msg=f"{name}_{axis}")


def test_table_options(synthetic_videos, tmp_path):
    """--table PATH (.parquet when pyarrow is there, else the poses-table one-line error), --no-table, bad names."""
    videos, calib = synthetic_videos
    base = ["annotate", "--calibration", str(calib), "--threads", "1", "--no-progress", "--frames", "3",
            *[a for v in videos for a in ("--video", str(v))]]  # fmt: skip
    assert_one_line_error(run_cli(*base, "--out", str(tmp_path / "a"), "--table", "x.txt"), "x.txt", ".csv or .parquet")
    both = run_cli(*base, "--out", str(tmp_path / "a"), "--table", "x.csv", "--no-table")
    assert_one_line_error(both, "--table", "--no-table")
    r = run_cli(*base, "--out", str(tmp_path / "none"), "--no-table")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "none" / "summary.json").read_text())
    assert summary["files"]["table"] is None and not list((tmp_path / "none").glob("poses.csv"))
    parquet = tmp_path / "elsewhere" / "poses.parquet"
    r = run_cli(*base, "--out", str(tmp_path / "pq"), "--table", str(parquet))
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert_one_line_error(r, "poses.parquet", "pyarrow")
        return
    assert r.returncode == 0, r.stderr
    poses = [json.loads(line) for line in (tmp_path / "pq" / "poses.jsonl").read_text().splitlines()]
    _assert_table_matches(pq.read_table(parquet).to_pydict(), poses)
    assert not (tmp_path / "pq" / "poses.csv").exists()


def test_bad_inputs_get_one_line(synthetic_videos, tmp_path):
    videos, calib = synthetic_videos
    out = str(tmp_path / "x")
    assert_one_line_error(run_cli("annotate", "--calibration", str(calib), "--out", out), "--video")
    missing = run_cli("annotate", "--video", str(tmp_path / "none.mp4"), "--calibration", str(calib), "--out", out)
    assert_one_line_error(missing, "none.mp4", "not found")
    assert_one_line_error(run_cli("annotate", "--video", str(videos[0]), "--out", out), "--calibration")
    small = tmp_path / "small.mp4"
    wr = cv2.VideoWriter(str(small), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
    wr.write(np.zeros((48, 64, 3), np.uint8))
    wr.release()
    r = run_cli("annotate", "--video", str(small), "--calibration", str(calib), "--out", out, "--no-progress")
    assert_one_line_error(r, "small.mp4", "64x48")


def test_the_real_stereo_clip_with_mediapipe(mediapipe_lite, tmp_path):
    if not (CLIP / "cam0.mp4").is_file():
        pytest.skip(f"{CLIP} not found (the real stereo clip lives in ../shared/data)")
    from handstream.annotate import annotate_videos
    from handstream.config import EngineConfig, FilterConfig
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline
    from handstream.geometry import load_calibration
    from handstream.models.defaults import DEFAULT_MODEL

    rig = load_calibration(CLIP / "calibration.toml", 0.04)
    pipe = Pipeline(rig, open_backend(DEFAULT_MODEL, "onnxruntime", threads=1), EngineConfig(), FilterConfig(),
                    refiner=open_backend(mediapipe_lite, "onnxruntime", threads=1))  # fmt: skip
    s = annotate_videos([CLIP / "cam0.mp4", CLIP / "cam1.mp4"], rig, tmp_path, pipe, limit=60, progress=False,
                        log=lambda m: None)  # fmt: skip
    assert s["frames"] == 60 and s["hands_tracked"] >= 30, s  # the hand is found within the first 20
    assert _frames(tmp_path / "cam0.mp4") == 60
    poses = [json.loads(line) for line in (tmp_path / "poses.jsonl").read_text().splitlines()]
    _assert_table_matches(_read_csv(tmp_path / "poses.csv"), poses)
