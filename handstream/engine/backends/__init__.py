"""Inference backends: one interface, several runtimes.

Legend: ``N`` views, ``(H_in, W_in)`` input size, ``(h, w)`` heatmap size, ``H*K`` = 42 maps.

A backend has a ``name``, the model's ``manifest`` and one method::

    infer(image (N, 1, H_in, W_in) float32, rays (N, 2, h, w) float32 | None)
        -> heatmaps (N, H*K, h, w) float32, presence (N, H) float32 probabilities

* ``onnxruntime`` (default, CPU): a ``.onnx`` artifact with its manifest.
* ``torch``: a PyTorch checkpoint (``.pt``), on CPU or CUDA.
* ``tensorrt``: a serialized TensorRT engine (``.engine``) built by ``handstream export-engine``.

Heavy runtimes are imported only when their backend is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from handstream.errors import HandstreamError
from handstream.models.manifest import ModelManifest

BACKEND_NAMES = ("onnxruntime", "torch", "tensorrt")


class Backend(Protocol):
    name: str
    manifest: ModelManifest

    def infer(self, image: np.ndarray, rays: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]: ...


def default_backend_for(path: Path) -> str:
    """``auto``: the backend an artifact is made for."""
    suffix = path.suffix.lower()
    if suffix in (".engine", ".trt", ".plan"):
        return "tensorrt"
    if suffix in (".pt", ".pth", ".ckpt"):
        return "torch"
    return "onnxruntime"


def open_backend(path: str | Path, backend: str = "auto", *, threads: int = 0, device: str = "cpu") -> Backend:
    """Load a model artifact with a backend.

    Args:
        path: ``.onnx`` (+ ``.onnx.json``), ``.pt`` checkpoint, or ``.engine`` (+ ``.engine.json``).
        backend: ``auto`` or one of :data:`BACKEND_NAMES`.
        threads: CPU inference threads (0: one per core).
        device: torch device (torch backend).
    Raises:
        HandstreamError: missing file or manifest, a backend that cannot run this artifact or is not installed.
    """
    path = Path(path)
    if not path.exists():
        raise HandstreamError(f"{path}: model not found")
    name = default_backend_for(path) if backend == "auto" else backend
    if name == "onnxruntime":
        from handstream.engine.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads=threads)
    if name == "torch":
        from handstream.engine.backends.torch import TorchBackend

        return TorchBackend(path, device=device, threads=threads)
    if name == "tensorrt":
        from handstream.engine.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(path)
    raise HandstreamError(f"model.backend: expected auto or one of {', '.join(BACKEND_NAMES)}, got {backend!r}")
