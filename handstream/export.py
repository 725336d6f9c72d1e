"""Export the estimator: PyTorch -> ONNX (checked against PyTorch with ONNX Runtime) + JSON manifest.

Legend: ``N`` views (the dynamic batch axis), ``(H_in, W_in)`` input size.

This module imports torch and onnx lazily (inside the functions), so importing it is cheap.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.models.manifest import ModelManifest, manifest_path

OPSET = 18
PARITY_TOLERANCE = 1e-4  # max abs difference of heatmaps/presence (values ~[0, 1]) between ONNX Runtime and PyTorch


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def example_inputs(net, batch: int, input_size: tuple[int, int], stride: int, seed: int = 0):
    """Random (image, rays) tensors of the right shapes: image (N, 1, H_in, W_in) in [0, 1], rays (N, 2, h, w) radians."""
    import torch

    g = torch.Generator().manual_seed(seed)
    w, h = input_size
    image = torch.rand(batch, 1, h, w, generator=g)
    rays = (torch.rand(batch, 2, h // stride, w // stride, generator=g) - 0.5) * 2.0 if net.config.kpe else None
    return image, rays


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
) -> ModelManifest:
    """Write ``out`` (ONNX, dynamic view axis) and ``out.json`` (manifest) from a :class:`HandNet`.

    The ONNX model is run with ONNX Runtime on random inputs (and ``real_inputs``, each an
    ``(image, rays)`` pair of tensors) at batch sizes 1 and 4 and compared with PyTorch; a difference
    above ``tolerance`` raises HandstreamError (the files are removed). Returns the manifest written.
    """
    import onnxruntime as ort
    import torch

    from handstream.models.network import InferenceNet

    out = Path(out)
    if out.suffix != ".onnx":
        raise HandstreamError(f"{out}: an ONNX export must end in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    model = InferenceNet(net).eval()
    kpe = net.config.kpe
    image, rays = example_inputs(net, 2, input_size, stride)
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
                dynamic_shapes=dynamic, dynamo=True, opset_version=OPSET, optimize=True, verbose=False, external_data=False,
            )  # fmt: skip
        except Exception as exc:  # the exporter raises many types; the user needs the op it choked on
            raise HandstreamError(f"ONNX export failed: {str(exc).splitlines()[0]}") from None

    # Parity: ONNX Runtime vs PyTorch on the same inputs.
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    cases = [("random", *example_inputs(net, n, input_size, stride, seed=n)) for n in (1, 4)]
    cases += [("real", im, ry) for im, ry in (real_inputs or [])]
    worst = {"heatmaps": 0.0, "presence": 0.0}
    for _, im, ry in cases:
        feeds = {"image": im.numpy()} | ({"rays": ry.numpy()} if kpe else {})
        got = session.run(None, feeds)
        with torch.no_grad():
            ref = model(im, ry) if kpe else model(im)
        for key, a, b in zip(("heatmaps", "presence"), got, ref, strict=True):
            worst[key] = max(worst[key], float(np.abs(a - b.numpy()).max()))
    if max(worst.values()) > tolerance:
        out.unlink(missing_ok=True)
        raise HandstreamError(
            f"{out}: ONNX Runtime differs from PyTorch by {max(worst.values()):.2e} (tolerance {tolerance:.0e}); export rejected"
        )
    import onnx

    manifest = ModelManifest(
        name=name or out.stem,
        artifact=out.name,
        artifact_format="onnx",
        input_size=tuple(input_size),
        stride=stride,
        sigma=sigma,
        refine="dark",
        kpe=kpe,
        network=net.config.to_dict(),
        max_views=max_views,
        input_names=names,
        provenance={
            "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "opset": OPSET,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "sha256": file_sha256(out),
            **(provenance or {}),
        },
        parity={
            "reference": "PyTorch (CPU, fp32)",
            "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
            "max_abs_diff": worst,
            "inputs": [f"{kind} x{im.shape[0]}" for kind, im, _ in cases],
            "tolerance": tolerance,
        },
    )
    manifest.save(manifest_path(out))
    return manifest
