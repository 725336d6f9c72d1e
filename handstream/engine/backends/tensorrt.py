"""TensorRT backend: a serialized engine built by ``handstream export-engine --format tensorrt``.

Legend: ``N`` views (the engine's dynamic batch axis, 1..max_views), ``(H_in, W_in)`` input size,
``(h, w)`` heatmap size (input / stride), ``H*K`` = 42 maps.

Written against the TensorRT 10 Python API (``tensorrt`` >= 10: named I/O tensors, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``). Device memory and the stream are torch's (no pycuda, no
cuda-python needed): the engine's inputs and outputs are preallocated torch CUDA tensors at the largest
batch of its optimisation profile, host inputs are staged through pinned memory and copied
asynchronously on the backend's one CUDA stream, and the outputs stay on the device, so
:meth:`HeatmapCodec.decode` runs the ``handstream._cuda`` kernel on them directly and only keypoints
cross back to the host.

Before deserialising, the engine's manifest (``<engine>.json``) is checked against this machine's
TensorRT version and the GPU's compute capability (:func:`check_engine_compatibility`): an engine runs
only where it was built, and the error says which command rebuilds it.

This module imports TensorRT and torch only when a backend is opened. NOTE: no machine of this project
had TensorRT, so this backend has been written from the API documentation and is tested only in its
error paths and its manifest checks (see docs/gpu.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.models.manifest import ModelManifest, load_manifest

MIN_TENSORRT_MAJOR = 10


def import_tensorrt(where: str = "tensorrt"):
    """The ``tensorrt`` module (>= 10), or a one-line HandstreamError saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise HandstreamError(
            f"{where}: NVIDIA TensorRT is not installed (pip install 'tensorrt>=10' on a machine with an NVIDIA "
            "GPU and driver, see docs/gpu.md); without it use the .onnx model with backend 'onnxruntime' or 'torch'"
        ) from None
    version = str(getattr(trt, "__version__", "0"))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_TENSORRT_MAJOR:
        raise HandstreamError(
            f"{where}: TensorRT {version} is installed; handstream needs TensorRT {MIN_TENSORRT_MAJOR} or newer"
        )
    return trt


def cuda_device_info(device: str = "cuda") -> dict[str, Any]:
    """Name and compute capability (``"9.0"``) of a CUDA device, through torch.

    Raises:
        HandstreamError: torch missing, a CPU build of torch, or no visible GPU.
    """
    try:
        import torch
    except ImportError:
        raise HandstreamError(f"{device}: TensorRT buffers are torch CUDA tensors; install torch with CUDA") from None
    if not torch.cuda.is_available():
        why = "this torch is a CPU build" if torch.version.cuda is None else "no NVIDIA GPU/driver is visible"
        raise HandstreamError(
            f"{device}: no CUDA GPU ({why}, torch {torch.__version__}); TensorRT engines are built and run on the GPU "
            "that serves them: run this on that machine"
        )
    dev = torch.device(device if str(device).startswith("cuda") else "cuda")
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise HandstreamError(f"{device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    major, minor = torch.cuda.get_device_capability(index)
    return {
        "device": f"cuda:{index}",
        "index": index,
        "gpu": torch.cuda.get_device_name(index),
        "compute_capability": f"{major}.{minor}",
    }


def rebuild_command(manifest: ModelManifest, engine_path: str | Path) -> str:
    """The ``handstream export-engine`` command that rebuilds this engine on the current machine."""
    info = manifest.tensorrt or {}
    source = manifest.provenance.get("checkpoint") or manifest.provenance.get("onnx_source") or "CHECKPOINT"
    out = Path(engine_path)
    out = out.with_name(out.name[: -len(out.suffix)]) if out.suffix else out
    w, h = manifest.input_size
    fp16 = " --fp16" if info.get("precision") == "fp16" else ""
    return (
        f"handstream export-engine --checkpoint {source} --out {out} --format tensorrt{fp16} "
        f"--max-views {manifest.max_views} --input {w}x{h}"
    )


def check_engine_compatibility(
    manifest: ModelManifest,
    where: str | Path,
    *,
    tensorrt_version: str,
    compute_capability: str,
    gpu_name: str | None = None,
) -> None:
    """Refuse an engine built for another TensorRT version or GPU architecture, before TensorRT sees it.

    Args:
        manifest: the engine's manifest (``artifact_format`` ``tensorrt``, ``tensorrt`` dict with
            ``version``, ``compute_capability``, ``gpu``, ``precision``).
        where: the engine's path (for the message).
        tensorrt_version: this machine's ``tensorrt.__version__``.
        compute_capability: this GPU's, as ``"major.minor"``.
        gpu_name: this GPU's name (only for the message).
    Raises:
        HandstreamError: one line naming what differs and the command that rebuilds the engine here.
    """
    info = manifest.tensorrt
    if manifest.artifact_format != "tensorrt" or not isinstance(info, dict):
        raise HandstreamError(
            f"{where}: its manifest describes a {manifest.artifact_format} artifact, not a TensorRT engine"
        )
    missing = [k for k in ("version", "compute_capability") if not info.get(k)]
    if missing:
        raise HandstreamError(
            f"{where}: manifest field 'tensorrt' lacks {', '.join(missing)}; "
            f"rebuild it: {rebuild_command(manifest, where)}"
        )
    problems = []
    if str(info["version"]) != str(tensorrt_version):
        problems.append(f"TensorRT {info['version']} (this machine has {tensorrt_version})")
    if str(info["compute_capability"]) != str(compute_capability):
        here = f"{gpu_name}, " if gpu_name else ""
        problems.append(
            f"a GPU of compute capability {info['compute_capability']} "
            f"({info.get('gpu', 'unknown GPU')}; this one: {here}{compute_capability})"
        )
    if problems:
        raise HandstreamError(
            f"{where}: engine built with {' for '.join(problems)}; "
            f"rebuild it on this machine: {rebuild_command(manifest, where)}"
        )


class TensorRTBackend:
    """Runs a TensorRT engine (``.engine``) described by its ``.engine.json`` manifest, on one GPU.

    Args:
        path: the engine (or its manifest).
        device: ``cuda`` or ``cuda:N`` (``cpu`` means the current CUDA device: an engine only runs on a GPU).

    ``infer`` takes NumPy arrays (staged through pinned memory) or CUDA tensors, and returns CUDA
    tensors that are views of the backend's output buffers: valid until the next ``infer`` call.
    """

    name = "tensorrt"

    def __init__(self, path: str | Path, *, device: str = "cuda"):
        trt = import_tensorrt(str(path))
        self.manifest, self.path = load_manifest(path)
        if self.manifest.artifact_format != "tensorrt":
            raise HandstreamError(
                f"{self.path}: a {self.manifest.artifact_format} artifact cannot run on the tensorrt backend"
            )
        gpu = cuda_device_info(device if str(device).startswith("cuda") else "cuda")
        check_engine_compatibility(
            self.manifest,
            self.path,
            tensorrt_version=trt.__version__,
            compute_capability=gpu["compute_capability"],
            gpu_name=gpu["gpu"],
        )  # fmt: skip
        import torch

        self.torch = torch
        self.trt = trt
        self.gpu = gpu
        self.device = torch.device(gpu["device"])
        self.logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            self.runtime = trt.Runtime(self.logger)
            self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise HandstreamError(
                    f"{self.path}: TensorRT {trt.__version__} cannot deserialize this engine "
                    "(corrupt, or built by another "
                    f"TensorRT); rebuild it: {rebuild_command(self.manifest, self.path)}"
                )
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise HandstreamError(
                    f"{self.path}: TensorRT could not create an execution context (out of GPU memory?)"
                )
        self._check_io()
        self.stream = torch.cuda.Stream(device=self.device)
        self._staged = torch.cuda.Event()
        w, h = self.manifest.input_size
        hh, hw = -(-h // self.manifest.stride), -(-w // self.manifest.stride)
        n = self.max_views
        shapes = {
            "image": (n, 1, h, w),
            "rays": (n, 2, hh, hw),
            "heatmaps": (n, self.manifest.codec.num_maps, hh, hw),
            "presence": (n, 2),
        }
        self.buffers = {
            name: torch.empty(shapes[name], dtype=torch.float32, device=self.device) for name in self.io_names
        }
        self.host = {
            name: torch.empty(shapes[name], dtype=torch.float32, pin_memory=True) for name in self.manifest.input_names
        }
        for name, buf in self.buffers.items():
            if not self.context.set_tensor_address(name, buf.data_ptr()):
                raise HandstreamError(f"{self.path}: TensorRT refused the device buffer of {name!r}")
        for name in self.manifest.input_names:
            self.context.set_input_shape(name, shapes[name])
        for name in self.manifest.output_names:
            got = tuple(self.context.get_tensor_shape(name))
            if got != shapes[name]:
                raise HandstreamError(
                    f"{self.path}: output {name!r} is {got} for {n} views, "
                    f"its manifest implies {shapes[name]}; rebuild the engine"
                )

    def _check_io(self) -> None:
        trt, engine = self.trt, self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if sorted(inputs) != sorted(self.manifest.input_names) or sorted(outputs) != sorted(self.manifest.output_names):
            raise HandstreamError(
                f"{self.path}: engine tensors {inputs} -> {outputs} do not match its manifest "
                f"({self.manifest.input_names} -> {self.manifest.output_names}); "
                f"rebuild it: {rebuild_command(self.manifest, self.path)}"
            )
        for name in names:
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise HandstreamError(
                    f"{self.path}: tensor {name!r} is {engine.get_tensor_dtype(name)}, "
                    "handstream feeds and reads float32"
                )
        self.io_names = names
        w, h = self.manifest.input_size
        lo, _opt, hi = (tuple(s) for s in engine.get_tensor_profile_shape("image", 0))
        if lo[0] != 1 or tuple(hi[1:]) != (1, h, w):
            raise HandstreamError(
                f"{self.path}: profile of 'image' is {lo}..{hi}, expected (1, 1, {h}, {w})..(N, 1, {h}, {w})"
            )
        self.max_views = int(hi[0])

    def infer(self, image, rays) -> tuple[Any, Any]:
        """image (N, 1, H_in, W_in), rays (N, 2, h, w) or None, float32 (NumPy or CUDA tensors), 1 <= N <= max_views
        -> heatmaps (N, 42, h, w) and presence (N, 2) probabilities, CUDA tensors (views of the output buffers)."""
        torch = self.torch
        n = int(image.shape[0])
        if not 1 <= n <= self.max_views:
            raise HandstreamError(
                f"{self.path}: this engine takes 1 to {self.max_views} views (its optimisation profile), got {n}; "
                f"rebuild it with --max-views {n}"
            )
        feeds = {"image": image}
        if self.manifest.kpe:
            feeds["rays"] = rays
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)  # CUDA inputs may have been written on the caller's stream
        with torch.cuda.stream(self.stream):
            self._staged.synchronize()  # the previous upload has finished reading the pinned buffers
            for name, x in feeds.items():
                dst = self.buffers[name][:n]
                if tuple(x.shape) != tuple(dst.shape):
                    raise HandstreamError(
                        f"{self.path}: input {name!r} must be {tuple(dst.shape)}, got {tuple(x.shape)}"
                    )
                if isinstance(x, np.ndarray):
                    host = self.host[name][:n]
                    host.numpy()[...] = x
                    dst.copy_(host, non_blocking=True)
                else:
                    dst.copy_(x, non_blocking=True)
                self.context.set_input_shape(name, tuple(dst.shape))
            self._staged.record(self.stream)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.path}: TensorRT execute_async_v3 failed (see the TensorRT log above)")
        current.wait_stream(self.stream)  # decode on the caller's stream sees finished outputs
        return self.buffers["heatmaps"][:n], self.buffers["presence"][:n]
