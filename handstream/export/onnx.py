"""PyTorch -> ONNX: a :class:`HandNet` -> ``NAME.onnx`` + ``NAME.onnx.json``, checked against PyTorch.

Legend: ``N`` views (the dynamic batch axis), ``(H_in, W_in)`` input size, ``(h, w)`` heatmap size
(input / stride), 42 heatmaps (2 hands x 21 joints).

:func:`export_onnx` exports with a dynamic ``views`` axis (opset :data:`OPSET`), runs the file with ONNX
Runtime on random and real inputs and compares it with PyTorch (:func:`~handstream.export.parity.compare_outputs`);
above :data:`PARITY_TOLERANCE` the file is removed. torch, onnx and onnxruntime are imported inside the
functions, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from handstream.errors import HandstreamError
from handstream.export.parity import as_float32, compare_outputs
from handstream.models.manifest import ModelManifest, manifest_path
from handstream.records import file_sha256

OPSET = 18
PARITY_TOLERANCE = 1e-4  # max abs difference of heatmaps/presence (values ~[0, 1]) between ONNX Runtime and PyTorch


def example_inputs(net, batch: int, input_size: tuple[int, int], stride: int, seed: int = 0):
    """Random (image, rays) tensors of the right shapes: image (N, 1, H_in, W_in) in [0, 1],
    rays (N, 2, h, w) radians."""
    import torch

    g = torch.Generator().manual_seed(seed)
    w, h = input_size
    image = torch.rand(batch, 1, h, w, generator=g)
    rays = (torch.rand(batch, 2, h // stride, w // stride, generator=g) - 0.5) * 2.0 if net.config.kpe else None
    return image, rays


def torch_to_onnx(model, args: tuple, out: Path, input_names: list[str], output_names: list[str], dynamic: dict):
    """``torch.onnx.export`` (dynamo, opset :data:`OPSET`, weights inside the file) of ``model`` (eval mode) on
    example ``args``, quietly; ``dynamic``: the ``dynamic_shapes`` (argument name -> {axis: Dim}). A failure removes
    ``out`` and raises a one-line HandstreamError naming what the exporter choked on."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            torch.onnx.export(
                model, args, str(out), input_names=input_names, output_names=output_names,
                dynamic_shapes=dynamic, dynamo=True, opset_version=OPSET, optimize=True, verbose=False,
                external_data=False,
            )  # fmt: skip
        except Exception as exc:  # the exporter raises many types; the user needs the op it choked on
            out.unlink(missing_ok=True)
            raise HandstreamError(f"ONNX export failed: {str(exc).splitlines()[0]}") from None


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
    torch_to_onnx(model, args, out, names, ["heatmaps", "presence"], dynamic)

    # Parity: ONNX Runtime vs PyTorch on the same inputs.
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    cases = [("random", *(as_float32(t) for t in example_inputs(net, n, (w, h), stride, seed=n))) for n in (1, 4)]
    cases += [("real", as_float32(im), as_float32(ry) if kpe else None) for im, ry in (real_inputs or [])]

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


__all__ = ["OPSET", "PARITY_TOLERANCE", "example_inputs", "export_onnx", "torch_to_onnx"]
