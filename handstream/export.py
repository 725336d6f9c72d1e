"""Export the estimator: PyTorch -> ONNX (checked against PyTorch with ONNX Runtime) -> TensorRT, + JSON manifests.

Legend: ``N`` views (the dynamic batch axis), ``(H_in, W_in)`` input size, ``(h, w)`` heatmap size
(input / stride), 42 heatmaps (2 hands x 21 joints).

* :func:`export_onnx`: a :class:`HandNet` -> ``NAME.onnx`` + ``NAME.onnx.json`` (dynamic ``views`` axis,
  parity against PyTorch on random and real inputs).
* :func:`build_tensorrt`: ``NAME.onnx`` -> ``NAME.engine`` + ``NAME.engine.json`` with the TensorRT 10
  Python API (optimisation profile 1..max_views on ``views``, fp32 or fp16, timing cache
  ``NAME.timing.cache``, parity against ONNX Runtime). Needs TensorRT and an NVIDIA GPU.
* :func:`export_engine`: what ``handstream export-engine`` does: checkpoint -> ONNX [-> TensorRT].

This module imports torch, onnx and TensorRT lazily (inside the functions), so importing it is cheap.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.models.manifest import ModelManifest, manifest_path
from handstream.records import file_sha256

OPSET = 18
PARITY_TOLERANCE = 1e-4  # max abs difference of heatmaps/presence (values ~[0, 1]) between ONNX Runtime and PyTorch
# TensorRT against ONNX Runtime, max abs difference of heatmaps/presence: fp32 is built without TF32, so
# only kernel choice and summation order differ; fp16 carries ~3 decimal digits through ~40 layers.
TENSORRT_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}
MAX_EXPORT_VIEWS = 16  # the triangulation kernels take at most 16 views
KEYPOINT_CONF = 0.2  # keypoint parity is measured on joints that both runtimes find with at least this peak


def example_inputs(net, batch: int, input_size: tuple[int, int], stride: int, seed: int = 0):
    """Random (image, rays) tensors of the right shapes: image (N, 1, H_in, W_in) in [0, 1],
    rays (N, 2, h, w) radians."""
    import torch

    g = torch.Generator().manual_seed(seed)
    w, h = input_size
    image = torch.rand(batch, 1, h, w, generator=g)
    rays = (torch.rand(batch, 2, h // stride, w // stride, generator=g) - 0.5) * 2.0 if net.config.kpe else None
    return image, rays


def _numpy(x) -> np.ndarray | None:
    """A torch tensor (any device) or array -> float32 NumPy array (None stays None)."""
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def compare_outputs(cases, run, reference, codec) -> dict[str, Any]:
    """Run two runtimes on the same inputs and measure how far apart they are.

    Args:
        cases: list of ``(kind, image (N, 1, H_in, W_in), rays (N, 2, h, w) | None)`` NumPy float32;
            ``kind`` is ``"random"`` or ``"real"``.
        run, reference: ``f(image, rays) -> (heatmaps (N, 42, h, w), presence (N, 2))`` (NumPy or tensors).
        codec: decodes both heatmaps to keypoints (:class:`HeatmapCodec`).
    Returns:
        ``max_abs_diff`` {heatmaps, presence} over all cases, ``by_input`` the same per kind,
        ``keypoints_px``: the largest distance (input pixels) between the decoded keypoints of joints
        both runtimes find with a peak >= :data:`KEYPOINT_CONF` (None when no joint qualifies, e.g. an
        untrained network), ``keypoints_compared`` (how many), ``inputs`` (``"random x4"``, ...).
    """
    worst = {"heatmaps": 0.0, "presence": 0.0}
    by_input: dict[str, dict[str, float]] = {}
    kp_worst: float | None = None
    kp_count = 0
    for kind, image, rays in cases:
        got = [_numpy(v) for v in run(image, rays)]
        ref = [_numpy(v) for v in reference(image, rays)]
        slot = by_input.setdefault(kind, {"heatmaps": 0.0, "presence": 0.0})
        for key, a, b in zip(("heatmaps", "presence"), got, ref, strict=True):
            if a.shape != b.shape:
                raise HandstreamError(f"parity: {key} is {a.shape} from one runtime and {b.shape} from the other")
            d = float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0
            d = d if np.isfinite(d) else float("inf")
            worst[key] = max(worst[key], d)
            slot[key] = max(slot[key], d)
        kp_a, conf_a = codec.decode(got[0])
        kp_b, conf_b = codec.decode(ref[0])
        both = (conf_a >= KEYPOINT_CONF) & (conf_b >= KEYPOINT_CONF)
        both &= np.isfinite(kp_a).all(-1) & np.isfinite(kp_b).all(-1)
        if both.any():
            d = float(np.linalg.norm(kp_a[both] - kp_b[both], axis=-1).max())
            kp_worst = d if kp_worst is None else max(kp_worst, d)
            kp_count += int(both.sum())
    return {
        "max_abs_diff": worst,
        "by_input": by_input,
        "keypoints_px": kp_worst,
        "keypoints_compared": kp_count,
        "inputs": [f"{kind} x{image.shape[0]}" for kind, image, _ in cases],
    }


def export_onnx(
    net,
    out: str | Path,
    *,
    name: str | None = None,
    input_size: tuple[int, int] = (256, 192),
    stride: int = 4,
    sigma: float = 2.0,
    max_views: int = 16,
    provenance: dict[str, Any] | None = None,
    real_inputs: list[tuple[Any, Any]] | None = None,
    tolerance: float = PARITY_TOLERANCE,
    crop: dict | None = None,
    refiner: str | None = None,
) -> ModelManifest:
    """Write ``out`` (ONNX, dynamic view axis) and ``out.json`` (manifest) from a :class:`HandNet`.

    Args:
        net: the network (any device; exported from a CPU copy in eval mode).
        out: ``NAME.onnx``.
        input_size: (W_in, H_in) pixels, multiples of 32; stride: input pixels per heatmap cell;
            sigma: the targets' Gaussian, cells (for the decoder).
        max_views: recorded in the manifest (the ONNX model itself accepts any N).
        provenance: merged into the manifest's provenance (checkpoint hash, recipe, ...).
        real_inputs: ``(image (N, 1, H_in, W_in), rays (N, 2, h, w) | None)`` pairs (tensors or arrays)
            from real frames through the real preprocessing (:func:`real_parity_inputs`).
        tolerance: max abs difference of heatmaps and presence allowed between ONNX Runtime and PyTorch.
        crop: for a crop network, its rule (``{"margin", "min_side"}``: a refiner's window,
            :mod:`handstream.models.crop`; with ``"camera": "perspective"``: a crop model of perspective crop
            cameras, :func:`handstream.models.manifest.crop_rule`).
        refiner: for a detector, the refiner that goes with it (a file name next to ``out``; ``""``: none),
            see :attr:`ModelManifest.refiner`.

    The ONNX model is run with ONNX Runtime on random inputs (N = 1 and 4) and on ``real_inputs`` and
    compared with PyTorch; a difference above ``tolerance`` raises HandstreamError (the files are
    removed). The manifest's ``parity`` holds the figures of :func:`compare_outputs`. Returns the manifest.
    """
    import onnxruntime as ort
    import torch

    from handstream.models.codec import HeatmapCodec
    from handstream.models.network import InferenceNet

    out = Path(out)
    if out.suffix != ".onnx":
        raise HandstreamError(f"{out}: an ONNX export must end in .onnx")
    w, h = (int(v) for v in input_size)
    if w % 32 or h % 32 or w < 32 or h < 32:
        raise HandstreamError(
            f"input size {w}x{h}: width and height must be positive multiples of 32 (the network's stride)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    net = net.cpu().eval()
    model = InferenceNet(net).eval()
    kpe = net.config.kpe
    image, rays = example_inputs(net, 2, (w, h), stride)
    args = (image, rays) if kpe else (image,)
    names = ["image", "rays"] if kpe else ["image"]
    views = torch.export.Dim("views", min=1, max=1024)
    dynamic = {"image": {0: views}, "rays": {0: views}} if kpe else {"image": {0: views}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            torch.onnx.export(
                model, args, str(out), input_names=names, output_names=["heatmaps", "presence"],
                dynamic_shapes=dynamic, dynamo=True, opset_version=OPSET, optimize=True, verbose=False,
                external_data=False,
            )  # fmt: skip
        except Exception as exc:  # the exporter raises many types; the user needs the op it choked on
            out.unlink(missing_ok=True)
            raise HandstreamError(f"ONNX export failed: {str(exc).splitlines()[0]}") from None

    # Parity: ONNX Runtime vs PyTorch on the same inputs.
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    cases = [("random", *(_numpy(t) for t in example_inputs(net, n, (w, h), stride, seed=n))) for n in (1, 4)]
    cases += [("real", _numpy(im), _numpy(ry) if kpe else None) for im, ry in (real_inputs or [])]

    def run_onnxruntime(im, ry):
        return session.run(None, {"image": im} | ({"rays": ry} if kpe else {}))

    def run_torch(im, ry):
        with torch.no_grad():
            return model(torch.from_numpy(im), torch.from_numpy(ry)) if kpe else model(torch.from_numpy(im))

    figures = compare_outputs(cases, run_onnxruntime, run_torch, HeatmapCodec((w, h), stride, sigma, "dark"))
    worst = figures["max_abs_diff"]
    if not max(worst.values()) <= tolerance:
        out.unlink(missing_ok=True)
        detail = ", ".join(
            f"{k}: heatmaps {v['heatmaps']:.2e} presence {v['presence']:.2e}" for k, v in figures["by_input"].items()
        )
        raise HandstreamError(
            f"{out}: ONNX Runtime differs from PyTorch by {max(worst.values()):.2e} "
            f"(tolerance {tolerance:.0e}; {detail}); export rejected"
        )
    import onnx

    manifest = ModelManifest(
        name=name or out.stem,
        artifact=out.name,
        artifact_format="onnx",
        input_size=(w, h),
        stride=stride,
        sigma=sigma,
        refine="dark",
        kpe=kpe,
        network=net.config.to_dict(),
        max_views=max_views,
        input_names=names,
        provenance={
            **(provenance or {}),  # the caller's (checkpoint, recipe, ...); what describes this file wins
            "exported": datetime.now(UTC).isoformat(timespec="seconds"),
            "opset": OPSET,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "sha256": file_sha256(out),
        },
        parity={
            "reference": "PyTorch (CPU, fp32)",
            "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
            **figures,
            "tolerance": tolerance,
        },
        crop=dict(crop) if crop else None,
        refiner=refiner,
    )
    manifest.save(manifest_path(out))
    return manifest


# ---------------------------------------------------------------------------------------------------
# Real parity inputs
# ---------------------------------------------------------------------------------------------------
def real_parity_inputs(
    input_size: tuple[int, int],
    stride: int = 4,
    kpe: bool = True,
    *,
    frames: int = 2,
    preset: str = "headset4",
    seed: int = 7,
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Network inputs made the way the engine makes them, from rendered camera frames.

    Frames of a :class:`~handstream.synth.source.SyntheticSource` (every camera of ``preset``, hands
    in view) go through :func:`~handstream.models.preprocess.prepare_views` (grey, letterbox) and
    :func:`~handstream.models.kpe.ray_angles` (each camera's own lens model).

    Returns:
        one ``(image (V, 1, H_in, W_in), rays (V, 2, h, w) | None)`` pair of float32 arrays per frame,
        ``V`` = the preset's camera count (4 for ``headset4``).
    """
    from handstream.models.kpe import ray_angles
    from handstream.models.preprocess import prepare_views
    from handstream.synth.source import SyntheticSource

    out = []
    with SyntheticSource(preset, seed=seed, realtime=False, max_frames=frames) as source:
        for bundle in source:
            image, boxes = prepare_views(bundle.images, input_size)
            rays = None
            if kpe:
                rays = np.stack(
                    [ray_angles(source.rig[n], b, stride) for n, b in zip(bundle.cameras, boxes, strict=True)]
                )
            out.append((image.copy(), rays))
    return out


# ---------------------------------------------------------------------------------------------------
# Formats, options, progress
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportFormat:
    """One artifact format of ``handstream export-engine --list``."""

    name: str
    suffix: str
    needs_gpu: bool
    runs_on: str
    notes: str


FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat(
        "onnx", ".onnx", False,
        "onnxruntime (CPU, the default); torch on CPU or CUDA (weights read back from the graph)",
        "fp32, dynamic views axis; parity vs PyTorch on random and rendered frames",
    ),
    "tensorrt": ExportFormat(
        "tensorrt", ".engine", True,
        "tensorrt backend, only on the GPU architecture and TensorRT version that built it",
        "built from the ONNX; fp32 or --fp16; profile 1..--max-views; timing cache; parity vs ONNX Runtime",
    ),
}  # fmt: skip


def format_table() -> list[dict[str, str]]:
    """Rows of ``export-engine --list``: format, file, needs GPU, available here, serves with, notes."""
    rows = []
    for f in FORMATS.values():
        if f.name == "onnx":
            here = (
                "yes"
                if importlib.util.find_spec("torch") and importlib.util.find_spec("onnx")
                else "no: pip install -e '.[train]'"
            )
        else:
            from handstream.engine.backends import gpu_visible

            if importlib.util.find_spec("tensorrt") is None:
                here = "no: TensorRT not installed"
            elif not gpu_visible():
                here = "no: no NVIDIA GPU"
            else:
                here = "yes"
        rows.append(
            {"format": f.name, "file": f"NAME{f.suffix} (+ .json)", "gpu": "yes" if f.needs_gpu else "no",
             "here": here, "runs_on": f.runs_on, "notes": f.notes}
        )  # fmt: skip
    return rows


def parse_input_size(text: str) -> tuple[int, int]:
    """``"256x192"`` -> (256, 192) = (W_in, H_in) pixels; both positive multiples of 32, at most 4096."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise HandstreamError(f"--input: expected WIDTHxHEIGHT in pixels, e.g. 256x192, got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (32 <= w <= 4096 and 32 <= h <= 4096) or w % 32 or h % 32:
        raise HandstreamError(
            f"--input: width and height must be multiples of 32 between 32 and 4096 (the network's stride), got {w}x{h}"
        )
    return w, h


class Progress:
    """Step-by-step progress on a rich console (spinner while a step runs, a tick and its time after).

    With ``console=None`` it is silent (library use, tests).
    """

    def __init__(self, console=None):
        self.console = console

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        if self.console is None:
            yield
            return
        t0 = time.perf_counter()
        try:
            with self.console.status(text):
                yield
        except BaseException:
            self.console.print(f"[red]✗[/red] {text}")
            raise
        self.console.print(f"[green]✓[/green] {text} [dim]({time.perf_counter() - t0:.1f} s)[/dim]")

    def note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"   {text}")


# ---------------------------------------------------------------------------------------------------
# TensorRT
# ---------------------------------------------------------------------------------------------------
def require_tensorrt_here(where: str = "--format tensorrt") -> tuple[Any, dict[str, Any]]:
    """(tensorrt module, GPU info) or a one-line HandstreamError: TensorRT missing or too old, no GPU."""
    from handstream.engine.backends.tensorrt import cuda_device_info, import_tensorrt

    trt = import_tensorrt(where)
    return trt, cuda_device_info("cuda")


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
        onnx_path: ``NAME.onnx`` with its manifest (from :func:`export_onnx`).
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
        timing cache; ``parity``: :func:`compare_outputs` figures).
    Raises:
        HandstreamError: TensorRT missing, no GPU, an unsupported op, a failed build, or parity above
        :data:`TENSORRT_TOLERANCE` (the engine is then removed).
    """
    from handstream.models.manifest import load_manifest

    progress = progress or Progress()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    trt, gpu = require_tensorrt_here(str(engine_path))
    import torch

    onnx_manifest, onnx_path = load_manifest(onnx_path)
    if onnx_manifest.artifact_format != "onnx":
        raise HandstreamError(
            f"{onnx_path}: TensorRT engines are built from an ONNX model, this is {onnx_manifest.artifact_format}"
        )
    if not 1 <= max_views <= MAX_EXPORT_VIEWS:
        raise HandstreamError(f"--max-views: expected 1 to {MAX_EXPORT_VIEWS}, got {max_views}")
    precision = "fp16" if fp16 else "fp32"
    stem = engine_path.name[: -len(engine_path.suffix)] if engine_path.suffix else engine_path.name
    cache_path = engine_path.with_name(stem + ".timing.cache")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    w, h = onnx_manifest.input_size
    s = onnx_manifest.stride
    shapes = {"image": (1, h, w), "rays": (2, -(-h // s), -(-w // s))}
    opt = min(4, max_views)

    with progress.step(
        f"TensorRT {trt.__version__}: parse {onnx_path.name} and build {precision} for {gpu['gpu']} "
        f"(sm {gpu['compute_capability']})"
    ):
        logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(gpu["index"]):
            builder = trt.Builder(logger)
            network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
            parser = trt.OnnxParser(network, logger)
            if not parser.parse_from_file(str(onnx_path)):
                raise _parser_error(trt, parser, onnx_path)
            config = builder.create_builder_config()
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
            if fp16:
                config.set_flag(trt.BuilderFlag.FP16)
            else:
                config.clear_flag(trt.BuilderFlag.TF32)  # strict fp32: parity with ONNX Runtime
            profile = builder.create_optimization_profile()
            for i in range(network.num_inputs):
                name = network.get_input(i).name
                if name not in shapes:
                    raise HandstreamError(
                        f"{onnx_path}: unexpected input {name!r} (expected {onnx_manifest.input_names})"
                    )
                profile.set_shape(name, (1, *shapes[name]), (opt, *shapes[name]), (max_views, *shapes[name]))
            config.add_optimization_profile(profile)
            cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
            config.set_timing_cache(cache, ignore_mismatch=False)
            serialized = builder.build_serialized_network(network, config)
            if serialized is None:
                raise HandstreamError(f"{onnx_path}: TensorRT could not build an engine (its messages above say why)")
            with open(engine_path, "wb") as f:
                f.write(serialized)
            with open(cache_path, "wb") as f:
                f.write(config.get_timing_cache().serialize())
    manifest = replace(
        onnx_manifest,
        artifact=engine_path.name,
        artifact_format="tensorrt",
        refiner=paired_from(onnx_manifest, onnx_path.parent, engine_path.parent),
        max_views=max_views,
        provenance={
            **onnx_manifest.provenance,
            "built": datetime.now(UTC).isoformat(timespec="seconds"),
            "onnx_source": str(onnx_path),
            "onnx_sha256": file_sha256(onnx_path),
            "sha256": file_sha256(engine_path),
        },
        parity={},
        tensorrt={
            "version": trt.__version__,
            "gpu": gpu["gpu"],
            "compute_capability": gpu["compute_capability"],
            "precision": precision,
            "tf32": False,
            "profile": {"views": [1, opt, max_views]},
            "workspace_gb": workspace_gb,
            "timing_cache": cache_path.name,
            "cuda": torch.version.cuda,
        },
    )
    mpath = manifest.save(manifest_path(engine_path))

    with progress.step(f"parity: TensorRT {precision} vs ONNX Runtime (CPU)"):
        import onnxruntime as ort

        from handstream.engine.backends.tensorrt import TensorRTBackend

        backend = TensorRTBackend(engine_path, device=gpu["device"])
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        cases = [
            ("random", rng.random((n, *shapes["image"]), dtype=np.float32),
             rng.uniform(-1, 1, (n, *shapes["rays"])).astype(np.float32) if onnx_manifest.kpe else None)
            for n in sorted({1, max_views})
        ]  # fmt: skip
        cases += [c for c in (parity_cases or []) if c[1].shape[0] <= max_views]

        def run_onnxruntime(im, ry):
            return session.run(None, {"image": im} | ({"rays": ry} if onnx_manifest.kpe else {}))

        def run_tensorrt(im, ry):
            return tuple(t.cpu().numpy() for t in backend.infer(im, ry))

        figures = compare_outputs(cases, run_tensorrt, run_onnxruntime, onnx_manifest.codec)
        tolerance = TENSORRT_TOLERANCE[precision]
        manifest.parity = {
            "reference": f"onnxruntime {ort.__version__} CPUExecutionProvider",
            "runtime": f"TensorRT {trt.__version__} {precision} on {gpu['gpu']}",
            **figures,
            "tolerance": tolerance,
        }
        worst = max(figures["max_abs_diff"].values())
        if not worst <= tolerance:
            engine_path.unlink(missing_ok=True)
            mpath.unlink(missing_ok=True)
            raise HandstreamError(
                f"{engine_path}: TensorRT {precision} differs from ONNX Runtime by {worst:.2e} "
                f"(tolerance {tolerance:.0e}); engine rejected"
                + (" (try without --fp16)" if fp16 else "")
            )
        manifest.save(mpath)
    return manifest


# ---------------------------------------------------------------------------------------------------
# handstream export-engine
# ---------------------------------------------------------------------------------------------------
ARTIFACT_SUFFIXES = (".onnx", ".engine", ".trt", ".plan", ".json")


def paired_from(manifest: ModelManifest, source_dir: Path, out_dir: Path) -> str | None:
    """A detector's refiner pairing (:attr:`ModelManifest.refiner`, relative to ``source_dir``) for a manifest
    written in ``out_dir``: ``""`` (no refiner) and None (not said) as they are, a named file re-pointed so
    an adapted detector keeps its own refiner, or none, wherever it is exported."""
    if not manifest.refiner:
        return manifest.refiner
    return os.path.relpath(Path(source_dir).resolve() / manifest.refiner, Path(out_dir).resolve())


def export_engine(
    checkpoint: str | Path,
    out: str | Path,
    *,
    fmt: str = "onnx",
    fp16: bool = False,
    max_views: int = 8,
    input_size: tuple[int, int] | str | None = None,
    real_frames: int = 2,
    console=None,
) -> list[tuple[Path, ModelManifest]]:
    """Checkpoint -> ``OUT.onnx`` (+ manifest) [-> ``OUT.engine`` (+ manifest, timing cache)].

    Args:
        checkpoint: what ``handstream train`` writes (``model.pt`` / ``checkpoint.pt``), a
            :func:`~handstream.models.checkpoint.save_network` file, or an exported ``.onnx`` (with
            ``fmt="tensorrt"`` and no other ``input_size`` that ONNX file is built as is; otherwise its
            weights are read back and re-exported).
        out: ``engines/NAME`` (a known suffix such as ``.onnx`` is dropped).
        fmt: ``onnx`` or ``tensorrt`` (which also writes the ONNX it is built from).
        fp16: TensorRT only.
        max_views: the largest view count the artifact must take (TensorRT profile; recorded for ONNX).
        input_size: (W_in, H_in) or ``"WxH"``; default: the checkpoint's training size.
        real_frames: rendered multi-camera frames used as real parity inputs (>= 1).
        console: a rich Console for progress, or None (silent).
    Returns:
        ``[(path, manifest), ...]`` of the artifacts written, ONNX first.
    Raises:
        HandstreamError: one line for every user error (missing checkpoint, bad option, TensorRT or GPU
        missing for ``tensorrt``, parity above tolerance).
    """
    from handstream.models.checkpoint import load_network

    progress = Progress(console)
    if fmt not in FORMATS:
        raise HandstreamError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fp16 and fmt != "tensorrt":
        raise HandstreamError("--fp16: only for --format tensorrt (ONNX models are exported in fp32)")
    if not isinstance(max_views, int) or not 1 <= max_views <= MAX_EXPORT_VIEWS:
        raise HandstreamError(f"--max-views: expected an integer from 1 to {MAX_EXPORT_VIEWS}, got {max_views!r}")
    if real_frames < 1:
        raise HandstreamError(
            f"--real-frames: expected at least 1 (parity must include real inputs), got {real_frames}"
        )
    if isinstance(input_size, str):
        input_size = parse_input_size(input_size)
    elif input_size is not None:
        input_size = parse_input_size(f"{input_size[0]}x{input_size[1]}")
    checkpoint, out = Path(checkpoint), Path(out)
    if out.suffix.lower() in ARTIFACT_SUFFIXES:
        out = out.with_name(out.name[: -len(out.suffix)])
    if not out.name:
        raise HandstreamError(f"--out {out}: expected a path such as engines/NAME")
    onnx_path, engine_path = out.with_name(out.name + ".onnx"), out.with_name(out.name + ".engine")
    if fmt == "tensorrt":
        require_tensorrt_here()  # fail before minutes of export when TensorRT or the GPU is missing

    results: list[tuple[Path, ModelManifest]] = []
    reuse_onnx = fmt == "tensorrt" and checkpoint.suffix.lower() == ".onnx"
    if reuse_onnx:
        from handstream.models.manifest import load_manifest

        onnx_manifest, source = load_manifest(checkpoint)
        reuse_onnx = input_size is None or tuple(input_size) == tuple(onnx_manifest.input_size)
        if reuse_onnx:
            onnx_path = source
            progress.note(
                f"building from {source} as is (input {onnx_manifest.input_size[0]}x{onnx_manifest.input_size[1]})"
            )
    if not reuse_onnx:
        if checkpoint.suffix.lower() == ".onnx" and checkpoint.resolve() == onnx_path.resolve():
            raise HandstreamError(f"--out {out}: would overwrite its own input {checkpoint}; choose another --out")
        with progress.step(f"load {checkpoint}"):
            net, source_manifest = load_network(checkpoint)
        size = tuple(input_size or source_manifest.input_size)
        if size != tuple(source_manifest.input_size):
            progress.note(
                f"input {size[0]}x{size[1]} "
                f"(trained at {source_manifest.input_size[0]}x{source_manifest.input_size[1]})"
            )
        parse_input_size(f"{size[0]}x{size[1]}")
        with progress.step(f"render {real_frames} frame(s) of the headset4 rig for the parity check"):
            real = real_parity_inputs(size, source_manifest.stride, net.config.kpe, frames=real_frames)
        provenance = {k: v for k, v in source_manifest.provenance.items() if v is not None}
        provenance["parity_frames"] = f"SyntheticSource('headset4', seed=7) x{real_frames}, letterboxed + ray angles"
        if source_manifest.artifact_format == "onnx":
            provenance["onnx_source"] = str(checkpoint)
        with progress.step(
            f"export {onnx_path} (opset {OPSET}, input {size[0]}x{size[1]}, dynamic views) and check it"
        ):
            onnx_manifest = export_onnx(
                net, onnx_path, name=out.name, input_size=size, stride=source_manifest.stride,
                sigma=source_manifest.sigma,
                max_views=max_views, provenance=provenance, real_inputs=real, crop=source_manifest.crop,
                refiner=paired_from(source_manifest, checkpoint.parent, onnx_path.parent),
            )  # fmt: skip
        p = onnx_manifest.parity
        kp = p["keypoints_px"]
        progress.note(
            f"ONNX Runtime vs PyTorch: max abs diff heatmaps {p['max_abs_diff']['heatmaps']:.1e}, presence "
            f"{p['max_abs_diff']['presence']:.1e} on {', '.join(p['inputs'])}"
            + (f"; keypoints {kp:.1e} px over {p['keypoints_compared']}" if kp is not None else "")
        )
        results.append((onnx_path, onnx_manifest))
    if fmt == "tensorrt":
        if reuse_onnx:
            with progress.step(f"render {real_frames} frame(s) of the headset4 rig for the parity check"):
                m = onnx_manifest
                real = real_parity_inputs(m.input_size, m.stride, m.kpe, frames=real_frames)
        cases = [("real", im, ry) for im, ry in real]
        manifest = build_tensorrt(
            onnx_path, engine_path, fp16=fp16, max_views=max_views, parity_cases=cases, progress=progress
        )
        p = manifest.parity
        progress.note(
            f"TensorRT vs ONNX Runtime: max abs diff heatmaps {p['max_abs_diff']['heatmaps']:.1e}, presence "
            f"{p['max_abs_diff']['presence']:.1e} (tolerance {p['tolerance']:.0e})"
        )
        results.append((engine_path, manifest))
    return results
