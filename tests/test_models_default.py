"""The shipped models (detector and refiner): each manifest matches its ONNX graph and the network it says it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handstream.models.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "engines" / "handstream-default.onnx"
REFINER = ROOT / "engines" / "handstream-refiner.onnx"
SHIPPED = [(MODEL, "handstream-default", None), (REFINER, "handstream-refiner", {"margin": 1.6, "min_side": 24.0})]


def test_shipped_models_fit_the_size_budget_together():
    assert sum(p.stat().st_size for p, _, _ in SHIPPED) <= 20 * 1024 * 1024


@pytest.mark.parametrize("model, name, crop", SHIPPED, ids=["detector", "refiner"])
def test_default_model_matches_its_manifest(model, name, crop):
    ort = pytest.importorskip("onnxruntime")
    manifest, artifact = load_manifest(model)
    assert manifest.name == name and manifest.artifact_format == "onnx"
    assert manifest.crop == crop  # a refiner carries its window rule; the detector has none
    session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert list(inputs) == manifest.input_names and list(outputs) == manifest.output_names
    w, h = manifest.input_size
    s = manifest.stride
    assert inputs["image"][1:] == [1, h, w]
    if manifest.kpe:
        assert inputs["rays"][1:] == [2, h // s, w // s]
    assert isinstance(inputs["image"][0], str)  # dynamic view axis
    # and the graph really produces what the manifest promises, for 4 views
    feeds = {"image": np.random.default_rng(0).random((4, 1, h, w), dtype=np.float32)}
    if manifest.kpe:
        feeds["rays"] = np.zeros((4, 2, h // s, w // s), np.float32)
    heatmaps, presence = session.run(None, feeds)
    assert heatmaps.shape == (4, 42, h // s, w // s) and presence.shape == (4, 2)
    assert ((presence >= 0) & (presence <= 1)).all()
    assert manifest.codec.heatmap_size == (w // s, h // s)


@pytest.mark.parametrize("model", [MODEL, REFINER], ids=["detector", "refiner"])
def test_default_model_network_rebuilds(model):
    torch = pytest.importorskip("torch")
    from handstream.models.network import HandNet, NetConfig

    manifest, _ = load_manifest(model)
    net = HandNet(NetConfig.from_dict(manifest.network))
    assert net.config.kpe == manifest.kpe
    w, h = manifest.input_size
    with torch.no_grad():
        hm, pres = net.eval()(torch.zeros(1, 1, h, w), torch.zeros(1, 2, h // 4, w // 4) if manifest.kpe else None)
    assert hm.shape == (1, 42, h // 4, w // 4) and pres.shape == (1, 2)
