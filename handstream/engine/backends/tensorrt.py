"""TensorRT backend: placeholder until `handstream export-engine --format tensorrt` lands (issue 6).

TensorRT is imported lazily; on machines without it the error says how to get it.
"""

from __future__ import annotations

from pathlib import Path

from handstream.errors import HandstreamError


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, path: str | Path):
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise HandstreamError(
                f"{path}: the tensorrt backend needs NVIDIA TensorRT 10+ (pip install tensorrt on a machine with an "
                "NVIDIA driver); use backend = 'onnxruntime' with the .onnx model instead"
            ) from None
        raise HandstreamError(f"{path}: the TensorRT backend is not implemented yet in this version")
