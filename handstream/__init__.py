"""handstream: real-time multi-view 3D hand pose estimation.

Pipeline (one direction): capture processes -> ZeroMQ ``frame.<camera>`` -> engine process
(sync -> infer -> decode -> triangulate -> smooth) -> ZeroMQ ``pose`` -> subscribers.
"""

from handstream.errors import HandstreamError

__version__ = "0.1.0"

__all__ = ["HandstreamError", "__version__"]
