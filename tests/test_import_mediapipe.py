"""Importing MediaPipe's hand landmark network (handstream.models.importer) and decoding its outputs.

The networks are MediaPipe's own files in ``../shared/models`` (never committed; tests skip with the reason
when they are absent) and the packages of the ``import`` extra (tflite2onnx, tflite, ai-edge-litert). The lite
network is converted once per module. What is checked: the round trip from a ``.tflite`` and from a ``.task``
bundle (ONNX Runtime equals the TFLite interpreter within 1e-3 px on real crops, batched), the manifest
(kind, layout, roles, crop rule, provenance) and its backward compatibility, the decode helper on real crops
(handedness of FreiHAND's right hands), and the one-line errors of bad files. Fetching the wheel by package
name needs the network: ``HANDSTREAM_TEST_NETWORK=1`` runs that test.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from handstream.errors import HandstreamError
from handstream.models.landmarks import LandmarkOutputs
from handstream.models.manifest import ModelManifest, load_manifest, manifest_path
from tests.conftest import REPO_ROOT, SHARED_DATA

SHARED_MODELS = Path(os.environ.get("HANDSTREAM_SHARED_MODELS", REPO_ROOT.parent / "shared" / "models"))
LITE = SHARED_MODELS / "hand_landmark_lite.tflite"
BUNDLE = SHARED_MODELS / "hand_landmarker_lite.task"
PALM = SHARED_MODELS / "palm_detection_lite.tflite"
IMAGES = SHARED_DATA / "real" / "images2d"


def _need(*paths: Path) -> None:
    for p in paths:
        if not p.is_file():
            pytest.skip(f"{p} not found (MediaPipe's networks live in ../shared/models, never in the repository)")


def _need_packages(*names: str) -> None:
    for name in names:
        pytest.importorskip(name, reason=f"{name} is not installed (pip install -e '.[import]')")


def _one_line(exc: pytest.ExceptionInfo, *parts: str) -> None:
    text = str(exc.value)
    assert "\n" not in text and all(p in text for p in parts), text


@pytest.fixture(scope="module")
def lite(tmp_path_factory) -> tuple[list[Path], list[str]]:
    """The lite network imported from its .tflite, with the log lines."""
    _need(LITE)
    _need_packages("tflite2onnx", "tflite", "ai_edge_litert")
    from handstream.models.importer import import_mediapipe

    lines: list[str] = []
    out = tmp_path_factory.mktemp("engines")
    return import_mediapipe(LITE, out, log=lines.append), lines


def test_tflite_round_trip_matches_tflite_on_real_crops(lite):
    (onnx_path, json_path), lines = lite
    assert onnx_path.name == "mediapipe-hand-lite.onnx" and json_path == manifest_path(onnx_path)
    manifest, artifact = load_manifest(onnx_path)
    assert artifact == onnx_path and manifest.kind == "landmarks" and manifest.input_size == (224, 224)
    parity = manifest.parity
    assert parity["checked"] and parity["tolerance"] == 1e-3
    if IMAGES.is_dir():  # the real FreiHAND/OneHand10K crops of shared/data, plus seeded random ones
        assert set(parity["by_input"]) == {"random", "real"} and "upright hand crops" in parity["real_inputs"]
        assert parity["by_input"]["real"]["landmarks_px"] < 1e-3
    assert max(parity["max_abs_diff"].values()) < 1e-3
    assert any("ONNX Runtime vs TFLite" in line for line in lines)


def test_manifest_describes_the_converted_graph(lite):
    import onnx

    from handstream.records import file_sha256

    (onnx_path, _), _ = lite
    manifest, _ = load_manifest(onnx_path)
    graph = onnx.load(str(onnx_path)).graph
    assert manifest.input_names == [i.name for i in graph.input]
    assert manifest.output_names == [o.name for o in graph.output]
    assert manifest.input_layout == "NCHW"  # tflite2onnx transposes the NHWC input
    assert [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == ["N", 3, 224, 224]
    assert manifest.max_views == 16 and manifest.provenance["batch"] == "dynamic"
    assert manifest.output_roles == dict(zip(["landmarks", "presence", "handedness", "world_landmarks"],
                                             manifest.output_names, strict=True))  # fmt: skip
    assert manifest.crop == {"margin": 1.5, "min_side": 24.0, "camera": "perspective"}
    prov = manifest.provenance
    assert prov["source"] == LITE.name and prov["source_sha256"] == file_sha256(LITE)
    assert prov["converter"] == "tflite2onnx 0.4.1" and prov["variant"] == "lite"
    assert prov["sha256"] == file_sha256(onnx_path)
    assert "Apache-2.0" in prov["licence"] and "MediaPipe" in prov["licence"] and prov["converted"]
    data = json.loads(manifest_path(onnx_path).read_text())
    assert data["kind"] == "landmarks" and "stride" not in data and "kpe" not in data
    assert "(N, 3, 224, 224) float32 RGB in [0, 1]" in data["input"]["tensor"]
    assert ModelManifest.from_dict(data, "m") == manifest  # round trip


def test_batched_outputs_decode_to_keypoints_on_real_crops(lite):
    pytest.importorskip("cv2")
    if not IMAGES.is_dir():
        pytest.skip(f"shared data not found at {IMAGES}")
    import onnxruntime as ort

    from handstream.models.importer import _layout, real_crops

    (onnx_path, _), _ = lite
    manifest, _ = load_manifest(onnx_path)
    x, said = real_crops(IMAGES)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    raw = session.run(None, {manifest.input_names[0]: _layout(x, manifest.input_layout)})
    names = [o.name for o in session.get_outputs()]
    out = LandmarkOutputs.decode(raw, names, manifest.output_roles)
    n = len(x)
    assert out.keypoints.shape == (n, 21, 2) and out.z.shape == (n, 21) and out.world.shape == (n, 21, 3)
    assert out.presence.shape == out.handedness.shape == (n,)
    by_shape = LandmarkOutputs.decode(raw)  # no names: shape, then MediaPipe's order
    np.testing.assert_array_equal(by_shape.keypoints, out.keypoints)
    np.testing.assert_array_equal(by_shape.handedness, out.handedness)
    np.testing.assert_array_equal(LandmarkOutputs.decode(dict(zip(names, raw, strict=True))).world, out.world)
    np.testing.assert_allclose(out.keypoints, raw[0].reshape(n, 21, 3)[..., :2] - 0.5)
    # the upright crops (after the resized images) of FreiHAND's 8 right hands: found, right, inside the crop
    crops = slice(n - int(said.split(", ")[1].split()[0]), n)
    freihand = slice(crops.start, crops.start + 8)
    assert (out.presence[crops] > 0.9).all()
    assert (out.handedness[freihand] > 0.9).all()
    assert ((out.keypoints[crops] > -20) & (out.keypoints[crops] < 244)).all()
    assert (np.abs(out.world[crops]) < 0.25).all()  # metres, hand-centred


def test_task_bundle_round_trip(tmp_path):
    _need(BUNDLE)
    _need_packages("tflite2onnx", "tflite", "ai_edge_litert")
    from handstream.models.importer import import_mediapipe

    onnx_path, json_path = import_mediapipe(BUNDLE, tmp_path, name="bundle", variant="lite", log=lambda _: None)
    manifest, _ = load_manifest(json_path)
    assert onnx_path == tmp_path / "bundle.onnx" and manifest.name == "bundle"
    assert manifest.provenance["source"] == BUNDLE.name and manifest.provenance["source_member"].endswith(".tflite")
    assert max(manifest.parity["max_abs_diff"].values()) < 1e-3 and manifest.kind == "landmarks"


def test_parity_without_the_tflite_interpreter_is_said(tmp_path, monkeypatch):
    _need(LITE)
    _need_packages("tflite2onnx", "tflite")
    import builtins

    from handstream.models.importer import import_mediapipe

    real_import = builtins.__import__

    def no_litert(name, *args, **kwargs):
        if name.startswith("ai_edge_litert"):
            raise ImportError("No module named 'ai_edge_litert'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_litert)
    lines: list[str] = []
    _, json_path = import_mediapipe(LITE, tmp_path, log=lines.append)
    parity = load_manifest(json_path)[0].parity
    assert parity["checked"] is False and "ai_edge_litert" in parity["why"]
    assert any("parity not checked" in line for line in lines)


# --- bad files: one line naming the file ---------------------------------------------------------------------


def test_bundle_without_a_landmark_network(tmp_path):
    _need_packages("tflite")
    from handstream.models.importer import import_mediapipe

    bundle = tmp_path / "palm_only.task"
    with zipfile.ZipFile(bundle, "w") as z:
        z.writestr("readme.txt", "no network here")
        if PALM.is_file():
            z.write(PALM, "hand_detector.tflite")
    with pytest.raises(HandstreamError) as exc:
        import_mediapipe(bundle, tmp_path / "out", log=lambda _: None)
    _one_line(exc, str(bundle), "no hand landmark network")
    if PALM.is_file():
        _one_line(exc, "hand_detector.tflite (1x192x192x3)")
    assert not (tmp_path / "out").exists()


def test_truncated_tflite(tmp_path):
    _need(LITE)
    _need_packages("tflite")
    from handstream.models.importer import import_mediapipe

    bad = tmp_path / "hand_landmark_lite.tflite"
    bad.write_bytes(LITE.read_bytes()[:1000])
    with pytest.raises(HandstreamError) as exc:
        import_mediapipe(bad, tmp_path, log=lambda _: None)
    _one_line(exc, str(bad), "not a readable TFLite model")


def test_not_a_tflite_nor_a_bundle(tmp_path):
    from handstream.models.importer import import_mediapipe

    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\x08\x07" + bytes(200))
    with pytest.raises(HandstreamError) as exc:
        import_mediapipe(onnx_file, tmp_path, log=lambda _: None)
    _one_line(exc, str(onnx_file), "neither a TFLite model", ".task bundle")
    with pytest.raises(HandstreamError) as exc:
        import_mediapipe(tmp_path / "missing.tflite", tmp_path, log=lambda _: None)
    _one_line(exc, "missing.tflite", "not found")
    with pytest.raises(HandstreamError) as exc:
        import_mediapipe(onnx_file, tmp_path, variant="huge")
    _one_line(exc, "variant", "'huge'")


def test_a_tflite_of_another_network_is_refused():
    """A hand landmark-shaped check on flatbuffers of other networks: wrong input, wrong outputs."""
    _need(LITE)
    _need_packages("tflite")
    from handstream.models.importer import check_landmark_tflite

    check_landmark_tflite(LITE.read_bytes(), "lite")  # the real one passes
    other = SHARED_MODELS / "hand_landmark_full.tflite"
    if other.is_file():
        check_landmark_tflite(other.read_bytes(), "full")
    with pytest.raises(HandstreamError) as exc:
        check_landmark_tflite(b"1234TFL3" + bytes(64), "tiny.tflite")
    _one_line(exc, "tiny.tflite")


def test_wrong_variant_is_refused(tmp_path):
    _need(LITE)
    _need_packages("tflite2onnx", "tflite")
    from handstream.models.importer import import_mediapipe

    with pytest.raises(HandstreamError) as exc:
        import_mediapipe(LITE, tmp_path, variant="full", check_parity=False, log=lambda _: None)
    _one_line(exc, str(LITE), "is the lite network", "not the full one")


def test_graph_checks_name_the_shapes():
    """check_graph on small ONNX graphs that are not the landmark network (the converter's output is checked too)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from handstream.models.importer import check_graph

    def graph(in_shape, out_shapes):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)
        outs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, s) for i, s in enumerate(out_shapes)]
        nodes = [helper.make_node("ReduceMean", ["x"], [f"y{i}"]) for i in range(len(out_shapes))]
        return helper.make_model(helper.make_graph(nodes, "g", [x], outs))

    good = [[1, 63], [1, 1], [1, 1], [1, 63]]
    roles, layout = check_graph(graph([1, 224, 224, 3], good), "ok.onnx")
    assert layout == "NHWC"
    assert roles == {"landmarks": "y0", "presence": "y1", "handedness": "y2", "world_landmarks": "y3"}
    with pytest.raises(HandstreamError) as exc:
        check_graph(graph([1, 3, 192, 192], good), "small.onnx")
    _one_line(exc, "small.onnx", "1x3x224x224")
    with pytest.raises(HandstreamError) as exc:
        check_graph(graph([1, 3, 224, 224], good[:2]), "two.onnx")
    _one_line(exc, "two.onnx", "1x63, 1x1, 1x1, 1x63")
    assert onnx is not None


# --- manifests and the decode helper without the networks --------------------------------------------------


def test_manifests_without_kind_load_as_heatmap_models():
    manifest, _ = load_manifest(REPO_ROOT / "engines" / "handstream-crop.onnx")
    assert manifest.kind == "heatmap" and manifest.input_layout == "NCHW" and manifest.output_roles is None
    data = manifest.to_dict()
    assert data["kind"] == "heatmap" and "input_layout" not in data and "output_roles" not in data
    assert ModelManifest.from_dict(data, "m") == manifest
    data.pop("kind")
    assert ModelManifest.from_dict(data, "m") == manifest
    with pytest.raises(HandstreamError) as exc:
        ModelManifest.from_dict(data | {"kind": "boxes"}, "x.json")
    _one_line(exc, "x.json", "'kind'")
    with pytest.raises(HandstreamError) as exc:
        ModelManifest.from_dict(data | {"input_layout": "NHWC"}, "x.json")
    _one_line(exc, "x.json", "'input_layout'")


def test_landmarks_manifest_checks(tmp_path):
    roles = {"landmarks": "a", "presence": "b", "handedness": "c", "world_landmarks": "d"}
    m = ModelManifest(name="mp", artifact="mp.onnx", kind="landmarks", input_size=(224, 224), kpe=False,
                      input_names=["input_1"], output_names=list("abcd"), output_roles=roles,
                      crop={"camera": "perspective", "margin": 1.5, "min_side": 24.0})  # fmt: skip
    data = m.to_dict()
    back = ModelManifest.from_dict(data, "m")
    assert back.kind == "landmarks" and back.output_roles == roles and back.crop == m.crop
    with pytest.raises(HandstreamError) as exc:
        back.codec  # noqa: B018 (the property raises)
    _one_line(exc, "no heatmap codec")
    with pytest.raises(HandstreamError) as exc:
        ModelManifest.from_dict(data | {"output_roles": {"landmarks": "a"}}, "y.json")
    _one_line(exc, "y.json", "'output_roles'")
    with pytest.raises(HandstreamError) as exc:
        ModelManifest.from_dict({k: v for k, v in data.items() if k != "crop"}, "y.json")
    _one_line(exc, "y.json", "'crop'")


def test_decode_by_shape_and_errors():
    rng = np.random.default_rng(3)
    lm, world = rng.uniform(0, 224, (5, 63)), rng.uniform(-0.1, 0.1, (5, 63))
    flag, hand = rng.random((5, 1)), rng.random((5, 1))
    out = LandmarkOutputs.decode([lm, flag, hand, world])
    np.testing.assert_allclose(out.keypoints, lm.reshape(5, 21, 3)[..., :2] - 0.5, rtol=1e-6)
    np.testing.assert_allclose(out.z, lm.reshape(5, 21, 3)[..., 2], rtol=1e-6)
    np.testing.assert_allclose(out.presence, flag[:, 0], rtol=1e-6)
    np.testing.assert_allclose(out.handedness, hand[:, 0], rtol=1e-6)
    np.testing.assert_allclose(out.world, world.reshape(5, 21, 3), rtol=1e-6)
    roles = {"landmarks": "l", "presence": "f", "handedness": "h", "world_landmarks": "w"}
    named = LandmarkOutputs.decode([world, hand, flag, lm], ["w", "h", "f", "l"], roles)
    np.testing.assert_array_equal(named.keypoints, out.keypoints)
    np.testing.assert_array_equal(named.presence, out.presence)
    with pytest.raises(HandstreamError) as exc:
        LandmarkOutputs.decode([lm, flag, world])
    _one_line(exc, "expected 2 of (N, 63) and 2 of (N, 1)")
    with pytest.raises(HandstreamError) as exc:
        LandmarkOutputs.decode([lm, flag, hand[:3], world])
    _one_line(exc, "batch sizes differ")


@pytest.mark.skipif(not os.environ.get("HANDSTREAM_TEST_NETWORK"), reason="fetches mediapipe==0.10.14 (36 MB) from "
                    "the package registry: set HANDSTREAM_TEST_NETWORK=1")  # fmt: skip
def test_fetch_by_package_name(tmp_path):
    _need_packages("tflite2onnx", "tflite")
    from handstream.models.importer import import_mediapipe

    _, json_path = import_mediapipe(None, tmp_path, variant="lite", check_parity=False, log=lambda _: None)
    prov = load_manifest(json_path)[0].provenance
    assert prov["source_package"] in ("mediapipe==0.10.14", "@mediapipe/hands@0.4.1675469240")
    assert prov["variant"] == "lite"
    if LITE.is_file() and prov["source_package"].startswith("mediapipe=="):  # shared/models' lite is the wheel's
        from handstream.records import file_sha256

        assert prov["source_sha256"] == file_sha256(LITE)
