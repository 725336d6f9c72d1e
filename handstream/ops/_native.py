"""Loading the native modules and telling NumPy input from torch CUDA tensors.

torch is never imported here: a tensor is recognised only if the caller already imported torch,
so the live path (NumPy end to end) stays free of it.
"""

from __future__ import annotations

import functools
import sys
from types import ModuleType

from handstream.errors import HandstreamError


@functools.cache
def cpu() -> ModuleType:
    """The C++ CPU kernels (``handstream._C``); always built with the package."""
    try:
        from handstream import _C
    except ImportError as exc:  # an install without its compiled part
        raise HandstreamError(
            f"handstream._C (the compiled CPU kernels) cannot be imported ({exc}); "
            'reinstall with: pip install -e ".[dev]"'
        ) from None
    return _C


@functools.cache
def cuda() -> ModuleType | None:
    """The CUDA kernels (``handstream._cuda``), or None where the build found no nvcc."""
    try:
        from handstream import _cuda
    except ImportError:
        return None
    return _cuda


def cuda_available() -> bool:
    """True when handstream._cuda is built and a CUDA device can be used."""
    module = cuda()
    return module is not None and module.device_count() > 0


def is_tensor(x: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def is_cuda_tensor(x: object) -> bool:
    return is_tensor(x) and x.is_cuda  # type: ignore[attr-defined]


def require_cuda() -> ModuleType:
    module = cuda()
    if module is None:
        raise HandstreamError(
            "a CUDA tensor was passed but handstream._cuda was not built (no nvcc at install time); "
            "pass a NumPy array or a CPU tensor, or reinstall on a machine with the CUDA toolkit"
        )
    return module


def stream_of(tensor) -> int:
    """The raw cudaStream_t of torch's current stream on the tensor's device."""
    import torch

    return torch.cuda.current_stream(tensor.device).cuda_stream
