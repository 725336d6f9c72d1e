"""LandmarkNet: MediaPipe's hand landmark network in PyTorch (handstream.models.landmark_net), its checkpoints
(handstream.models.checkpoint) and its export back to ONNX (handstream.export.landmarks).

The lite network is MediaPipe's own file in ``../shared/models`` (never committed; those tests skip with the
reason when it or tflite2onnx is absent), converted once per module. What is checked against ONNX Runtime on
the imported file: real crops of ``shared/data/real/images2d`` and random ones within 1e-3 px, a batch of 3 =
3 single crops, gradients down to the first convolution, a few optimizer steps that change the output, a
checkpoint round trip, and the export round trip (the exported file equals the imported one within 1e-3 px and
reads back as the same network). A tiny hand-made graph (no shared files) covers the ops ``torch.onnx.export``
may write (Constant, Pad before a Conv, Relu) and the one-line error of an op LandmarkNet does not read.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest

from handstream.errors import HandstreamError
from tests.conftest import REPO_ROOT, SHARED_DATA

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[train]')")
onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[import]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from handstream.models.landmark_net import LandmarkNet  # noqa: E402  (needs torch)

SHARED_MODELS = Path(os.environ.get("HANDSTREAM_SHARED_MODELS", REPO_ROOT.parent / "shared" / "models"))
LITE = SHARED_MODELS / "hand_landmark_lite.tflite"
IMAGES = SHARED_DATA / "real" / "images2d"
PX = 1e-3  # the contract: torch vs ONNX Runtime, landmarks px (probabilities and metres: the same bound)


def _one_line(exc: pytest.ExceptionInfo, *parts: str) -> None:
    text = str(exc.value)
    assert "\n" not in text and all(p in text for p in parts), text


def _session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session, x: np.ndarray) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x}), strict=True))


def _diff(net, got: dict, ref: dict) -> dict[str, float]:
    """role -> max abs difference between LandmarkNet's outputs and ONNX Runtime's (by output name)."""
    return {
        role: float(np.abs(got[role].detach().numpy() - ref[name]).max()) for role, name in net.output_names.items()
    }


@pytest.fixture(scope="module")
def imported(mediapipe_lite) -> Path:
    """The lite network converted by the importer, once per session (tests/conftest.py)."""
    return mediapipe_lite


@pytest.fixture(scope="module")
def loaded(imported):
    torch.set_num_threads(1)
    from handstream.models.checkpoint import load_landmark_net

    return load_landmark_net(imported)


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """Real 224x224 hand crops (N, 3, 224, 224) float32 RGB [0, 1]: the images of images2d and upright crops of
    their annotated hands."""
    if not IMAGES.is_dir():
        pytest.skip(f"{IMAGES} not found (real hand images live in ../shared/data)")
    pytest.importorskip("cv2", reason="opencv is not installed")
    from handstream.models.importer import real_crops

    x, _ = real_crops(IMAGES)
    assert x is not None and len(x) >= 10
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def test_matches_onnxruntime_on_real_and_random_crops(imported, loaded, crops):
    net, manifest = loaded
    assert manifest.kind == "landmarks" and manifest.provenance["weights_from"] == imported.name
    assert net.output_names == manifest.output_roles and net.input_name == manifest.input_names[0] == "input_1"
    assert [name for name in net.output_names.values()] == manifest.output_names  # the graph's order
    assert not net.training and 1_000_000 < net.parameter_count() < 1_100_000
    session = _session(imported)
    random = np.random.default_rng(1).random((4, 3, 224, 224), dtype=np.float32)
    for x in (crops, random):
        with torch.no_grad():
            got = net(torch.from_numpy(x))
        assert {r: tuple(t.shape) for r, t in got.items()} == {
            "landmarks": (len(x), 63), "presence": (len(x), 1), "handedness": (len(x), 1),
            "world_landmarks": (len(x), 63),
        }  # fmt: skip
        diff = _diff(net, got, _run(session, x))
        assert max(diff.values()) < PX, diff
    assert float(got["landmarks"].abs().max()) > 10  # crop px, not a degenerate output


def test_batch_of_three_equals_three_singles(loaded, crops):
    net, _ = loaded
    x = torch.from_numpy(crops[:3])
    with torch.no_grad():
        batch = net(x)
        singles = [net(x[i : i + 1]) for i in range(3)]
    for role, t in batch.items():
        assert torch.allclose(t, torch.cat([s[role] for s in singles]), atol=1e-4, rtol=0), role


def test_gradients_flow_and_a_few_steps_change_the_output(loaded, crops, tmp_path):
    from handstream.models.checkpoint import load_landmark_net, load_network, save_landmark_net

    net, manifest = loaded
    student = copy.deepcopy(net).train()
    x = torch.from_numpy(crops[:4])
    with torch.no_grad():
        before = student(x)["landmarks"].clone()
    target = before + 2.0  # every landmark 2 px to the right and down (and 2 deeper)
    out = student(x)
    loss = torch.nn.functional.mse_loss(out["landmarks"], target) + out["presence"].mean() + out["handedness"].mean()
    loss = loss + out["world_landmarks"].square().mean()  # every head in the loss: every parameter gets a gradient
    loss.backward()
    first = student.layers["conv01"].conv.weight.grad
    assert first is not None and torch.isfinite(first).all() and float(first.abs().sum()) > 0
    assert all(p.grad is not None for p in student.parameters())
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-6)  # folded batch norms: 1e-5 already overshoots
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(student(x)["landmarks"], target)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        after = student.eval()(x)["landmarks"]
    assert losses[-1] < losses[0] and float((after - before).abs().max()) > 0.1
    # checkpoint round trip: the fine-tuned weights and the manifest come back
    ckpt = save_landmark_net(tmp_path / "student.pt", student, manifest)
    again, m2 = load_landmark_net(ckpt)
    with torch.no_grad():
        assert torch.equal(again(x)["landmarks"], after)
    assert m2.artifact_format == "checkpoint" and m2.output_roles == manifest.output_roles and m2.crop == manifest.crop
    with pytest.raises(HandstreamError) as exc:
        load_network(ckpt)  # HandNet's loader: told where to go, unchanged otherwise
    _one_line(exc, "student.pt", "load_landmark_net")


def test_export_round_trip_keeps_parity(imported, loaded, crops, tmp_path):
    from handstream.export.landmarks import export_landmark_onnx
    from handstream.models.checkpoint import load_landmark_net, load_network
    from handstream.models.manifest import load_manifest

    net, manifest = loaded
    out = tmp_path / "student.onnx"
    written = export_landmark_onnx(net, out, imported, real_inputs=[crops[:6]])
    assert not net.training  # the caller's network is left as it was
    m, artifact = load_manifest(out)
    assert artifact == out and m.kind == "landmarks" and m.to_dict() == written.to_dict()
    assert m.output_roles == manifest.output_roles and m.input_names == ["input_1"] and m.crop == manifest.crop
    assert m.provenance["parent"] == imported.name and "Apache-2.0" in m.provenance["licence"]
    assert m.parity["checked"] and set(m.parity["by_input"]) == {"random", "real"}
    assert max(m.parity["max_abs_diff"].values()) < PX
    graph = onnx.load(str(out)).graph
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim][:1] == ["N"]
    assert [o.name for o in graph.output] == manifest.output_names
    # the student file equals the imported teacher file under ONNX Runtime (batches of 22 and 1)
    exported, source = _session(out), _session(imported)
    for x in (crops, crops[:1]):
        a, b = _run(exported, x), _run(source, x)
        assert max(float(np.abs(a[k] - b[k]).max()) for k in b) < PX
    # and reads back as the same network
    back, m3 = load_landmark_net(out)
    assert back.spec == net.spec and m3.provenance["weights_from"] == out.name
    with pytest.raises(HandstreamError) as exc:
        load_network(out)
    _one_line(exc, "student.onnx", "load_landmark_net")


# --- a tiny hand-made graph: the ops torch.onnx.export may write, and the error for an unknown op ------------------


def _tiny_graph(path: Path, unknown: str | None = None) -> Path:
    """input_1 (N, 3, 224, 224) -> Pad (0, 0, 1, 1) -> Conv 3x3 s2 -> Relu -> Conv 1x1 -> Clip (Constant
    bounds) -> mean -> 4 Gemm heads (two through a Sigmoid); ``unknown``: that op type in place of the Relu."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    inits = [init("w1", 8, 3, 3, 3), init("b1", 8), init("w2", 8, 8, 1, 1), init("b2", 8),
             numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), "pads")]  # fmt: skip
    nodes = [
        helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(0.0, np.float32))),
        helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(6.0, np.float32))),
        helper.make_node("Pad", ["input_1", "pads"], ["padded"], mode="constant"),
        helper.make_node("Conv", ["padded", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node(unknown or "Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
        helper.make_node("ReduceMean", ["r2"], ["pooled"], axes=[2, 3], keepdims=0),
    ]
    outputs = []
    for i, (width, sigmoid) in enumerate(((63, False), (1, True), (1, True), (63, False))):
        name = "Identity" if i == 0 else f"Identity_{i}"
        inits += [init(f"fc{i}", width, 8), init(f"fb{i}", width)]
        nodes.append(helper.make_node("Gemm", ["pooled", f"fc{i}", f"fb{i}"], [f"g{i}" if sigmoid else name], transB=1))
        if sigmoid:
            nodes.append(helper.make_node("Sigmoid", [f"g{i}"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width]))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", 3, 224, 224])], outputs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_tiny_graph_with_pad_relu_and_constants_matches_onnxruntime(tmp_path):
    path = _tiny_graph(tmp_path / "tiny.onnx")
    net = LandmarkNet.from_onnx(path)
    conv = net.layers["conv01"]
    assert conv.pad == (0, 1, 0, 1) and conv.clip == (0.0, float("inf"))  # the Pad and the Relu folded in
    assert net.layers["conv02"].clip == (0.0, 6.0) and set(net.layers) >= {"landmarks", "presence"}
    x = np.random.default_rng(2).random((2, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(x))
    assert max(_diff(net, got, _run(_session(path), x)).values()) < 1e-5


def test_an_unknown_op_is_a_one_line_error(tmp_path):
    path = _tiny_graph(tmp_path / "odd.onnx", unknown="HardSwish")
    with pytest.raises(HandstreamError) as exc:
        LandmarkNet.from_onnx(path)
    _one_line(exc, "odd.onnx", "'HardSwish'", "not supported")
    with pytest.raises(HandstreamError) as exc:
        LandmarkNet.from_onnx(tmp_path / "absent.onnx")
    _one_line(exc, "absent.onnx", "not a readable ONNX model")
