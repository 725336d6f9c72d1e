"""``handstream export-engine``: a checkpoint -> ``OUT.onnx`` [-> ``OUT.engine``], each with its manifest.

:func:`export_engine` checks the options, loads the checkpoint, renders real parity inputs, exports and
checks the ONNX model (:mod:`handstream.export.onnx`) and, for ``--format tensorrt``, builds and checks the
engine from it (:mod:`handstream.export.tensorrt`). The command line itself is :mod:`handstream.cli.export`.
"""

from __future__ import annotations

from pathlib import Path

from handstream.errors import HandstreamError
from handstream.export.artifacts import ARTIFACT_SUFFIXES, FORMATS, MAX_EXPORT_VIEWS, paired_from, parse_input_size
from handstream.export.onnx import OPSET, export_onnx
from handstream.export.parity import real_parity_inputs
from handstream.export.progress import Progress
from handstream.export.tensorrt import build_tensorrt, require_tensorrt_here
from handstream.models.manifest import ModelManifest


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


__all__ = ["export_engine"]
