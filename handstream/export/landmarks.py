"""Export a :class:`~handstream.models.landmark_net.LandmarkNet` (MediaPipe's hand landmark network in PyTorch,
fine-tuned or not) back to ONNX with the imported model's contract, checked against PyTorch with ONNX Runtime.

Legend: ``N`` crops (the dynamic batch axis).

The file keeps what the engine and :mod:`handstream.models.landmarks` rely on: the input name (``input_1``,
(N, 3, 224, 224) float32 RGB in [0, 1], NCHW), the output names in the imported graph's order (``Identity``
landmarks (N, 63) crop px, ``Identity_1`` presence (N, 1), ``Identity_2`` handedness (N, 1), ``Identity_3``
world landmarks (N, 63) metres) and the manifest's ``output_roles`` and crop rule. It is written by
:func:`~handstream.export.onnx.torch_to_onnx` (opset :data:`~handstream.export.onnx.OPSET`; the imported
file is opset 11), and :func:`handstream.models.checkpoint.load_landmark_net` reads it back.

Parity: ONNX Runtime on the file against the PyTorch module, on seeded random crops (N = 1 and 3) and on
``real_inputs``; the max abs difference of each output in its unit (px, probability, metres) goes into the
manifest's ``parity``; above ``tolerance`` the file is removed and a one-line error raised. torch, onnx and
onnxruntime are imported inside the function.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.export.onnx import OPSET, torch_to_onnx
from handstream.export.parity import as_float32
from handstream.models.manifest import ModelManifest, load_manifest, manifest_path
from handstream.records import file_sha256

LANDMARK_TOLERANCE = 1e-3
"""Largest ONNX Runtime vs PyTorch difference accepted per output, in its unit (px, probability, metres)."""
PARITY_KEYS = {"landmarks": "landmarks_px", "presence": "presence", "handedness": "handedness",
               "world_landmarks": "world_landmarks_m"}  # fmt: skip
"""The manifest's names of the per-output differences (the importer's, so both parities read alike)."""


def export_landmark_onnx(
    net,
    path: str | Path,
    manifest_like: ModelManifest | str | Path,
    *,
    name: str | None = None,
    real_inputs: list[Any] | None = None,
    tolerance: float = LANDMARK_TOLERANCE,
    provenance: dict[str, Any] | None = None,
) -> ModelManifest:
    """Write ``path`` (ONNX, dynamic batch) and ``path.json`` (its landmarks manifest) from a LandmarkNet.

    Args:
        net: the LandmarkNet (any device; exported from a CPU copy in eval mode; ``net`` itself is left as it was).
        path: ``NAME.onnx``.
        manifest_like: the manifest of the model ``net`` came from (a :class:`ModelManifest`, or the path of that
            model or its manifest): its crop rule, ``max_views``, name and provenance (MediaPipe's source and
            licence) carry over.
        name: the manifest's name (default: ``path``'s stem).
        real_inputs: crops (M, 3, 224, 224) float32 RGB [0, 1] (tensors or arrays) for the parity check, e.g.
            :func:`handstream.models.importer.real_crops` transposed to NCHW.
        tolerance: max abs difference per output allowed between ONNX Runtime and PyTorch.
        provenance: merged into the manifest's provenance (the adaptation's recipe, ...).
    Returns:
        the manifest written (``parity``: ``max_abs_diff`` and ``by_input`` per output, ``inputs``, ``tolerance``).
    Raises:
        HandstreamError (one line): a path not ending in .onnx, a manifest that is not a landmarks model's, a
        failed export, or a parity miss (nothing is left at ``path``).
    """
    import copy

    import onnx
    import onnxruntime as ort
    import torch

    out = Path(path)
    if out.suffix != ".onnx":
        raise HandstreamError(f"{out}: an ONNX export must end in .onnx")
    source = manifest_like if isinstance(manifest_like, ModelManifest) else load_manifest(manifest_like)[0]
    if source.kind != "landmarks":
        raise HandstreamError(f"{source.artifact}: a {source.kind} model's manifest, not a landmarks model's")
    out.parent.mkdir(parents=True, exist_ok=True)
    from handstream.models.landmark_net import TupleOutputs

    model = TupleOutputs(copy.deepcopy(net).cpu().eval()).eval()  # a copy: ``net`` keeps its device and mode
    roles = model.net.output_names
    batch = torch.export.Dim("N", min=1, max=1024)
    shape = tuple(model.net.spec["input_shape"])  # (3, 224, 224)
    example = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    torch_to_onnx(model, (example,), out, [model.net.input_name], list(roles.values()), {"x": {0: batch}})

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a check, not a benchmark
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    feed, names = session.get_inputs()[0].name, [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(0)
    cases = [("random", rng.random((n, *shape), dtype=np.float32)) for n in (1, 3)]
    cases += [("real", as_float32(x)) for x in (real_inputs or []) if len(x)]
    by_input: dict[str, dict[str, float]] = {}
    for kind, x in cases:
        got = dict(zip(names, session.run(None, {feed: x}), strict=True))
        with torch.no_grad():
            ref = model.net(torch.from_numpy(x))
        slot = by_input.setdefault(kind, dict.fromkeys(PARITY_KEYS.values(), 0.0))
        for role, key in PARITY_KEYS.items():
            a, b = got[roles[role]], ref[role].numpy()
            if a.shape != b.shape:
                out.unlink(missing_ok=True)
                raise HandstreamError(f"{out}: {role} is {a.shape} from ONNX Runtime and {b.shape} from PyTorch")
            d = float(np.abs(a.astype(np.float64) - b).max())
            slot[key] = max(slot[key], d if np.isfinite(d) else float("inf"))
    worst = {k: max(d[k] for d in by_input.values()) for k in PARITY_KEYS.values()}
    if not max(worst.values()) <= tolerance:
        out.unlink(missing_ok=True)
        raise HandstreamError(
            f"{out}: ONNX Runtime differs from PyTorch by {worst} (tolerance {tolerance:.0e} per output); export "
            "rejected"
        )
    manifest = replace(
        source,
        name=name or out.stem,
        artifact=out.name,
        artifact_format="onnx",
        input_names=[model.net.input_name],
        output_names=list(roles.values()),
        output_roles=dict(roles),
        input_layout="NCHW",
        tensorrt=None,
        provenance={
            **source.provenance,  # MediaPipe's source, variant and licence: the weights descend from them
            **(provenance or {}),
            "parent": source.artifact,
            "parameters": model.net.parameter_count(),
            "exported": datetime.now(UTC).isoformat(timespec="seconds"),
            "exporter": "handstream.export.landmarks (torch.onnx.export, dynamo)",
            "opset": OPSET,
            "batch": "dynamic",
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "sha256": file_sha256(out),
        },
        parity={
            "checked": True,
            "reference": "PyTorch LandmarkNet (CPU, fp32)",
            "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider (each input set as one batch)",
            "max_abs_diff": worst,
            "by_input": by_input,
            "inputs": [f"{kind} x{len(x)}" for kind, x in cases],
            "tolerance": tolerance,
        },
    )
    manifest.save(manifest_path(out))
    return manifest


__all__ = ["LANDMARK_TOLERANCE", "PARITY_KEYS", "export_landmark_onnx"]
