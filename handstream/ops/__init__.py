"""The numeric kernels of the live path, dispatched to C++ (NumPy input) or CUDA (torch CUDA tensors).

Legend for shapes: ``V`` views, ``P`` points, ``K`` joints, ``(h, w)`` heatmap size.

- :func:`decode_heatmaps`: heatmaps ``(..., K, h, w)`` -> coords ``(..., K, 2)``, conf ``(..., K)``
- :func:`triangulate`: points ``(V, P, 2)`` + projections ``(V, 3, 4)`` -> :class:`Triangulation`

:mod:`handstream.ops.reference` holds the slow NumPy versions the kernels are tested against.
"""

from handstream.ops._native import cuda_available
from handstream.ops.decode import decode_heatmaps
from handstream.ops.triangulate import MAX_VIEWS, Triangulation, triangulate

__all__ = ["MAX_VIEWS", "Triangulation", "cuda_available", "decode_heatmaps", "triangulate"]
