"""ONNX -> TensorRT: ``NAME.onnx`` -> ``NAME.engine`` + ``NAME.engine.json``, checked against ONNX Runtime.

Legend: ``N`` views (the engine's dynamic batch axis), ``(H_in, W_in)`` input size, ``(h, w)`` heatmap
size (input / stride), 42 heatmaps (2 hands x 21 joints).

:func:`build_tensorrt` uses the TensorRT 10 Python API, in named steps: decide what to build
(:func:`_plan`), parse the ONNX and build the engine with an optimisation profile 1..max_views on the
``views`` axis, fp32 (TF32 off) or fp16, and a timing cache ``NAME.timing.cache`` (:func:`_build_engine`),
write its manifest (:func:`_engine_manifest`), then run it on the GPU against ONNX Runtime on the CPU
(:func:`_check_parity`). Needs TensorRT and an NVIDIA GPU; the engine runs only where it was built
(:mod:`handstream.engine.backends.tensorrt`, which also finds TensorRT and the GPU for the build).

TensorRT, torch and onnxruntime are imported inside the functions, so importing this module is cheap.
NOTE: no machine of this project had TensorRT; this path is exercised only by tests that skip without it
(see docs/gpu.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.export.artifacts import MAX_EXPORT_VIEWS, paired_from
from handstream.export.parity import compare_outputs
from handstream.export.progress import Progress
from handstream.models.manifest import ModelManifest, load_manifest, manifest_path
from handstream.records import file_sha256

# TensorRT against ONNX Runtime, max abs difference of heatmaps/presence: fp32 is built without TF32, so
# only kernel choice and summation order differ; fp16 carries ~3 decimal digits through ~40 layers.
TENSORRT_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}


def require_tensorrt_here(where: str = "--format tensorrt") -> tuple[Any, dict[str, Any]]:
    """(tensorrt module, GPU info) or a one-line HandstreamError: TensorRT missing or too old, no GPU."""
    from handstream.engine.backends.tensorrt import cuda_device_info, import_tensorrt

    trt = import_tensorrt(where)
    return trt, cuda_device_info("cuda")


def build_tensorrt(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    fp16: bool = False,
    max_views: int = 8,
    workspace_gb: float = 2.0,
    parity_cases: list[tuple[str, np.ndarray, np.ndarray | None]] | None = None,
    progress: Progress | None = None,
) -> ModelManifest:
    """Build a TensorRT engine from an exported ONNX model, with the TensorRT 10 Python API.

    Args:
        onnx_path: ``NAME.onnx`` with its manifest (from :func:`~handstream.export.onnx.export_onnx`).
        engine_path: ``NAME.engine``; its manifest ``NAME.engine.json`` and the timing cache
            ``NAME.timing.cache`` (reused and updated by later builds) are written next to it.
        fp16: allow fp16 kernels (inputs and outputs stay float32); otherwise strict fp32 (TF32 off).
        max_views: the optimisation profile covers N = 1..max_views (optimum at min(4, max_views)) on
            the ``views`` axis of every input.
        workspace_gb: builder workspace limit, GiB.
        parity_cases: ``(kind, image, rays)`` NumPy inputs (N <= max_views) for the parity check against
            ONNX Runtime (CPU); random inputs at N = 1 and max_views are always added.
    Returns:
        the engine's manifest (``tensorrt``: version, GPU, compute capability, precision, profile,
        timing cache; ``parity``: :func:`~handstream.export.parity.compare_outputs` figures).
    Raises:
        HandstreamError: TensorRT missing, no GPU, an unsupported op, a failed build, or parity above
        :data:`TENSORRT_TOLERANCE` (the engine is then removed).
    """
    progress = progress or Progress()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    trt, gpu = require_tensorrt_here(str(engine_path))
    import torch

    plan = _plan(onnx_path, engine_path, fp16=fp16, max_views=max_views, workspace_gb=workspace_gb)
    with progress.step(
        f"TensorRT {trt.__version__}: parse {plan.onnx_path.name} and build {plan.precision} for {gpu['gpu']} "
        f"(sm {gpu['compute_capability']})"
    ):
        _build_engine(trt, torch, gpu, plan)
    manifest = _engine_manifest(trt, torch, gpu, plan)
    mpath = manifest.save(manifest_path(engine_path))
    with progress.step(f"parity: TensorRT {plan.precision} vs ONNX Runtime (CPU)"):
        _check_parity(trt, gpu, plan, manifest, mpath, parity_cases)
    return manifest


@dataclass(frozen=True)
class _Plan:
    """What one :func:`build_tensorrt` call builds, decided before TensorRT runs.

    Attributes:
        onnx_path, onnx_manifest: the source model (the path its manifest names).
        engine_path: ``NAME.engine``; cache_path: its timing cache ``NAME.timing.cache``.
        fp16: fp16 kernels allowed (else strict fp32).
        views: the optimisation profile on the ``views`` axis, ``(min, opt, max)`` = (1, min(4, max), max).
        workspace_gb: builder workspace limit, GiB.
        shapes: the inputs' shapes per view: ``image (1, H_in, W_in)``, ``rays (2, h, w)``.
    """

    onnx_path: Path
    onnx_manifest: ModelManifest
    engine_path: Path
    cache_path: Path
    fp16: bool
    views: tuple[int, int, int]
    workspace_gb: float
    shapes: dict[str, tuple[int, ...]]

    @property
    def precision(self) -> str:
        return "fp16" if self.fp16 else "fp32"


def _plan(onnx_path: Path, engine_path: Path, *, fp16: bool, max_views: int, workspace_gb: float) -> _Plan:
    """Read the ONNX model's manifest, check the options, name the timing cache, create the engine's folder."""
    onnx_manifest, onnx_path = load_manifest(onnx_path)
    if onnx_manifest.artifact_format != "onnx":
        raise HandstreamError(
            f"{onnx_path}: TensorRT engines are built from an ONNX model, this is {onnx_manifest.artifact_format}"
        )
    if not 1 <= max_views <= MAX_EXPORT_VIEWS:
        raise HandstreamError(f"--max-views: expected 1 to {MAX_EXPORT_VIEWS}, got {max_views}")
    stem = engine_path.name[: -len(engine_path.suffix)] if engine_path.suffix else engine_path.name
    cache_path = engine_path.with_name(stem + ".timing.cache")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    w, h = onnx_manifest.input_size
    s = onnx_manifest.stride
    return _Plan(
        onnx_path=onnx_path,
        onnx_manifest=onnx_manifest,
        engine_path=engine_path,
        cache_path=cache_path,
        fp16=fp16,
        views=(1, min(4, max_views), max_views),
        workspace_gb=workspace_gb,
        shapes={"image": (1, h, w), "rays": (2, -(-h // s), -(-w // s))},
    )


def _build_engine(trt, torch, gpu: dict[str, Any], plan: _Plan) -> None:
    """Parse the ONNX model, build the engine on ``gpu``, write ``NAME.engine`` and the updated timing cache."""
    logger = trt.Logger(trt.Logger.WARNING)
    with torch.cuda.device(gpu["index"]):
        builder = trt.Builder(logger)
        # the parser owns the network's weights: it stays referenced until the engine is built
        network, _parser = _parse_onnx(trt, builder, logger, plan.onnx_path)
        config = _builder_config(trt, builder, plan)
        config.add_optimization_profile(_optimization_profile(builder, network, plan))
        cache = config.create_timing_cache(plan.cache_path.read_bytes() if plan.cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise HandstreamError(f"{plan.onnx_path}: TensorRT could not build an engine (its messages above say why)")
        with open(plan.engine_path, "wb") as f:
            f.write(serialized)
        with open(plan.cache_path, "wb") as f:
            f.write(config.get_timing_cache().serialize())


def _parse_onnx(trt, builder, logger, onnx_path: Path) -> tuple[Any, Any]:
    """(network, parser) of the ONNX model; a one-line HandstreamError naming the op TensorRT rejects."""
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise _parser_error(trt, parser, onnx_path)
    return network, parser


def _parser_error(trt, parser, onnx_path: Path) -> HandstreamError:
    """The first error of TensorRT's ONNX parser as one line (unsupported op named)."""
    if parser.num_errors == 0:
        return HandstreamError(f"{onnx_path}: TensorRT's ONNX parser rejected the model without saying why")
    err = parser.get_error(0)

    def field(name: str) -> str:
        fn = getattr(err, name, None)
        try:
            return str(fn()) if callable(fn) else ""
        except Exception:  # older parsers lack some fields
            return ""

    desc, op, node = field("desc"), field("node_operator"), field("node_name")
    more = f" (+{parser.num_errors - 1} more)" if parser.num_errors > 1 else ""
    if err.code() == trt.ErrorCode.UNSUPPORTED_NODE or "unsupported" in desc.lower() or "no importer" in desc.lower():
        what = f"op {op!r}" + (f" (node {node})" if node else "") if op else "an op"
        return HandstreamError(
            f"{onnx_path}: TensorRT {trt.__version__} does not support {what}: {desc}{more}; "
            f"serve the ONNX model with backend 'torch' or 'onnxruntime', or use a newer TensorRT"
        )
    return HandstreamError(f"{onnx_path}: TensorRT's ONNX parser failed at {node or op or 'the graph'}: {desc}{more}")


def _builder_config(trt, builder, plan: _Plan):
    """The builder config: workspace limit, and fp16 allowed or strict fp32 (TF32 off, for parity)."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(plan.workspace_gb * (1 << 30)))
    if plan.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)  # strict fp32: parity with ONNX Runtime
    return config


def _optimization_profile(builder, network, plan: _Plan):
    """One profile: N = min, opt, max views (:attr:`_Plan.views`) on every input's first axis."""
    lo, opt, hi = plan.views
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        if name not in plan.shapes:
            raise HandstreamError(
                f"{plan.onnx_path}: unexpected input {name!r} (expected {plan.onnx_manifest.input_names})"
            )
        shape = plan.shapes[name]
        profile.set_shape(name, (lo, *shape), (opt, *shape), (hi, *shape))
    return profile


def _engine_manifest(trt, torch, gpu: dict[str, Any], plan: _Plan) -> ModelManifest:
    """The engine's manifest: the ONNX model's, re-pointed to the engine, with what it was built with and for
    (``tensorrt``) and the hashes of both files; ``parity`` is filled in by :func:`_check_parity`."""
    source = plan.onnx_manifest
    return replace(
        source,
        artifact=plan.engine_path.name,
        artifact_format="tensorrt",
        refiner=paired_from(source, plan.onnx_path.parent, plan.engine_path.parent),
        max_views=plan.views[2],
        provenance={
            **source.provenance,
            "built": datetime.now(UTC).isoformat(timespec="seconds"),
            "onnx_source": str(plan.onnx_path),
            "onnx_sha256": file_sha256(plan.onnx_path),
            "sha256": file_sha256(plan.engine_path),
        },
        parity={},
        tensorrt={
            "version": trt.__version__,
            "gpu": gpu["gpu"],
            "compute_capability": gpu["compute_capability"],
            "precision": plan.precision,
            "tf32": False,
            "profile": {"views": list(plan.views)},
            "workspace_gb": plan.workspace_gb,
            "timing_cache": plan.cache_path.name,
            "cuda": torch.version.cuda,
        },
    )


def _check_parity(
    trt,
    gpu: dict[str, Any],
    plan: _Plan,
    manifest: ModelManifest,
    mpath: Path,
    parity_cases: list[tuple[str, np.ndarray, np.ndarray | None]] | None,
) -> None:
    """Run the engine (GPU) and the ONNX model (ONNX Runtime, CPU) on the same inputs; record the figures in
    ``manifest.parity`` and save it to ``mpath``, or remove the engine and its manifest above
    :data:`TENSORRT_TOLERANCE` (HandstreamError)."""
    import onnxruntime as ort

    from handstream.engine.backends.tensorrt import TensorRTBackend

    kpe = plan.onnx_manifest.kpe
    backend = TensorRTBackend(plan.engine_path, device=gpu["device"])
    session = ort.InferenceSession(str(plan.onnx_path), providers=["CPUExecutionProvider"])
    cases = _parity_inputs(plan, parity_cases)

    def run_onnxruntime(im, ry):
        return session.run(None, {"image": im} | ({"rays": ry} if kpe else {}))

    def run_tensorrt(im, ry):
        return tuple(t.cpu().numpy() for t in backend.infer(im, ry))

    figures = compare_outputs(cases, run_tensorrt, run_onnxruntime, plan.onnx_manifest.codec)
    tolerance = TENSORRT_TOLERANCE[plan.precision]
    manifest.parity = {
        "reference": f"onnxruntime {ort.__version__} CPUExecutionProvider",
        "runtime": f"TensorRT {trt.__version__} {plan.precision} on {gpu['gpu']}",
        **figures,
        "tolerance": tolerance,
    }
    worst = max(figures["max_abs_diff"].values())
    if not worst <= tolerance:
        plan.engine_path.unlink(missing_ok=True)
        mpath.unlink(missing_ok=True)
        raise HandstreamError(
            f"{plan.engine_path}: TensorRT {plan.precision} differs from ONNX Runtime by {worst:.2e} "
            f"(tolerance {tolerance:.0e}); engine rejected" + (" (try without --fp16)" if plan.fp16 else "")
        )
    manifest.save(mpath)


def _parity_inputs(
    plan: _Plan, parity_cases: list[tuple[str, np.ndarray, np.ndarray | None]] | None
) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """Random inputs at N = 1 and max views (seed 0), then the caller's cases that fit the profile."""
    max_views = plan.views[2]
    rng = np.random.default_rng(0)
    cases = [
        ("random", rng.random((n, *plan.shapes["image"]), dtype=np.float32),
         rng.uniform(-1, 1, (n, *plan.shapes["rays"])).astype(np.float32) if plan.onnx_manifest.kpe else None)
        for n in sorted({1, max_views})
    ]  # fmt: skip
    cases += [c for c in (parity_cases or []) if c[1].shape[0] <= max_views]
    return cases


__all__ = ["TENSORRT_TOLERANCE", "build_tensorrt", "require_tensorrt_here"]
