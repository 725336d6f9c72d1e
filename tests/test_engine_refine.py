"""The refine stage (the detect-every-frame path, ``engine.tracking = false``): hand windows (geometry, pixels,
training items) and the stage inside the pipeline.

``WindowOracle`` is a TEST-ONLY refiner backend: it draws the codec's target heatmaps at the true joints
as seen through each window the stage made, so the test checks the window geometry end to end (window
placement, warping, decoding back to frame pixels) against ground truth, like ``HeatmapOracle`` does for
the detector in test_engine_pipeline.py. The refiner's own accuracy is measured by ``handstream eval``.
"""

from pathlib import Path

import numpy as np
import pytest

from handstream.config import EngineConfig, FilterConfig
from handstream.engine.pipeline import Pipeline
from handstream.errors import HandstreamError
from handstream.models.crop import crop_image, crop_mapping, hand_box
from handstream.models.manifest import ModelManifest
from handstream.models.preprocess import Letterbox
from handstream.synth.source import SyntheticSource

RULE = {"margin": 1.6, "min_side": 24.0}


@pytest.mark.parametrize("side", [40.0, 90.0, 400.0])  # upsampled, about 1:1, area-shrunk first
@pytest.mark.parametrize("angle", [0.0, 20.0])
def test_a_bright_pixel_lands_where_the_mapping_says(side, angle):
    rng = np.random.default_rng(int(side) + int(angle))
    frame = np.zeros((480, 640), np.uint8)
    x, y = rng.uniform(200, 440), rng.uniform(150, 330)
    frame[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2] = 255
    centre = np.array([x, y]) + rng.uniform(-0.2, 0.2, 2) * side
    m = crop_mapping(centre, side, (128, 128), angle)
    window = crop_image(frame, m)
    assert window.shape == (128, 128) and window.dtype == np.float32 and 0 <= window.min() <= window.max() <= 1
    ys, xs = np.mgrid[0:128, 0:128]
    wsum = window.sum()
    found = np.array([(xs * window).sum() / wsum, (ys * window).sum() / wsum])
    expected = m.to_input(np.array([round(x), round(y)], float))
    assert np.linalg.norm(found - expected) < 0.6 * max(1.0, 128 / side), (found, expected)
    np.testing.assert_allclose(m.to_frame(m.to_input(np.array([x, y]))), [x, y], atol=1e-9)


def test_window_rule_and_hand_box():
    kp = np.full((21, 2), np.nan)
    assert hand_box(kp) is None
    kp[:3] = [[100, 100], [140, 110], [120, 160]]
    centre, side = hand_box(kp)
    np.testing.assert_allclose(centre, [120, 130])
    assert side == 60
    m = crop_mapping(centre, 1.6 * side, (128, 128))
    # the box's centre is the window's centre and the window spans margin x the box
    np.testing.assert_allclose(m.to_input(centre), [63.5, 63.5])
    np.testing.assert_allclose(m.to_input(centre + [48, 0]) - m.to_input(centre), [64, 0])


class WindowOracle:
    """TEST-ONLY refiner backend: heatmaps at the true joints seen through each window the stage made."""

    name = "window-oracle"

    def __init__(self, truth_frame_px: np.ndarray, presence: float = 1.0):
        self.manifest = ModelManifest(
            name="window-oracle", artifact="-", kpe=False, input_names=["image"], input_size=(128, 128), crop=RULE
        )
        self.truth = truth_frame_px  # (V, H, K, 2) frame px
        self.presence = presence
        self.refiner = None  # set to the pipeline's Refiner (it holds the windows of the call)

    def infer(self, image, rays):
        codec = self.manifest.codec
        maps, pres = [], []
        for v, _, mapping in self.refiner.windows:
            maps.append(codec.encode(mapping.to_input(self.truth[v]))[0])
            pres.append([self.presence, self.presence])
        assert len(maps) == len(image)
        return np.stack(maps), np.array(pres, np.float32)


class NoisyDetector:
    """TEST-ONLY detector backend: the true joints plus Gaussian noise (frame px), through the letterbox."""

    name = "noisy"

    def __init__(self, rig, truth_frame_px: np.ndarray, noise_px: float, seed: int = 0):
        self.manifest = ModelManifest(name="noisy", artifact="-", kpe=False, input_names=["image"])
        rng = np.random.default_rng(seed)
        noisy = truth_frame_px + rng.normal(0, noise_px, truth_frame_px.shape)
        kp, present = [], []
        for v, cam in enumerate(rig):
            pts = noisy[v]
            inside = (pts[..., 0] >= 0) & (pts[..., 0] < cam.width) & (pts[..., 1] >= 0) & (pts[..., 1] < cam.height)
            box = Letterbox.fit(cam.size, self.manifest.input_size)
            kp.append(np.where(inside[..., None], box.to_input(pts), np.inf))
            present.append([inside[h].sum() >= 3 for h in range(2)])
        self.kp, self.present = np.array(kp), np.array(present, np.float32)

    def infer(self, image, rays):
        codec = self.manifest.codec
        return np.stack([codec.encode(k)[0] for k in self.kp]), self.present


def _errors(msg, joints_3d):
    out = []
    for h, hand in enumerate(msg.hands):
        ok = np.isfinite(hand.joints).all(axis=-1)
        out.append(np.linalg.norm(hand.joints[ok] - joints_3d[h][ok], axis=-1))
    return np.concatenate(out)


def test_refine_stage_replaces_noisy_detections_with_the_windows_result():
    src = SyntheticSource("headset4", seed=11, realtime=False)
    eng, smooth = EngineConfig(min_joints=1, max_hand_extent_m=0, tracking=False), FilterConfig(enabled=False)
    plain, refined = [], []
    for i in range(6):
        b = src.read()
        truth = b.labels.keypoints_2d.astype(np.float64)
        frames = dict(zip(b.cameras, b.images, strict=True))
        detector = NoisyDetector(src.rig, truth, noise_px=6.0, seed=i)
        plain.append(
            _errors(Pipeline(src.rig, detector, eng, smooth).process(frames, b.t_capture_ns), b.labels.joints_3d)
        )
        oracle = WindowOracle(truth)
        pipe = Pipeline(src.rig, detector, eng, smooth, refiner=oracle)
        oracle.refiner = pipe.refiner
        timings = {}
        msg = pipe.process(frames, b.t_capture_ns, timings)
        assert "refine" in msg.timings and len(pipe.refiner.windows) >= 2
        refined.append(_errors(msg, b.labels.joints_3d))
    plain, refined = np.concatenate(plain), np.concatenate(refined)
    assert len(refined) > 100
    assert np.median(plain) > 0.006, "the noisy detector should be visibly off"
    assert np.median(refined) < 0.003, f"median 3D error {np.median(refined) * 1000:.2f} mm with perfect windows"


def test_refiner_that_sees_no_hand_drops_it_from_the_view():
    src = SyntheticSource("headset4", seed=12, realtime=False)
    b = src.read()
    truth = b.labels.keypoints_2d.astype(np.float64)
    detector = NoisyDetector(src.rig, truth, noise_px=0.0)
    oracle = WindowOracle(truth, presence=0.1)
    pipe = Pipeline(
        src.rig, detector, EngineConfig(min_joints=1, tracking=False), FilterConfig(enabled=False), refiner=oracle
    )
    oracle.refiner = pipe.refiner
    det = pipe.detect(list(b.cameras), list(b.images), {})
    assert len(pipe.refiner.windows) >= 2
    for v, h, _ in pipe.refiner.windows:
        assert np.isnan(det.keypoints[v, h]).all() and (det.conf[v, h] == 0).all()
        assert det.presence[v, h] == pytest.approx(0.1)


def test_detector_and_refiner_cannot_be_swapped(random_model):
    from handstream.engine.backends import open_backend

    src = SyntheticSource("headset4", seed=1, realtime=False)
    detector = open_backend(random_model, "onnxruntime")
    with pytest.raises(HandstreamError, match="detector, not a refiner"):
        Pipeline(src.rig, detector, refiner=detector)
    with pytest.raises(HandstreamError, match="is a refiner"):
        Pipeline(src.rig, WindowOracle(np.zeros((4, 2, 21, 2))))


def test_serve_names_a_swapped_detector_or_refiner_in_one_line(capsys):
    from handstream.cli import main
    from handstream.models.defaults import DEFAULT_MODEL, DEFAULT_REFINER

    for args, says in (
        (["--refiner", str(DEFAULT_MODEL)], "model.refiner is a detector"),
        (["--model", str(DEFAULT_REFINER)], "model.path is a refiner"),
        (["--refiner", "/no/such/refiner.onnx"], "model not found"),
    ):
        assert main(["serve", "--demo", "--seconds", "1", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err


def test_a_detector_manifest_names_its_refiner(random_model, tmp_path):
    """The manifest's ``refiner`` pairs a detector with its refiner (``handstream adapt`` writes it): the
    ``default`` refiner follows it, ``""`` means none, a missing named file is a one-line error naming
    model.refiner, and a refiner's manifest cannot name one."""
    import json
    import shutil

    from handstream.config import ServeConfig
    from handstream.models.defaults import DEFAULT_CROP_MODEL, DEFAULT_REFINER, refiner_option
    from handstream.models.manifest import load_manifest
    from handstream.serve import plan

    det = tmp_path / "det.onnx"
    shutil.copy(random_model, det)
    meta = json.loads(random_model.with_name(random_model.name + ".json").read_text()) | {"artifact": "det.onnx"}

    def name_refiner(**field):
        (tmp_path / "det.onnx.json").write_text(json.dumps(meta | field))

    name_refiner()  # says nothing: the shipped crop model (tracking), or the shipped window refiner
    assert refiner_option("default", det) == DEFAULT_CROP_MODEL.resolve()
    assert refiner_option("default", det, tracking=False) == DEFAULT_REFINER.resolve()
    name_refiner(refiner="")
    assert refiner_option("default", det) is None
    assert refiner_option(str(DEFAULT_REFINER), det) == DEFAULT_REFINER.resolve()  # a path given wins
    mine = tmp_path / "refiners" / DEFAULT_REFINER.name  # a refiner beside the detector (relative to its manifest)
    mine.parent.mkdir()
    for suffix in ("", ".json"):
        shutil.copy(f"{DEFAULT_REFINER}{suffix}", f"{mine}{suffix}")
    name_refiner(refiner=f"refiners/{mine.name}")
    assert refiner_option("default", det) == mine.resolve()

    cfg = ServeConfig()
    cfg.rig.preset, cfg.model.path = "headset4", str(det)
    assert plan(cfg).config.model.refiner == str(mine.resolve())
    cfg.model.refiner = "default"
    name_refiner(refiner="gone.onnx")
    with pytest.raises(HandstreamError, match=r"^model.refiner: .*gone.onnx: model not found"):
        plan(cfg)
    cfg.model.refiner = "none"
    assert plan(cfg).config.model.refiner == ""

    ref = json.loads(Path(f"{mine}.json").read_text())
    Path(f"{mine}.json").write_text(json.dumps(ref | {"refiner": "x.onnx"}))
    with pytest.raises(HandstreamError, match="this model is a refiner"):
        load_manifest(mine)
    name_refiner(refiner=3)
    with pytest.raises(HandstreamError, match="field 'refiner' must be a string or null"):
        load_manifest(det)
