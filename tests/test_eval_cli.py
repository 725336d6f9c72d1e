"""``handstream eval`` end to end on a tiny synthetic dataset with the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handstream.cli import main
from handstream.eval.evaluate import default_pair
from handstream.synth.dataset import write_dataset

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "engines" / "handstream-default.onnx"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "h4"
    write_dataset(root, "headset4", 2, seed=77, sequence_length=2)
    return root


def test_eval_writes_table_and_json(tmp_path, data, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "eval.json"
    assert main(["eval", "--model", str(MODEL), "--data", str(data), "--json", str(out), "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert res["frames"] == 2 and res["views"] == 4 and res["preset"] == "headset4"
    for section in ("3d_4view", "3d_2view"):
        assert {"mpjpe_mm", "pa_mpjpe_mm", "pck_20mm", "auc_20_50mm", "coverage"} <= set(res[section])
    assert {"epe_px", "pck_0.2"} <= set(res["2d"]) and res["onnx_ms_per_frame"]["views"] == 4
    assert "mpjpe_mm" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, text",
    [
        (["--pair", "0,0"], "--pair"),
        (["--pair", "x"], "--pair"),
        (["--model", "nope.onnx"], "nope.onnx"),
    ],
)
def test_eval_user_errors_are_one_line(data, capsys, args, text):
    argv = ["eval", "--model", str(MODEL), "--data", str(data), "--no-progress"]
    for i in range(0, len(args), 2):
        if args[i] in argv:
            argv[argv.index(args[i]) + 1] = args[i + 1]
        else:
            argv += args[i : i + 2]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0]


def test_label_noise_floor_grows_with_the_noise_and_is_exact_without(tmp_path, data, capsys):
    out = tmp_path / "floor.json"
    argv = ["eval", "--data", str(data), "--label-noise", "0,1,4", "--json", str(out)]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert [lv["sigma_px"] for lv in res["levels"]] == [0.0, 1.0, 4.0]
    exact, one, four = (lv["3d_4view"] for lv in res["levels"])
    assert exact["mpjpe_mm"] < 0.1 and exact["coverage"] > 0.9  # the labels triangulate to the truth
    assert 0.1 < one["mpjpe_mm"] < four["mpjpe_mm"]
    assert res["levels"][1]["epe_px"] == pytest.approx(1.25, rel=0.25)  # E|N(0, I)| = sqrt(pi / 2)
    assert "2-view" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, text",
    [
        (["--label-noise", "1", "--model", str(MODEL)], "--label-noise"),
        (["--label-noise", "x"], "--label-noise"),
        (["--label-noise", "-1"], "--label-noise"),
        ([], "--label-noise PX"),
    ],
)
def test_label_noise_user_errors_are_one_line(data, capsys, args, text):
    assert main(["eval", "--data", str(data), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0]


def test_default_pair_picks_the_views_that_see_most():
    import numpy as np

    vis = np.full((3, 4, 2, 21), 4, np.uint8)
    vis[:, 1, 0, :10] = 0
    vis[:, 3, :, :5] = 1
    vis[:, 0, 0, :2] = 0
    assert default_pair(vis) == (1, 3)
