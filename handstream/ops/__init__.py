"""The numeric kernels of the live path, dispatched to C++ (NumPy input) or CUDA (torch CUDA tensors).

Legend for shapes: ``V`` views, ``P`` points, ``K`` joints, ``(h, w)`` heatmap size, ``S`` frames, ``N`` crops,
``(W, H)`` crop size.

- :func:`decode_heatmaps`: heatmaps ``(..., K, h, w)`` -> coords ``(..., K, 2)``, conf ``(..., K)``
- :func:`triangulate`: points ``(V, P, 2)`` + projections ``(V, 3, 4)`` -> :class:`Triangulation`
- :func:`resample_crops`: S uint8 frames ``(h_s, w_s)`` + per-crop lens ``(N, 14)``, rotation ``(N, 3, 3)``,
  crop camera ``(N, 3)`` -> crops ``(N, H, W)`` float32 in [0, 1]

:mod:`handstream.ops.reference` holds the slow NumPy versions the kernels are tested against.
"""

from handstream.ops._native import cuda_available
from handstream.ops.decode import decode_heatmaps
from handstream.ops.resample import resample_crops
from handstream.ops.triangulate import MAX_VIEWS, Triangulation, triangulate

__all__ = ["MAX_VIEWS", "Triangulation", "cuda_available", "decode_heatmaps", "resample_crops", "triangulate"]
