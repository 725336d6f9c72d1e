"""Inference backends: one interface, several runtimes.

Legend: ``N`` views, ``(H_in, W_in)`` input size, ``(h, w)`` heatmap size, ``H*K`` = 42 maps.

A backend has a ``name``, the model's ``manifest`` and one method::

    infer(image (N, 1, H_in, W_in) float32, rays (N, 2, h, w) float32 | None)
        -> heatmaps (N, H*K, h, w) float32, presence (N, H) float32 probabilities

A ``landmarks`` model (``manifest.kind``: one hand's keypoints regressed per crop, e.g. MediaPipe's network
imported by :mod:`handstream.models.importer`) runs on ``onnxruntime`` only, through
``infer_landmarks(image (N, 3, H_in, W_in) RGB) -> LandmarkOutputs`` instead.

* ``onnxruntime`` (default on CPU): a ``.onnx`` artifact with its manifest; NumPy in and out.
* ``torch``: a PyTorch checkpoint (``.pt``) or a ``.onnx`` model (weights read from the graph), on CPU
  (eager) or CUDA (CUDA graphs; outputs stay on the device).
* ``tensorrt``: a serialized TensorRT engine (``.engine``) built by ``handstream export-engine``; outputs
  stay on the device.

On a GPU the heatmaps are CUDA tensors and decoding runs on ``handstream._cuda`` without a host copy.
Heavy runtimes are imported only when their backend is opened: on a machine without a GPU, ``auto``
never imports torch for an ONNX model (the live CPU path stays torch-free).
"""

from __future__ import annotations

import logging
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
    """The backend an artifact is made for, by its suffix (``auto`` without a GPU)."""
    suffix = path.suffix.lower()
    if suffix in (".engine", ".trt", ".plan"):
        return "tensorrt"
    if suffix in (".pt", ".pth", ".ckpt"):
        return "torch"
    return "onnxruntime"


def gpu_visible() -> bool:
    """True when an NVIDIA GPU is usable, decided without importing torch.

    Through ``handstream._cuda`` when it is built (its device count); otherwise by the NVIDIA driver's
    ``/proc/driver/nvidia/gpus`` entries.
    """
    from handstream.ops import _native

    if _native.cuda() is not None:
        return _native.cuda_available()
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def _torch_cuda(device: str) -> str | None:
    """``device`` (or ``cuda``) when torch can use a CUDA device, else None. Imports torch."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return device if device.startswith("cuda") else "cuda"


def choose_backend(path: Path, backend: str = "auto", device: str = "cpu") -> tuple[str, str]:
    """Resolve ``auto`` -> (backend name, device): the fastest runtime available here for this artifact.

    * ``.engine``/``.trt``/``.plan`` -> ``tensorrt`` (the only runtime that reads it);
    * ``.pt`` -> ``torch``, on CUDA when a GPU is usable (``device`` when it names one), else on CPU;
    * ``.onnx`` -> ``torch`` on CUDA (CUDA graphs, decoding on the device) when a GPU, torch with CUDA
      and ``handstream._cuda`` are all there, else ``onnxruntime`` on CPU.

    An explicit ``backend`` is returned as is, with ``device``.
    """
    if backend != "auto":
        return backend, device
    name = default_backend_for(path)
    if name == "tensorrt":
        return name, device if device.startswith("cuda") else "cuda"
    if name == "torch":
        if device.startswith("cuda") or not gpu_visible():
            return name, device
        return name, _torch_cuda(device) or device
    from handstream.ops import _native

    if gpu_visible() and _native.cuda_available():
        cuda = _torch_cuda(device)
        if cuda is not None:
            return "torch", cuda
    return "onnxruntime", device


def open_backend(path: str | Path, backend: str = "auto", *, threads: int = 0, device: str = "cpu") -> Backend:
    """Load a model artifact with a backend.

    Args:
        path: ``.onnx`` (+ ``.onnx.json``), ``.pt`` checkpoint, or ``.engine`` (+ ``.engine.json``).
        backend: ``auto`` (:func:`choose_backend`: the fastest available) or one of :data:`BACKEND_NAMES`.
        threads: CPU inference threads (0: one per core).
        device: torch device (torch backend): ``cpu``, ``cuda``, ``cuda:N``; with ``auto`` a ``cuda:N``
            picks the GPU, ``cpu`` lets ``auto`` decide.
    Raises:
        HandstreamError: missing file or manifest, a backend that cannot run this artifact or is not installed.
    """
    path = Path(path)
    if not path.exists():
        raise HandstreamError(f"{path}: model not found")
    if backend != "auto" and backend not in BACKEND_NAMES:
        raise HandstreamError(f"model.backend: expected auto or one of {', '.join(BACKEND_NAMES)}, got {backend!r}")
    name, dev = choose_backend(path, backend, device)
    if name != "onnxruntime" and path.suffix.lower() == ".onnx" and _kind(path) == "landmarks":
        if backend != "auto":  # the torch and TensorRT backends run handstream's heatmap networks only
            raise HandstreamError(f"{path}: a landmarks model runs on onnxruntime (model.backend = onnxruntime)")
        name = "onnxruntime"
    if name == "onnxruntime":
        from handstream.engine.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads=threads)
    if name == "torch":
        from handstream.engine.backends.torch import TorchBackend

        if backend == "auto" and path.suffix.lower() == ".onnx":
            try:
                return TorchBackend(path, device=dev, threads=threads)
            except HandstreamError as exc:  # an ONNX model PyTorch cannot rebuild: it still runs on onnxruntime
                logging.getLogger(__name__).warning("%s; using onnxruntime", exc)
                from handstream.engine.backends.onnxruntime import OnnxRuntimeBackend

                return OnnxRuntimeBackend(path, threads=threads)
        return TorchBackend(path, device=dev, threads=threads)
    from handstream.engine.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(path, device=dev)


def _kind(path: Path) -> str:
    """The manifest's model kind (``heatmap`` when there is no manifest: the backend then says what is missing)."""
    from handstream.models.manifest import load_manifest, manifest_path

    if not manifest_path(path).is_file():
        return "heatmap"
    return load_manifest(path)[0].kind
