"""handstream: real-time multi-view 3D hand pose estimation.

Pipeline (one direction): capture processes -> ZeroMQ ``frame.<camera>`` -> engine process
(sync -> infer -> decode -> triangulate -> smooth) -> ZeroMQ ``pose`` -> subscribers.

Public API: :func:`subscribe` (poses from a running engine), :func:`read_recording` (poses from a
``handstream subscribe --record`` file), :class:`HandstreamError`.
"""

from handstream.errors import HandstreamError

__version__ = "0.1.0"

__all__ = ["HandstreamError", "__version__", "read_recording", "subscribe"]


def __getattr__(name: str):
    # lazy: `import handstream` stays cheap for code that only needs the kernels
    if name in ("subscribe", "read_recording"):
        import importlib

        _module = importlib.import_module("handstream.client")

        return getattr(_module, name)
    raise AttributeError(f"module 'handstream' has no attribute {name!r}")
