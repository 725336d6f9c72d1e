"""What ``handstream export-engine`` writes and accepts: artifact formats, file names, sizes, refiner pairings.

* :data:`FORMATS` / :func:`format_table`: the formats of ``--format`` and the rows of ``--list``.
* :func:`parse_input_size` (``--input WxH``), :data:`MAX_EXPORT_VIEWS` (``--max-views``),
  :data:`ARTIFACT_SUFFIXES` (dropped from ``--out``).
* :func:`paired_from`: a detector's refiner pairing, re-pointed for a manifest written in another folder.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from handstream.errors import HandstreamError
from handstream.models.manifest import ModelManifest

MAX_EXPORT_VIEWS = 16  # the triangulation kernels take at most 16 views
ARTIFACT_SUFFIXES = (".onnx", ".engine", ".trt", ".plan", ".json")
"""Suffixes ``--out`` may carry; they are dropped (``engines/x.onnx`` -> ``engines/x``)."""


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


def paired_from(manifest: ModelManifest, source_dir: Path, out_dir: Path) -> str | None:
    """A detector's refiner pairing (:attr:`ModelManifest.refiner`, relative to ``source_dir``) for a manifest
    written in ``out_dir``: ``""`` (no refiner) and None (not said) as they are, a named file re-pointed so
    an adapted detector keeps its own refiner, or none, wherever it is exported."""
    if not manifest.refiner:
        return manifest.refiner
    return os.path.relpath(Path(source_dir).resolve() / manifest.refiner, Path(out_dir).resolve())


__all__ = [
    "ARTIFACT_SUFFIXES",
    "FORMATS",
    "MAX_EXPORT_VIEWS",
    "ExportFormat",
    "format_table",
    "paired_from",
    "parse_input_size",
]
