"""The in-process pipeline: geometry end to end, gating, backends, and what a real model produces.

``HeatmapOracle`` below is a TEST-ONLY backend: it draws the codec's target heatmaps at the true 2D
joints, so these tests check everything *around* the estimator (letterbox mapping, decoding back to
frame pixels, undistortion of fisheye views, RANSAC triangulation, hand gating) against ground truth.
It is never available to the engine; the estimator's own accuracy is measured by `handstream eval`.
"""

import numpy as np
import pytest

from handstream.config import EngineConfig, FilterConfig
from handstream.engine.backends import open_backend
from handstream.engine.pipeline import Pipeline
from handstream.errors import HandstreamError
from handstream.models.manifest import ModelManifest
from handstream.synth.source import SyntheticSource


class HeatmapOracle:
    name = "oracle"

    def __init__(self, codec_manifest: ModelManifest, keypoints_input: np.ndarray, presence: np.ndarray):
        self.manifest = codec_manifest
        self.kp = keypoints_input  # (V, H, K, 2) input pixels
        self.presence = presence  # (V, H)

    def infer(self, image, rays):
        codec = self.manifest.codec
        maps = np.stack([codec.encode(self.kp[v])[0] for v in range(len(self.kp))])
        return maps, self.presence.astype(np.float32)


def _oracle_pipeline(src, bundle, views):
    from handstream.models.preprocess import Letterbox

    manifest = ModelManifest(name="oracle", artifact="-", kpe=False, input_names=["image"])
    labels = bundle.labels
    kp = []
    for v in views:
        cam = src.rig[v]
        box = Letterbox.fit(cam.size, manifest.input_size)
        pts = labels.keypoints_2d[v].astype(np.float64)
        inside = (pts[..., 0] >= 0) & (pts[..., 0] < cam.width) & (pts[..., 1] >= 0) & (pts[..., 1] < cam.height)
        kp.append(np.where(inside[..., None], box.to_input(pts), np.inf))
    present = np.array([[(np.isfinite(k[h]).all(-1)).sum() >= 3 for h in range(2)] for k in kp], np.float32)
    backend = HeatmapOracle(manifest, np.array(kp), present)
    return Pipeline(src.rig, backend, EngineConfig(min_joints=1), FilterConfig(enabled=False))


def test_geometry_end_to_end_recovers_the_true_joints():
    src = SyntheticSource("headset4", seed=5, realtime=False)
    errors = []
    for _ in range(6):
        b = src.read()
        p = _oracle_pipeline(src, b, range(4))
        msg = p.process(dict(zip(b.cameras, b.images, strict=True)), b.t_capture_ns)
        assert msg.views == list(src.rig.names)
        for h, hand in enumerate(msg.hands):
            ok = np.isfinite(hand.joints).all(axis=-1)
            if ok.any():
                errors.append(np.linalg.norm(hand.joints[ok] - b.labels.joints_3d[h][ok], axis=-1))
                assert (hand.n_views[ok] >= 2).all()
                assert np.isfinite(hand.reproj_error[ok]).all()
    errors = np.concatenate(errors)
    assert len(errors) > 100
    assert np.median(errors) < 0.003, f"median 3D error {np.median(errors) * 1000:.2f} mm with perfect heatmaps"


def test_one_view_reports_hands_as_not_tracked():
    src = SyntheticSource("stereo", seed=2, realtime=False)
    b = src.read()
    p = _oracle_pipeline(src, b, [0])
    msg = p.process({b.cameras[0]: b.images[0]}, b.t_capture_ns)
    assert msg.views == [b.cameras[0]]
    assert all(np.isnan(h.joints).all() and (h.n_views == 0).all() for h in msg.hands)


def test_frame_of_the_wrong_size_is_an_error_naming_the_camera(random_model):
    src = SyntheticSource("stereo", seed=2, realtime=False)
    p = Pipeline(src.rig, open_backend(random_model))
    b = src.read()
    frames = dict(zip(b.cameras, b.images, strict=True))
    frames[b.cameras[1]] = frames[b.cameras[1]][:100]
    with pytest.raises(HandstreamError, match=b.cameras[1]):
        p.process(frames, b.t_capture_ns)


def test_real_onnx_model_runs_through_every_stage(random_model):
    src = SyntheticSource("headset4", seed=1, realtime=False)
    p = Pipeline(src.rig, open_backend(random_model), EngineConfig(include_2d=True))
    b = src.read()
    msg = p.process(dict(zip(b.cameras, b.images, strict=True)), b.t_capture_ns, {"sync": 0.5})
    assert set(msg.timings) >= {"sync", "preprocess", "infer", "decode", "triangulate", "smooth"}
    assert [h.side for h in msg.hands] == ["left", "right"]
    for h in msg.hands:
        assert h.joints.shape == (21, 3) and h.joints.dtype == np.float32
        assert h.joints_2d.shape == (4, 21, 2)
        assert 0.0 <= h.presence <= 1.0


def test_torch_backend_matches_onnxruntime(tmp_path, random_model):
    torch = pytest.importorskip("torch")
    from handstream.export import export_onnx
    from handstream.models.checkpoint import save_network
    from handstream.models.network import HandNet

    torch.manual_seed(3)
    net = HandNet().eval()
    ckpt = save_network(tmp_path / "net.pt", net)
    export_onnx(net, tmp_path / "net.onnx")
    a, b = open_backend(ckpt), open_backend(tmp_path / "net.onnx")
    assert a.name == "torch" and b.name == "onnxruntime"
    rng = np.random.default_rng(0)
    image = rng.random((2, 1, 192, 256), dtype=np.float32)
    rays = rng.uniform(-1, 1, (2, 2, 48, 64)).astype(np.float32)
    for x, y in zip(a.infer(image, rays), b.infer(image, rays), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-4)


def test_backend_errors_are_one_line(tmp_path, random_model):
    with pytest.raises(HandstreamError, match="model not found"):
        open_backend(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(HandstreamError, match="manifest"):
        open_backend(bad)
    (tmp_path / "bad.onnx.json").write_text(
        random_model.with_name(random_model.name + ".json").read_text().replace("random.onnx", "bad.onnx")
    )
    with pytest.raises(HandstreamError, match="onnxruntime cannot load it"):
        open_backend(bad)
    with pytest.raises(HandstreamError, match="backend"):
        open_backend(random_model, "nonsense")
