"""handstream export-engine, the manifests of exported artifacts, and the GPU backends' checks.

On CPU: ONNX export with parity on random and rendered inputs (default and another input size), the
command end to end from a training checkpoint, PyTorch weights read back from an ONNX graph, manifest
round trips, the engine compatibility checks (with fake TensorRT manifests: TensorRT is not installable
here) and the one-line errors of ``--format tensorrt`` without TensorRT or a GPU. GPU-only tests are
marked ``needs_cuda`` and skip with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pytest

from handstream import HandstreamError
from handstream.models.manifest import ModelManifest, load_manifest, manifest_path
from tests.cli_run import assert_one_line_error

torch = pytest.importorskip("torch")

SMALL = {"widths": [8, 8, 16, 16], "depths": [1, 1, 1, 1], "expand": 2, "decoder": 16, "stem": 8}


def run_cli(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"import sys\n{prelude}\nfrom handstream.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def train_checkpoint(tmp_path_factory):
    """A small HandNet saved the way ``handstream train`` saves OUT/checkpoint.pt (recipe, history, optimizer)."""
    from handstream.models.network import HandNet, NetConfig

    torch.manual_seed(5)
    net = HandNet(NetConfig.from_dict(SMALL))
    for m in net.modules():  # batch norms with real statistics, so folding them is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    opt = torch.optim.AdamW(net.parameters())
    path = tmp_path_factory.mktemp("run") / "checkpoint.pt"
    recipe = {
        "name": "small",
        "network": net.config.to_dict(),
        "codec": {"input_size": [96, 64], "stride": 4, "sigma": 2.0},
    }
    history = [{"epoch": 1, "train_loss": 0.5, "val_epe_px": 4.25}]
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 0, "network": net.config.to_dict(),
                "recipe": recipe, "history": history}, path)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def exported(train_checkpoint, tmp_path_factory):
    """``handstream export-engine`` run as a user runs it, on the training checkpoint, at 64x64 (not as trained)."""
    out = tmp_path_factory.mktemp("engines") / "small"
    result = run_cli("export-engine", "--checkpoint", str(train_checkpoint), "--out", str(out), "--input", "64x64",
                     "--max-views", "6", "--real-frames", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out.with_suffix(".onnx"), result


def test_cli_exports_a_verified_onnx_model_from_a_training_checkpoint(exported, train_checkpoint):
    onnx_path, result = exported
    assert "ONNX Runtime vs PyTorch" in result.stderr and "written" in result.stdout
    manifest, artifact = load_manifest(onnx_path)
    assert artifact == onnx_path and manifest_path(onnx_path).is_file()
    assert manifest.artifact_format == "onnx" and manifest.name == "small"
    assert manifest.input_size == (64, 64) and manifest.max_views == 6 and manifest.kpe
    assert manifest.network["widths"] == SMALL["widths"]
    prov = manifest.provenance
    assert prov["checkpoint"] == str(train_checkpoint) and prov["recipe_name"] == "small" and prov["epochs"] == 1
    assert prov["metrics"] == {"val_epe_px": 4.25} and prov["opset"] == 18 and len(prov["sha256"]) == 64
    parity = manifest.parity
    assert set(parity["by_input"]) == {"random", "real"}  # random AND rendered frames through the preprocessing
    assert "real x4" in parity["inputs"]  # the 4 cameras of the headset4 rig
    assert max(parity["max_abs_diff"].values()) <= parity["tolerance"] == 1e-4


def test_exported_model_runs_on_onnxruntime_and_torch_with_the_same_outputs(exported):
    from handstream.engine.backends import open_backend

    onnx_path, _ = exported
    ort_backend = open_backend(onnx_path)  # auto, no GPU here: onnxruntime
    torch_backend = open_backend(onnx_path, "torch")  # weights read back from the graph
    assert ort_backend.name == "onnxruntime" and torch_backend.name == "torch"
    rng = np.random.default_rng(1)
    image, rays = rng.random((4, 1, 64, 64), dtype=np.float32), rng.uniform(-1, 1, (4, 2, 16, 16)).astype(np.float32)
    a, b = ort_backend.infer(image, rays), torch_backend.infer(image, rays)
    assert a[0].shape == (4, 42, 16, 16) and a[1].shape == (4, 2)
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)


@pytest.fixture(scope="module")
def default_size_model(train_checkpoint, tmp_path_factory):
    """The library path (export_onnx) at the default input size 256x192, with rendered-frame parity inputs."""
    from handstream.export import export_onnx, real_parity_inputs
    from handstream.models.checkpoint import load_network

    net, _ = load_network(train_checkpoint)
    path = tmp_path_factory.mktemp("default") / "default.onnx"
    export_onnx(net, path, real_inputs=real_parity_inputs((256, 192), 4, True, frames=1))
    return path


def test_default_size_export_parity(default_size_model):
    manifest, _ = load_manifest(default_size_model)
    assert manifest.input_size == (256, 192) and manifest.parity["inputs"] == ["random x1", "random x4", "real x4"]
    assert max(manifest.parity["max_abs_diff"].values()) <= 1e-4
    assert manifest.parity["keypoints_compared"] == 0 or manifest.parity["keypoints_px"] < 1e-3


def test_torch_reads_weights_back_from_an_onnx_graph(default_size_model):
    from handstream.models.checkpoint import ONNX_LOAD_TOLERANCE, _compare_with_onnxruntime, load_network

    net, manifest = load_network(default_size_model)  # verified against ONNX Runtime while loading
    assert manifest.artifact_format == "onnx" and manifest.provenance["weights_from"] == default_size_model.name
    assert _compare_with_onnxruntime(net, default_size_model, manifest) < ONNX_LOAD_TOLERANCE / 100


def test_load_network_reads_training_checkpoints(train_checkpoint, tmp_path):
    from handstream.models.checkpoint import load_network, save_network

    net, manifest = load_network(train_checkpoint)
    assert manifest.input_size == (96, 64) and manifest.name == "small" and manifest.artifact_format == "checkpoint"
    again, m2 = load_network(save_network(tmp_path / "inference.pt", net, input_size=(128, 96)))
    assert m2.input_size == (128, 96) and m2.name == "inference"
    with pytest.raises(HandstreamError, match="not a handstream checkpoint"):
        torch.save({"weights": {}}, tmp_path / "other.pt")
        load_network(tmp_path / "other.pt")


def test_refiner_checkpoint_exports_with_its_window_rule(train_checkpoint, tmp_path):
    """A refiner's window rule (its recipe's [hand_crop]) travels checkpoint -> ONNX manifest -> engine."""
    from handstream.export import export_engine
    from handstream.models.checkpoint import load_network

    data = torch.load(train_checkpoint, weights_only=True)
    data["recipe"] = {**data["recipe"], "hand_crop": {"margin": 1.5, "min_side": 20.0, "negatives": 0.1}}
    torch.save(data, tmp_path / "refiner.pt")
    _, manifest = load_network(tmp_path / "refiner.pt")
    assert manifest.crop == {"margin": 1.5, "min_side": 20.0}
    (onnx_path, onnx_manifest), = export_engine(tmp_path / "refiner.pt", tmp_path / "refiner", real_frames=1)
    loaded, _ = load_manifest(onnx_path)
    assert loaded.crop == {"margin": 1.5, "min_side": 20.0} == onnx_manifest.crop
    assert "window around one hand" in json.loads(manifest_path(onnx_path).read_text())["input"]["tensor"]
    bad = json.loads(manifest_path(onnx_path).read_text())
    bad["crop"] = {"margin": 0.5}
    manifest_path(onnx_path).write_text(json.dumps(bad))
    with pytest.raises(HandstreamError, match="'crop' must be"):
        load_manifest(onnx_path)


def fake_engine_manifest(tmp_path, **tensorrt) -> tuple:
    engine = tmp_path / "hs.engine"
    engine.write_bytes(b"not really an engine")
    info = {"version": "10.3.0", "gpu": "NVIDIA A10", "compute_capability": "8.6", "precision": "fp16"} | tensorrt
    manifest = ModelManifest(
        name="hs", artifact="hs.engine", artifact_format="tensorrt", input_size=(256, 192), max_views=4,
        provenance={"checkpoint": "runs/hs/model.pt"}, tensorrt=info,
    )  # fmt: skip
    manifest.save(manifest_path(engine))
    return engine, manifest


def test_engine_manifest_round_trip(tmp_path):
    engine, manifest = fake_engine_manifest(tmp_path)
    loaded, artifact = load_manifest(engine)
    assert artifact == engine and loaded == manifest
    data = json.loads(manifest_path(engine).read_text())
    data["tensorrt"] = "fp16"
    manifest_path(engine).write_text(json.dumps(data))
    with pytest.raises(HandstreamError, match="'tensorrt' must be an object or null, got 'fp16'"):
        load_manifest(engine)


def test_engine_built_elsewhere_is_refused_with_the_command_that_rebuilds_it(tmp_path):
    from handstream.engine.backends.tensorrt import check_engine_compatibility

    engine, manifest = fake_engine_manifest(tmp_path)
    check_engine_compatibility(manifest, engine, tensorrt_version="10.3.0", compute_capability="8.6")
    rebuild = (
        f"handstream export-engine --checkpoint runs/hs/model.pt --out {tmp_path / 'hs'} --format tensorrt --fp16 "
        "--max-views 4 --input 256x192"
    )
    with pytest.raises(HandstreamError) as version:
        check_engine_compatibility(manifest, engine, tensorrt_version="10.7.0", compute_capability="8.6")
    msg = str(version.value)
    assert "\n" not in msg and "TensorRT 10.3.0 (this machine has 10.7.0)" in msg and msg.endswith(rebuild)
    with pytest.raises(HandstreamError) as gpu:
        check_engine_compatibility(
            manifest, engine, tensorrt_version="10.3.0", compute_capability="9.0", gpu_name="NVIDIA H100"
        )
    msg = str(gpu.value)
    assert "compute capability 8.6 (NVIDIA A10; this one: NVIDIA H100, 9.0)" in msg and msg.endswith(rebuild)
    onnx_manifest = ModelManifest(name="x", artifact="x.onnx")
    with pytest.raises(HandstreamError, match="not a TensorRT engine"):
        check_engine_compatibility(onnx_manifest, "x.onnx", tensorrt_version="10.3.0", compute_capability="8.6")


def test_tensorrt_backend_without_tensorrt_or_gpu_is_a_one_line_error(tmp_path, monkeypatch):
    from handstream.engine.backends import open_backend

    engine, _ = fake_engine_manifest(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on every machine of this project
    with pytest.raises(HandstreamError, match="TensorRT is not installed"):
        open_backend(engine)
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(HandstreamError, match="no CUDA GPU"):
        open_backend(engine)
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    with pytest.raises(HandstreamError, match="needs TensorRT 10 or newer"):
        open_backend(engine)


def test_format_tensorrt_here_exits_2_before_exporting(train_checkpoint, tmp_path):
    out = tmp_path / "trt"
    result = run_cli("export-engine", "--checkpoint", str(train_checkpoint), "--out", str(out), "--format", "tensorrt",
                     prelude="sys.modules['tensorrt'] = None")  # fmt: skip
    assert_one_line_error(result, "TensorRT is not installed", "docs/gpu.md")
    assert not list(tmp_path.iterdir())  # nothing written
    fake = "import types; sys.modules['tensorrt'] = types.SimpleNamespace(__version__='10.3.0')"
    fake += "\nimport torch; torch.cuda.is_available = lambda: False"
    result = run_cli(
        "export-engine", "--checkpoint", str(train_checkpoint), "--out", str(out), "--format", "tensorrt", prelude=fake
    )
    assert_one_line_error(result, "no CUDA GPU", "run this on that machine")


def test_option_errors(train_checkpoint, tmp_path):
    from handstream.export import export_engine, parse_input_size

    assert parse_input_size("320x256") == (320, 256)
    for bad in ("320x250", "256", "0x64", "8192x64"):
        with pytest.raises(HandstreamError, match="--input"):
            parse_input_size(bad)
    with pytest.raises(HandstreamError, match="--fp16: only for --format tensorrt"):
        export_engine(train_checkpoint, tmp_path / "x", fp16=True)
    with pytest.raises(HandstreamError, match="--max-views"):
        export_engine(train_checkpoint, tmp_path / "x", max_views=17)
    with pytest.raises(HandstreamError, match="--format"):
        export_engine(train_checkpoint, tmp_path / "x", fmt="coreml")
    with pytest.raises(HandstreamError, match="checkpoint not found"):
        export_engine(tmp_path / "none.pt", tmp_path / "x")
    result = run_cli("export-engine", "--out", str(tmp_path / "x"))
    assert_one_line_error(result, "--checkpoint and --out are required")


def test_list_formats_says_which_need_a_gpu():
    result = run_cli("export-engine", "--list", prelude="sys.modules['tensorrt'] = None")
    assert result.returncode == 0, result.stderr
    rows = {
        line.split()[1]: line
        for line in result.stdout.splitlines()
        if line.startswith("│ onnx") or line.startswith("│ tensorrt")
    }
    assert set(rows) == {"onnx", "tensorrt"}
    assert "│ no " in rows["onnx"] and "│ yes " in rows["tensorrt"]


def test_auto_backend_on_cpu_never_imports_torch(exported):
    code = (
        "import sys; from handstream.engine.backends import open_backend\n"
        f"b = open_backend({str(exported[0])!r})\n"
        "assert b.name == 'onnxruntime', b.name\nassert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_gpu_check_without_a_gpu_exits_2_with_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: benchmarks/gpu_check.py runs for real there")
    from tests.conftest import REPO_ROOT

    out = tmp_path / "gpu.json"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py"), "--json", str(out)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA GPU"), result.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------
# GPU only
# ---------------------------------------------------------------------------------------------------
@pytest.mark.needs_cuda
def test_torch_cuda_graphs_match_onnxruntime(random_model):
    from handstream.engine.backends import open_backend
    from handstream.export import real_parity_inputs

    auto = open_backend(random_model)
    assert auto.name == "torch" and auto.device.type == "cuda"  # auto on a GPU: torch with CUDA graphs
    eager = open_backend(random_model, "torch", device="cuda")
    eager.cuda_graphs = False
    cpu = open_backend(random_model, "onnxruntime")
    for image, rays in real_parity_inputs((256, 192), 4, True, frames=1):
        ref = cpu.infer(image, rays)
        for n in (1, 4):
            for backend in (auto, eager):
                hm, pres = backend.infer(image[:n], rays[:n])
                assert hm.is_cuda and hm.shape == (n, 42, 48, 64)
                np.testing.assert_allclose(hm.cpu().numpy(), ref[0][:n], atol=1e-3)
                np.testing.assert_allclose(pres.cpu().numpy(), ref[1][:n], atol=1e-3)


@pytest.mark.needs_cuda
def test_tensorrt_engine_build_and_serve(train_checkpoint, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    from handstream.engine.backends import open_backend
    from handstream.export import export_engine

    results = export_engine(
        train_checkpoint, tmp_path / "small", fmt="tensorrt", max_views=4, input_size="64x64", real_frames=1
    )
    (onnx_path, _), (engine_path, manifest) = results
    assert engine_path.suffix == ".engine" and (tmp_path / "small.timing.cache").is_file()
    assert manifest.tensorrt["precision"] == "fp32" and manifest.max_views == 4
    backend = open_backend(engine_path)
    assert backend.name == "tensorrt"
    image = np.random.default_rng(0).random((3, 1, 64, 64), dtype=np.float32)
    rays = np.zeros((3, 2, 16, 16), np.float32)
    hm, pres = backend.infer(image, rays)
    ref = open_backend(onnx_path, "onnxruntime").infer(image, rays)
    np.testing.assert_allclose(hm.cpu().numpy(), ref[0], atol=1e-3)
    with pytest.raises(HandstreamError, match="--max-views 5"):
        backend.infer(np.zeros((5, 1, 64, 64), np.float32), np.zeros((5, 2, 16, 16), np.float32))


def test_re_export_keeps_a_detectors_refiner_pairing(random_model, tmp_path):
    """An adapted detector says which refiner it runs with (or none); re-exporting it elsewhere
    (export-engine, ONNX or TensorRT) keeps that, re-pointing a named refiner from the new folder."""
    import shutil

    from handstream.export import export_engine, paired_from
    from handstream.models.defaults import default_refiner

    src = tmp_path / "adapted" / "det.onnx"
    src.parent.mkdir()
    shutil.copy(random_model, src)
    meta = json.loads(manifest_path(random_model).read_text()) | {"artifact": "det.onnx"}
    refiner = src.parent / "det-refiner.onnx"
    refiner.write_bytes(b"")  # only its path matters here
    for pairing, expected in (("", None), ("det-refiner.onnx", refiner.resolve())):
        manifest_path(src).write_text(json.dumps(meta | {"refiner": pairing}))
        (out, manifest), = export_engine(src, tmp_path / "elsewhere" / "det", real_frames=1)
        got = default_refiner(out)
        assert (got and got.resolve()) == expected
        engine_dir = tmp_path / "engines"  # what build_engine writes beside a TensorRT engine
        again = paired_from(manifest, out.parent, engine_dir)
        assert (again == "") if pairing == "" else ((engine_dir / again).resolve() == refiner.resolve())
    manifest_path(src).write_text(json.dumps(meta))  # says nothing: still nothing (the shipped refiner)
    (out, manifest), = export_engine(src, tmp_path / "elsewhere" / "det2", real_frames=1)
    assert manifest.refiner is None
