"""Adapting an imported MediaPipe landmark network on the real stereo clip: tracked detections, consensus
labels, a few fine-tuning steps, the exported student (handstream.adapt.landmarks, engine.offline.track_recording).

MediaPipe's network lives in ``../shared/models`` and the clip in ``../shared/data`` (never committed); the tests
skip with the reason when either, or the ``import`` extra, is absent. One thread, 30 frames: well under a minute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handstream.errors import HandstreamError
from tests.cli_run import assert_one_line_error, run_cli
from tests.conftest import SHARED_DATA

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[train]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

CLIP = SHARED_DATA / "real" / "stereo_clip"
FRAMES = (200, 230)  # the hand is acquired by search within ~6 frame sets here (from frame 0: ~18)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def teacher(mediapipe_lite) -> Path:
    """MediaPipe's lite landmark network, imported once per session (tests/conftest.py)."""
    return mediapipe_lite


@pytest.fixture(scope="module")
def recording():
    """Frame sets 200-229 of the real stereo clip (metres: one board square ~4 cm)."""
    if not (CLIP / "cam0.mp4").is_file():
        pytest.skip(f"{CLIP} not found (the real stereo clip lives in ../shared/data)")
    from handstream.capture.recording import open_recording

    return open_recording([CLIP / "cam0.mp4", CLIP / "cam1.mp4"], CLIP / "calibration.toml", unit_scale=0.04,
                          frames=FRAMES)  # fmt: skip


@pytest.fixture(scope="module")
def tracked(teacher, recording):
    from handstream.engine.offline import track_recording

    return track_recording(recording, teacher, threads=1)


@pytest.fixture(scope="module")
def crops(recording, tracked):
    """Engine-rule crops (no jitter) of the consensus-labelled hands of the teacher's tracked detections."""
    from handstream.adapt.landmarks import LandmarkAdaptConfig, LandmarkCrops
    from handstream.adapt.pseudo import consensus_labels

    labels = consensus_labels(recording.rig, tracked)
    data = LandmarkCrops(recording, labels, {"margin": 1.5, "min_side": 24}, (224, 224), LandmarkAdaptConfig())
    assert len(data) >= 20, "the teacher's consensus should label the right hand in most views"
    return data


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    """Landmarks (N, 63) crop px of ``path`` by ONNX Runtime."""
    from handstream.models.manifest import load_manifest

    manifest, _ = load_manifest(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    out = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x}), strict=True))
    return out[manifest.output_roles["landmarks"]]


def test_track_recording_finds_the_right_hand_in_most_frames(teacher, recording, tracked):
    from handstream.engine.offline import predict_recording

    F = len(recording)
    assert tracked.keypoints.shape == (F, 2, 2, 21, 2)
    assert tracked.conf.shape == (F, 2, 2, 21) and tracked.presence.shape == (F, 2, 2)
    seen = np.isfinite(tracked.keypoints).all(axis=-1)  # (F, V, H, K)
    right = seen[:, :, 1].sum(axis=-1) >= 10
    assert right.all(axis=1).mean() >= 0.6, right.all(axis=1)  # both views, most frames (search takes a few)
    assert not seen[:, :, 0].any()  # there is no left hand in the clip
    assert ((tracked.conf >= 0) & (tracked.conf <= 1)).all()
    assert not (tracked.conf[~seen] > 0).any()  # confidence only where there is a keypoint
    assert (tracked.presence[right, 1] > 0.5).all()
    # predict_recording hands a landmarks model to the tracked path: the same detections
    again = predict_recording(recording, teacher, threads=1)
    np.testing.assert_array_equal(np.isfinite(again.keypoints), np.isfinite(tracked.keypoints))
    np.testing.assert_allclose(again.keypoints[right], tracked.keypoints[right], atol=1e-6, equal_nan=True)


def test_student_at_step_0_equals_its_teacher(teacher, crops):
    from handstream.adapt.landmarks import open_student

    x = crops.exact_crops(4)
    net, manifest = open_student(teacher)
    assert manifest.kind == "landmarks" and manifest.crop["margin"] == 1.5
    ref = _ort(teacher, x)
    with torch.no_grad():
        got = net(torch.from_numpy(x))["landmarks"].numpy()
        net.train()  # no batch norm or dropout: training mode computes the same
        same = net(torch.from_numpy(x))["landmarks"].numpy()
        net.eval()
    assert np.abs(got - ref).max() < 1e-3
    np.testing.assert_array_equal(got, same)


def test_a_few_steps_change_the_student_and_its_export_keeps_parity(teacher, recording, crops, tmp_path):
    from handstream.adapt.landmarks import LandmarkAdaptConfig, adapt_landmarks
    from handstream.models.checkpoint import load_landmark_net
    from handstream.models.manifest import load_manifest

    cfg = LandmarkAdaptConfig(rounds=1, steps=4, batch=2, lr=1e-5, threads=1)
    report = adapt_landmarks(recording, teacher, tmp_path, cfg, name="student", progress=False, log=lambda s: None)
    student = tmp_path / "student.onnx"
    assert report["onnx"] == str(student) and (tmp_path / "round-0" / "labels.npz").is_file()
    r0 = report["rounds"][0]
    assert r0["consensus"]["hands"]["right"]["labelled"] >= 12 and np.isfinite(r0["train_loss"])
    manifest, _ = load_manifest(student)
    assert manifest.kind == "landmarks" and manifest.crop == load_manifest(teacher)[0].crop
    assert manifest.provenance["adapted_from"] == str(teacher) and manifest.provenance["rounds"] == 1
    assert manifest.provenance["recording"] == recording.source
    assert max(manifest.parity["max_abs_diff"].values()) <= 1e-3
    x = crops.exact_crops(4)
    moved = np.abs(_ort(student, x) - _ort(teacher, x)).max()
    assert moved > 1e-3, "four Adam steps at 1e-5 should move the landmarks"
    net, _ = load_landmark_net(tmp_path / "model.pt")
    with torch.no_grad():
        torch_out = net(torch.from_numpy(x))["landmarks"].numpy()
    assert np.abs(torch_out - _ort(student, x)).max() < 1e-3


def test_adapt_dispatches_and_refuses_heatmap_settings(teacher, recording, tmp_path):
    from handstream.adapt.adapt import AdaptConfig, adapt

    with pytest.raises(HandstreamError, match="LandmarkAdaptConfig"):
        adapt(recording, teacher, tmp_path, AdaptConfig())
    with pytest.raises(HandstreamError, match="own teacher"):
        adapt(recording, teacher, tmp_path, teacher="hand_landmarker.task")


def test_cli_refuses_a_teacher_with_a_landmarks_model(teacher, tmp_path):
    res = run_cli("adapt", "--recording", str(CLIP / "cam0.mp4"), "--recording", str(CLIP / "cam1.mp4"),
                  "--calibration", str(CLIP / "calibration.toml"), "--model", str(teacher), "--out", str(tmp_path),
                  "--teacher", str(tmp_path / "x.task"))  # fmt: skip
    assert_one_line_error(res, "--teacher", "landmarks model")


def test_bone_fit_makes_a_noisy_consensus_rigid_and_keeps_it_on_the_detections():
    """A rigid hand seen by two cameras: exact detections, consensus joints with depth noise -> the refit's bones
    vary less and its joints are nearer the truth (no shared data needed)."""
    from handstream.adapt.bone_fit import fit_bone_lengths
    from handstream.adapt.bones import bone_lengths
    from handstream.adapt.pseudo import LABELLED, PseudoLabels
    from handstream.engine.offline import Detections2D
    from handstream.synth.rigs import get_preset

    pytest.importorskip("scipy", reason="scipy is not installed")
    rig = get_preset("stereo").rig
    rng = np.random.default_rng(3)
    template = rng.uniform(-0.05, 0.05, (21, 3))
    F = 6
    truth = np.full((F, 2, 21, 3), np.nan)
    for f in range(F):
        a = rng.uniform(-0.3, 0.3)
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        truth[f, 1] = template @ rot.T + np.array([0.0, 0.0, 0.45])
    det = Detections2D.empty(F, 2)
    for v, cam in enumerate(rig):
        det.keypoints[:, v, 1] = cam.project(truth[:, 1])
        det.conf[:, v, 1] = 1.0
    noisy = truth + np.concatenate([np.zeros((F, 2, 21, 2)), rng.normal(0, 0.006, (F, 2, 21, 1))], axis=-1)
    status = np.full((F, 2, 2, 21), -1, np.int8)
    status[:, :, 1] = LABELLED
    inliers = np.zeros((F, 2, 2, 21), bool)
    inliers[:, :, 1] = True
    labels = PseudoLabels(det.keypoints.copy(), status, noisy, inliers, {})
    fitted = fit_bone_lengths(rig, det, labels, sigma=0.05)

    def cv(j):
        L = bone_lengths(j[:, 1])
        return float(np.mean(np.std(L, axis=0) / np.median(L, axis=0)))

    assert cv(fitted.joints) < 0.5 * cv(noisy)
    assert (
        np.linalg.norm(fitted.joints[:, 1] - truth[:, 1], axis=-1).mean()
        < np.linalg.norm(noisy[:, 1] - truth[:, 1], axis=-1).mean()
    )
    assert fitted.report["bone_fit"]["bone_cv_pct_after"][1] < fitted.report["bone_fit"]["bone_cv_pct_before"][1]
    for v, cam in enumerate(rig):  # the labels are the refit's reprojections
        np.testing.assert_allclose(fitted.keypoints[:, v, 1], cam.project(fitted.joints[:, 1]), atol=1e-9)
