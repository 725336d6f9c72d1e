"""Unsupervised adaptation: consensus pseudo-labels (a wrong view is rejected and corrected), the
fine-tuning rounds end to end on a rendered recording, and ``handstream adapt``'s errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from handstream.adapt.pseudo import LABELLED, OUTSIDE, UNKNOWN, ConsensusConfig, consensus_labels
from handstream.capture.recording import open_recording, parse_frame_range
from handstream.engine.offline import Detections2D
from handstream.errors import HandstreamError
from handstream.synth.dataset import write_dataset

QUIET = {"progress": False, "log": lambda s: None}
"""adapt()'s arguments for a test: no progress bar, no log lines."""


@pytest.fixture(scope="module")
def headset_rec(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt") / "h4"
    write_dataset(root, "headset4", 24, seed=31, sequence_length=24)
    return open_recording([root])


@pytest.fixture(scope="module")
def stereo_rec(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt") / "stereo"
    write_dataset(root, "stereo", 12, seed=32, sequence_length=12)
    return open_recording([root])


def truth_detections(rec, noise_px: float, seed: int) -> Detections2D:
    """Detections as a perfect detector with pixel noise would give them: joints inside the frame of views
    where the hand has >= 3 such joints (the labels are only used to build the test's input)."""
    rng = np.random.default_rng(seed)
    t = rec.truth
    inside = t["visibility"] < OUTSIDE
    present = inside.sum(axis=-1) >= 3  # (F, V, H)
    ok = inside & present[..., None]
    kp = np.where(ok[..., None], t["keypoints_2d"] + rng.normal(0, noise_px, t["keypoints_2d"].shape), np.nan)
    return Detections2D(kp, ok.astype(np.float32) * 0.9, present.astype(np.float32), "truth+noise")


def test_consensus_labels_match_truth_and_reject_an_injected_wrong_view(headset_rec):
    det = truth_detections(headset_rec, 0.5, seed=1)
    t = headset_rec.truth
    wrong = 1  # this view reports every joint 40 px away, with full confidence
    seen = np.isfinite(det.keypoints[:, wrong]).all(axis=-1)
    det.keypoints[:, wrong] += np.array([40.0, -25.0])
    labels = consensus_labels(headset_rec.rig, det, ConsensusConfig(threshold_px=6.0, min_joints=3))
    lab = labels.status == LABELLED
    inside = t["visibility"] < OUTSIDE
    # the wrong view is never part of the consensus ...
    assert not labels.inliers[:, wrong].any()
    # ... and where the others agree, its labels are the corrected positions, not its own detections
    corrected = lab[:, wrong] & seen & inside[:, wrong]
    assert corrected.sum() > 20, "the scene should give the wrong view joints that other views agree on"
    err = np.linalg.norm(labels.keypoints[:, wrong][corrected] - t["keypoints_2d"][:, wrong][corrected], axis=-1)
    assert np.median(err) < 2.0 and err.max() < 6.0
    assert labels.report["corrected"][wrong] == int((lab[:, wrong] & seen).sum())
    # every label in every view is close to the truth; the 3D consensus too
    m = lab & inside
    e_all = np.linalg.norm(labels.keypoints[m] - t["keypoints_2d"][m], axis=-1)
    assert np.median(e_all) < 1.5
    j = np.isfinite(labels.joints).all(axis=-1)
    assert j.any()
    e3 = np.linalg.norm(labels.joints[j] - t["joints_3d"][j], axis=-1)
    assert np.median(e3) < 0.012  # metres: 0.5 px at f ~ 190 px and a few-cm baselines is mm of depth


def test_two_views_that_disagree_give_no_label(stereo_rec):
    det = truth_detections(stereo_rec, 0.3, seed=2)
    both = np.isfinite(det.keypoints).all(axis=-1).all(axis=1)  # (F, H, K) seen by both views
    assert both.sum() > 50
    good = consensus_labels(stereo_rec.rig, det, ConsensusConfig(min_joints=3))
    assert (good.status[:, 0][both] == LABELLED).mean() > 0.95
    det.keypoints[:, 1] += np.array([0.0, 30.0])  # off the epipolar line: no 3D point explains both
    bad = consensus_labels(stereo_rec.rig, det, ConsensusConfig(min_joints=3))
    assert (bad.status[:, :, :, :][np.broadcast_to(both[:, None], bad.status.shape)] == LABELLED).sum() == 0
    assert (bad.status == UNKNOWN).any()
    assert sum(bad.report["rejected"]) > 0


def test_absent_hands_are_labelled_absent(stereo_rec):
    det = truth_detections(stereo_rec, 0.3, seed=3)
    det.keypoints[:, :, 0] = np.nan  # nobody sees the left hand
    det.conf[:, :, 0] = 0
    det.presence[:, :, 0] = 0
    labels = consensus_labels(stereo_rec.rig, det, ConsensusConfig(min_joints=3))
    assert (labels.status[:, :, 0] == OUTSIDE).all()
    assert labels.report["hands"]["left"]["absent"] == len(stereo_rec)


def test_adapt_rounds_end_to_end(headset_rec, random_model, tmp_path):
    """Two rounds on a rendered recording with a random network whose first round is seeded by good
    detections: the loop runs, writes its files, and the pseudo-labels are scored against the truth."""
    torch = pytest.importorskip("torch")
    from handstream.adapt.adapt import AdaptConfig, PseudoViews, adapt, fine_tune
    from handstream.models.checkpoint import load_network

    torch.manual_seed(0)
    seed = truth_detections(headset_rec, 0.5, seed=5)
    cfg = AdaptConfig(rounds=1, steps=3, batch=4, crop=None, consensus=ConsensusConfig(min_joints=3))
    report = adapt(headset_rec, random_model, tmp_path / "run", cfg, detections=seed, **QUIET)
    assert (tmp_path / "run" / "round-0" / "labels.npz").is_file()
    assert (tmp_path / "run" / "adapted.onnx").is_file() and (tmp_path / "run" / "adapted.onnx.json").is_file()
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["rounds"][0]["round"] == 0 and saved["frames"] == len(headset_rec)
    assert report["onnx"].endswith("adapted.onnx")
    # no refiner was adapted with it: its manifest says to run without one (not the shipped, unadapted one)
    from handstream.models.defaults import default_refiner
    from handstream.models.manifest import load_manifest

    assert load_manifest(tmp_path / "run" / "adapted.onnx")[0].refiner == ""
    assert default_refiner(tmp_path / "run" / "adapted.onnx") is None

    # the fine-tuning itself learns: loss on consensus labels of good detections goes down
    from handstream.models.codec import HeatmapCodec
    from handstream.train.items import SampleSpec

    net, manifest = load_network(random_model)
    labels = consensus_labels(
        headset_rec.rig, truth_detections(headset_rec, 0.5, seed=4), ConsensusConfig(min_joints=3)
    )
    spec = SampleSpec(HeatmapCodec(manifest.input_size, manifest.stride, manifest.sigma), None, None, 3, 1.0)
    ds = PseudoViews(headset_rec, labels, spec)
    assert len(ds) > 8
    first = fine_tune(net, ds, AdaptConfig(steps=2, batch=8, lr=2e-3), progress=False)
    later = fine_tune(net, ds, AdaptConfig(steps=25, batch=8, lr=2e-3), progress=False)
    assert later["train_loss"] < first["train_loss"]


def test_adapt_fine_tunes_a_refiner_and_pairs_it_with_the_detector(headset_rec, random_model, tmp_path):
    """With a refiner, adapt fine-tunes it on windows around the last round's labelled hands, exports it
    beside the detector, and the detector's manifest names it (what serve/eval/bench use by default)."""
    torch = pytest.importorskip("torch")
    from handstream.adapt.adapt import AdaptConfig, PseudoViews, adapt, fine_tune
    from handstream.models.checkpoint import load_network, save_network
    from handstream.models.defaults import default_refiner, refiner_option
    from handstream.models.manifest import load_manifest
    from handstream.models.network import HandNet
    from handstream.train.augment import HandCropConfig
    from handstream.train.items import SampleSpec

    torch.manual_seed(1)
    crop = {"margin": 1.6, "min_side": 24.0}
    ref = save_network(tmp_path / "ref.pt", HandNet(), input_size=(64, 64), crop=crop)
    cfg = AdaptConfig(rounds=1, steps=2, batch=4, crop=None, refiner_steps=3, consensus=ConsensusConfig(min_joints=3))
    det = truth_detections(headset_rec, 0.5, seed=5)
    with pytest.raises(HandstreamError, match="is a detector"):  # roles checked before any work
        adapt(headset_rec, random_model, tmp_path / "bad", cfg, refiner=random_model, detections=det, **QUIET)
    report = adapt(headset_rec, random_model, tmp_path / "run", cfg, refiner=ref, detections=det, name="rig", **QUIET)
    out = tmp_path / "run"
    assert report["refiner_fine_tune"]["windows"] > 8 and (out / "refiner.pt").is_file()
    refiner, _ = load_manifest(out / "rig-refiner.onnx")
    assert refiner.crop == crop and refiner.input_size == (64, 64)
    assert load_network(out / "refiner.pt")[1].crop == crop
    assert load_manifest(out / "rig.onnx")[0].refiner == "rig-refiner.onnx"
    assert default_refiner(out / "rig.onnx") == out / "rig-refiner.onnx"
    assert refiner_option("default", out / "rig.onnx") == (out / "rig-refiner.onnx").resolve()
    assert refiner_option("none", out / "rig.onnx") is None

    # the windows' fine-tuning learns: loss on windows of good consensus labels goes down
    net, manifest = load_network(ref)
    labels = consensus_labels(
        headset_rec.rig, truth_detections(headset_rec, 0.5, seed=4), ConsensusConfig(min_joints=3)
    )
    ds = PseudoViews(headset_rec, labels, SampleSpec(manifest.codec, None, None, 3, 1.0, HandCropConfig(**crop)))
    assert len(ds) > 8 and ds.index.shape[1] == 3  # (frame, view, hand)
    assert ds[0]["image"].shape == (1, 64, 64)
    first = fine_tune(net, ds, AdaptConfig(steps=2, batch=8, lr=2e-3), progress=False)
    later = fine_tune(net, ds, AdaptConfig(steps=25, batch=8, lr=2e-3), progress=False)
    assert later["train_loss"] < first["train_loss"]


def test_frame_range_parsing():
    assert parse_frame_range("0:200") == (0, 200)
    assert parse_frame_range("200:") == (200, None)
    assert parse_frame_range(None) == (0, None)
    for bad in ("5", "a:b", "10:5", "-1:3"):
        with pytest.raises(HandstreamError):
            parse_frame_range(bad)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--recording", "/nonexistent/cam0.mp4", "--out", "OUT"], "recording not found"),
        (["--recording", "REC", "--out", "OUT", "--rounds", "0"], "--rounds"),
        (["--recording", "REC", "--out", "OUT", "--min-views", "1"], "--min-views"),
        (["--recording", "REC", "--out", "OUT", "--frames", "9:3"], "--frames"),
        (["--recording", "REC", "--out", "OUT", "--teacher", "/nonexistent.task"], "--teacher"),
        (["--recording", "REC", "--recording", "REC", "--calibration", "CAL", "--out", "OUT"], "one per camera"),
    ],
)
def test_adapt_cli_errors_are_one_line(args, needle, stereo_rec, tmp_path):
    src = stereo_rec.source["sources"][0]
    cal = stereo_rec.source["calibration"]
    args = [a.replace("REC", src).replace("CAL", cal).replace("OUT", str(tmp_path / "o")) for a in args]
    if "one per camera" in needle:  # two folders for a 2-camera calibration is fine; three is not
        args = ["--recording", src] + args
    proc = subprocess.run(
        [sys.executable, "-m", "handstream.cli", "adapt", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_adapt_without_calibrated_extrinsics_reports_their_error(stereo_rec, random_model, tmp_path):
    """--estimate-extrinsics: the rig used for the consensus comes from the hands; the report compares it
    with the dataset's true calibration."""
    pytest.importorskip("torch")
    from handstream.adapt.adapt import AdaptConfig, adapt

    cfg = AdaptConfig(
        rounds=1, steps=2, batch=4, crop=None, estimate_extrinsics=True, consensus=ConsensusConfig(min_joints=3)
    )
    det = truth_detections(stereo_rec, 0.5, seed=6)
    report = adapt(stereo_rec, random_model, tmp_path / "run", cfg, detections=det, export=False, **QUIET)
    entry = report["rounds"][0]
    assert [v["name"] for v in entry["extrinsics"]["views"]] == stereo_rec.names
    err = entry["extrinsics_error"]
    assert len(err) == 2
    assert err[1]["rotation_deg"] < 2.0 and err[1]["translation_direction_deg"] < 3.0
    # the scale rests on the average-hand prior: the synthetic subject is 0.8-1.2 of it
    assert 0.75 < err[1]["scale_ratio"] < 1.3
