"""MediaPipe's palm detector: import (fp16 folding, tflite2onnx, parity against TFLite), decoding in the project
(anchors, boxes, weighted NMS, the hand window), and acquisition by search with it on the real stereo clip.

MediaPipe's networks are read from ``../shared/models`` (never committed); tests that need them, the real data or
the ``import`` extra skip with the reason.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from handstream.errors import HandstreamError
from handstream.models.palm import SSD, Palm, PalmManifest, anchors, decode, letterbox
from tests.conftest import SHARED_DATA
from tests.test_import_mediapipe import IMAGES, SHARED_MODELS, _need, _need_packages, _one_line

PALM_LITE = SHARED_MODELS / "palm_detection_lite.tflite"
CLIP = SHARED_DATA / "real" / "stereo_clip"


@pytest.fixture(scope="module")
def palm_lite(tmp_path_factory):
    """The lite palm detector imported once (with the parity check), with its log lines."""
    _need(PALM_LITE)
    _need_packages("tflite2onnx", "tflite", "ai_edge_litert")
    from handstream.models.importer import import_mediapipe

    lines: list[str] = []
    out = tmp_path_factory.mktemp("palm")
    return import_mediapipe(PALM_LITE, out, name="palm-lite", log=lines.append), lines


def test_import_folds_fp16_and_matches_tflite_on_real_images(palm_lite):
    (onnx_path, manifest_path), lines = palm_lite
    assert onnx_path.is_file() and manifest_path == onnx_path.with_name(onnx_path.name + ".json")
    data = json.loads(manifest_path.read_text())
    assert data["format"] == "handstream.palm-detector" and data["kind"] == "palm"
    assert data["provenance"]["variant"] == "lite" and "fp16 constants folded" in data["provenance"]["converter"]
    parity = data["parity"]
    assert parity["checked"] and parity["max_abs_diff"]["boxes_px"] <= 1e-3
    assert parity["max_abs_diff"]["scores_logit"] <= 1e-3
    if IMAGES.is_dir():
        assert "real" in parity["by_input"], parity["inputs"]
    assert any("fp16 constants folded" in line for line in lines)
    m = PalmManifest.load(onnx_path)
    assert (m.boxes, m.scores) != (m.scores, m.boxes) and m.input_size == (192, 192)


def test_the_bundles_palm_detector_and_a_variant_check(palm_lite, tmp_path):
    """A .task bundle gives its palm detector with palm=True; a wrong --variant and a landmark network asked for
    as a palm detector are one-line errors."""
    _need(PALM_LITE, SHARED_MODELS / "hand_landmark_lite.tflite")
    from handstream.models.importer import import_mediapipe

    bundle = tmp_path / "hands.task"
    with zipfile.ZipFile(bundle, "w") as z:
        z.write(SHARED_MODELS / "hand_landmark_lite.tflite", "hand_landmarks_detector.tflite")
        z.write(PALM_LITE, "hand_detector.tflite")
    paths = import_mediapipe(bundle, tmp_path / "out", palm=True, check_parity=False, log=lambda _: None)
    assert json.loads(paths[1].read_text())["provenance"]["source_member"] == "hand_detector.tflite"
    with pytest.raises(HandstreamError) as exc:
        import_mediapipe(PALM_LITE, tmp_path / "x", variant="full", check_parity=False, log=lambda _: None)
    _one_line(exc, str(PALM_LITE), "lite palm detector", "not the full one")
    with pytest.raises(HandstreamError) as exc:
        import_mediapipe(SHARED_MODELS / "hand_landmark_lite.tflite", tmp_path / "y", palm=True, log=lambda _: None)
    _one_line(exc, "hand_landmark_lite.tflite", "not a MediaPipe palm detector")


def test_anchors_are_mediapipes_layout():
    a = anchors()
    assert a.shape == (2016, 2)
    assert np.allclose(a[0], [0.5 / 24, 0.5 / 24]) and np.allclose(a[1], a[0])  # 2 anchors per 8 px cell
    assert np.allclose(a[2], [1.5 / 24, 0.5 / 24])
    assert np.allclose(a[1152], [0.5 / 12, 0.5 / 12]) and np.allclose(a[1152:1158], a[1152])  # 6 per 16 px cell
    assert np.allclose(a[-1], [11.5 / 12, 11.5 / 12])


def test_decode_places_a_synthetic_detection_in_the_frame_and_merges_overlaps():
    """Raw outputs written for a known palm (a 640x480 frame letterboxed into 192) decode back to it; a second,
    overlapping raw box is averaged into it by score; a low score is dropped."""
    rng = np.random.default_rng(7)
    size = (640, 480)
    scale, offset, _ = letterbox(size)
    a = anchors()
    box_px = np.array([300.0, 200.0, 380.0, 280.0])  # frame px
    kp_px = rng.uniform(300, 380, (7, 2))
    raw = np.zeros((2016, 18), np.float32)
    logit = np.full((2016, 1), -10.0, np.float32)

    def write(i: int, box: np.ndarray, score_logit: float) -> None:
        c_in = ((box[:2] + box[2:]) / 2) * scale + offset  # input px
        wh_in = (box[2:] - box[:2]) * scale
        raw[i, 0:2] = c_in - a[i] * 192
        raw[i, 2:4] = wh_in
        raw[i, 4:] = (kp_px * scale + offset - a[i] * 192).ravel()
        logit[i] = score_logit

    write(500, box_px, 4.0)
    write(501, box_px + 4.0, 2.0)  # overlaps: merged, weighted by score
    write(1500, np.array([10.0, 10.0, 50.0, 50.0]), -1.0)  # score 0.27 < 0.5: dropped
    palms = decode(raw, logit, a, size)
    assert len(palms) == 1
    w = np.array([1 / (1 + np.exp(-4.0)), 1 / (1 + np.exp(-2.0))])
    expected = (w[0] * box_px + w[1] * (box_px + 4.0)) / w.sum()
    assert np.allclose(palms[0].box, expected, atol=1e-3), (palms[0].box, expected)
    assert abs(palms[0].score - w[0]) < 1e-6
    assert np.allclose(palms[0].keypoints, kp_px, atol=1e-3)


def test_hand_window_is_upright_shifted_to_the_fingers_and_scaled():
    # wrist below the middle knuckle (fingers up): no roll, the window moves up by half the palm's side
    kp = np.zeros((7, 2))
    kp[0], kp[2] = [100.0, 120.0], [100.0, 80.0]
    centre, side, roll = Palm(np.array([80.0, 80.0, 120.0, 120.0]), kp, 0.9).window()
    assert np.allclose(centre, [100.0, 100.0 - SSD["window_shift"] * 40]) and side == pytest.approx(2.6 * 40)
    assert roll == pytest.approx(0.0)
    kp[0], kp[2] = [120.0, 100.0], [80.0, 100.0]  # fingers pointing left: the crop's down points right
    _, _, roll = Palm(np.array([80.0, 80.0, 120.0, 120.0]), kp, 0.9).window()
    assert np.allclose([np.sin(roll), np.cos(roll)], [1.0, 0.0], atol=1e-9)


def test_manifest_errors_are_one_line(tmp_path):
    with pytest.raises(HandstreamError) as exc:
        PalmManifest.load(tmp_path / "missing.onnx")
    _one_line(exc, "missing.onnx.json", "not found")
    bad = tmp_path / "bad.onnx.json"
    bad.write_text(json.dumps({"format": "handstream.estimator", "version": 1}))
    with pytest.raises(HandstreamError) as exc:
        PalmManifest.load(bad)
    _one_line(exc, str(bad), "'format' must be 'handstream.palm-detector'")
    good = PalmManifest(name="p", artifact="p.onnx").to_dict()
    bad.write_text(json.dumps({**good, "input_size": [224, 224]}))
    with pytest.raises(HandstreamError) as exc:
        PalmManifest.load(bad)
    _one_line(exc, "'input_size' must be [192, 192]")


def test_search_with_the_palm_detector_acquires_the_real_hand(palm_lite, mediapipe_lite):
    """On the real stereo clip the palm detector's windows find the hand (it enters the views at about frame 10)
    within half a second, no later than the sweep; the tracker keeps it."""
    if not (CLIP / "cam0.mp4").is_file():
        pytest.skip(f"{CLIP} not found (the real stereo clip lives in ../shared/data)")
    import cv2

    from handstream.config import EngineConfig, FilterConfig
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline
    from handstream.geometry import load_calibration
    from handstream.models.defaults import DEFAULT_MODEL
    from handstream.models.palm import PalmDetector

    rig = load_calibration(CLIP / "calibration.toml", 0.04)
    caps = [cv2.VideoCapture(str(CLIP / f"cam{i}.mp4")) for i in range(2)]
    frames = [[c.read()[1] for c in caps] for _ in range(60)]
    det = open_backend(DEFAULT_MODEL, "onnxruntime", threads=1)
    crop = open_backend(mediapipe_lite, "onnxruntime", threads=1)
    palm = PalmDetector(palm_lite[0][0], threads=1)
    pipe = Pipeline(rig, det, EngineConfig(), FilterConfig(enabled=False), refiner=crop, palm=palm)
    first, found = None, 0
    for i, fs in enumerate(frames):
        msg = pipe.process(dict(zip(rig.names, fs, strict=True)), int(i * 1e9 / 30), {})
        hand = msg.hand("right")
        if hand is not None and np.isfinite(hand.joints).any():
            first = i if first is None else first
            found += 1
    assert first is not None and first <= 20, first
    assert found >= 0.8 * (len(frames) - first), (found, first)
    assert pipe.search.palm_calls > 0 and pipe.search.palms_found > 0


def test_a_palm_detector_needs_acquisition_by_search(palm_lite):
    """With a heatmap crop model (no search), model.palm_detector is a one-line error, not a silent no-op."""
    from handstream.config import EngineConfig, FilterConfig
    from handstream.engine.backends import open_backend
    from handstream.engine.pipeline import Pipeline
    from handstream.models.defaults import DEFAULT_CROP_MODEL, DEFAULT_MODEL
    from handstream.models.palm import PalmDetector
    from handstream.synth.rigs import get_preset

    rig = get_preset("stereo").rig
    det = open_backend(DEFAULT_MODEL, "onnxruntime", threads=1)
    crop = open_backend(DEFAULT_CROP_MODEL, "onnxruntime", threads=1)
    with pytest.raises(HandstreamError) as exc:
        Pipeline(rig, det, EngineConfig(), FilterConfig(), refiner=crop, palm=PalmDetector(palm_lite[0][0]))
    _one_line(exc, "model.palm_detector", "acquisition by search")


def test_cli_errors_name_the_palm_detector(tmp_path, palm_lite):
    """serve with a palm detector whose manifest is missing, or without a landmarks crop model, and eval's flag
    outside --images: one line each, exit code 2, before anything starts."""
    from tests.cli_run import assert_one_line_error, run_cli

    missing = tmp_path / "nope.onnx"
    assert_one_line_error(run_cli("serve", "--demo", "--palm-detector", str(missing), "--seconds", "1"),
                          "nope.onnx.json", "palm detector manifest not found")  # fmt: skip
    fake = tmp_path / "palm.onnx"
    fake.write_bytes(b"x")
    PalmManifest(name="palm", artifact="palm.onnx").save(tmp_path / "palm.onnx.json")
    assert_one_line_error(run_cli("serve", "--demo", "--palm-detector", str(fake), "--seconds", "1"),
                          str(fake), "ONNX Runtime cannot load it")  # fmt: skip
    real = palm_lite[0][0]
    assert_one_line_error(run_cli("serve", "--demo", "--palm-detector", str(real), "--seconds", "1"),
                          "model.palm_detector", "landmarks crop model")  # the demo's crop model is a heatmap one
    assert_one_line_error(run_cli("adapt", "--recording", str(tmp_path), "--recording", str(tmp_path),
                                  "--calibration", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"),
                                  "--palm-detector", str(real)),
                          "--palm-detector: only with an imported landmarks model")  # fmt: skip
    assert_one_line_error(run_cli("eval", "--data", str(tmp_path), "--palm-detector", str(fake)),
                          "--palm-detector: only with --images, or --recording")  # fmt: skip


@pytest.mark.skipif(not os.environ.get("HANDSTREAM_TEST_NETWORK"), reason="fetches mediapipe==0.10.14 (36 MB) from "
                    "the package registry: set HANDSTREAM_TEST_NETWORK=1")  # fmt: skip
def test_fetch_the_palm_detector_by_package_name(tmp_path):
    _need_packages("tflite2onnx", "tflite", "ai_edge_litert")
    from handstream.models.importer import import_mediapipe

    _, json_path = import_mediapipe(None, tmp_path, variant="lite", palm=True, check_parity=False, log=lambda _: None)
    data = json.loads(json_path.read_text())
    assert data["kind"] == "palm" and data["provenance"]["variant"] == "lite"
    assert "palm_detection_lite.tflite" in data["provenance"]["source"]
