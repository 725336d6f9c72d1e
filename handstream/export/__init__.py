"""Export the estimator: PyTorch -> ONNX (checked against PyTorch with ONNX Runtime) -> TensorRT, + JSON manifests.

Legend: ``N`` views (the dynamic batch axis), ``(H_in, W_in)`` input size, ``(h, w)`` heatmap size
(input / stride), 42 heatmaps (2 hands x 21 joints).

* :mod:`handstream.export.onnx`: :func:`export_onnx`, a :class:`HandNet` -> ``NAME.onnx`` +
  ``NAME.onnx.json`` (dynamic ``views`` axis, parity against PyTorch on random and real inputs).
* :mod:`handstream.export.landmarks`: :func:`export_landmark_onnx`, a (fine-tuned)
  :class:`~handstream.models.landmark_net.LandmarkNet` -> ``NAME.onnx`` + ``NAME.onnx.json`` with the imported
  MediaPipe model's input/output names and roles (dynamic batch, parity against PyTorch per output).
* :mod:`handstream.export.tensorrt`: :func:`build_tensorrt`, ``NAME.onnx`` -> ``NAME.engine`` +
  ``NAME.engine.json`` with the TensorRT 10 Python API (optimisation profile 1..max_views on ``views``,
  fp32 or fp16, timing cache ``NAME.timing.cache``, parity against ONNX Runtime). Needs TensorRT and an
  NVIDIA GPU.
* :mod:`handstream.export.parity`: :func:`compare_outputs` (how far two runtimes are apart) and
  :func:`real_parity_inputs` (inputs made from rendered frames the way the engine makes them).
* :mod:`handstream.export.run`: :func:`export_engine`, what ``handstream export-engine`` does:
  checkpoint -> ONNX [-> TensorRT].
* :mod:`handstream.export.artifacts`: the formats (``--list``), input sizes, view counts and file names
  the command accepts, the refiner pairing (:func:`paired_from`); :mod:`handstream.export.progress`: its
  console steps.

torch, onnx and TensorRT are imported lazily (inside the functions), so importing this package is cheap.
"""

from handstream.export.artifacts import (
    ARTIFACT_SUFFIXES,
    FORMATS,
    MAX_EXPORT_VIEWS,
    ExportFormat,
    format_table,
    paired_from,
    parse_input_size,
)
from handstream.export.landmarks import LANDMARK_TOLERANCE, export_landmark_onnx
from handstream.export.onnx import OPSET, PARITY_TOLERANCE, example_inputs, export_onnx, torch_to_onnx
from handstream.export.parity import KEYPOINT_CONF, compare_outputs, real_parity_inputs
from handstream.export.progress import Progress
from handstream.export.run import export_engine
from handstream.export.tensorrt import TENSORRT_TOLERANCE, build_tensorrt, require_tensorrt_here

__all__ = [
    "ARTIFACT_SUFFIXES",
    "FORMATS",
    "KEYPOINT_CONF",
    "LANDMARK_TOLERANCE",
    "MAX_EXPORT_VIEWS",
    "OPSET",
    "PARITY_TOLERANCE",
    "TENSORRT_TOLERANCE",
    "ExportFormat",
    "Progress",
    "build_tensorrt",
    "compare_outputs",
    "example_inputs",
    "export_engine",
    "export_landmark_onnx",
    "export_onnx",
    "format_table",
    "paired_from",
    "parse_input_size",
    "real_parity_inputs",
    "require_tensorrt_here",
    "torch_to_onnx",
]
