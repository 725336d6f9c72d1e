"""Label-free consistency metrics (handstream/eval/consistency.py) on synthetic detections with known 3D.

Known 3D hands are projected through a preset rig (4 cameras, pinhole and OpenCV lenses), with Gaussian pixel
noise; no image, no model: NumPy and the triangulation kernel only.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from handstream.cli import main
from handstream.engine.offline import Detections2D
from handstream.eval.consistency import consistency_metrics
from handstream.skeleton import BONES, HANDS, NUM_JOINTS
from handstream.synth.hand import HandShape, pose_hand, sample_pose
from handstream.synth.rigs import get_preset

PRESET = "random-15"  # 4 cameras 0.45-1 m around the workspace, every one sees both hands


def _scene(frames: int, *, seed: int = 0, step=(0.002, 0.001, 0.0), pose_every: int = 1):
    """joints (F, H, K, 3) metres: both hands, a new pose every ``pose_every`` frames, wrists moving by ``step``."""
    preset = get_preset(PRESET)
    rng = np.random.default_rng(seed)
    shape = HandShape.from_scale(1.0)
    c = preset.workspace.center
    out = np.zeros((frames, len(HANDS), NUM_JOINTS, 3))
    angles = [sample_pose(rng) for _ in HANDS]
    for f in range(frames):
        if f % pose_every == 0:
            angles = [sample_pose(rng) for _ in HANDS]
        for h, (side, dx) in enumerate((("left", -0.08), ("right", 0.08))):
            wrist = c + np.array([dx, 0.0, 0.0]) + f * np.asarray(step)
            out[f, h] = pose_hand(angles[h], shape, side, np.eye(3), wrist)[0]
    return preset.rig, out


def _detect(rig, joints: np.ndarray, noise_px: float, seed: int = 1) -> Detections2D:
    """Project (F, H, K, 3) into every view, add noise, drop points outside the image -> Detections2D."""
    rng = np.random.default_rng(seed)
    kp = np.moveaxis(rig.project(joints), 0, 1)  # (F, V, H, K, 2)
    kp = kp + rng.normal(0.0, noise_px, kp.shape)
    for v, cam in enumerate(rig):
        w, h = cam.size
        x, y = kp[:, v, ..., 0], kp[:, v, ..., 1]
        out = ~((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1))
        kp[:, v][out] = np.nan
    ok = np.isfinite(kp).all(axis=-1)
    conf = np.where(ok, 0.9, 0.0).astype(np.float32)
    return Detections2D(kp, conf, ok.any(axis=-1).astype(np.float32), "synthetic")


def test_noiseless_detections_are_perfectly_consistent():
    rig, joints = _scene(12)
    m = consistency_metrics(rig, _detect(rig, joints, 0.0))
    assert m["frames"] == 12 and m["views"] == 4 and m["cameras"] == rig.names
    rp = m["reprojection"]
    assert rp["inlier_mean_px"] < 1e-3 and rp["all_views_mean_px"] < 1e-3
    assert rp["inlier_rate"] == 1.0 and rp["agreement_rate"] == 1.0 and rp["joints"] == 12 * 2 * NUM_JOINTS
    for side in HANDS:
        hand = m["hands"][side]
        assert hand["coverage"] == 1.0 and hand["frames_tracked"] == 12
        assert hand["bones_measured"] == len(BONES) and len(hand["bone_cv_pct_per_bone"]) == len(BONES)
        assert hand["bone_cv_pct"] < 1e-3  # rigid bones, new pose every frame
        palm = np.linalg.norm(joints[0, 0, 9] - joints[0, 0, 0])
        assert hand["palm_length"] == pytest.approx(palm, rel=1e-4)
    for pv in m["per_view"].values():
        assert pv["hand_found"] == 1.0 and pv["reproj_mean_px"] < 1e-3


def test_reprojection_error_follows_the_noise_level():
    rig, joints = _scene(30)
    cv = {}
    for noise in (0.5, 2.0):
        m = consistency_metrics(rig, _detect(rig, joints, noise))
        rp = m["reprojection"]
        # distance of a 2D Gaussian: mean 1.25 sigma, less what the 3 dof of the point absorb (4 views: ~0.8x)
        assert 0.6 * noise < rp["inlier_mean_px"] < 1.4 * noise, rp
        assert 0.5 * noise < rp["inlier_median_px"] < 1.4 * noise, rp
        assert rp["all_views_mean_px"] == pytest.approx(rp["inlier_mean_px"], rel=0.05)
        assert rp["inlier_rate"] > 0.99
        for hand in m["hands"].values():
            assert hand["coverage"] == 1.0
        # this rig is coarse (f 200-430 px at 0.5-1 m: ~3 mm per px), so a 2 cm bone varies ~8 % per px of noise
        cv[noise] = np.array([hand["bone_cv_pct"] for hand in m["hands"].values()])
        assert (cv[noise] > 0).all() and (cv[noise] < 12.0 * noise).all()
    assert (3.0 < cv[2.0] / cv[0.5]).all() and (cv[2.0] / cv[0.5] < 5.0).all()  # linear in the noise


def test_a_wrong_view_raises_the_all_views_error_not_the_inlier_one():
    rig, joints = _scene(20)
    clean = consistency_metrics(rig, _detect(rig, joints, 1.0))
    det = _detect(rig, joints, 1.0)
    det.keypoints[:, 2, ..., 0] += 40.0  # camera 2 is 40 px off (a bad calibration, a wrong hand)
    bad = consistency_metrics(rig, det)
    a, b = clean["reprojection"], bad["reprojection"]
    assert b["inlier_mean_px"] == pytest.approx(a["inlier_mean_px"], rel=0.25)  # RANSAC drops the view
    assert b["all_views_mean_px"] > a["all_views_mean_px"] + 5.0  # 40 px in 1 of 4 views: ~ +9 px
    assert b["inlier_rate"] == pytest.approx(0.75, abs=0.03)
    wrong = bad["per_view"][rig.names[2]]
    assert wrong["inlier_rate"] < 0.05 and wrong["reproj_mean_px"] > 30.0
    others = [bad["per_view"][n] for n in rig.names if n != rig.names[2]]
    assert all(pv["inlier_rate"] > 0.95 for pv in others)
    for side, hand in bad["hands"].items():  # the 3D is about as good as without the bad view (3 views left)
        assert hand["coverage"] == 1.0 and hand["bone_cv_pct"] < 1.5 * clean["hands"][side]["bone_cv_pct"]


def test_jitter_is_the_motion_per_frame_and_the_second_difference_cancels_it():
    step = (0.005, 0.0, 0.0)  # 5 mm per frame, same pose throughout
    rig, joints = _scene(10, step=step, pose_every=1000)
    m = consistency_metrics(rig, _detect(rig, joints, 0.0))
    for hand in m["hands"].values():
        assert hand["jitter"] == pytest.approx(0.005, rel=1e-3)
        assert hand["jitter_2nd"] < 1e-5
        assert hand["jitter_pairs"] == 9


def test_coverage_and_the_min_joints_rule():
    rig, joints = _scene(10)
    det = _detect(rig, joints, 0.0)
    det.keypoints[:4, :, 0] = np.nan  # left hand not seen in frames 0-3
    det.conf[:4, :, 0] = 0.0
    det.keypoints[4:6, :, 0, 6:] = np.nan  # frames 4-5: only 6 joints of the left hand
    det.conf[4:6, :, 0, 6:] = 0.0
    m = consistency_metrics(rig, det, min_joints=8)
    assert m["hands"]["left"]["coverage"] == pytest.approx(0.4) and m["hands"]["right"]["coverage"] == 1.0
    assert m["reprojection"]["joints"] == 4 * NUM_JOINTS + 10 * NUM_JOINTS
    assert m["hands"]["left"]["jitter_pairs"] == 3  # frame pairs (6,7) (7,8) (8,9)
    m = consistency_metrics(rig, det, min_joints=6)
    assert m["hands"]["left"]["coverage"] == pytest.approx(0.6)


def test_nothing_detected_gives_nan_not_an_error():
    rig, _ = _scene(3)
    m = consistency_metrics(rig, Detections2D.empty(3, len(rig)))
    assert m["reprojection"]["joints"] == 0 and math.isnan(m["reprojection"]["inlier_mean_px"])
    assert m["hands"]["left"]["coverage"] == 0.0 and math.isnan(m["hands"]["right"]["bone_cv_pct"])


def test_views_must_match_the_rig():
    from handstream.errors import HandstreamError

    rig, _ = _scene(2)
    with pytest.raises(HandstreamError, match="views"):
        consistency_metrics(rig, Detections2D.empty(2, len(rig) - 1))


# --- CLI ----------------------------------------------------------------------------------------------------


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    "args, text",
    [
        (["--recording", "{tmp}/nope.mp4", "--recording", "{tmp}/nope1.mp4", "--model", "{model}"], "nope.mp4"),
        (["--recording", "{tmp}/a.mp4", "--calibration", "{tmp}/c.toml"], "--model"),
        (["--recording", "{tmp}/a.mp4", "--model", "m.onnx", "--teacher", "{task}"], "--teacher"),
        (["--recording", "{tmp}/a.mp4", "--teacher", "{tmp}/missing.task"], "missing.task"),
        (["--recording", "{tmp}/a.mp4", "--teacher", "{task}", "--frames", "9:3"], "--frames"),
        (["--recording", "{tmp}/a.mp4", "--teacher", "{task}", "--limit", "3"], "--limit"),
        (["--data", "{tmp}", "--recording", "{tmp}/a.mp4", "--teacher", "{task}"], "--data"),
        (["--data", "{tmp}", "--teacher", "{task}"], "--model"),
        (["--model", "m.onnx"], "--recording"),
    ],
)
def test_eval_recording_user_errors_are_one_line(tmp_path, capsys, args, text):
    task = tmp_path / "fake.task"
    task.write_bytes(b"not a bundle")
    model = tmp_path / "m.onnx"  # never opened: the recording is checked first
    model.write_bytes(b"")
    argv = ["eval", "--no-progress"] + [a.format(tmp=tmp_path, task=task, model=model) for a in args]
    assert main(argv) == 2
    assert text in _one_line_error(capsys)


def test_eval_recording_on_a_synthetic_dataset_end_to_end(tmp_path, capsys):
    """--recording also takes a synthetic dataset folder (its calibration; labels unused)."""
    pytest.importorskip("onnxruntime")
    from pathlib import Path

    from handstream.synth.dataset import write_dataset

    model = Path(__file__).resolve().parents[1] / "engines" / "handstream-default.onnx"
    data = tmp_path / "stereo"
    write_dataset(data, "stereo", 3, seed=5, sequence_length=3)
    out = tmp_path / "c.json"
    argv = [
        "eval",
        "--model",
        str(model),
        "--recording",
        str(data),
        "--frames",
        "0:3",
        "--json",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert res["frames"] == 3 and res["views"] == 2 and res["length_unit"] == "m"
    assert res["detector"].startswith("model:") and set(res["hands"]) == set(HANDS)
    assert {"inlier_mean_px", "all_views_mean_px", "agreement_rate"} <= set(res["reprojection"])
    assert "reprojection" in capsys.readouterr().out
