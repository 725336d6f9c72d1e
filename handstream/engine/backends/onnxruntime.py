"""ONNX Runtime backend (CPU execution provider): the default, torch-free path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from handstream.errors import HandstreamError
from handstream.models.landmarks import LandmarkOutputs
from handstream.models.manifest import load_manifest


class OnnxRuntimeBackend:
    """Runs a ``.onnx`` artifact described by its ``.onnx.json`` manifest.

    Args:
        path: the ``.onnx`` file (or its manifest).
        threads: intra-op threads (0: one per core).
    """

    name = "onnxruntime"

    def __init__(self, path: str | Path, *, threads: int = 0):
        import onnxruntime as ort

        self.manifest, self.path = load_manifest(path)
        if self.manifest.artifact_format != "onnx":
            raise HandstreamError(f"{path}: a {self.manifest.artifact_format} artifact cannot run on onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt or unsupported models
            raise HandstreamError(f"{self.path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
        names = [i.name for i in self.session.get_inputs()]
        outs = [o.name for o in self.session.get_outputs()]
        if names != self.manifest.input_names or outs != self.manifest.output_names:
            raise HandstreamError(
                f"{self.path}: inputs {names} / outputs {outs} do not match its manifest "
                f"({self.manifest.input_names} / {self.manifest.output_names}); re-export the model"
            )
        shape = self.session.get_inputs()[0].shape
        w, h = self.manifest.input_size
        want = image_shape(self.manifest)
        if list(shape[1:]) != list(want):
            raise HandstreamError(
                f"{self.path}: input {names[0]!r} is {shape}, its manifest ({self.manifest.kind} model) says "
                f"(N, {', '.join(map(str, want))})"
            )

    def infer(self, image: np.ndarray, rays: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """image (N, 1, H_in, W_in), rays (N, 2, h, w) or None -> heatmaps (N, 42, h, w), presence (N, 2)."""
        if self.manifest.kind != "heatmap":
            raise HandstreamError(f"{self.path}: a {self.manifest.kind} model has no heatmaps (use infer_landmarks)")
        feeds = {"image": image}
        if self.manifest.kpe:
            feeds["rays"] = rays
        heatmaps, presence = self.session.run(None, feeds)
        return heatmaps, presence

    def infer_landmarks(self, image: np.ndarray) -> LandmarkOutputs:
        """A ``landmarks`` model (one hand per crop): image (N, 3, H_in, W_in) RGB in [0, 1] (NCHW; an NHWC model
        gets it transposed) -> :class:`~handstream.models.landmarks.LandmarkOutputs` (keypoints (N, 21, 2) crop
        px, presence (N,), ...)."""
        if self.manifest.kind != "landmarks":
            raise HandstreamError(f"{self.path}: a {self.manifest.kind} model does not regress landmarks")
        x = image if self.manifest.input_layout == "NCHW" else np.ascontiguousarray(image.transpose(0, 2, 3, 1))
        outputs = self.session.run(None, {self.manifest.input_names[0]: x})
        return LandmarkOutputs.decode(outputs, self.manifest.output_names, self.manifest.output_roles)


def image_shape(manifest) -> tuple[int, int, int]:
    """The image input's shape after the batch axis: (1, H_in, W_in) for a heatmap model; (3, H_in, W_in) for a
    landmarks model, (H_in, W_in, 3) when its layout is NHWC."""
    w, h = manifest.input_size
    if manifest.kind == "heatmap":
        return (1, h, w)
    return (3, h, w) if manifest.input_layout == "NCHW" else (h, w, 3)
